"""The Live tab: source picker, the live view, threshold, score plot and snapshot."""
from __future__ import annotations

import time
from pathlib import Path

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtWidgets import (QCheckBox, QComboBox, QFileDialog, QFrame, QGroupBox, QHBoxLayout,
                               QLabel, QPushButton, QSpinBox, QSplitter, QVBoxLayout,
                               QWidget)

from fasdesk.core.io.files import safe_stat
from fasdesk.core.io.imageio import IMAGE_EXTENSIONS
from fasdesk.app.state import AppState
from fasdesk.core.decision.thresholds import format_threshold
from fasdesk.core.decision.verdict import MAX_CONFIRM_FRAMES
from fasdesk.core.live.sources import (VIDEO_EXTENSIONS, CameraInfo, SourceSpec, add_recent,
                                  probe_cameras)
from fasdesk.ui.frame_view import COLOURS, FrameView, render_annotated
from fasdesk.ui.live_worker import LiveController, LiveOptions
from fasdesk.ui.score_plot import ScorePlot
from fasdesk.ui.subscribe import subscribe
from fasdesk.ui.threshold_control import ThresholdControl
from fasdesk.ui.workers import start_worker

STATS_INTERVAL = 0.25  # seconds between status bar updates
PLOT_INTERVAL = 0.1  # seconds between plot redraws


class CameraProbe(QObject):
    """Lists the cameras off the UI thread (a worker): opening devices can take seconds.
    A driver that never answers does not keep the app from closing: the exit waits for
    workers only up to its one timeout."""
    found = Signal(object)  # list of CameraInfo

    def start(self) -> None:
        self._worker = start_worker(probe_cameras)
        self._worker.returned.connect(self.found)
        # A broken camera stack must not take the window down: no cameras, then.
        self._worker.errored.connect(lambda _exc: self.found.emit([]))

    def is_running(self) -> bool:
        return not self._worker.done


class MessageBar(QFrame):
    """A coloured line with a message and one action button (Retry, Play again...)."""
    action = Signal()

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("messageBar")
        layout = QHBoxLayout(self)
        layout.setContentsMargins(10, 6, 6, 6)
        self.label = QLabel()
        self.label.setWordWrap(True)
        self.label.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.button = QPushButton("Retry")
        self.button.clicked.connect(self.action)
        self.close_button = QPushButton("Dismiss")
        self.close_button.clicked.connect(self.hide)
        layout.addWidget(self.label, 1)
        layout.addWidget(self.button)
        layout.addWidget(self.close_button)
        self.hide()

    def show_message(self, text: str, action: str | None = "Retry", level: str = "error") -> None:
        self.setProperty("level", level)
        self.style().unpolish(self)
        self.style().polish(self)
        self.label.setText(text)
        self.button.setVisible(action is not None)
        if action:
            self.button.setText(action)
        self.show()


def _swatch(colour, text: str) -> str:
    return f'<span style="color:{colour.name()}">&#9632;</span>&nbsp;{text}'


