"""Calibrate this camera: the guided flow of issue 14, as one dialog.

Setup (source, attacks, time, target) -> one recording page per stage (real, then each
attack) -> the report (metrics on the held-out frames, p_real histograms with the
threshold, fine-tuning with before/after) -> save the profile. All the work is done by
fasdesk.core.calibration (the same code as `fasdesk calibrate`); this module only shows
it and runs it off the UI thread: recordings and scoring in QThreads, fine-tuning as
training backend child processes (BackendRun).
"""
from __future__ import annotations

import html
import threading

import pyqtgraph as pg
from PySide6.QtCore import Qt, QThread, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (QAbstractItemView, QCheckBox, QComboBox, QDialog,
                               QDoubleSpinBox, QFileDialog, QFormLayout, QFrame, QGridLayout,
                               QGroupBox, QHBoxLayout, QHeaderView, QLabel, QLineEdit, QMessageBox,
                               QProgressBar, QPushButton, QScrollArea, QSizePolicy, QSpinBox,
                               QStackedWidget, QTableWidget, QTableWidgetItem, QVBoxLayout,
                               QWidget)

from fasdesk.core import calibration as C
from fasdesk.core import calibration_defaults as defaults
from fasdesk.core import robustness
from fasdesk.core.profiles import ProfileError, save_profile, source_of
from fasdesk.core.sources import SourceSpec
from fasdesk.core.thresholds import format_threshold
from fasdesk.ui.backend_process import BackendRun
from fasdesk.ui.frame_view import FrameView
from fasdesk.ui.training_widgets import MessageBox, theme_colours

STEP_TITLES = ("Setup", "Real faces", "Attacks", "Report", "Profile")
# Histogram colours: real faces green-blue, attacks in warm hues (none is a verdict colour).
STAGE_COLOURS = ["#56B4E9", "#E69F00", "#CC79A7", "#F0E442", "#D55E00", "#B8B8FF"]
SAME_AS_REAL = "same"


def _pct(value) -> str:
    return "n/a" if value is None else f"{100.0 * value:.1f}%"


def _robust_cell(report: dict) -> str:
    """'9/10 · 8/10 · 10/10': held-out real faces accepted darker / moving / tinted."""
    counts = report.get("robustness")
    if not counts:
        return "n/a"
    return " · ".join(f"{counts[c]['accepted']}/{counts[c]['n']}" for c in robustness.CONDITIONS)


def grown(box: MessageBox) -> MessageBox:
    """A message box that takes the height its wrapped text needs."""
    box.setSizePolicy(QSizePolicy.Preferred, QSizePolicy.Minimum)
    return box


def _item(text: str, right: bool = False) -> QTableWidgetItem:
    item = QTableWidgetItem(text)
    item.setFlags(item.flags() & ~Qt.ItemIsEditable)
    if right:
        item.setTextAlignment(Qt.AlignRight | Qt.AlignVCenter)
    return item


def _operating_point(report: dict) -> str:
    """Where the attack rate was measured: at the target BPCER when the held-out frames
    meet it, else at the threshold picked for it, with the real-face rate it really gave."""
    target = 100 * report["target_bpcer"]
    bpcer = report["held_out"]["bpcer"]
    if report["meets_target"] or bpcer is None:
        return f"at BPCER ≤ {target:g}%"
    return (f"at the threshold picked for BPCER ≤ {target:g}% (on the held-out frames it "
            f"rejects {100 * bpcer:.1f}% of real faces)")


# How long closing waits for the dialog's thread (a recording reads one more frame first).
SHUTDOWN_TIMEOUT_MS = 5000
# The name of such a thread once handed to the main window.
LEFT_BUSY = "calibration-thread-left-busy"


def finish_or_hand_over(thread: QThread, window, timeout_ms: int | None = None) -> bool:
    """Wait for a dialog's thread at most `timeout_ms` (SHUTDOWN_TIMEOUT_MS). True when it
    ended; else it is handed to the main window (a dialog deleted on close must not free
    a running thread), which counts it as a stuck worker when the app closes."""
    if thread.wait(SHUTDOWN_TIMEOUT_MS if timeout_ms is None else timeout_ms):
        return True
    thread.setObjectName(LEFT_BUSY)
    thread.setParent(window)
    return False


class StopsWhenClosed:
    """For a dialog with a `shutdown()`: it runs however the dialog ends, by its close
    button or by Esc and Close, which end a dialog without a close event (and a dialog
    deleted on close would otherwise free its threads while they run)."""

    def closeEvent(self, event) -> None:
        self.shutdown()
        super().closeEvent(event)

    def done(self, result: int) -> None:
        self.shutdown()
        super().done(result)


class TaskThread(QThread):
    """Runs one function off the UI thread; `done(result, error message or "")`."""
    done = Signal(object, str)

    def __init__(self, function, parent=None):
        super().__init__(parent)
        self.function = function

    def run(self) -> None:
        try:
            result = self.function()
        except (C.CalibrationError, C.SourceError, OSError, ValueError) as exc:
            self.done.emit(None, str(exc))
            return
        except Exception as exc:  # a model that fails to load: say so, keep the dialog
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            self.done.emit(None, first)
            return
        self.done.emit(result, "")


