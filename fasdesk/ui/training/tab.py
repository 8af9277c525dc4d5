"""The Training tab: dataset -> prepare -> train -> evaluate -> export, one page per step.

Every step runs the training backend as a child process (BackendRun) and follows its
JSON-lines events; the window stays responsive and the backend's stderr goes to the log
pane. Each page remembers its last inputs (in the app settings, key `training`), so a step
can be used on its own, and an interrupted run can be resumed after a restart.
"""
from __future__ import annotations

import logging
import time
from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QFrame, QHBoxLayout, QLabel, QListWidget, QMessageBox,
                               QPlainTextEdit, QScrollArea, QSplitter, QStackedWidget,
                               QVBoxLayout, QWidget)

from fasdesk.ui.backend_process import BackendRun
from fasdesk.ui.training import DatasetStep, EvaluateStep, ExportStep, PrepareStep, TrainStep

LOG_LINES = 5000

log = logging.getLogger(__name__)


class StepMemory:
    """The remembered inputs of each step, kept in the app's Settings (`training`).

    With a window, it shares the window's Settings object and save function, so the two
    never overwrite each other; on its own it loads and saves the settings file itself.
    """

    def __init__(self, settings=None, save=None):
        if settings is None:
            from fasdesk.core.io.settings import load_settings, save_settings

            settings, _ = load_settings()
            save = save or (lambda: save_settings(settings))
        self.settings = settings
        self._save = save

    @property
    def _store(self) -> dict:
        if not isinstance(self.settings.training, dict):
            self.settings.training = {}
        return self.settings.training

    def get(self, step: str) -> dict:
        value = self._store.get(step)
        return dict(value) if isinstance(value, dict) else {}

    def reset(self, step: str) -> None:
        """Forget a step's inputs (they could not be used)."""
        self._store.pop(step, None)

    def put(self, step: str, values: dict) -> None:
        self._store[step] = dict(values)
        if self._save is not None:
            try:
                self._save()
            except OSError:
                pass  # remembering inputs is a convenience; never block a run on it


