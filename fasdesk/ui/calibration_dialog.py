"""Calibrate this camera: the calibration flow (fasdesk.app.calibration) as one dialog.

Setup (source, attacks, time, target) -> one recording page per stage (real, then each
attack) -> the report (metrics on the held-out frames, p_real histograms with the
threshold, fine-tuning with before/after) -> save the profile. The flow holds the state
and does the work, the same flow `fasdesk calibrate` runs; this dialog shows it and
calls each step in a worker (fasdesk.ui.workers), off the UI thread. The pages are in
fasdesk.ui.calibration.
"""
from __future__ import annotations

import shiboken6
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QDialog, QLabel, QMessageBox, QStackedWidget, QVBoxLayout

from fasdesk.app.backend import CANCELLED
from fasdesk.app.calibration import CalibrationError, CalibrationFlow, profile_shortfall
from fasdesk.core.calibration import session as C
from fasdesk.core.calibration.naming import default_profile_name
from fasdesk.core.calibration.profiles import ProfileError, source_of
from fasdesk.core.decision.thresholds import format_threshold
from fasdesk.core.io.errors import one_line
from fasdesk.core.live.mailbox import Mailbox
from fasdesk.core.live.sources import SourceSpec
from fasdesk.ui.calibration.record_page import RecordPage
from fasdesk.ui.calibration.report_page import ReportPage
from fasdesk.ui.calibration.setup_page import SetupPage
from fasdesk.ui.calibration.widgets import StopsWhenClosed, close_row
from fasdesk.ui.theme import text_colour
from fasdesk.ui.workers import current_worker, start_worker

START_TEXT = "Start with the real faces →"
SAME_ANYWAY = "Record from the same source anyway →"
STEP_TITLES = ("Setup", "Real faces", "Attacks", "Report", "Profile")
# How long closing waits for the dialog's worker (a recording reads one more frame first);
# one still busy after that is left to the app's exit (fasdesk.ui.workers.stop_all).
SHUTDOWN_TIMEOUT_S = 5.0


