"""The main window: tabs (Live, Images, and any added later), menus, model and settings."""
from __future__ import annotations

import functools
import html
import logging
from pathlib import Path

from PySide6.QtCore import QByteArray, QSize, Qt, QThread
from PySide6.QtGui import QAction, QActionGroup, QGuiApplication, QKeySequence
from PySide6.QtWidgets import (QFileDialog, QLabel, QMainWindow, QTabWidget, QVBoxLayout,
                               QWidget)

from fasdesk.core.models import registry
from fasdesk.core.io.imageio import IMAGE_EXTENSIONS
from fasdesk.core.inference.liveness import DEFAULT_THRESHOLD, LivenessEngine, ModelError, best_providers
from fasdesk.core.inference.pipeline import build_pipeline
from fasdesk.core.calibration.profiles import Profile, profile_for_source
from fasdesk.core.io.settings import Settings, load_settings, replace_settings, save_settings
from fasdesk.core.live.sources import SourceSpec
from fasdesk.core.decision.thresholds import format_threshold, stored_threshold
from fasdesk.ui.dialogs import AboutDialog, ModelInfoDialog
from fasdesk.ui.live_tab import LiveTab, MessageBar
from fasdesk.ui.model_banner import ModelBanner, missing_models
from fasdesk.ui.drops import accept_if_files, dropped_paths


log = logging.getLogger(__name__)

PREFERRED_SIZE = QSize(1180, 760)
# What a window manager's title bar and borders add around the window, at most (the
# frame is unknown until the window is shown): a 1366x768 laptop screen with a 40 px
# taskbar leaves 1366x728, so the window itself gets at most 1350x688.
FRAME_ALLOWANCE = QSize(16, 40)


def fitted_size(preferred: QSize, available: QSize, frame: QSize = FRAME_ALLOWANCE) -> QSize:
    """`preferred`, shrunk where needed so the window and its frame fit `available`."""
    return preferred.boundedTo(available - frame)


def fits(size: QSize, available: QSize, frame: QSize = FRAME_ALLOWANCE) -> bool:
    room = available - frame
    return size.width() <= room.width() and size.height() <= room.height()


def _images_tab_class():
    """The Images tab, built in its own module (imported late so a missing one is survivable)."""
    try:
        from fasdesk.ui.images_tab import ImagesTab
    except ImportError:
        return None
    return ImagesTab


def unavailable_tab(title: str, exc: BaseException) -> QLabel:
    """What shows in place of a tab that failed to load: the error, and that the rest works."""
    label = QLabel(f"<b>The {title} tab could not be loaded.</b><br><br>"
                   f"{html.escape(type(exc).__name__)}: {html.escape(str(exc))}<br><br>"
                   "The other tabs work as usual. Reinstalling fasdesk usually fixes this; "
                   "the full error is in the terminal output.")
    label.setObjectName("unavailableTab")
    label.setWordWrap(True)
    label.setAlignment(Qt.AlignCenter)
    label.setTextInteractionFlags(Qt.TextSelectableByMouse)
    label.setMargin(40)
    return label


