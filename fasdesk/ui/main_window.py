"""The main window: tabs (Live, Images, Training), menus, the model banner and notices.

A view of AppState (fasdesk.app.state), which owns the settings, the model, the threshold
and the camera profile; the window builds the tabs on it and shows what it announces."""
from __future__ import annotations

import html
import logging
from pathlib import Path

from PySide6.QtCore import QByteArray, QSize, Qt
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import (QApplication, QFileDialog, QLabel, QMainWindow, QTabWidget,
                               QVBoxLayout, QWidget)

from fasdesk.app.state import AppState, ModelCheck
from fasdesk.core.calibration.profiles import Profile
from fasdesk.core.io.imageio import IMAGE_EXTENSIONS
from fasdesk.core.io.settings import Settings
from fasdesk.core.io.paths import samples_dir
from fasdesk.core.live.sources import SourceSpec
from fasdesk.ui import workers
from fasdesk.ui.dialogs import AboutDialog, ModelInfoDialog
from fasdesk.ui.drops import accept_if_files, dropped_paths
from fasdesk.ui.live_tab import LiveTab, MessageBar
from fasdesk.ui.model_banner import ModelBanner
from fasdesk.ui.subscribe import subscribe
from fasdesk.ui.window_menus import build_menus
from fasdesk.ui.window_status import WindowStatus


log = logging.getLogger(__name__)

PREFERRED_SIZE = QSize(1180, 760)
# What a window manager's title bar and borders add around the window, at most (the
# frame is unknown until the window is shown): a 1366x768 laptop screen with a 40 px
# taskbar leaves 1366x728, so the window itself gets at most 1350x688.
FRAME_ALLOWANCE = QSize(16, 40)


def fitted_size(preferred: QSize, available: QSize, frame: QSize = FRAME_ALLOWANCE) -> QSize:
    """`preferred`, shrunk where needed so the window and its frame fit `available`."""
    return preferred.boundedTo(available - frame)


SCREEN_SHARE = 0.85  # of a large screen's available area, on first start