class CalibrationDialog(StopsWhenClosed, QDialog):
    """The calibration flow for the window's current source and model."""
    profile_saved = Signal(object)  # the saved Profile

    def __init__(self, window, spec: SourceSpec | None = None, profile=None, parent=None):
        super().__init__(parent or window)
        self.window_ = window
        self.setWindowTitle("Calibrate this camera")
        self.resize(1040, 700)
        state = window.state
        self.model = state.model or None
        self.model_name = state.model_name()
        self.model_path = state.model_path()
        self.confirm_frames = state.confirm_frames
        self.pipeline_factory = lambda: state.pipeline_factory(live=True)
        self.live = window.live_tab
        self.cameras = [(c.index, c.name) for c in self.live.cameras]
        self.camera_names = dict(self.cameras)
        self.flow: CalibrationFlow | None = None
        self.stages: list[tuple[str, SourceSpec]] = []
        self.stage_index = 0
        self.worker = None  # the step running now, if any
        self.mailbox = Mailbox()  # the newest frame and status of a recording
        self.live_spec = None  # the live view's source, given back at the end
        self.saved_profile = None
        self.tuning = False
        # The flow's reports as shown (the flow fills its own in a worker, then they show).
        self.before: dict | None = None
        self.after: dict | None = None
        self.tuned_model: dict | None = None
        self._confirmed_same = None  # the stages whose same-source attack was confirmed
        self._closing = False  # asked and answered: closing goes on
        self.close_box = None
        self._build(spec or self.live.spec or self._first_camera(), state)
        if profile is not None:
            self.setup.preset(profile)
            self.report.max_apcer.setValue(100 * profile.max_apcer)
            self.report.profile_name.setText(profile.name)
        self._show_step(0)

    def _first_camera(self) -> SourceSpec | None:
        return SourceSpec("camera", str(self.cameras[0][0])) if self.cameras else None

    def _build(self, spec, state) -> None:
        found = self.model_path.name if self.model_path else "not found"
        self.setup = SetupPage(self.cameras, spec, f"{self.model_name}  ({found})")
        self.recorder = RecordPage(state)
        self.report = ReportPage()
        self.setup.start_button.clicked.connect(self.start)
        self.recorder.record_button.clicked.connect(self.record)
        self.recorder.stop_button.clicked.connect(self.stop_recording)
        self.recorder.next_button.clicked.connect(self.next_stage)
        self.report.report_target.valueChanged.connect(self.update_report)
        self.report.max_apcer.valueChanged.connect(self.update_report)
        self.report.tune_button.clicked.connect(self.fine_tune)
        self.report.tune_cancel.clicked.connect(self.cancel_fine_tune)
        self.report.accept_loss.toggled.connect(self.accept_robustness_loss)
        self.report.save_button.clicked.connect(self.save)
        self.steps_label = QLabel()
        self.steps_label.setTextFormat(Qt.RichText)
        self.stack = QStackedWidget()
        for page in (self.setup, self.recorder, self.report):
            self.stack.addWidget(page)
        self.close_button, bottom = close_row(self)
        layout = QVBoxLayout(self)
        layout.addWidget(self.steps_label)
        layout.addWidget(self.stack, 1)
        layout.addLayout(bottom)

    def _show_step(self, step: int) -> None:
        """Step 0 setup, 1 real, 2 attacks, 3 report, 4 profile saved."""
        parts = []
        for i, title in enumerate(STEP_TITLES):
            text = f"{i + 1}&nbsp;{title}"
            parts.append(f"<b><u>{text}</u></b>" if i == step else
                         text if i > step else
                         f"<span style='color:{text_colour('secondary')}'>{text}</span>")
        self.steps_label.setText("&nbsp;&nbsp;›&nbsp;&nbsp;".join(parts))
        self.stack.setCurrentIndex(0 if step == 0 else 1 if step in (1, 2) else 2)

    def _run(self, function, done, progress=None, failed=None) -> None:
        """Run `function` in a worker; `done(result)` or `failed(message)` on the UI thread."""
        worker = start_worker(function)
        self.worker = worker

        def ended(result=None, message=None):
            # Closed (and maybe deleted) meanwhile, or a step given up on: nothing to show.
            if not shiboken6.isValid(self) or self.worker is not worker:
                return
            self.worker = None
            if message is None:
                done(result)
            elif failed is not None:
                failed(message)

        worker.returned.connect(lambda result: ended(result))
        worker.errored.connect(lambda exc: ended(message=one_line(exc)))
        worker.cancelled.connect(lambda: ended(message=CANCELLED))
        if progress is not None:
            worker.progress.connect(lambda value: progress(value) if shiboken6.isValid(self) else None)

    # -- setup -------------------------------------------------------------------------------
    def start(self) -> None:
        """Setup done: a new flow (session), then the real stage."""
        self.setup.setup_message.clear_message()
        problem = self.setup.problem()
        if problem is None and self.model_path is None:
            problem = "No liveness model: download or open one first (Model menu)."
        if problem:
            self.setup.setup_message.show_message("error", problem)
            return
        stages = self.setup.chosen_stages()
        same = self.setup.same_source_problem()
        if same and self._confirmed_same != stages:
            # An attack re-reading the real faces' recording: only on a second, explicit press.
            self._confirmed_same = stages
            self.setup.setup_message.show_message(
                "warning", same[0].upper() + same[1:] + ".",
                ["Its report would count real faces as attacks let through, and fine-tuning "
                 "would learn to reject them. Press the button again to record it anyway."])
            self.setup.start_button.setText(SAME_ANYWAY)
            return
        self.setup.start_button.setText(START_TEXT)
        self.stages = stages
        real = self.stages[0][1]
        label = self.camera_names.get(int(real.target)) if real.kind == "camera" else None
        name = default_profile_name(real, label)
        try:
            self.flow = CalibrationFlow(name, self.model or self.model_name,
                                        self.model_path,
                                        self.setup.flow_settings(self.report.max_apcer.value() / 100),
                                        self.confirm_frames)
        except OSError as exc:
            self.setup.setup_message.show_message("error", f"Cannot start: {one_line(exc)}")
            return
        # The camera cannot feed the live view and the calibration at once.
        self.live_spec = self.live.spec if self.live.running else None
        self.live.stop()
        self.stage_index = 0
        self.report.report_target.blockSignals(True)
        self.report.report_target.setValue(self.setup.target.value())
        self.report.report_target.blockSignals(False)
        if not self.report.profile_name.text():
            self.report.profile_name.setText(name)
        self._enter_stage()

    # -- recording ---------------------------------------------------------------------------
    def _enter_stage(self) -> None:
        name, spec = self.stages[self.stage_index]
        self._show_step(1 if name == C.REAL else 2)
        self.recorder.enter(name, spec, last=self.stage_index + 1 == len(self.stages))

    def record(self) -> None:
        name, spec = self.stages[self.stage_index]
        self.recorder.recording(spec)
        flow, mailbox, cameras = self.flow, self.mailbox, self.camera_names
        factory = self.pipeline_factory() if flow.pipeline is None else None

        def work():
            worker = current_worker()

            def publish(frame, status):
                if mailbox.put((frame, status)):
                    worker.report(None)
            return flow.record(name, spec.target, factory, worker.is_cancelled, publish, cameras)
        self._run(work, self._on_recorded, lambda _: self.recorder.show_frame(mailbox.take()),
                  lambda message: self._on_recorded(None, "stopped before the first frame"
                                                    if message == CANCELLED else message))

    def stop_recording(self) -> None:
        if self.worker is not None:
            self.worker.cancel()

    def _on_recorded(self, recording, error: str | None = None) -> None:
        self.recorder.show_frame(self.mailbox.take())
        self.recorder.recorded(recording, error)

    def next_stage(self) -> None:
        if self.stage_index + 1 < len(self.stages):
            self.stage_index += 1
            self._enter_stage()
        else:
            self.score()

    # -- report ------------------------------------------------------------------------------
    def score(self) -> None:
        """Score the saved samples with the current model (off the UI thread)."""
        self._show_step(3)
        self.report.scoring()
        self._run(self.flow.score, lambda _: self.show_report(),
                  failed=lambda message: self.report.show_error(
                      f"The samples could not be scored: {message}"))

    def update_report(self) -> None:
        """A new target: the reports again from the stored scores."""
        if self.flow is None or not self.flow.scores:
            return
        try:
            self.flow.evaluate(self.report.report_target.value() / 100,
                               self.report.max_apcer.value() / 100)
        except CalibrationError as exc:
            self.before = self.after = None
            self.report.show_error(str(exc))
            return
        self.show_report()

    def show_report(self) -> None:
        flow = self.flow
        self.before, self.after, self.tuned_model = flow.before, flow.after, flow.tuned_model
        self.report.show_flow(flow)
        self.report.save_button.setEnabled(self.saved_profile is None)
        self.report.tune_button.setEnabled(self.worker is None)

    def accept_robustness_loss(self, accepted: bool) -> None:
        """The tick under a fine-tuned model that keeps fewer changed real faces real: the
        flow uses that model only with it (never-worse rule, issue 24)."""
        if self.flow is None:
            return
        self.flow.accept_robustness_loss = bool(accepted)
        if self.flow.before is not None:
            self.show_report()

    # -- fine-tuning -------------------------------------------------------------------------
    def fine_tune(self) -> None:
        flow, name = self.flow, self.report.profile_name.text() or "camera"
        settings = self.report.fine_tune_settings()

        def work():
            worker = current_worker()
            return flow.fine_tune(name, **settings,
                                  on_step=lambda *step: worker.report(("step", step)),
                                  on_event=lambda event: worker.report(("event", event)))
        self.tuning = True
        self.report.tuning(True)
        self._run(work, self._on_tuned, self._on_tune_progress, self._on_tune_failed)

    def cancel_fine_tune(self) -> None:
        if self.flow is not None:
            self.flow.cancel()

    def _on_tune_progress(self, value) -> None:
        kind, data = value
        if kind == "step":
            self.report.tune_step(*data)
        else:
            self.report.tune_event(data)

    def _on_tune_failed(self, message: str) -> None:
        self.tuning = False
        self.report.tuning(False)
        self.report.save_button.setEnabled(self.before is not None and self.saved_profile is None)
        cancelled = message == CANCELLED
        self.report.tune_ended("Fine-tuning was cancelled." if cancelled else
                               f"Fine-tuning failed: {message}")
        if not cancelled:
            self.report.verdict.show_message("error", f"Fine-tuning failed: {message}")

    def _on_tuned(self, _after) -> None:
        self.tuning = False
        self.report.tuning(False)
        self.show_report()
        self.report.tune_ended(f"Done: model '{self.tuned_model['id']}' is in the model list.")
        self.report.tune_progress.setValue(1)

    # -- saving ------------------------------------------------------------------------------
    def save(self):
        """Save the profile and apply it to the live view; returns the Profile or None."""
        name = self.report.profile_name.text().strip()
        if not name:
            self.report.save_message.show_message("error", "Give the profile a name.")
            return None
        if self.before is None:
            return None
        real = self.stages[0][1]
        camera_name = self.camera_names.get(int(real.target)) if real.kind == "camera" else None
        try:
            result, profile, path = self.flow.save(source_of(real, camera_name), name)
        except (CalibrationError, ProfileError, OSError, ValueError) as exc:
            self.report.save_message.show_message("error", f"Not saved: {one_line(exc)}")
            return None
        self.saved_profile = profile
        self.report.save_button.setEnabled(False)
        self._show_step(4)
        missed = profile_shortfall(result)
        self.report.save_message.show_message(
            "warning" if missed else "ok", f"Profile '{profile.name}' saved.",
            ([missed] if missed else [])
            + [f"Model {profile.model}, threshold {format_threshold(profile.threshold)}, "
               f"confirmed after {profile.confirm_frames} frames.",
               f"It is applied whenever {profile.source_label} is selected in the Live tab.",
               f"File: {path}"])
        self.profile_saved.emit(profile)
        return profile

    # -- closing -----------------------------------------------------------------------------
    def close_question(self) -> str | None:
        """What closing now would lose, as a question, or None (nothing to lose)."""
        if self.tuning:
            return ("The calibration is still fine-tuning a model. Stop it and close? The "
                    "recordings are kept; you can fine-tune again from Tools > Camera "
                    "profiles > Re-run calibration.")
        if self.before is not None and self.saved_profile is None:
            return ("The report is not saved as a camera profile. Close without saving? The "
                    "recordings are kept (Tools > Manage storage).")
        return None

    def ask_to_close(self, title: str = "Close the calibration?") -> bool:
        """True when there is nothing to lose or the person says to close anyway."""
        question = self.close_question()
        if question is None:
            return True
        box = QMessageBox(QMessageBox.Question, title, question,
                          QMessageBox.Yes | QMessageBox.No, self)
        box.setDefaultButton(QMessageBox.No)
        self.close_box = box  # for tests: the question on screen
        try:
            return box.exec() == QMessageBox.Yes
        finally:
            self.close_box = None

    def confirm_close(self) -> bool:
        """Ask before the app closes while fine-tuning or with an unsaved report."""
        return self.ask_to_close("Close fasdesk?")

    def closeEvent(self, event) -> None:
        # Close button, the title bar's close: ask first, then stop the work (closing
        # reaches reject(), which must not ask again).
        if not self._closing and not self.ask_to_close():
            event.ignore()
            return
        self._closing = True
        super().closeEvent(event)

    def reject(self) -> None:
        # Esc.
        if not self._closing and not self.ask_to_close():
            return
        self._closing = True
        super().reject()

    def shutdown(self, restart_live: bool = True, timeout_s: float | None = None) -> bool:
        """Stop a recording, scoring or fine-tuning step and wait for it at most
        `timeout_s` (SHUTDOWN_TIMEOUT_S); then the live view goes on with the source it
        had (its profile, if one was saved, applies). False when the step is still busy
        (a slow read): the app's exit then does not wait for it."""
        stopped = True
        worker, self.worker = self.worker, None
        if self.flow is not None:
            self.flow.cancel(wait=True)  # a fine-tuning child ends (killed if it must)
        if worker is not None:
            worker.cancel()
            stopped = worker.wait(SHUTDOWN_TIMEOUT_S if timeout_s is None else timeout_s)
        live, self.live_spec = self.live_spec, None
        if live is not None and restart_live:
            self.live.start(live)
        return stopped