class RecordThread(QThread):
    """One stage's recording (core.calibration.record_stage) with a one-slot mailbox for
    the newest frame, as the live view does: a slow screen skips frames, never queues."""
    frame_ready = Signal()
    done = Signal(object, str)  # Recording or None, error message

    def __init__(self, session, stage, source_text, pipeline_factory, seconds, every,
                 camera_names, parent=None):
        super().__init__(parent)
        self.args = (session, stage, source_text, pipeline_factory, seconds, every, camera_names)
        self.stop_event = threading.Event()
        self._lock = threading.Lock()
        self._latest = None
        self.pipeline = None

    def take(self):
        with self._lock:
            latest, self._latest = self._latest, None
        return latest

    def _publish(self, frame, status) -> None:
        with self._lock:
            notify = self._latest is None
            self._latest = (frame, status)
        if notify:
            self.frame_ready.emit()

    def run(self) -> None:
        session, stage, source, factory, seconds, every, cameras = self.args
        try:
            self.pipeline = factory()
            recording = C.record_stage(session, stage, source, self.pipeline, seconds, every,
                                       should_stop=self.stop_event.is_set,
                                       on_frame=self._publish, camera_names=cameras)
        except (C.CalibrationError, C.SourceError) as exc:
            self.done.emit(None, str(exc))
            return
        except Exception as exc:  # a missing or broken model
            self.done.emit(None, str(exc).strip().splitlines()[0] if str(exc).strip()
                           else type(exc).__name__)
            return
        self.done.emit(recording, "")


class SourcePicker(QWidget):
    """A camera, a video file or an image folder; optionally "same as the real stage"."""
    changed = Signal()

    def __init__(self, cameras, current: SourceSpec | None, allow_same: bool = False, parent=None):
        super().__init__(parent)
        self.combo = QComboBox()
        self.combo.setMinimumWidth(220)
        if allow_same:
            self.combo.addItem("Same as the real faces", SAME_AS_REAL)
        for index, name in cameras:
            self.combo.addItem(f"{name} (camera {index})" if name else f"Camera {index}",
                               SourceSpec("camera", str(index)))
        self.combo.addItem("Video file…", "pick-video")
        self.combo.addItem("Image folder…", "pick-folder")
        self.combo.activated.connect(self._on_activated)
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.combo, 1)
        self._last = 0
        if current is not None and not allow_same:
            self.set_spec(current)

    def spec(self) -> SourceSpec | None:
        """The chosen source; None for "same as the real faces"."""
        data = self.combo.currentData()
        return data if isinstance(data, SourceSpec) else None

    def set_spec(self, spec: SourceSpec | None) -> None:
        if spec is None:
            self.combo.setCurrentIndex(max(0, self.combo.findData(SAME_AS_REAL)))
        else:
            index = next((i for i in range(self.combo.count()) if self.combo.itemData(i) == spec), -1)
            if index < 0:
                label = spec.label if spec.kind == "camera" else f"{spec.label}  ({spec.kind})"
                self.combo.insertItem(self.combo.count() - 2, label, spec)
                index = self.combo.count() - 3
                self.combo.setItemData(index, spec.target, Qt.ToolTipRole)
            self.combo.setCurrentIndex(index)
        self._last = self.combo.currentIndex()
        self.changed.emit()

    def _on_activated(self, index: int) -> None:
        data = self.combo.itemData(index)
        if data == "pick-video":
            path, _ = QFileDialog.getOpenFileName(self, "A recording (video file)")
        elif data == "pick-folder":
            path = QFileDialog.getExistingDirectory(self, "A recording (image folder)")
        else:
            self._last = index
            self.changed.emit()
            return
        if path:
            self.set_spec(SourceSpec.parse(path))
        else:
            self.combo.setCurrentIndex(self._last)


class HistogramPlot(pg.PlotWidget):
    """p_real histograms of the real faces and each attack, with the threshold line."""

    def __init__(self, title: str, parent=None):
        super().__init__(parent=parent)
        background, foreground = theme_colours()
        self.setBackground(background)
        self.setTitle(title, color=foreground.name(), size="10pt")
        for side in ("left", "bottom"):
            axis = self.getAxis(side)
            axis.setPen(foreground)
            axis.setTextPen(foreground)
        self.setLabel("bottom", "p_real")
        self.setLabel("left", "faces")
        self.setMouseEnabled(x=False, y=False)
        self.setXRange(0, 1, padding=0.02)
        self.setMinimumHeight(150)
        self.setSizePolicy(QSizePolicy.Expanding, QSizePolicy.Expanding)
        background.setAlpha(215)
        self.legend = self.addLegend(offset=(10, 10), brush=pg.mkBrush(background),
                                     labelTextColor=foreground)
        self.line = pg.InfiniteLine(pos=0.5, angle=90, movable=False,
                                    pen=pg.mkPen("#f2f2f2", width=2, style=Qt.DashLine),
                                    label="", labelOpts={"position": 0.9, "color": "#f2f2f2",
                                                         "anchors": [(1, 0), (1, 0)]})
        self.addItem(self.line)
        self.curves = []

    def show_report(self, report: dict | None, titles: dict) -> None:
        for curve in self.curves:
            self.removeItem(curve)
        self.curves = []
        self.legend.clear()
        if report is None:
            self.line.hide()
            return
        hist = report["histogram"]
        edges = hist["edges"]
        top = 1
        for i, (stage, counts) in enumerate(hist["counts"].items()):
            colour = QColor(STAGE_COLOURS[i % len(STAGE_COLOURS)])
            fill = QColor(colour)
            fill.setAlpha(90)
            curve = self.plot(edges, counts, stepMode="center", fillLevel=0,
                              pen=pg.mkPen(colour, width=2), brush=pg.mkBrush(fill),
                              name=f"{titles.get(stage, stage)} ({sum(counts)})")
            self.curves.append(curve)
            top = max(top, max(counts, default=0))
        self.setYRange(0, top * 1.15, padding=0)
        self.line.setValue(report["threshold"])
        self.line.label.setFormat(f"threshold {format_threshold(report['threshold'])}")
        self.line.show()