class MainWindow(QMainWindow):
    def __init__(self, settings: Settings | None = None, settings_warning: str | None = None,
                 source: str | None = None, save: bool = True):
        super().__init__()
        if settings is None:
            settings, settings_warning = load_settings()
        self.settings = settings
        self._save_enabled = save
        self.stuck_workers = False  # set on close when a worker thread did not stop
        self.setWindowTitle("fasdesk - face liveness")
        self.setAcceptDrops(True)

        self.notice = MessageBar()
        self.banner = ModelBanner()
        self.banner.open_file.connect(self.open_model_file)
        self.banner.downloaded.connect(self._on_downloaded)

        self.tabs = QTabWidget()
        self.tabs.setDocumentMode(True)
        self.tabs.tabBar().setDrawBase(False)
        self.live_tab = LiveTab(settings, self._pipeline_factory(live=True))
        self.live_tab.threshold_changed.connect(self.set_threshold)
        self.live_tab.source_changed.connect(self._on_source_changed)
        self.live_tab.status_message.connect(self.show_status)
        self.live_tab.stats_changed.connect(self._show_live_stats)
        self.live_tab.running_changed.connect(self._on_live_running)
        self.live_tab.pipeline_changed.connect(self._on_pipeline_changed)
        self.live_tab.confirm_frames_changed.connect(lambda _n: self.save_settings())
        self.live_tab.source_selected.connect(self._on_source_selected)
        self.live_tab.calibrate_requested.connect(lambda: self.open_calibration())
        self.active_profile: Profile | None = None
        self._before_profile = None  # (model, threshold, confirm N) to restore when it ends
        self._engine_status = ("", None, "")  # the live engine's (model file, optimized, why)
        self._reported_profiles: set[str] = set()
        self.calibration_dialog = None
        self.tabs.addTab(self.live_tab, "Live")
        images_cls = _images_tab_class()
        self.images_tab = images_cls() if images_cls else None
        if self.images_tab is not None:
            self.images_tab.set_pipeline_factory(self._pipeline_factory())
            self.images_tab.set_threshold(settings.threshold)
            self.images_tab.threshold_changed.connect(self.set_threshold)
            if settings.last_folders.get("images"):
                self.images_tab.last_folder = settings.last_folders["images"]
            self.images_tab.status_message.connect(self.show_status)
            self.tabs.addTab(self.images_tab, "Images")
        # The Training tab, and the Collect panel under the live view (issue 6).
        self.collect_panel = None
        self.training_tab = self._install_training()

        central = QWidget()
        layout = QVBoxLayout(central)
        layout.setContentsMargins(6, 6, 6, 0)
        layout.addWidget(self.banner)
        layout.addWidget(self.notice)
        layout.addWidget(self.tabs, 1)
        self.setCentralWidget(central)

        # Live stats show only while live runs (on any tab); model and provider always.
        self.stats_label = QLabel("")
        self.stats_label.setToolTip("Live view: frames per second and time per stage")
        self.stats_label.hide()
        self.model_label = QLabel("")
        self.profile_label = QLabel("")
        self.profile_label.setToolTip("The camera profile in use (Tools > Camera profiles)")
        self.profile_label.hide()
        # What onnxruntime will use until a live pipeline reports what it got.
        self.provider_label = QLabel(best_providers()[0].replace("ExecutionProvider", ""))
        self.provider_label.setToolTip("onnxruntime execution provider")
        for label in (self.stats_label, self.profile_label, self.model_label, self.provider_label):
            self.statusBar().addPermanentWidget(label)
        # Wide enough for the longest stats line, so it never jumps or gets cut.
        self.stats_label.setMinimumWidth(self.stats_label.fontMetrics().horizontalAdvance(
            "live 00.0 fps | detect 000.0 ms, crop 00.0 ms, liveness 000.0 ms") + 20)

        self._build_menus()
        self.place_on_screen(settings.geometry)
        warnings = [w for w in (settings_warning, getattr(self.training_tab, "restore_warning", None))
                    if w]
        if warnings:
            self.notice.show_message(" ".join(warnings), action=None, level="warning")
            self.save_settings()  # the bad values are gone from the file: said once
        self.check_models()
        if source is not None:
            self.live_tab.start(SourceSpec.parse(source))

    def place_on_screen(self, saved: str = "") -> None:
        """The saved geometry when it fits this screen, else the preferred size shrunk to
        the screen's available area (a laptop's 1366x768 included), centred."""
        screen = self.screen() or QGuiApplication.primaryScreen()
        available = screen.availableGeometry()
        if saved:
            try:
                restored = self.restoreGeometry(QByteArray.fromBase64(saved.encode("ascii")))
            except (UnicodeEncodeError, ValueError):
                restored = False
            if restored and (self.isMaximized() or fits(self.size(), available.size())):
                return
            self.setWindowState(Qt.WindowNoState)
        size = fitted_size(PREFERRED_SIZE, available.size())
        self.resize(size)
        self.move(available.x() + (available.width() - size.width() - FRAME_ALLOWANCE.width()) // 2,
                  available.y() + (available.height() - size.height() - FRAME_ALLOWANCE.height()) // 2)

    # -- tabs for other parts of the app ------------------------------------------------
    def _install_training(self):
        """The Training tab, or its error in its place: whatever is wrong in its modules,
        Live and Images must still start."""
        tabs_before = self.tabs.count()
        try:
            from fasdesk.ui.training_tab import install

            return install(self)
        except Exception as exc:
            log.exception("The Training tab could not be loaded")
            while self.tabs.count() > tabs_before:  # a half-installed tab goes
                self.tabs.removeTab(tabs_before)
            self.add_tab(unavailable_tab("Training", exc), "Training")
            return None

    def add_tab(self, widget: QWidget, title: str) -> int:
        """Add a tab (e.g. Training); returns its index."""
        return self.tabs.addTab(widget, title)

    # -- threshold ----------------------------------------------------------------------
    def set_threshold(self, value: float) -> None:
        """The one threshold, owned here: moving either tab's slider (or "apply to live" in
        Training) lands here, and the settings and both tabs follow it."""
        value = min(1.0, max(0.0, float(value)))
        self.settings.threshold = value
        self.live_tab.set_threshold(value)
        if self.images_tab is not None:
            self.images_tab.set_threshold(value)

    # -- models -------------------------------------------------------------------------
    def _pipeline_factory(self, live: bool = False):
        """Builds a pipeline for the current model (live=True: detection sized for camera
        frames; False: photos of any size)."""
        # Photos: single-threaded, the first of the Images tab's parallel workers.
        return functools.partial(build_pipeline, self.settings.model or None, None,
                                 self.settings.threshold, live=live, threads=None if live else 1)

    def _push_factories(self) -> None:
        self.live_tab.set_pipeline_factory(self._pipeline_factory(live=True))
        if self.images_tab is not None:
            self.images_tab.set_pipeline_factory(self._pipeline_factory())

    def current_model_path(self) -> Path | None:
        try:
            return registry.resolve(self.settings.model or None, kind="liveness")
        except registry.MissingModelError:
            return None

    def use_model(self, model: str | Path, threshold: float | None = None) -> bool:
        """Switch the live view and the Images tab to a registry id or an .onnx path.

        A threshold belongs to the model it was picked for: the new model brings its own
        (`threshold`, else the one stored with it by an export or a calibration, else the
        default), never the previous model's."""
        model = str(model)
        try:
            path = registry.resolve(model, kind="liveness")
            LivenessEngine(path)  # refuse a broken or wrong-shaped model before switching
        except (registry.MissingModelError, ModelError) as exc:
            self.notice.show_message(f"Model not changed: {exc}", action=None, level="error")
            return False
        entry = registry.get_entry(model)
        self.settings.model = model if entry is not None else str(path)
        if threshold is None:
            stored = stored_threshold(path, entry)
            threshold = DEFAULT_THRESHOLD if stored is None else stored
        self.set_threshold(threshold)
        self._push_factories()
        self._refresh_model_menu()
        self.check_models()
        self.show_status(f"Model: {entry.id if entry else path.name}, threshold "
                         f"{format_threshold(threshold)}")
        self.save_settings()
        return True

    # -- camera profiles ------------------------------------------------------------------
    def _camera_name(self, spec: SourceSpec) -> str | None:
        if spec.kind != "camera":
            return None
        return self.live_tab.options.camera_names.get(int(spec.target))

    def _on_source_selected(self, spec: SourceSpec) -> None:
        """A source is about to run live: apply its profile, or leave the last one."""
        profile, problems = profile_for_source(spec, self._camera_name(spec))
        new = [p for p in problems if p not in self._reported_profiles]
        if new:
            self._reported_profiles.update(new)
            self.notice.show_message(" ".join(new), action=None, level="warning")
        applied = profile is not None and self.apply_profile(profile)
        if not applied and self.active_profile is not None:
            self.leave_profile()  # the last source's profile is not this source's

    def apply_profile(self, profile: Profile) -> bool:
        """Use a profile's model, threshold and confirmation N; the status bar names it.

        Not applied when its model is gone or is no longer the file it was calibrated
        with (its threshold would not fit)."""
        try:
            path = registry.resolve(profile.model, kind="liveness")
            same = registry.file_sha256(path) == profile.model_sha256
        except (registry.MissingModelError, OSError) as exc:
            self.notice.show_message(f"Profile '{profile.name}' not applied: {exc}",
                                     action=None, level="warning")
            return False
        if not same:
            self.notice.show_message(
                f"Profile '{profile.name}' not applied: its model {profile.model} has changed "
                f"since the calibration; calibrate again (Tools > Camera profiles > Re-run).",
                action=None, level="warning")
            return False
        if self.active_profile is None:
            self._before_profile = (self.settings.model, self.settings.threshold,
                                    self.settings.confirm_frames)
        if self.settings.model == profile.model:
            self.set_threshold(profile.threshold)  # the pipeline already runs that model
        elif not self.use_model(profile.model, threshold=profile.threshold):
            return False
        self.live_tab.confirm_spin.setValue(profile.confirm_frames)
        self.active_profile = profile
        self.profile_label.setText(f"profile: {profile.name}")
        self.profile_label.show()
        self.show_status(f"Profile '{profile.name}': model {profile.model}, threshold "
                         f"{format_threshold(profile.threshold)}")
        return True

    def leave_profile(self) -> None:
        """Back to the model, threshold and N that were in use before the profile."""
        self.active_profile = None
        self.profile_label.hide()
        self.profile_label.setText("")
        before, self._before_profile = self._before_profile, None
        if before is None:
            return
        model, threshold, confirm = before
        if model != self.settings.model:
            if model:
                self.use_model(model, threshold=threshold)
            else:  # the default model, whichever it is at the time
                self.settings.model = ""
                self._push_factories()
                self._refresh_model_menu()
                self.check_models()
        self.set_threshold(threshold)
        self.live_tab.confirm_spin.setValue(confirm)

    def open_calibration(self, profile: Profile | None = None):
        """The Calibrate dialog for the live tab's source (or a profile's, to re-run it)."""
        from fasdesk.ui.calibration_dialog import CalibrationDialog

        dialog = CalibrationDialog(self, profile=profile)
        dialog.profile_saved.connect(self._on_profile_saved)
        dialog.setAttribute(Qt.WA_DeleteOnClose)
        self.calibration_dialog = dialog
        dialog.open()
        return dialog

    def _on_profile_saved(self, profile: Profile) -> None:
        spec = self.live_tab.spec
        if spec is not None and profile.matches(spec, self._camera_name(spec)):
            self.apply_profile(profile)

    def open_profiles(self):
        from fasdesk.ui.profiles_dialog import ProfilesDialog

        dialog = ProfilesDialog(self)
        dialog.setAttribute(Qt.WA_DeleteOnClose)
        dialog.open()
        return dialog

    def reload_model_files(self, paths: list[str]) -> bool:
        """Files were written over (a Training export): when the model in use is one of
        them, Live and Images load it again, so they never run on the old weights while
        Model info shows the new file. True when it was reloaded."""
        current = self.current_model_path()
        if current is None or not any(Path(p).resolve() == current.resolve() for p in paths):
            return False
        # A new file is a new model: its own threshold (or the default), not the old one's.
        stored = stored_threshold(current, registry.get_entry(self.settings.model)
                                  if self.settings.model else None)
        self.set_threshold(DEFAULT_THRESHOLD if stored is None else stored)
        self._push_factories()
        self.check_models()
        self.show_status(f"Model file replaced: {current.name} reloaded")
        return True

    def check_models(self) -> bool:
        """Show or hide the no-model banner, or say why a model was refused (its file does
        not match the registry's SHA-256); True when the app has what it needs."""
        problems, refused = {}, []
        for model, kind in ((self.settings.model or None, "liveness"), (None, "detector")):
            try:
                registry.resolve(model, kind=kind)
            except registry.ModelIntegrityError as exc:
                refused.append(str(exc))
            except registry.MissingModelError as exc:
                problems[kind] = str(exc)
        if refused:
            self.notice.show_message("Model refused: " + " ".join(refused), action=None,
                                     level="error")
            self.model_label.setText("model refused")
            self.model_label.setToolTip("\n".join(refused))
        elif self.notice.label.text().startswith("Model refused: "):
            self.notice.hide()  # that model is no longer in use
        if not problems:
            self.banner.hide()
            if not refused:
                self._show_model_status()
            return not refused
        what = {"liveness": "the liveness model", "detector": "the face detector"}
        self.banner.show_missing(missing_models(self.settings.model or None),
                                 " and ".join(what[k] for k in problems).capitalize()
                                 + " could not be found on this computer.",
                                 "\n".join(problems.values()))
        self.model_label.setText("no model")
        return False

    def _model_name(self) -> str:
        model = self.settings.model
        if not model:
            return registry.default_liveness_id()
        return model if registry.get_entry(model) else Path(model).name

    def _on_downloaded(self) -> None:
        if self.check_models():
            self._push_factories()
            self.show_status("Models downloaded and verified")
        self._refresh_model_menu()

    def _show_model_status(self, optimized: bool | None = None, note: str = "") -> None:
        """'model: ID (optimized)' in the status bar, the reason in its tooltip. Whether it
        runs optimized comes from the live worker once it has loaded the model (building
        the fast copy is its work, never the UI thread's)."""
        from fasdesk.core.inference.optimize import describe

        path = self.current_model_path()
        if optimized is None and path is not None and self._engine_status[0] == str(path):
            optimized, note = self._engine_status[1:]  # what the worker said of this file
        text, tip = f"model: {self._model_name()}", "Liveness model"
        if optimized is not None:
            text += " (optimized)" if optimized else " (not optimized)"
            tip += "; optimized: " + describe(optimized, note)
        self.model_label.setText(text)
        self.model_label.setToolTip(tip)

    def _on_pipeline_changed(self, model_file: str, provider: str, optimized: bool,
                             note: str) -> None:
        self._engine_status = (model_file, optimized, note)
        self._show_model_status(optimized, note)
        self.provider_label.setText(provider.replace("ExecutionProvider", ""))

    def open_model_file(self) -> None:
        folder = self.settings.last_folders.get("model", str(Path.home()))
        path, _ = QFileDialog.getOpenFileName(self, "Open an ONNX liveness model", folder,
                                              "ONNX models (*.onnx);;All files (*)")
        if path:
            self.settings.last_folders["model"] = str(Path(path).parent)
            self.use_model(path)

    def show_model_info(self) -> ModelInfoDialog | None:
        path = self.current_model_path()
        if path is None:
            self.check_models()
            return None
        dialog = ModelInfoDialog(path, self)
        dialog.open()
        return dialog

    def show_about(self) -> AboutDialog:
        dialog = AboutDialog(self)
        dialog.open()
        return dialog

    # -- menus --------------------------------------------------------------------------
    def _build_menus(self) -> None:
        bar = self.menuBar()
        file_menu = bar.addMenu("&File")
        act = file_menu.addAction("Open images...", self.open_images)
        act.setShortcut(QKeySequence.Open)
        file_menu.addAction("Open folder...", self.open_image_folder)
        file_menu.addSeparator()
        act = file_menu.addAction("Save snapshot...", lambda: self.live_tab.snapshot())
        act.setShortcut(QKeySequence("Ctrl+S"))
        file_menu.addSeparator()
        act = file_menu.addAction("Quit", self.close)
        act.setShortcut(QKeySequence.Quit)

        live_menu = bar.addMenu("&Live")
        self.loop_action = live_menu.addAction("Loop videos and image folders")
        self.loop_action.setCheckable(True)
        self.loop_action.setChecked(self.settings.loop_playback)
        self.loop_action.toggled.connect(self._on_loop)
        self.smooth_action = live_menu.addAction("Smooth scores over frames")
        self.smooth_action.setCheckable(True)
        self.smooth_action.setChecked(self.settings.smoothing > 0)
        self.smooth_action.toggled.connect(self._on_smooth)

        self.model_menu = bar.addMenu("&Model")
        self.model_group = QActionGroup(self)
        self.model_group.setExclusive(True)
        self._refresh_model_menu()
        # Models appear while the app runs (downloads, Training tab exports): list them anew.
        self.model_menu.aboutToShow.connect(self._refresh_model_menu)

        tools_menu = bar.addMenu("&Tools")
        tools_menu.addAction("Calibrate this camera…", lambda: self.open_calibration())
        tools_menu.addAction("Camera profiles…", self.open_profiles)

        help_menu = bar.addMenu("&Help")
        help_menu.addAction("About fasdesk", self.show_about)

    def _refresh_model_menu(self) -> None:
        menu = self.model_menu
        menu.clear()
        for action in self.model_group.actions():
            self.model_group.removeAction(action)
        current = self.settings.model or registry.default_liveness_id()
        for entry in registry.load_manifest():
            if entry.kind != "liveness":
                continue
            found = registry.find_file(entry.file)
            action = QAction(entry.id + ("" if found else "  (not downloaded)"), menu)
            action.setCheckable(True)
            action.setChecked(entry.id == current)
            action.setEnabled(found is not None)
            action.setToolTip(entry.description)
            action.setStatusTip(entry.description)
            action.triggered.connect(lambda _=False, mid=entry.id: self.use_model(mid))
            self.model_group.addAction(action)
            menu.addAction(action)
        if self.settings.model and registry.get_entry(self.settings.model) is None:
            action = QAction(Path(self.settings.model).name, menu)
            action.setCheckable(True)
            action.setChecked(True)
            action.setToolTip(self.settings.model)
            self.model_group.addAction(action)
            menu.addAction(action)
        menu.addSeparator()
        menu.addAction("Open ONNX...", self.open_model_file)
        menu.addAction("Model info...", self.show_model_info)

    def _on_loop(self, on: bool) -> None:
        self.settings.loop_playback = on
        self.live_tab.options.loop = on

    def _on_smooth(self, on: bool) -> None:
        self.settings.smoothing = 0.6 if on else 0.0
        self.live_tab.options.smoothing = self.settings.smoothing
        if self.live_tab.running and self.live_tab.spec is not None:
            self.live_tab.start(self.live_tab.spec)  # a new tracker with the new smoothing

    # -- images -------------------------------------------------------------------------
    def open_images(self) -> None:
        folder = self.settings.last_folders.get("images", str(Path.home()))
        patterns = " ".join(f"*{e}" for e in sorted(IMAGE_EXTENSIONS))
        paths, _ = QFileDialog.getOpenFileNames(self, "Classify images", folder,
                                                f"Images ({patterns});;All files (*)")
        if paths:
            self.settings.last_folders["images"] = str(Path(paths[0]).parent)
            self.classify_paths(paths)

    def open_image_folder(self) -> None:
        folder = self.settings.last_folders.get("images", str(Path.home()))
        path = QFileDialog.getExistingDirectory(self, "Classify a folder of images", folder)
        if path:
            self.settings.last_folders["images"] = path
            self.classify_paths([path])

    def classify_paths(self, paths: list[str]) -> None:
        if self.images_tab is None:
            self.notice.show_message("The Images tab is not available in this build.",
                                     action=None, level="error")
            return
        self.tabs.setCurrentWidget(self.images_tab)
        self.images_tab.add_paths([str(p) for p in paths])

    def dragEnterEvent(self, event) -> None:
        accept_if_files(event)

    def dropEvent(self, event) -> None:
        paths = dropped_paths(event)
        if paths:
            event.acceptProposedAction()
            self.classify_paths(paths)

    # -- status and settings -------------------------------------------------------------
    def show_status(self, text: str) -> None:
        self.statusBar().showMessage(text, 8000)

    def _on_live_running(self, running: bool) -> None:
        self.stats_label.clear()  # no numbers from an earlier run
        self.stats_label.setVisible(running)

    def _show_live_stats(self, text: str) -> None:
        if self.live_tab.running:  # (a frame painted just after stop says nothing new)
            self.stats_label.setText(text)

    def _on_source_changed(self, target: str) -> None:
        self.settings.source = target
        self.save_settings()

    def save_settings(self) -> None:
        if not self._save_enabled:
            return
        if self.images_tab is not None and getattr(self.images_tab, "last_folder", None):
            self.settings.last_folders["images"] = self.images_tab.last_folder
        kept = self.settings
        if self._before_profile is not None:
            # A profile's model, threshold and N hold while its source runs; the settings
            # keep the user's own, which the next start uses for other sources.
            model, threshold, confirm = self._before_profile
            kept = replace_settings(kept, model=model, threshold=threshold,
                                    confirm_frames=confirm)
        try:
            save_settings(kept)
        except OSError as exc:
            self.show_status(f"Settings not saved: {exc}")

    def closeEvent(self, event) -> None:
        # Settings first: whatever happens while the workers stop, they are kept.
        self.settings.geometry = bytes(self.saveGeometry().toBase64()).decode("ascii")
        self.save_settings()
        import shiboken6

        dialog = self.calibration_dialog
        dialog = dialog if dialog is not None and shiboken6.isValid(dialog) else None
        # A running fine-tune (calibration's or a training step) asks first; nothing is
        # stopped until the close is confirmed.
        if dialog is not None and not dialog.confirm_close():
            event.ignore()
            return
        if self.training_tab is not None and not self.training_tab.confirm_close():
            event.ignore()
            return
        dialog_stopped = dialog.shutdown(restart_live=False) if dialog is not None else True
        # Each stop has a timeout; a worker stuck in a system call cannot be stopped at
        # all, and then the app exits without waiting for it (see fasdesk.ui.app.run).
        stopped = [dialog_stopped, self.live_tab.shutdown(), self.banner.shutdown()]
        if self.images_tab is not None:
            stopped.append(self.images_tab.shutdown())
        # A calibration thread left busy by a dialog closed earlier is the window's now.
        from fasdesk.ui.calibration_dialog import LEFT_BUSY

        stopped += [not t.isRunning() for t in self.findChildren(QThread, LEFT_BUSY)]
        self.stuck_workers = not all(stopped)
        if self.stuck_workers:
            log.warning("a worker thread did not stop in time; exiting without it")
        self.save_settings()
        super().closeEvent(event)
