"""Calibration steps 2 and 3: one recording page, shown for the real faces and each attack."""
from __future__ import annotations

import html

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QPushButton, QVBoxLayout, QWidget

from fasdesk.core.calibration import session as C
from fasdesk.core.calibration.robustness import recording_prompt
from fasdesk.core.live.sources import SourceSpec
from fasdesk.ui.calibration.widgets import grown, set_primary
from fasdesk.ui.frame_view import FrameView
from fasdesk.ui.training.widgets import MessageBox
from fasdesk.ui.theme import mark

REAL_HELP = ("Turn your head slightly, come a little closer and go back. Other people who "
             "will use this camera can take turns.")
ATTACK_HELP = ("Hold the attack in front of the camera (a phone or tablet showing a face, a "
               "printed photo...), moving it a little, at the distances an attacker would.")
# Shown while an attack is recorded and the model takes it for a confirmed real face.
PASSING_NOTE = ("The model calls this attack REAL CONFIRMED: that is exactly what the "
                "calibration measures. Keep recording; the report counts these faces, and "
                "the threshold or a fine-tune is what stops them.")


class RecordPage(QWidget):
    def __init__(self, state, parent=None):
        super().__init__(parent)
        layout = QVBoxLayout(self)
        self.record_title = QLabel()
        self.record_title.setTextFormat(Qt.RichText)
        self.record_title.setWordWrap(True)
        layout.addWidget(self.record_title)
        self.prompt = QLabel()  # what to do now (real stage: vary light, distance, pose)
        self.prompt.setObjectName("recordingPrompt")
        self.prompt.setWordWrap(True)
        self.prompt.setStyleSheet("font-size: 15px; font-weight: bold;")
        layout.addWidget(self.prompt)
        self.state = state
        self.stage = C.REAL
        self.view = FrameView(state)  # the app's threshold, as the live view shows it
        layout.addWidget(self.view, 1)
        self.passing_note = QLabel(PASSING_NOTE)
        self.passing_note.setWordWrap(True)
        mark(self.passing_note, "warning")
        self.passing_note.hide()
        layout.addWidget(self.passing_note)
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
        self.record_button.setObjectName("primary")  # (enter() says it again per stage)
        self.stop_button = QPushButton("Stop")
        self.next_button = QPushButton("Next →")
        row = QHBoxLayout()
        row.addWidget(self.record_button)
        row.addWidget(self.stop_button)
        row.addStretch(1)
        row.addWidget(self.next_button)
        layout.addLayout(row)

    def enter(self, name: str, spec: SourceSpec, last: bool) -> None:
        """A fresh page for the stage `name` recorded from `spec`."""
        self.stage = name
        self.passing_note.hide()
        what = ("a video file" if spec.kind == "video" else
                "an image folder" if spec.kind != "camera" else None)
        heading, help_text = (("Real faces: look at the camera and move a little", REAL_HELP)
                              if name == C.REAL else (f"Attack: {C.attack_title(name)}", ATTACK_HELP))
        source = (f"Recording from {spec.label}" if what is None else
                  f"Recording from {what}: {html.escape(spec.label)} (read to its end)")
        self.record_title.setText(f"<h2 style='margin:0'>{html.escape(heading)}</h2>"
                                  f"{html.escape(help_text)}<br><i>{source}</i>")
        self.view.show_frame(None)
        self.view.set_placeholder("Press Record when ready")
        self.prompt.setText(recording_prompt(name, 0.0, 1.0))  # the first one
        self.countdown.setText("")
        self.counts.setText("")
        self.record_progress.setValue(0)
        self.record_message.clear_message()
        self.record_button.setText("Record")
        self.record_button.setEnabled(True)
        set_primary(self.record_button, self.next_button)
        self.stop_button.setEnabled(False)
        self.next_button.setEnabled(False)
        self.next_button.setText("See the report →" if last else "Next attack →")

    def recording(self, spec: SourceSpec) -> None:
        self.record_message.clear_message()
        self.record_button.setEnabled(False)
        self.next_button.setEnabled(False)
        self.stop_button.setEnabled(True)
        self.view.set_placeholder(f"Opening {spec.label}…")

    def show_frame(self, latest) -> None:
        """The newest (frame, status) of a recording, if any."""
        if latest is None:
            return
        frame, status = latest
        self.view.show_frame(frame)
        self.show_status(status)
        if self.stage != C.REAL and not self.passing_note.isVisible():
            state = self.state
            self.passing_note.setVisible(any(
                f.confirmed(state.threshold, state.confirm_frames) for f in frame.faces))

    def show_status(self, status) -> None:
        self.prompt.setText(recording_prompt(status.stage, status.t, status.limit,
                                             status.position, status.total))
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

    def recorded(self, recording, error: str | None) -> None:
        """A recording ended: what was kept, and whether the next stage may come."""
        self.stop_button.setEnabled(False)
        self.record_button.setEnabled(True)
        self.record_button.setText("Record again")
        set_primary(self.record_button, self.next_button)  # until this recording is good
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
        set_primary(self.next_button, self.record_button)  # a good recording: go on