class LiveTab(QWidget):
    source_starting = Signal()  # a (re)start: frames shown so far no longer count
    status_message = Signal(str)
    stats_changed = Signal(str)  # fps and stage times, while live runs
    running_changed = Signal(bool)
    pipeline_changed = Signal(str, str, bool, str)  # model file, provider, optimized, why
    frame_shown = Signal(object)  # the LiveFrame just painted (pixels + faces)
    calibrate_requested = Signal()
    cameras_found = Signal(list)  # the camera probe's answer (CameraInfo list), once

    def __init__(self, state: AppState, parent=None):
        super().__init__(parent)
        self.state = state
        self.settings = settings = state.settings  # the user's own (mirror, sources, folders)
        self.controller = LiveController(state.pipeline_factory(live=True), self)
        self.controller.set_mirror(settings.mirror)
        worker = self.controller.worker
        # Explicitly queued: these slots must run on the UI thread, never the worker's.
        queued = Qt.QueuedConnection
        worker.frame_ready.connect(self._on_frame_ready, queued)
        worker.started.connect(self._on_started, queued)
        worker.failed.connect(self._on_failed, queued)
        worker.ended.connect(self._on_ended, queued)
        worker.stopped.connect(self._on_stopped, queued)
        worker.pipeline_ready.connect(self.pipeline_changed, queued)
        self.running = False
        self.spec: SourceSpec | None = None
        self.failed_spec: SourceSpec | None = None  # self.spec, when it could not be opened
        self.cameras: list[CameraInfo] = []
        self.frames_shown = 0
        self.last_frame = None
        self._last_stats = 0.0
        self._last_plot = 0.0
        self._stage_sums, self._stage_count = [0.0, 0.0, 0.0], 0
        self.options = LiveOptions(loop=settings.loop_playback, smoothing=settings.smoothing,
                                   recent_len=max(10, state.confirm_frames))
        self._build()
        subscribe(self, state.threshold_changed, self.plot.set_threshold)
        subscribe(self, state.threshold_changed, lambda _v: self.view.update())
        subscribe(self, state.confirm_frames_changed, self._show_confirm_frames)
        subscribe(self, state.model_changed, lambda _m: self._reload_pipeline())
        subscribe(self, state.model_reloaded, self._reload_pipeline)
        subscribe(self, state.setting_changed, self._on_setting)
        self._probe = CameraProbe(self)
        self._probe.found.connect(self._on_cameras, Qt.QueuedConnection)
        self._probe.start()

    # -- layout -------------------------------------------------------------------------
    def _build(self) -> None:
        self.message = MessageBar()
        self.message.action.connect(self.retry)
        self.view = FrameView(self.state)

        self.plot = ScorePlot()
        self.plot.set_threshold(self.state.threshold)
        plot_box = QGroupBox("p_real per face, last 30 s")
        plot_layout = QVBoxLayout(plot_box)
        plot_layout.addWidget(self.plot)

        side = QWidget()
        side_layout = QVBoxLayout(side)
        side_layout.setContentsMargins(0, 0, 0, 0)
        side_layout.addWidget(self._build_decision_box())
        side_layout.addWidget(plot_box, 1)

        splitter = QSplitter(Qt.Horizontal)
        splitter.addWidget(self.view)
        splitter.addWidget(side)
        splitter.setStretchFactor(0, 3)
        splitter.setStretchFactor(1, 2)
        splitter.setSizes([640, 380])

        layout = QVBoxLayout(self)
        layout.addLayout(self._build_source_bar())
        layout.addWidget(self.message)
        layout.addWidget(splitter, 1)
        self._fill_sources()

    def _build_source_bar(self) -> QHBoxLayout:
        self.source_combo = QComboBox()
        self.source_combo.setMinimumWidth(260)
        self.source_combo.setPlaceholderText("Choose a camera, video or folder...")
        self.source_combo.setToolTip("Camera, video file or image folder to run live")
        self.source_combo.activated.connect(self._on_source_activated)
        self.start_button = QPushButton("Start")
        self.start_button.setObjectName("primary")
        self.start_button.setToolTip("Start or stop the live view")
        self.start_button.clicked.connect(self.toggle)
        self.mirror_box = QCheckBox("Mirror")
        self.mirror_box.setChecked(self.settings.mirror)
        self.mirror_box.toggled.connect(self._on_mirror)
        self.snapshot_button = QPushButton("Snapshot")
        self.snapshot_button.setToolTip("Save the annotated frame as an image")
        self.snapshot_button.clicked.connect(lambda: self.snapshot())
        self.snapshot_button.setEnabled(False)
        self.calibrate_button = QPushButton("Calibrate…")
        self.calibrate_button.setToolTip("Measure the model on this camera and your attacks, "
                                         "pick the threshold, and keep it as a profile")
        self.calibrate_button.clicked.connect(self.calibrate_requested)

        bar = QHBoxLayout()
        bar.addWidget(QLabel("Source:"))
        bar.addWidget(self.source_combo, 1)
        bar.addWidget(self.start_button)
        bar.addWidget(self.mirror_box)
        bar.addWidget(self.snapshot_button)
        bar.addWidget(self.calibrate_button)
        return bar

    def _build_decision_box(self) -> QGroupBox:
        self.threshold_control = ThresholdControl(self.state)
        self.slider = self.threshold_control.slider
        self.threshold_label = self.threshold_control.label
        self.confirm_spin = QSpinBox()
        self.confirm_spin.setRange(1, MAX_CONFIRM_FRAMES)
        self.confirm_spin.setValue(self.state.confirm_frames)
        self.confirm_spin.setSuffix(" frames")
        self.confirm_spin.setToolTip("Confirmed real after this many consecutive real frames")
        self.confirm_spin.valueChanged.connect(self.state.set_confirm_frames)

        controls = QGroupBox("Decision")
        grid = QVBoxLayout(controls)
        grid.addWidget(self.threshold_control)
        # The camera profile in use, by the threshold it set, with the way back out.
        self.profile_row = QWidget()
        profile_layout = QHBoxLayout(self.profile_row)
        profile_layout.setContentsMargins(0, 0, 0, 0)
        self.profile_label = QLabel()
        self.profile_label.setObjectName("profileName")
        self.profile_label.setToolTip("The camera profile in use (Tools > Camera profiles)")
        self.profile_threshold = QLabel()
        self.leave_profile_button = QPushButton("Leave profile")
        self.leave_profile_button.setToolTip("Back to your own model and threshold")
        self.leave_profile_button.clicked.connect(self.state.leave_profile)
        profile_layout.addWidget(self.profile_label)
        profile_layout.addWidget(self.profile_threshold)
        profile_layout.addStretch(1)
        profile_layout.addWidget(self.leave_profile_button)
        grid.addWidget(self.profile_row)
        self._show_profile(self.state.profile)
        subscribe(self, self.state.profile_changed, self._show_profile)
        row = QHBoxLayout()
        row.addWidget(QLabel("Confirm real after"))
        row.addWidget(self.confirm_spin)
        row.addStretch(1)
        grid.addLayout(row)
        legend = QLabel("  ".join([_swatch(COLOURS["real"], "real"), _swatch(COLOURS["spoof"], "spoof"),
                                   _swatch(COLOURS["unsure"], "unsure"),
                                   "\u2713 double box: confirmed real"]))
        legend.setTextFormat(Qt.RichText)
        grid.addWidget(legend)
        return controls

    # -- sources ------------------------------------------------------------------------
    def _fill_sources(self, probing: bool = True) -> None:
        combo = self.source_combo
        combo.clear()
        for cam in self.cameras:
            combo.addItem(cam.label, SourceSpec("camera", str(cam.index)))
        known = {str(c.index) for c in self.cameras}
        if self.spec is not None and self.spec.kind == "camera" and self.spec.target not in known:
            combo.addItem(self._item_text(self.spec), self.spec)  # asked for, not found by the probe
        if not self.cameras:
            combo.addItem("Looking for cameras..." if probing else "No camera found", None)
            combo.model().item(combo.count() - 1).setEnabled(False)
        recent = self._recent_specs()
        if self.spec is not None and self.spec.kind != "camera" and self.spec not in recent:
            combo.addItem(self._item_text(self.spec), self.spec)  # opening, or failed
        for spec in recent:
            combo.addItem(self._item_text(spec), spec)
        combo.insertSeparator(combo.count())
        combo.addItem("Video file...", "pick-video")
        combo.addItem("Image folder...", "pick-folder")
        self._select_spec(self.spec)

    def _item_text(self, spec: SourceSpec) -> str:
        text = spec.label if spec.kind == "camera" else f"{spec.label}  ({spec.kind})"
        return text + ("  - could not be opened" if spec == self.failed_spec else "")

    def _recent_specs(self) -> list[SourceSpec]:
        """The files and folders that opened before, newest first, while they still exist."""
        targets = list(self.settings.recent_sources)
        if not targets and self.settings.source and not self.settings.source.isdigit():
            targets = [self.settings.source]  # settings from before the list existed
        specs = []
        for target in targets:
            spec = SourceSpec.parse(target)
            if safe_stat(spec.target) is not None and spec not in specs:  # (never raises)
                specs.append(spec)
        return specs

    def _select_spec(self, spec: SourceSpec | None) -> None:
        combo = self.source_combo
        for i in range(combo.count()):
            if spec is not None and combo.itemData(i) == spec:
                combo.setCurrentIndex(i)
                return
        for i in range(combo.count()):
            if isinstance(combo.itemData(i), SourceSpec):
                combo.setCurrentIndex(i)
                return
        combo.setCurrentIndex(-1)  # nothing to run yet: the placeholder, never a greyed item

    def _on_cameras(self, cameras: list) -> None:
        self.cameras = cameras
        self.options.camera_names = {c.index: c.name for c in cameras}
        self._fill_sources(probing=False)
        self.cameras_found.emit(cameras)

    def _on_source_activated(self, index: int) -> None:
        data = self.source_combo.itemData(index)
        if data == "pick-video":
            spec = self._pick("video")
        elif data == "pick-folder":
            spec = self._pick("folder")
        else:
            spec = data
        if spec is None:
            self._select_spec(self.spec)
            return
        self.start(spec)

    def _pick(self, kind: str) -> SourceSpec | None:
        start_dir = self.state.last_folder(kind)
        if kind == "video":
            patterns = " ".join(f"*{e}" for e in sorted(VIDEO_EXTENSIONS))
            images = " ".join(f"*{e}" for e in sorted(IMAGE_EXTENSIONS))
            path, _ = QFileDialog.getOpenFileName(
                self, "Open a video file", start_dir,
                f"Videos ({patterns});;Images ({images});;All files (*)")
        else:
            path = QFileDialog.getExistingDirectory(self, "Open an image folder", start_dir)
        if not path:
            return None
        self.state.remember_folder(kind, Path(path).parent if kind == "video" else path)
        return SourceSpec.parse(path)

    # -- running ------------------------------------------------------------------------
    def start(self, spec: SourceSpec) -> None:
        """Run live on `spec` (switching from whatever runs now).

        Nothing of the previous source stays usable: its picture goes, Snapshot waits for
        this source's first frame, and late frames of the old source are dropped.
        """
        self.spec = spec
        self.failed_spec = None
        # Before the worker builds its pipeline: the source's profile applies (or the
        # last one ends), and with it perhaps another model.
        camera = self.options.camera_names.get(int(spec.target)) if spec.kind == "camera" else None
        self.state.select_source(spec, camera)
        self._apply_mirror(spec)
        self.message.hide()
        self.plot.clear_tracks()
        self.last_frame = None
        self.snapshot_button.setEnabled(False)
        self.view.show_frame(None)
        self.view.set_notice("")
        self.view.set_placeholder(f"Opening {spec.label}...")
        self.start_button.setEnabled(False)
        self.options.recent_len = max(10, self.state.confirm_frames)
        self.source_starting.emit()
        self.controller.start(spec, self.options)
        self._fill_sources(probing=not self.cameras and self._probe.is_running())

    def stop(self) -> None:
        self.controller.stop()

    def toggle(self) -> None:
        if self.running:
            self.stop()
            return
        data = self.source_combo.currentData()
        spec = data if isinstance(data, SourceSpec) else self.spec
        if spec is None:
            self.source_combo.showPopup()  # the picker: cameras, Video file..., Image folder...
            return
        self.start(spec)

    def retry(self) -> None:
        if self.spec is not None:
            self.start(self.spec)

    def _reload_pipeline(self) -> None:
        """The model in use changed (or its file did): the next start builds it anew."""
        self.controller.set_pipeline_factory(self.state.pipeline_factory(live=True))

    def _on_started(self, spec: SourceSpec, name: str) -> None:
        if spec != self.spec:
            return  # a source already switched away from
        self.running = True
        self.running_changed.emit(True)
        self.frames_shown = 0
        self.start_button.setEnabled(True)
        self.start_button.setText("Stop")
        self.view.set_placeholder(f"Waiting for frames from {name}...")
        self.status_message.emit(f"Live: {name}")
        if spec.kind != "camera":
            self.state.update(recent_sources=add_recent(self.settings.recent_sources, spec.target))
        self.state.update(source=spec.target)
        self.state.save()
        self._fill_sources(probing=not self.cameras and self._probe.is_running())

    def _set_idle(self, placeholder: str) -> None:
        self.running = False
        self.running_changed.emit(False)
        self.start_button.setEnabled(True)
        self.start_button.setText("Start")
        if self.last_frame is None:
            self.view.set_placeholder(placeholder)

    def _on_failed(self, spec: SourceSpec, message: str) -> None:
        if spec != self.spec:
            return
        self._set_idle("")
        self.failed_spec = spec
        # Over the last picture of this source (a camera that went away), or alone.
        self.view.set_notice(f"{message}\n\nPress Retry above, or pick another source.")
        self.message.show_message(message, action="Retry", level="error")
        self.status_message.emit(message)
        self._fill_sources(probing=not self.cameras and self._probe.is_running())

    def _on_ended(self, spec: SourceSpec, name: str) -> None:
        if spec != self.spec:
            return
        self._set_idle("")
        self.message.show_message(f"{name}: end of the video.", action="Play again", level="info")

    def _on_stopped(self) -> None:
        self._set_idle("Stopped")

    def _on_frame_ready(self) -> None:
        frame = self.controller.worker.take()
        if frame is None or frame.spec != self.spec:
            return  # (a frame of the previous source, painted after the switch)
        self.last_frame = frame
        self.frames_shown += 1
        self.snapshot_button.setEnabled(True)
        self.view.show_frame(frame)
        self.frame_shown.emit(frame)
        now = time.monotonic()
        if now - self._last_plot >= PLOT_INTERVAL:
            self._last_plot = now
            self.plot.update_histories(frame.histories, frame.time,
                                       {f.track_id for f in frame.faces})
        # Stage times are averaged over the frames since the last update: steadier to read.
        t = frame.timings
        self._stage_sums = [a + b for a, b in zip(self._stage_sums, (t.detect, t.preprocess, t.liveness))]
        self._stage_count += 1
        if frame.fps > 0 and now - self._last_stats >= STATS_INTERVAL:  # once measured
            self._last_stats = now
            detect, crop, liveness = (v * 1000 / self._stage_count for v in self._stage_sums)
            self._stage_sums, self._stage_count = [0.0, 0.0, 0.0], 0
            self.stats_changed.emit(f"live {frame.fps:4.1f} fps | detect {detect:.1f} ms, "
                                    f"crop {crop:.1f} ms, liveness {liveness:.1f} ms")

    # -- controls -----------------------------------------------------------------------
    def _show_profile(self, profile) -> None:
        self.profile_row.setVisible(profile is not None)
        if profile is not None:
            self.profile_label.setText(f"profile: {profile.name}")
            self.profile_threshold.setText(f"threshold {format_threshold(profile.threshold)}, "
                                           f"confirm after {profile.confirm_frames}")

    def _show_confirm_frames(self, n: int) -> None:
        self.confirm_spin.setValue(n)
        self.options.recent_len = max(10, n)
        self.view.update()

    def _on_mirror(self, on: bool) -> None:
        self.state.update(mirror=on)
        self._apply_mirror(self.spec)

    def _apply_mirror(self, spec: SourceSpec | None) -> None:
        """Mirroring is for cameras (a selfie view); files play as they were recorded."""
        camera = spec is None or spec.kind == "camera"
        self.mirror_box.setEnabled(camera)
        self.mirror_box.setToolTip("Show the camera like a mirror" if camera
                                   else "Mirror is for cameras: files play as recorded")
        self.controller.set_mirror(camera and self.settings.mirror)

    def _on_setting(self, name: str, value) -> None:
        """Loop and smoothing are set from the window's Live menu."""
        if name == "loop_playback":
            self.options.loop = value
        elif name == "smoothing":
            self.options.smoothing = value
            if self.running and self.spec is not None:
                self.start(self.spec)  # a new tracker with the new smoothing

    def snapshot(self, path: str | None = None) -> Path | None:
        """Save the annotated current frame; asks where when no path is given."""
        frame = self.last_frame
        if frame is None:
            self.status_message.emit("Nothing to save yet: start the live view first")
            return None
        if path is None:
            folder = self.state.last_folder("snapshot")
            name = f"fasdesk-{time.strftime('%Y%m%d-%H%M%S')}.png"
            path, _ = QFileDialog.getSaveFileName(self, "Save snapshot", str(Path(folder) / name),
                                                  "PNG image (*.png);;JPEG image (*.jpg)")
            if not path:
                return None
        path = Path(path)
        image = render_annotated(frame, self.view.threshold, self.view.confirm_n)
        if not image.save(str(path)):
            self.message.show_message(f"Could not save the snapshot to {path} (folder missing "
                                      f"or not writable, or unknown image type).",
                                      action=None, level="error")
            return None
        self.state.remember_folder("snapshot", path.parent)
        self.status_message.emit(f"Snapshot saved: {path}")
        return path