class CalibrationDialog(StopsWhenClosed, QDialog):
    """The calibration flow for the window's current source and model."""
    profile_saved = Signal(object)  # the saved Profile

    def __init__(self, window, spec: SourceSpec | None = None, profile=None, parent=None):
        super().__init__(parent or window)
        self.window_ = window
        self.setWindowTitle("Calibrate this camera")
        self.resize(1040, 700)
        self.settings = window.settings
        self.model = window.settings.model or None
        self.model_path = window.current_model_path()
        self.session: C.Session | None = None
        self.stages: list[str] = []
        self.stage_index = 0
        self.thread = None
        self.pipeline = None  # built by the first recording, reused for the next stages
        self.scores: dict = {}
        self.before: dict | None = None
        self.after: dict | None = None
        self.tuned_scores: dict | None = None
        self.plan = None
        self.tuned_model: dict | None = None
        self.saved_profile = None
        self.run = BackendRun(self)
        self.run.event.connect(self._on_backend_event)
        self.run.finished.connect(self._on_backend_finished)
        self._step = -1
        self.cameras = [(c.index, c.name) for c in window.live_tab.cameras]
        self.camera_names = dict(self.cameras)
        spec = spec or window.live_tab.spec or self._first_camera()

        self.steps_label = QLabel()
        self.steps_label.setTextFormat(Qt.RichText)
        self.stack = QStackedWidget()
        self.stack.addWidget(self._build_setup(spec))
        self.stack.addWidget(self._build_record())
        self.stack.addWidget(self._build_report())
        self.close_button = QPushButton("Close")
        self.close_button.clicked.connect(self.close)
        bottom = QHBoxLayout()
        bottom.addStretch(1)
        bottom.addWidget(self.close_button)
        layout = QVBoxLayout(self)
        layout.addWidget(self.steps_label)
        layout.addWidget(self.stack, 1)
        layout.addLayout(bottom)
        if profile is not None:
            self.preset(profile)
        self._show_step(0)

    def _first_camera(self) -> SourceSpec | None:
        return SourceSpec("camera", str(self.cameras[0][0])) if self.cameras else None

    # -- pages -------------------------------------------------------------------------
    def _build_setup(self, spec) -> QWidget:
        page = QWidget()
        layout = QVBoxLayout(page)
        intro = QLabel(
            "This measures the model on <b>your</b> camera, light and attacks, then picks the "
            "threshold. You record real faces for a few seconds, then each attack you want "
            "to stop (a phone showing a face, a printed photo...). Each stage can also be a "
            "video file or an image folder.")
        intro.setWordWrap(True)
        layout.addWidget(intro)
        form = QFormLayout()
        self.real_source = SourcePicker(self.cameras, spec)
        form.addRow("Camera (real faces):", self.real_source)
        self.seconds = QDoubleSpinBox()
        self.seconds.setRange(2, 120)
        self.seconds.setValue(defaults.SECONDS)
        self.seconds.setSuffix(" s per stage (camera)")
        self.every = QSpinBox()
        self.every.setRange(1, 30)
        self.every.setValue(defaults.EVERY)
        self.every.setPrefix("keep one frame in ")
        timing = QHBoxLayout()
        timing.addWidget(self.seconds)
        timing.addWidget(self.every)
        timing.addStretch(1)
        form.addRow("Recording:", timing)
        self.target = QDoubleSpinBox()
        self.target.setRange(0.5, 50)
        self.target.setDecimals(1)
        self.target.setValue(100 * defaults.TARGET_BPCER)
        self.target.setSuffix(" % of real faces rejected at most (BPCER)")
        self.target.setMaximumWidth(360)
        form.addRow("Target:", self.target)
        model = self.window_._model_name()
        form.addRow("Model:", QLabel(f"{model}  ({self.model_path.name if self.model_path else 'not found'})"))
        layout.addLayout(form)

        attacks = QGroupBox("Attacks to record (one stage each)")
        self.attack_grid = QGridLayout(attacks)
        self.attack_rows: dict[str, tuple[QCheckBox, SourcePicker]] = {}
        for name in C.ATTACK_TITLES:
            self._add_attack_row(name, checked=name == "replay")
        self.custom_attack = QLineEdit()
        self.custom_attack.setPlaceholderText("another attack, e.g. paper mask")
        add = QPushButton("Add")
        add.clicked.connect(self._add_custom_attack)
        self.custom_attack.returnPressed.connect(self._add_custom_attack)
        self._custom_row = QHBoxLayout()
        self._custom_row.addWidget(self.custom_attack, 1)
        self._custom_row.addWidget(add)
        self.attack_grid.addLayout(self._custom_row, 99, 0, 1, 2)
        self.attack_grid.setColumnStretch(1, 1)
        layout.addWidget(attacks)
        self.setup_message = grown(MessageBox())
        layout.addWidget(self.setup_message)
        layout.addStretch(1)
        self.start_button = QPushButton("Start with the real faces →")
        self.start_button.setObjectName("primary")
        self.start_button.clicked.connect(self.start)
        row = QHBoxLayout()
        row.addStretch(1)
        row.addWidget(self.start_button)
        layout.addLayout(row)
        return page

    def _add_attack_row(self, name: str, checked: bool = True) -> None:
        if name in self.attack_rows:
            self.attack_rows[name][0].setChecked(True)
            return
        check = QCheckBox(C.attack_title(name))
        check.setChecked(checked)
        picker = SourcePicker(self.cameras, None, allow_same=True)
        row = len(self.attack_rows)
        self.attack_grid.addWidget(check, row, 0)
        self.attack_grid.addWidget(picker, row, 1)
        self.attack_rows[name] = (check, picker)

    def _add_custom_attack(self) -> None:
        text = self.custom_attack.text().strip()
        if not text:
            return
        try:
            name = C.attack_name(text)
        except C.CalibrationError as exc:
            self.setup_message.show_message("error", str(exc))
            return
        self.setup_message.clear_message()
        self._add_attack_row(name)
        self.custom_attack.clear()

    def set_attack(self, name: str, spec: SourceSpec | None = None, checked: bool = True) -> None:
        """Choose an attack stage and its source (None: the real stage's camera)."""
        self._add_attack_row(name, checked)
        check, picker = self.attack_rows[name]
        check.setChecked(checked)
        picker.set_spec(spec)

    def _build_record(self) -> QWidget:
        page = QWidget()
        layout = QVBoxLayout(page)
        self.record_title = QLabel()
        self.record_title.setTextFormat(Qt.RichText)
        self.record_title.setWordWrap(True)
        layout.addWidget(self.record_title)
        self.prompt = QLabel()  # what to do now (real stage: vary light, distance, pose)
        self.prompt.setObjectName("recordingPrompt")
        self.prompt.setWordWrap(True)
        self.prompt.setStyleSheet("font-size: 15px; font-weight: bold;")
        layout.addWidget(self.prompt)
        self.view = FrameView()
        self.view.set_threshold(self.settings.threshold)
        layout.addWidget(self.view, 1)
        self.countdown = QLabel()
        self.countdown.setObjectName("countdown")
        self.countdown.setStyleSheet("font-size: 20px; font-weight: bold;")
        self.counts = QLabel()
        self.counts.setWordWrap(True)
        self.record_progress = QProgressBar()
        self.record_progress.setTextVisible(False)
        self.record_progress.setMaximumHeight(10)
        status = QHBoxLayout()
        status.addWidget(self.countdown)
        status.addWidget(self.counts, 1)
        layout.addLayout(status)
        layout.addWidget(self.record_progress)
        self.record_message = grown(MessageBox())
        layout.addWidget(self.record_message)
        self.record_button = QPushButton("Record")
        self.record_button.setObjectName("primary")
        self.record_button.clicked.connect(self.record)
        self.stop_button = QPushButton("Stop")
        self.stop_button.clicked.connect(self.stop_recording)
        self.next_button = QPushButton("Next →")
        self.next_button.clicked.connect(self.next_stage)
        row = QHBoxLayout()
        row.addWidget(self.record_button)
        row.addWidget(self.stop_button)
        row.addStretch(1)
        row.addWidget(self.next_button)
        layout.addLayout(row)
        return page

    def _build_report(self) -> QWidget:
        page = QWidget()
        layout = QHBoxLayout(page)
        left = QVBoxLayout()
        self.report_title = QLabel()
        self.report_title.setWordWrap(True)
        self.report_title.setTextFormat(Qt.RichText)
        left.addWidget(self.report_title)
        self.table = QTableWidget(0, 3)
        self.table.setHorizontalHeaderLabels(["", "Current model", "Fine-tuned"])
        self.table.verticalHeader().hide()
        self.table.horizontalHeader().setSectionResizeMode(0, QHeaderView.Stretch)
        self.table.setEditTriggers(QAbstractItemView.NoEditTriggers)
        self.table.setSelectionMode(QAbstractItemView.NoSelection)
        self.table.verticalHeader().setDefaultSectionSize(22)
        left.addWidget(self.table)
        targets = QHBoxLayout()
        self.report_target = QDoubleSpinBox()
        self.report_target.setRange(0.5, 50)
        self.report_target.setDecimals(1)
        self.report_target.setSuffix(" %")
        self.report_target.setValue(self.target.value())
        self.max_apcer = QDoubleSpinBox()
        self.max_apcer.setRange(0, 100)
        self.max_apcer.setDecimals(1)
        self.max_apcer.setSuffix(" %")
        self.max_apcer.setValue(100 * defaults.MAX_APCER)
        self.max_apcer.setToolTip("Attacks let through above this share call for fine-tuning")
        targets.addWidget(QLabel("BPCER at most"))
        targets.addWidget(self.report_target)
        targets.addWidget(QLabel("acceptable APCER"))
        targets.addWidget(self.max_apcer)
        targets.addStretch(1)
        left.addLayout(targets)
        self.verdict = grown(MessageBox())
        left.addWidget(self.verdict)
        # Shown only when the fine-tuned model is better on the held-out frames but keeps
        # fewer real faces real when darker / moving / tinted: using it needs this tick.
        self.accept_loss = QCheckBox("Use the fine-tuned model even so")
        self.accept_loss.hide()
        self.accept_loss.toggled.connect(lambda _: self.update_report())
        left.addWidget(self.accept_loss)
        self.notes = QLabel()
        self.notes.setWordWrap(True)
        self.notes.setStyleSheet("color: palette(mid);")
        left.addWidget(self.notes)

        tune_box = QGroupBox("Fine-tune on these samples")
        tune = QVBoxLayout(tune_box)
        recipe = QHBoxLayout()
        self.epochs = QSpinBox()
        self.epochs.setRange(0, 200)
        self.epochs.setSpecialValueText("auto")
        self.batch = QSpinBox()
        self.batch.setRange(0, 1024)
        self.batch.setSpecialValueText("auto")
        self.lr = QDoubleSpinBox()
        self.lr.setDecimals(5)
        self.lr.setRange(0, 1)
        self.lr.setSingleStep(0.001)
        self.lr.setSpecialValueText("auto")
        for label, widget in (("epochs", self.epochs), ("batch", self.batch), ("lr", self.lr)):
            recipe.addWidget(QLabel(label))
            recipe.addWidget(widget)
        recipe.addStretch(1)
        tune.addLayout(recipe)
        self.tune_button = QPushButton("Fine-tune on these samples")
        self.tune_button.clicked.connect(self.fine_tune)
        self.tune_cancel = QPushButton("Cancel")
        self.tune_cancel.setEnabled(False)
        self.tune_cancel.clicked.connect(self.run.stop)
        buttons = QHBoxLayout()
        buttons.addWidget(self.tune_button)
        buttons.addWidget(self.tune_cancel)
        buttons.addStretch(1)
        tune.addLayout(buttons)
        self.tune_progress = QProgressBar()
        self.tune_status = QLabel("Trains on the first half of each recording, picks the "
                                  "threshold on the next quarter, measures on the last.")
        self.tune_status.setWordWrap(True)
        tune.addWidget(self.tune_progress)
        tune.addWidget(self.tune_status)

        save_box = QGroupBox("Save as a camera profile")
        save = QHBoxLayout(save_box)
        self.profile_name = QLineEdit()
        self.profile_name.setPlaceholderText("profile name")
        self.save_button = QPushButton("Save profile")
        self.save_button.setObjectName("primary")
        self.save_button.clicked.connect(self.save)
        save.addWidget(self.profile_name, 1)
        save.addWidget(self.save_button)
        self.save_message = grown(MessageBox())
        left.addWidget(self.save_message)
        left.addStretch(1)

        right = QVBoxLayout()
        self.hist_before = HistogramPlot("p_real, current model")
        self.hist_after = HistogramPlot("p_real, fine-tuned model")
        self.hist_after.hide()
        plots = QHBoxLayout()
        plots.addWidget(self.hist_before, 1)
        plots.addWidget(self.hist_after, 1)
        right.addLayout(plots, 1)
        right.addWidget(tune_box)
        right.addWidget(save_box)
        left_box, right_box = QWidget(), QWidget()
        left_box.setLayout(left)
        right_box.setLayout(right)
        left_box.setFixedWidth(430)
        # The report column scrolls when its notes outgrow the dialog (a small screen).
        left_scroll = QScrollArea()
        left_scroll.setWidget(left_box)
        left_scroll.setWidgetResizable(True)
        left_scroll.setFrameShape(QFrame.NoFrame)
        left_scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        left_scroll.setFixedWidth(450)
        layout.addWidget(left_scroll)
        layout.addWidget(right_box, 1)
        self.report_target.valueChanged.connect(self.update_report)
        self.max_apcer.valueChanged.connect(self.update_report)
        return page

    def _show_step(self, step: int) -> None:
        """Step 0 setup, 1 real, 2 attacks, 3 report, 4 profile saved."""
        self._step = step
        parts = []
        for i, title in enumerate(STEP_TITLES):
            text = f"{i + 1}&nbsp;{title}"
            parts.append(f"<b><u>{text}</u></b>" if i == step else
                         text if i > step else f"<span style='color:#7d838c'>{text}</span>")
        self.steps_label.setText("&nbsp;&nbsp;›&nbsp;&nbsp;".join(parts))
        self.stack.setCurrentIndex(0 if step == 0 else 1 if step in (1, 2) else 2)

    # -- setup ---------------------------------------------------------------------------
    def preset(self, profile) -> None:
        """Fill the setup from a profile (Re-run): its camera, attacks, target and name."""
        self.real_source.set_spec(profile.spec)
        for name, (check, _) in self.attack_rows.items():
            check.setChecked(False)
        real = next((r.get("source") for r in profile.recordings if r.get("stage") == C.REAL), None)
        for rec in profile.recordings:
            stage = rec.get("stage")
            if stage and stage != C.REAL:
                source = rec.get("source")
                same = source == real or source is None
                self.set_attack(stage, None if same else SourceSpec.parse(source))
        self.target.setValue(100 * profile.target_bpcer)
        self.max_apcer.setValue(100 * profile.max_apcer)
        self.profile_name.setText(profile.name)

    def chosen_stages(self) -> list[tuple[str, SourceSpec]]:
        real = self.real_source.spec()
        stages = [(C.REAL, real)]
        for name, (check, picker) in self.attack_rows.items():
            if check.isChecked():
                stages.append((name, picker.spec() or real))
        return stages

    def start(self) -> None:
        """Setup done: a new session, then the real stage."""
        self.setup_message.clear_message()
        stages = self.chosen_stages()
        if stages[0][1] is None:
            self.setup_message.show_message("error", "Choose the camera (or a video file or an "
                                            "image folder) for the real faces.")
            return
        if len(stages) < 2:
            self.setup_message.show_message("error", "Choose at least one attack to record.")
            return
        if self.model_path is None:
            self.setup_message.show_message("error", "No liveness model: download or open one "
                                            "first (Model menu).")
            return
        # The camera cannot feed the live view and the calibration at once.
        self.live_spec = self.window_.live_tab.spec if self.window_.live_tab.running else None
        self.window_.live_tab.stop()
        real = stages[0][1]
        label = self.camera_names.get(int(real.target)) if real.kind == "camera" else None
        self.session = C.Session.create(label or real.label)
        self.session.settings = {"seconds": self.seconds.value(), "every": self.every.value(),
                                 "target_bpcer": self.target.value() / 100}
        self.stages = stages
        self.stage_index = 0
        self.report_target.setValue(self.target.value())
        if not self.profile_name.text():
            self.profile_name.setText(label or real.label)
        self._enter_stage()

    # -- recording -----------------------------------------------------------------------
    @property
    def stage(self) -> tuple[str, SourceSpec]:
        return self.stages[self.stage_index]

    def _enter_stage(self) -> None:
        name, spec = self.stage
        self._show_step(1 if name == C.REAL else 2)
        what = "a video file" if spec.kind == "video" else "an image folder" if spec.kind != "camera" else None
        if name == C.REAL:
            heading = "Real faces: look at the camera and move a little"
            help_text = ("Turn your head slightly, come a little closer and go back. Other people "
                         "who will use this camera can take turns.")
        else:
            heading = f"Attack: {C.attack_title(name)}"
            help_text = ("Hold the attack in front of the camera (a phone or tablet showing a "
                         "face, a printed photo...), moving it a little, at the distances an "
                         "attacker would.")
        source = (f"Recording from {spec.label}" if what is None else
                  f"Recording from {what}: {html.escape(spec.label)} (read to its end)")
        self.record_title.setText(f"<h2 style='margin:0'>{html.escape(heading)}</h2>"
                                  f"{html.escape(help_text)}<br><i>{source}</i>")
        self.view.show_frame(None)
        self.view.set_placeholder("Press Record when ready")
        self.prompt.setText(robustness.recording_prompt(name, 0.0, 1.0))  # the first one
        self.countdown.setText("")
        self.counts.setText("")
        self.record_progress.setValue(0)
        self.record_message.clear_message()
        self.record_button.setText("Record")
        self.record_button.setEnabled(True)
        self.stop_button.setEnabled(False)
        self.next_button.setEnabled(False)
        self.next_button.setText("Next attack →" if self.stage_index + 1 < len(self.stages)
                                 else "See the report →")

    def _pipeline_factory(self):
        if self.pipeline is not None:
            return lambda: self.pipeline
        return self.window_._pipeline_factory(live=True)

    def record(self) -> None:
        name, spec = self.stage
        self.record_message.clear_message()
        self.record_button.setEnabled(False)
        self.next_button.setEnabled(False)
        self.stop_button.setEnabled(True)
        self.view.set_placeholder(f"Opening {spec.label}…")
        thread = RecordThread(self.session, name, spec.target, self._pipeline_factory(),
                              self.seconds.value(), self.every.value(), self.camera_names, self)
        thread.frame_ready.connect(self._on_record_frame, Qt.QueuedConnection)
        thread.done.connect(self._on_recorded, Qt.QueuedConnection)
        self.thread = thread
        thread.start()

    def stop_recording(self) -> None:
        if isinstance(self.thread, RecordThread):
            self.thread.stop_event.set()

    def _on_record_frame(self) -> None:
        if not isinstance(self.thread, RecordThread):
            return
        latest = self.thread.take()
        if latest is None:
            return
        frame, status = latest
        self.view.show_frame(frame)
        self._show_status(status)

    def _show_status(self, status) -> None:
        self.prompt.setText(robustness.recording_prompt(
            status.stage, status.t, status.limit, status.position, status.total))
        if status.limit is not None:
            self.countdown.setText(f"{status.remaining:.0f} s left")
            self.record_progress.setRange(0, 1000)
            self.record_progress.setValue(round(1000 * min(1.0, status.t / status.limit)))
        else:
            total = f" of {status.total}" if status.total else ""
            self.countdown.setText(f"frame {status.position}{total}")
            if status.total:
                self.record_progress.setRange(0, status.total)
                self.record_progress.setValue(min(status.position, status.total))
        rejected = ", ".join(f"{n} {k}" for k, n in status.rejected.items())
        self.counts.setText(
            f"<b>{status.saved}</b> faces saved &nbsp; · &nbsp; rejected: "
            f"{html.escape(rejected) if rejected else 'none'} &nbsp; · &nbsp; "
            f"{status.no_face_frames} frames without a face")

    def _on_recorded(self, recording, error: str) -> None:
        thread, self.thread = self.thread, None
        if thread is not None:
            thread.wait()
            if thread.pipeline is not None:
                self.pipeline = thread.pipeline
        self._on_record_frame_final(thread)
        self.stop_button.setEnabled(False)
        self.record_button.setEnabled(True)
        self.record_button.setText("Record again")
        if recording is None:
            self.record_message.show_message("error", f"Not recorded: {error}")
            return
        rejected = ", ".join(f"{n} {k}" for k, n in recording.rejected.items())
        summary = (f"{len(recording.samples)} faces saved from {recording.frames} frames"
                   + (f"; rejected: {rejected}" if rejected else "")
                   + f"; {recording.no_face_frames} frames without a face.")
        if not recording.samples:
            self.record_message.show_message(
                "error", f"No faces found in this recording. {summary}",
                ["Make sure the face is in the picture, large enough and not cut by the edge, "
                 "then record again."])
            return
        self.record_message.show_message("ok", summary)
        self.next_button.setEnabled(True)

    def _on_record_frame_final(self, thread) -> None:
        if thread is None:
            return
        latest = thread.take()
        if latest is not None:
            self.view.show_frame(latest[0])
            self._show_status(latest[1])

    def next_stage(self) -> None:
        if self.stage_index + 1 < len(self.stages):
            self.stage_index += 1
            self._enter_stage()
        else:
            self.score()

    # -- report --------------------------------------------------------------------------
    def score(self) -> None:
        """Score the saved samples with the current model (off the UI thread)."""
        self._show_step(3)
        self.report_title.setText("<h2 style='margin:0'>Report</h2>Scoring the saved faces…")
        self.table.setRowCount(0)
        self.save_button.setEnabled(False)
        self.tune_button.setEnabled(False)
        path = self.model_path
        self._task(lambda: C.score_session(self.session, path), self._on_scored)

    def _task(self, function, slot) -> None:
        thread = TaskThread(function, self)
        thread.done.connect(slot, Qt.QueuedConnection)
        thread.finished.connect(thread.deleteLater)
        self.thread = thread
        thread.start()

    def _on_scored(self, scores, error: str) -> None:
        self.thread = None
        if scores is None:
            self.report_title.setText("<h2 style='margin:0'>Report</h2>")
            self.verdict.show_message("error", f"The samples could not be scored: {error}")
            return
        self.scores = scores
        self.update_report()

    def titles(self) -> dict:
        """Short names for the plot legends: "real", "replay", "paper mask"..."""
        if self.session is None:
            return {}
        return {r.stage: r.stage.replace("_", " ") for r in self.session.recordings}

    def update_report(self) -> None:
        """(Re)compute the reports for the target from the stored scores and show them."""
        if not self.scores or self.session is None:
            return
        target = self.report_target.value() / 100
        max_apcer = self.max_apcer.value() / 100
        self.verdict.clear_message()
        try:
            self.before = C.evaluate(self.session, self.scores, target, max_apcer)
            self.after = (C.evaluate(self.session, self.tuned_scores, target, max_apcer,
                                     fine_tuned=True) if self.tuned_scores else None)
        except C.CalibrationError as exc:
            self.before = self.after = None
            self.verdict.show_message("error", str(exc))
            self.table.setRowCount(0)
            self.hist_before.show_report(None, {})
            self.save_button.setEnabled(False)
            self.tune_button.setEnabled(False)
            return
        self._fill_table()
        titles = self.titles()
        self.hist_before.show_report(self.before, titles)
        self.hist_after.setVisible(self.after is not None)
        self.hist_after.show_report(self.after, titles)
        n_real = sum(len(r.samples) for r in self.session.recordings if r.kind == C.REAL)
        n_attack = sum(len(r.samples) for r in self.session.recordings if r.kind != C.REAL)
        self.report_title.setText(
            f"<h2 style='margin:0'>Report</h2>{n_real} real and {n_attack} attack faces. "
            "The threshold is picked on the first three quarters of each recording (the "
            "fine-tuned model: on the third quarter, it trained on the first half); the "
            "error rates are measured on the last quarter, which nothing else used.")
        self._show_verdict(max_apcer)
        notes = self.before["warnings"]
        if self.after is not None:
            notes = ([f"current model: {n}" for n in notes]
                     + [f"fine-tuned: {n}" for n in self.after["warnings"]])
        self.notes.setText("<br>".join("• " + html.escape(n) for n in notes))
        self.save_button.setEnabled(self.saved_profile is None)
        self.tune_button.setEnabled(not self.run.running)

    def _fill_table(self) -> None:
        reports = [self.before, self.after]
        rows = [("threshold", lambda r: format_threshold(r["threshold"])),
                ("picked on (real / attack faces)",
                 lambda r: f"{r['picked_on']['n_real']} / {r['picked_on']['n_attack']}"),
                ("held out (real / attack faces)",
                 lambda r: f"{r['held_out']['n_real']} / {r['held_out']['n_attack']}"),
                ("BPCER (real rejected)", lambda r: _pct(r["held_out"]["bpcer"]))]
        for stage in self.session.attacks:
            rows.append((f"APCER: {C.attack_title(stage)}",
                         lambda r, s=stage: _pct(r["held_out"]["apcer_per_type"].get(s))))
        rows += [("ACER", lambda r: _pct(r["held_out"]["acer"])),
                 ("EER", lambda r: _pct(r["held_out"]["eer"])),
                 ("real still accepted: darker / moving / tinted", _robust_cell)]
        self.table.setRowCount(len(rows))
        for i, (name, value) in enumerate(rows):
            self.table.setItem(i, 0, _item(name))
            self.table.item(i, 0).setToolTip(name)
            for j, report in enumerate(reports):
                self.table.setItem(i, j + 1, _item(value(report) if report else "", right=True))
        self.table.setColumnHidden(2, self.after is None)
        self.table.resizeColumnsToContents()
        self.table.horizontalHeader().setSectionResizeMode(0, QHeaderView.Stretch)
        self.table.setFixedHeight(self.table.horizontalHeader().height() + 4
                                  + sum(self.table.rowHeight(i) for i in range(len(rows))))

    def _show_verdict(self, max_apcer: float) -> None:
        before, after = self.before, self.after
        worst = before["held_out"]["apcer_max"] or 0.0
        loss = C.robustness_loss(before, after)
        ask = loss and C.fine_tune_kept(before, after, True)
        self.accept_loss.setVisible(ask)
        if ask:
            self.verdict.show_message(
                "warning", "The fine-tuned model is better on the held-out frames but keeps "
                "fewer real faces real in other conditions:",
                [f"current model: {robustness.line(before['robustness'])}",
                 f"fine-tuned: {robustness.line(after['robustness'])}",
                 "The profile keeps the current model unless you tick the box below."
                 if not self.accept_loss.isChecked() else
                 "You chose to use the fine-tuned model anyway."])
            return
        if after is not None:
            kept = C.fine_tune_kept(before, after)
            a_worst = after["held_out"]["apcer_max"] or 0.0
            if kept:
                self.verdict.show_message(
                    "ok" if after["meets_target"] and not after["needs_fine_tune"] else "warning",
                    f"The fine-tuned model lets {100 * a_worst:.1f}% of attacks through "
                    f"{_operating_point(after)} (the current model: {100 * worst:.1f}%). The "
                    f"profile will use it, with threshold {format_threshold(after['threshold'])}.")
            else:
                self.verdict.show_message(
                    "warning", "The fine-tuned model does not do better on the held-out frames; "
                    "the profile keeps the current model.")
            return
        if before["needs_fine_tune"]:
            self.verdict.show_message(
                "warning", f"The current model lets {100 * worst:.1f}% of attacks through "
                f"{_operating_point(before)}, above the acceptable {100 * max_apcer:g}%.",
                ["Fine-tune it on these samples (below), or save the profile as it is."])
        else:
            self.verdict.show_message(
                "ok" if before["meets_target"] else "warning",
                f"The current model lets {100 * worst:.1f}% of attacks through "
                f"{_operating_point(before)} (acceptable: {100 * max_apcer:g}%). Threshold "
                f"{format_threshold(before['threshold'])}.")

    # -- fine-tuning ---------------------------------------------------------------------
    def fine_tune(self) -> None:
        try:
            self.plan = C.fine_tune_plan(self.session, self.model_path,
                                         self.profile_name.text() or "camera",
                                         epochs=self.epochs.value() or None,
                                         batch_size=self.batch.value() or None,
                                         lr=self.lr.value() or None)
        except C.CalibrationError as exc:
            self.verdict.show_message("error", str(exc))
            return
        self.tuned_scores = None
        self.accept_loss.setChecked(False)  # a new model needs its own confirmation
        self.tune_steps = list(self.plan.steps)
        self.tune_button.setEnabled(False)
        self.tune_cancel.setEnabled(True)
        self.save_button.setEnabled(False)
        self._next_backend_step()

    def _next_backend_step(self) -> None:
        title, args = self.tune_steps.pop(0)
        done = len(self.plan.steps) - len(self.tune_steps)
        self.tune_status.setText(f"{done}/{len(self.plan.steps) + 1}: {title}…")
        self.tune_progress.setRange(0, 0)
        self.run.start(args)

    def _on_backend_event(self, event: dict) -> None:
        if event.get("event") == "progress" and event.get("total"):
            self.tune_progress.setRange(0, int(event["total"]))
            self.tune_progress.setValue(int(event.get("done", 0)))

    def _on_backend_finished(self, ok: bool, message: str) -> None:
        if not ok:
            self.tune_cancel.setEnabled(False)
            self.tune_button.setEnabled(True)
            self.save_button.setEnabled(self.before is not None)
            self.tune_progress.setRange(0, 1)
            self.tune_progress.setValue(0)
            tail = "\n".join(list(self.run.tail)[-6:])
            self.tune_status.setText("Fine-tuning was cancelled." if message == "cancelled" else
                                     f"Fine-tuning failed: {message}")
            if message != "cancelled":
                self.verdict.show_message("error", f"Fine-tuning failed: {message}", pre=tail)
            return
        if self.tune_steps:
            self._next_backend_step()
            return
        self.tune_cancel.setEnabled(False)
        self.tune_status.setText(f"{len(self.plan.steps) + 1}/{len(self.plan.steps) + 1}: "
                                 "scoring the fine-tuned model…")
        out = self.plan.model_out
        self._task(lambda: C.score_session(self.session, out), self._on_tuned_scored)

    def _on_tuned_scored(self, scores, error: str) -> None:
        self.thread = None
        self.tune_progress.setRange(0, 1)
        self.tune_progress.setValue(1)
        if scores is None:
            self.tune_status.setText(f"The fine-tuned model could not be scored: {error}")
            self.tune_button.setEnabled(True)
            return
        self.tuned_scores = scores
        self.update_report()
        if self.after is None:
            return
        try:
            model_id = C.finish_fine_tune(self.plan, self.after["threshold"], self.session)
            self.tuned_model = C.model_summary(model_id, self.plan.model_out)
        except (C.CalibrationError, OSError, ValueError) as exc:
            self.tune_status.setText(f"The fine-tuned model could not be added: {exc}")
            return
        self.tune_status.setText(f"Done: model '{model_id}' is in the model list.")

    # -- saving --------------------------------------------------------------------------
    def save(self):
        """Save the profile and apply it to the live view; returns the Profile or None."""
        name = self.profile_name.text().strip()
        if not name:
            self.save_message.show_message("error", "Give the profile a name.")
            return None
        if self.before is None:
            return None
        real = self.stages[0][1]
        camera_name = self.camera_names.get(int(real.target)) if real.kind == "camera" else None
        after = self.after if self.tuned_model is not None else None
        try:
            model = C.model_summary(self.model or self.window_._model_name(), self.model_path)
            accept = self.accept_loss.isChecked()
            if after is not None and C.fine_tune_kept(self.before, after, accept):
                # The target may have changed since: the model keeps the profile's threshold.
                C.finish_fine_tune(self.plan, after["threshold"], self.session)
            _, profile = C.conclude(self.session, source_of(real, camera_name), model,
                                    self.before, after, self.tuned_model if after else None,
                                    name, self.settings.confirm_frames,
                                    accept_robustness_loss=accept)
            path = save_profile(profile)
        except (C.CalibrationError, ProfileError, OSError, ValueError) as exc:
            message = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
            self.save_message.show_message("error", f"Not saved: {message}")
            return None
        self.saved_profile = profile
        self.save_button.setEnabled(False)
        self._show_step(4)
        self.save_message.show_message(
            "ok", f"Profile '{profile.name}' saved.",
            [f"Model {profile.model}, threshold {format_threshold(profile.threshold)}, "
             f"confirmed after {profile.confirm_frames} frames.",
             f"It is applied whenever {profile.source_label} is selected in the Live tab.",
             f"File: {path}"])
        self.profile_saved.emit(profile)
        return profile

    # -- closing -------------------------------------------------------------------------
    def confirm_close(self) -> bool:
        """Ask before the app closes while a fine-tuning run is going (closing stops it)."""
        if not self.run.running:
            return True
        answer = QMessageBox.question(
            self, "Close fasdesk?", "The calibration is still fine-tuning a model. Stop it "
            "and close? The recordings are kept; you can fine-tune again from Tools > "
            "Camera profiles > Re-run calibration.", QMessageBox.Yes | QMessageBox.No,
            QMessageBox.No)
        return answer == QMessageBox.Yes

    def shutdown(self, restart_live: bool = True, timeout_ms: int | None = None) -> bool:
        """Stop a recording, scoring or fine-tuning run and wait for it, the thread at most
        `timeout_ms` (SHUTDOWN_TIMEOUT_MS); then the live view goes on with the source it
        had (its profile, if one was saved, applies). False when the thread is still
        busy (a slow read): it is handed to the main window, so closing this dialog does
        not free a running thread, and the app exits without waiting for it."""
        stopped = True
        if isinstance(self.thread, RecordThread):
            self.thread.stop_event.set()
        if self.thread is not None:
            stopped = finish_or_hand_over(self.thread, self.window_, timeout_ms)
            self.thread = None
        if self.run.running:
            self.run.stop_and_wait()  # ends it, killing it if it must
        live = getattr(self, "live_spec", None)
        self.live_spec = None
        if live is not None and restart_live:
            self.window_.live_tab.start(live)
        return stopped