def first_start_size(available: QSize, frame: QSize = FRAME_ALLOWANCE) -> QSize:
    """The window's size with no saved geometry: most of a large screen (the live picture
    and the plots gain from it), never less than PREFERRED_SIZE where that fits."""
    share = QSize(round(available.width() * SCREEN_SHARE), round(available.height() * SCREEN_SHARE))
    return fitted_size(share.expandedTo(PREFERRED_SIZE), available, frame)


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
                 source: str | None = None, save: bool = True, state: AppState | None = None,
                 demo_if_no_camera: bool = False):
        super().__init__()
        self.state = state or AppState(settings, settings_warning, save=save)
        self.stuck_workers = False  # set on close when a worker thread did not stop
        self._close_without_asking = False  # close_now: a running step is stopped, not asked about
        self.calibration_dialog = None
        self.setWindowTitle("fasdesk - face liveness")
        self.setAcceptDrops(True)

        self.notice = MessageBar()
        self.banner = ModelBanner()
        self.banner.open_file.connect(self.open_model_file)
        self.banner.downloaded.connect(self.state.models_downloaded)
        self.tabs = QTabWidget()
        self.tabs.setDocumentMode(True)
        self.tabs.tabBar().setDrawBase(False)
        self._build_tabs()

        central = QWidget()
        layout = QVBoxLayout(central)
        layout.setContentsMargins(6, 6, 6, 0)
        layout.addWidget(self.banner)
        layout.addWidget(self.notice)
        layout.addWidget(self.tabs, 1)
        self.setCentralWidget(central)

        self.status = WindowStatus(self.statusBar(), self.state)
        for name in ("stats_label", "model_label", "provider_label"):
            setattr(self, name, getattr(self.status, name))
        self.profile_label = self.live_tab.profile_label
        self.live_tab.running_changed.connect(self.status.live_running)
        self.live_tab.pipeline_changed.connect(self.status.pipeline_loaded)
        build_menus(self)
        self._apply_appearance()
        subscribe(self, self.state.setting_changed,
                  lambda name, _v: self._apply_appearance() if name == "appearance" else None)
        # "Follow the system": the desktop switching light/dark switches the app too.
        QGuiApplication.styleHints().colorSchemeChanged.connect(self._follow_system_scheme)
        self.model_group = self.model_menu.group
        subscribe(self, self.state.notice, self._show_notice)
        subscribe(self, self.state.models_checked, self._show_model_check)
        subscribe(self, self.state.model_changed, lambda _m: self.model_menu.refresh())

        self.place_on_screen(self.state.settings.geometry)
        warnings = [w for w in (self.state.settings_warning,
                                getattr(self.training_tab, "restore_warning", None)) if w]
        if warnings:
            self.notice.show_message(" ".join(warnings), action=None, level="warning")
            self.state.save()  # the bad values are gone from the file: said once
        self.state.check_models()
        if source is not None:
            self.live_tab.start(SourceSpec.parse(source))
        elif demo_if_no_camera:
            self.live_tab.cameras_found.connect(self._demo_if_no_camera, Qt.SingleShotConnection)

    def _demo_if_no_camera(self, cameras: list) -> None:
        """Started without a source on a machine without a camera: run live on the sample
        photos that come with fasdesk, and say so, rather than show an empty view."""
        samples = samples_dir()
        if cameras or self.live_tab.spec is not None or not samples.is_dir():
            return
        self.live_tab.start(SourceSpec.parse(str(samples)))
        self.notice.show_message(
            "No camera found: running on the sample photos that come with fasdesk (one real "
            "face, two photos of photos). Pick a camera, video or image folder above.",
            action=None, level="info")

    @property
    def settings(self) -> Settings:
        """The user's settings (AppState's)."""
        return self.state.settings

    def _build_tabs(self) -> None:
        self.live_tab = LiveTab(self.state)
        self.live_tab.status_message.connect(self.show_status)
        self.live_tab.stats_changed.connect(self._show_live_stats)
        self.live_tab.calibrate_requested.connect(lambda: self.open_calibration())
        self.tabs.addTab(self.live_tab, "Live")
        images_cls = _images_tab_class()
        self.images_tab = images_cls(self.state) if images_cls else None
        if self.images_tab is not None:
            self.images_tab.status_message.connect(self.show_status)
            self.tabs.addTab(self.images_tab, "Images")
        # The Training tab, and the Collect panel under the live view (issue 6).
        self.collect_panel = None
        self.training_tab = self._install_training()

    def _apply_appearance(self) -> None:
        from fasdesk.ui.theme import apply_appearance

        self.theme = apply_appearance(QApplication.instance(), self.state.settings.appearance)

    def _follow_system_scheme(self, _scheme) -> None:
        if self.state.settings.appearance == "system":
            self._apply_appearance()

    def place_on_screen(self, saved: str = "") -> None:
        """The saved geometry when it fits this screen, else sized to the screen (most of
        a large one, the preferred size shrunk to a laptop's 1366x768), centred."""
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
        size = first_start_size(available.size())
        self.resize(size)
        self.move(available.x() + (available.width() - size.width() - FRAME_ALLOWANCE.width()) // 2,
                  available.y() + (available.height() - size.height() - FRAME_ALLOWANCE.height()) // 2)

    # -- tabs for other parts of the app ------------------------------------------------
    def _install_training(self):
        """The Training tab, or its error in its place: whatever is wrong in its modules,
        Live and Images must still start."""
        tabs_before = self.tabs.count()
        try:
            from fasdesk.ui.training.tab import install

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

    # -- what the state announces --------------------------------------------------------
    def _show_notice(self, text: str, level: str) -> None:
        self.notice.show_message(text, action=None, level=level)

    def _show_model_check(self, check: ModelCheck) -> None:
        """The no-model banner, or why a model was refused (its file does not match the
        registry's SHA-256), or the model's name when all is well."""
        if check.refused:
            self.notice.show_message("Model refused: " + " ".join(check.refused), action=None,
                                     level="error")
            self.status.show_refused(check.refused)
        elif self.notice.label.text().startswith("Model refused: "):
            self.notice.hide()  # that model is no longer in use
        if not check.missing:
            self.banner.hide()
            if not check.refused:
                self.status.show_model()
            return
        self.banner.show_missing(check.downloadable, check.missing_text(),
                                 "\n".join(check.missing.values()))
        self.model_label.setText("no model")

    # -- camera profiles ------------------------------------------------------------------
    def camera_name(self, spec: SourceSpec) -> str | None:
        """The OS name of the camera `spec` is, when it is one the probe found."""
        if spec.kind != "camera":
            return None
        return self.live_tab.options.camera_names.get(int(spec.target))

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
        self.state.profile_saved(profile, spec, self.camera_name(spec) if spec else None)

    def open_profiles(self):
        from fasdesk.ui.profiles_dialog import ProfilesDialog

        dialog = ProfilesDialog(self)
        dialog.setAttribute(Qt.WA_DeleteOnClose)
        dialog.open()
        return dialog

    def open_storage(self):
        """Tools > Manage storage: calibration sessions and user models, with Delete."""
        from fasdesk.ui.storage_dialog import StorageDialog

        dialog = StorageDialog(self)
        dialog.changed.connect(self._on_storage_changed)
        dialog.setAttribute(Qt.WA_DeleteOnClose)
        dialog.open()
        return dialog

    def _on_storage_changed(self) -> None:
        """A model or session was deleted: the model menu and the state look again."""
        self.model_menu.refresh()
        self.state.check_models()

    # -- models -------------------------------------------------------------------------
    def open_model_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open an ONNX liveness model",
                                              self.state.last_folder("model"),
                                              "ONNX models (*.onnx);;All files (*)")
        if path:
            self.state.remember_folder("model", Path(path).parent)
            self.state.use_model(path)

    def show_model_info(self) -> ModelInfoDialog | None:
        path = self.state.model_path()
        if path is None:
            self.state.check_models()
            return None
        dialog = ModelInfoDialog(path, self)
        dialog.open()
        return dialog

    def show_about(self) -> AboutDialog:
        dialog = AboutDialog(self)
        dialog.open()
        return dialog

    # -- images -------------------------------------------------------------------------
    def open_images(self) -> None:
        patterns = " ".join(f"*{e}" for e in sorted(IMAGE_EXTENSIONS))
        paths, _ = QFileDialog.getOpenFileNames(self, "Classify images",
                                                self.state.last_folder("images"),
                                                f"Images ({patterns});;All files (*)")
        if paths:
            self.state.remember_folder("images", Path(paths[0]).parent)
            self.classify_paths(paths)

    def open_image_folder(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Classify a folder of images",
                                                self.state.last_folder("images"))
        if path:
            self.state.remember_folder("images", path)
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

    # -- status and closing ----------------------------------------------------------------
    def show_status(self, text: str) -> None:
        self.status.show_message(text)

    def _show_live_stats(self, text: str) -> None:
        if self.live_tab.running:  # (a frame painted just after stop says nothing new)
            self.stats_label.setText(text)

    def close_now(self) -> None:
        """Close without asking (for automation: --quit-after): a running training step or
        fine-tune is stopped, as when the user confirms the close."""
        self._close_without_asking = True
        self.close()

    def closeEvent(self, event) -> None:
        # Settings first: whatever happens while the workers stop, they are kept.
        self.state.settings.geometry = bytes(self.saveGeometry().toBase64()).decode("ascii")
        self.state.save()
        import shiboken6

        dialog = self.calibration_dialog
        dialog = dialog if dialog is not None and shiboken6.isValid(dialog) else None
        # A running fine-tune (calibration's or a training step) asks first; nothing is
        # stopped until the close is confirmed.
        asking = not self._close_without_asking
        if asking and dialog is not None and not dialog.confirm_close():
            event.ignore()
            return
        if self.training_tab is not None:
            if not asking:
                self.training_tab.shutdown()  # stops a running step (it saves first)
            elif not self.training_tab.confirm_close():
                event.ignore()
                return
        self.stuck_workers = not self._stop_background_work(dialog)
        if self.stuck_workers:
            log.warning("a worker thread did not stop in time; exiting without it")
        self.state.save()
        super().closeEvent(event)

    def _stop_background_work(self, dialog) -> bool:
        """The live controller's thread, then every worker (one timeout for all of them);
        a worker stuck in a system call cannot be stopped at all, and then the app exits
        without waiting for it (see fasdesk.ui.app.run). True when all stopped."""
        stopped = [dialog.shutdown(restart_live=False) if dialog is not None else True,
                   self.live_tab.controller.shutdown()]
        if self.images_tab is not None:
            self.images_tab.cancel()
        # Background work, dialogs closed earlier included: one wait, one timeout.
        stopped.append(workers.stop_all())
        return all(stopped)