class TrainingTab(QWidget):
    use_model_requested = Signal(str)  # an exported .onnx the live view should switch to
    # An evaluated .onnx and the threshold picked for it, for the live view to use together.
    model_threshold_requested = Signal(str, float)
    model_files_written = Signal(list)  # paths an export wrote (maybe over a model in use)

    STEPS = (("dataset", "1  Dataset"), ("prepare", "2  Prepare"), ("train", "3  Train"),
             ("evaluate", "4  Evaluate"), ("export", "5  Export"))

    def __init__(self, settings=None, save_settings=None, parent=None):
        super().__init__(parent)
        self.memory = StepMemory(settings, save_settings)
        self.run = BackendRun(self)
        self.run.event.connect(self._on_event)
        self.run.log_line.connect(self.log)
        self.run.finished.connect(self._on_finished)
        self._owner = None  # the step whose run is going

        self.steps_list = QListWidget()
        self.steps_list.setObjectName("trainingSteps")
        self.steps_list.setFixedWidth(120)
        self.stack = QStackedWidget()
        self.dataset = DatasetStep(self)
        self.prepare = PrepareStep(self)
        self.train = TrainStep(self)
        self.evaluate = EvaluateStep(self)
        self.export = ExportStep(self)
        self.pages = {"dataset": self.dataset, "prepare": self.prepare, "train": self.train,
                      "evaluate": self.evaluate, "export": self.export}
        for key, title in self.STEPS:
            self.steps_list.addItem(title)
            # Scrollable, so a small window still shows every step whole.
            scroll = QScrollArea()
            scroll.setWidgetResizable(True)
            scroll.setFrameShape(QFrame.NoFrame)
            scroll.setWidget(self.pages[key])
            self.stack.addWidget(scroll)
        self.steps_list.currentRowChanged.connect(self.stack.setCurrentIndex)
        self.steps_list.setCurrentRow(0)

        self.log_view = QPlainTextEdit()
        self.log_view.setReadOnly(True)
        self.log_view.setMaximumBlockCount(LOG_LINES)
        self.log_view.setPlaceholderText("The backend's messages appear here.")
        self.log_view.setMinimumHeight(40)
        log_box = QWidget()
        log_layout = QVBoxLayout(log_box)
        log_layout.setContentsMargins(0, 0, 0, 0)
        log_layout.addWidget(QLabel("Backend log"))
        log_layout.addWidget(self.log_view)

        splitter = QSplitter(Qt.Vertical)
        splitter.addWidget(self.stack)
        splitter.addWidget(log_box)
        splitter.setStretchFactor(0, 5)
        splitter.setStretchFactor(1, 1)
        splitter.setSizes([10_000, 60])  # the step first; the log a few lines, dragged taller
        row = QHBoxLayout(self)
        row.addWidget(self.steps_list)
        row.addWidget(splitter, 1)

        self.restore_warning = self._restore_pages()

    def _restore_pages(self) -> str | None:
        """Give each step its remembered inputs. A value a step cannot take (a bad settings
        file, an older version's format) resets that step's inputs, with a warning: the
        tab itself always loads."""
        reset = []
        for key, page in self.pages.items():
            try:
                page.restore()
            except Exception as exc:
                log.warning("Training step %s: remembered inputs not usable (%s); reset",
                            key, exc)
                reset.append(f"{key} ({type(exc).__name__}: {str(exc).strip()[:80]})")
                self.memory.reset(key)
                page.restore()
        if not reset:
            return None
        warning = ("The Training tab's remembered inputs were not usable and were reset "
                   "for: " + ", ".join(reset) + ".")
        self.log(warning)
        return warning

    # -- navigation and hand-over between steps ------------------------------------------

    def go_to(self, key: str) -> None:
        self.steps_list.setCurrentRow([k for k, _ in self.STEPS].index(key))

    def current_page(self):
        return self.pages[self.STEPS[self.stack.currentIndex()][0]]

    def offer_dataset(self, folder: str | Path) -> None:
        """Open a dataset (e.g. the one Collect mode fills) in the Dataset step."""
        self.dataset.set_folder(str(folder))
        self.go_to("dataset")

    # -- the one backend run -------------------------------------------------------------

    @property
    def busy(self) -> bool:
        return self.run.running

    def start_backend(self, owner, args: list[str]) -> bool:
        if self.run.running:
            QMessageBox.information(self, "Training", "Another step is still running; "
                                    "wait for it or cancel it first.")
            return False
        self._owner = owner
        command = self.run.start(args)
        self.log(f"$ {command}")
        for page in self.pages.values():
            page.set_running(page is owner)
        return True

    def cancel_backend(self) -> None:
        if self.run.running:
            self.log("stopping the backend (it saves its progress first)...")
            self.run.stop()

    def _on_event(self, event: dict) -> None:
        if event.get("event") == "log" and event.get("level") == "debug":
            return
        if self._owner is not None:
            self._owner.on_event(event)

    def _on_finished(self, ok: bool, message: str) -> None:
        owner, self._owner = self._owner, None
        if not ok and message != "cancelled":
            tail = "\n".join(list(self.run.tail)[-8:])
            self.log(f"failed: {message}")
            if owner is not None:
                owner.show_failure(message, tail)
        elif not ok:
            self.log("cancelled")
        if owner is not None:
            owner.on_finished(ok, message)
        for page in self.pages.values():
            page.set_running(False)

    def log(self, line: str) -> None:
        stamp = time.strftime("%H:%M:%S")
        self.log_view.appendPlainText(f"{stamp}  {line}")

    # -- closing -------------------------------------------------------------------------

    def confirm_close(self) -> bool:
        """Ask before closing while a run is going; stops it (it saves) when confirmed."""
        if not self.run.running:
            self.dataset.wait_for_scans()
            return True
        what = self._owner.TITLE if self._owner is not None else "A training step"
        answer = QMessageBox.question(
            self, "Close fasdesk?",
            f"{what} is still running. Stop it and close? "
            "Its progress is saved; you can resume it in the Training tab later.",
            QMessageBox.Yes | QMessageBox.No, QMessageBox.No)
        if answer != QMessageBox.Yes:
            return False
        self.shutdown()
        return True

    def shutdown(self) -> None:
        """Stop a running child gracefully (it writes its checkpoint) and wait for it."""
        if self.run.running:
            self.run.stop_and_wait()
        self.dataset.wait_for_scans()


def install(window) -> TrainingTab:
    """Add the Training tab, and the Collect panel under the Live view, to the main window.

    The tab shares the window's settings and save; "use in Live" and "apply to live" go
    through the window's own model and threshold switches.
    """
    from fasdesk.ui.collect_panel import CollectPanel

    state = window.state
    tab = TrainingTab(state.settings, state.save)
    tab.use_model_requested.connect(lambda model: state.use_model(model))
    tab.model_threshold_requested.connect(lambda model, value: state.use_model(model, value))
    tab.model_files_written.connect(state.reload_model_files)
    window.add_tab(tab, "Training")

    panel = CollectPanel(state)
    live = window.live_tab
    live.frame_shown.connect(panel.on_frame)
    live.source_starting.connect(panel.clear_frame)
    live.view.clicked.connect(panel.select_at)
    panel.target_changed.connect(live.view.set_marked)
    tab.dataset.samples_deleted.connect(panel.recount)
    live.layout().addWidget(panel)

    def open_dataset(folder: str) -> None:
        tab.offer_dataset(folder)
        window.tabs.setCurrentWidget(tab)

    panel.open_in_training.connect(open_dataset)
    window.collect_panel = panel
    return tab
