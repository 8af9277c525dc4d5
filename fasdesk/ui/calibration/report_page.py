"""Calibration steps 4 and 5: the report (current model and fine-tuned), fine-tuning, saving."""
from __future__ import annotations

import html

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (QAbstractItemView, QCheckBox, QDoubleSpinBox, QFrame, QGroupBox,
                               QHBoxLayout, QHeaderView, QLabel, QLineEdit, QProgressBar,
                               QPushButton, QScrollArea, QSpinBox, QTableWidget, QVBoxLayout,
                               QWidget)

from fasdesk.core.calibration import defaults
from fasdesk.core.calibration import robustness
from fasdesk.core.calibration import session as C
from fasdesk.core.decision.thresholds import format_threshold
from fasdesk.core.decision.uncertainty import DEFINITIONS
from fasdesk.ui.calibration.widgets import grown, operating_point, pct, set_primary, table_item
from fasdesk.ui.score_histogram import BeforeAfterHistograms
from fasdesk.ui.training.widgets import MessageBox
from fasdesk.ui.theme import mark

SPLIT_NOTE = ("The threshold is picked on the first three quarters of each recording (the "
              "fine-tuned model: on the third quarter, it trained on the first half); the "
              "error rates are measured on the last quarter, which nothing else used.")

# Why the same recordings give three different face counts.
COUNTS_NOTE = ("Why the face counts differ: the title counts every face saved; the "
               "histograms' legend counts the faces drawn (the fine-tuned model's leave out "
               "the first half it trained on); the table counts the faces the threshold was "
               "picked on and those held out to measure it. Faces in the short gaps between "
               "the parts of a recording are in none of them.")


def k_of_n(count: dict | None) -> str:
    """'1 of 23 (up to 22%)': an error count with its 95% upper bound."""
    if not count or not count.get("n"):
        return "n/a"
    return f"{count['k']} of {count['n']} (up to {100 * count['high']:.0f}%)"


def definition(name: str) -> str | None:
    """The one-sentence definition of the metric a table row starts with, if any."""
    return next((text for term, text in DEFINITIONS.items() if name.startswith(term)), None)


def _counts(report: dict) -> dict:
    return report["held_out"].get("counts") or {"real": None, "attacks": {}}


def _spin(low: float, high: float, decimals: int, suffix: str, value: float) -> QDoubleSpinBox:
    spin = QDoubleSpinBox()
    spin.setRange(low, high)
    spin.setDecimals(decimals)
    spin.setSuffix(suffix)
    spin.setValue(value)
    return spin


def _auto(spin):
    spin.setSpecialValueText("auto")
    return spin


def _robust_cell(report: dict) -> str:
    """'9/10 · 8/10 · 10/10': held-out real faces accepted darker / moving / tinted."""
    counts = report.get("robustness")
    if not counts:
        return "n/a"
    return " · ".join(f"{counts[c]['accepted']}/{counts[c]['n']}" for c in robustness.CONDITIONS)


class ReportPage(QWidget):
    def __init__(self, parent=None):
        super().__init__(parent)
        left_box, right_box = QWidget(), QWidget()
        left_box.setLayout(self._left())
        right_box.setLayout(self._right())
        left_box.setFixedWidth(430)  # a known width: the wrapped notes get their full height
        # The numbers and notes scroll on a small screen rather than overlap each other.
        left_scroll = QScrollArea()
        left_scroll.setWidget(left_box)
        left_scroll.setWidgetResizable(True)
        left_scroll.setFrameShape(QFrame.NoFrame)
        left_scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        left_scroll.setFixedWidth(450)
        layout = QHBoxLayout(self)
        layout.addWidget(left_scroll)
        layout.addWidget(right_box, 1)

    def _left(self) -> QVBoxLayout:
        left = QVBoxLayout()
        self.report_title = QLabel()
        self.report_title.setWordWrap(True)
        self.report_title.setTextFormat(Qt.RichText)
        left.addWidget(self.report_title)
        # The held-out result in words, k of n with 95% upper bounds (report["sentence"]).
        self.sentence = QLabel()
        self.sentence.setWordWrap(True)
        self.sentence.setTextFormat(Qt.RichText)
        left.addWidget(self.sentence)
        self.table = QTableWidget(0, 3)
        self.table.setHorizontalHeaderLabels(["", "Current model", "Fine-tuned"])
        self.table.verticalHeader().hide()
        self.table.horizontalHeader().setSectionResizeMode(0, QHeaderView.Stretch)
        self.table.setEditTriggers(QAbstractItemView.NoEditTriggers)
        self.table.setSelectionMode(QAbstractItemView.NoSelection)
        self.table.verticalHeader().setDefaultSectionSize(22)
        left.addWidget(self.table)
        self.report_target = _spin(0.5, 50, 1, " %", 100 * defaults.TARGET_BPCER)
        self.max_apcer = _spin(0, 100, 1, " %", 100 * defaults.MAX_APCER)
        self.max_apcer.setToolTip("Attacks let through above this share call for fine-tuning")
        targets = QHBoxLayout()
        for widget in (QLabel("BPCER at most"), self.report_target, QLabel("acceptable APCER"),
                       self.max_apcer):
            targets.addWidget(widget)
        targets.addStretch(1)
        left.addLayout(targets)
        self.verdict = grown(MessageBox())
        left.addWidget(self.verdict)
        # Shown only when the fine-tuned model is better on the held-out frames but keeps
        # fewer real faces real when darker / moving / tinted: using it needs this tick
        # (the dialog hands it to the flow: CalibrationFlow.accept_robustness_loss).
        self.accept_loss = QCheckBox("Use the fine-tuned model even so")
        self.accept_loss.hide()
        left.addWidget(self.accept_loss)
        self.notes = QLabel()
        self.notes.setWordWrap(True)
        mark(self.notes, "secondary")
        left.addWidget(self.notes)
        self.counts_note = QLabel(COUNTS_NOTE)
        self.counts_note.setWordWrap(True)
        mark(self.counts_note, "secondary")
        left.addWidget(self.counts_note)
        self.save_message = grown(MessageBox())
        left.addWidget(self.save_message)
        left.addStretch(1)
        return left

    def _right(self) -> QVBoxLayout:
        right = QVBoxLayout()
        self.histograms = BeforeAfterHistograms()
        right.addWidget(self.histograms, 1)
        right.addWidget(self._tune_box())
        save_box = QGroupBox("Save as a camera profile")
        save = QHBoxLayout(save_box)
        self.profile_name = QLineEdit()
        self.profile_name.setPlaceholderText("profile name")
        self.save_button = QPushButton("Save profile")
        self.save_button.setObjectName("primary")
        save.addWidget(self.profile_name, 1)
        save.addWidget(self.save_button)
        right.addWidget(save_box)
        return right

    def _tune_box(self) -> QGroupBox:
        box = QGroupBox("Fine-tune on these samples")
        tune = QVBoxLayout(box)
        self.epochs = _auto(QSpinBox())
        self.epochs.setRange(0, 200)
        self.batch = _auto(QSpinBox())
        self.batch.setRange(0, 1024)
        self.lr = _auto(_spin(0, 1, 5, "", 0))
        self.lr.setSingleStep(0.001)
        recipe = QHBoxLayout()
        for label, widget in (("epochs", self.epochs), ("batch", self.batch), ("lr", self.lr)):
            recipe.addWidget(QLabel(label))
            recipe.addWidget(widget)
        recipe.addStretch(1)
        tune.addLayout(recipe)
        self.tune_button = QPushButton("Fine-tune on these samples")
        self.tune_cancel = QPushButton("Cancel")
        self.tune_cancel.setEnabled(False)
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
        return box

    def fine_tune_settings(self) -> dict:
        """Epochs, batch size and learning rate; None where "auto" (the backend's preset)."""
        return {"epochs": self.epochs.value() or None, "batch_size": self.batch.value() or None,
                "lr": self.lr.value() or None}

    # -- showing the flow's reports ------------------------------------------------------
    def scoring(self) -> None:
        self.report_title.setText("<h2 style='margin:0'>Report</h2>Scoring the saved faces…")
        self.table.setRowCount(0)
        self.save_button.setEnabled(False)
        self.tune_button.setEnabled(False)

    def show_error(self, message: str) -> None:
        self.report_title.setText("<h2 style='margin:0'>Report</h2>")
        self.verdict.show_message("error", message)
        self.table.setRowCount(0)
        self.histograms.show_reports(None, None, {})
        self.sentence.clear()
        self.save_button.setEnabled(False)
        self.tune_button.setEnabled(False)

    def show_flow(self, flow) -> None:
        """The reports the flow holds: table, histograms, verdict, notes."""
        before, after, session = flow.before, flow.after, flow.session
        self.verdict.clear_message()
        self._fill_table(session, before, after)
        titles = {r.stage: r.stage.replace("_", " ") for r in session.recordings}
        self.histograms.show_reports(before, after, titles)
        lines = [("Current model" if after is not None else "", before["sentence"])]
        if after is not None:
            lines.append(("Fine-tuned", after["sentence"]))
        self.sentence.setText("<br>".join((f"<b>{t}:</b> " if t else "") + html.escape(text)
                                          for t, text in lines))
        n_real = sum(len(r.samples) for r in session.recordings if r.kind == C.REAL)
        n_attack = sum(len(r.samples) for r in session.recordings if r.kind != C.REAL)
        self.report_title.setText(f"<h2 style='margin:0'>Report</h2>{n_real} real and "
                                  f"{n_attack} attack faces. {SPLIT_NOTE}")
        self.accept_loss.blockSignals(True)
        self.accept_loss.setChecked(flow.accept_robustness_loss)
        self.accept_loss.blockSignals(False)
        self.accept_loss.setVisible(flow.needs_robustness_confirmation)
        self._show_verdict(flow)
        notes = before["warnings"]
        if after is not None:
            notes = ([f"current model: {n}" for n in notes]
                     + [f"fine-tuned: {n}" for n in after["warnings"]])
        self.notes.setText("<br>".join("• " + html.escape(n) for n in notes))

    def _fill_table(self, session, before: dict, after: dict | None) -> None:
        rows = [("threshold", lambda r: format_threshold(r["threshold"])),
                ("picked on (real / attack faces)",
                 lambda r: f"{r['picked_on']['n_real']} / {r['picked_on']['n_attack']}"),
                ("held out (real / attack faces)",
                 lambda r: f"{r['held_out']['n_real']} / {r['held_out']['n_attack']}"),
                ("BPCER (real rejected)", lambda r: pct(r["held_out"]["bpcer"])),
                ("  real rejected, k of n", lambda r: k_of_n(_counts(r)["real"]))]
        for stage in session.attacks:
            rows.append((f"APCER: {C.attack_title(stage)}",
                         lambda r, s=stage: pct(r["held_out"]["apcer_per_type"].get(s))))
            rows.append(("  accepted, k of n",
                         lambda r, s=stage: k_of_n(_counts(r)["attacks"].get(s))))
        rows += [("ACER", lambda r: pct(r["held_out"]["acer"])),
                 ("EER", lambda r: pct(r["held_out"]["eer"])),
                 ("real still accepted: darker / moving / tinted", _robust_cell)]
        self.table.setRowCount(len(rows))
        for i, (name, value) in enumerate(rows):
            self.table.setItem(i, 0, table_item(name))
            self.table.item(i, 0).setToolTip(definition(name) or name)
            for j, report in enumerate((before, after)):
                self.table.setItem(i, j + 1, table_item(value(report) if report else "", right=True))
        self.table.setColumnHidden(2, after is None)
        self.table.resizeColumnsToContents()
        self.table.horizontalHeader().setSectionResizeMode(0, QHeaderView.Stretch)
        self.table.setFixedHeight(self.table.horizontalHeader().height() + 4
                                  + sum(self.table.rowHeight(i) for i in range(len(rows))))

    def _primary(self, button: QPushButton) -> None:
        """Make `button` (Fine-tune or Save profile) the one that stands out and Enter presses."""
        set_primary(button, *(b for b in (self.tune_button, self.save_button) if b is not button))

    def _show_verdict(self, flow) -> None:
        before, after, max_apcer = flow.before, flow.after, flow.settings.max_apcer
        # While attacks still get through at the target, fine-tuning is the thing to do next.
        chosen = after if after is not None and flow.kept else before
        self._primary(self.tune_button if chosen["needs_fine_tune"] else self.save_button)
        worst = before["held_out"]["apcer_max"] or 0.0
        if flow.needs_robustness_confirmation:
            self.verdict.show_message(
                "warning", "The fine-tuned model is better on the held-out frames but keeps "
                "fewer real faces real in other conditions:",
                [f"current model: {robustness.line(before['robustness'])}",
                 f"fine-tuned: {robustness.line(after['robustness'])}",
                 "You chose to use the fine-tuned model anyway." if flow.accept_robustness_loss
                 else "The profile keeps the current model unless you tick the box below."])
            return
        if after is not None:
            a_worst = after["held_out"]["apcer_max"] or 0.0
            if flow.kept:
                self.verdict.show_message(
                    "ok" if after["meets_target"] and not after["needs_fine_tune"] else "warning",
                    f"The fine-tuned model lets {100 * a_worst:.1f}% of attacks through "
                    f"{operating_point(after)} (the current model: {100 * worst:.1f}%). The "
                    f"profile will use it, with threshold {format_threshold(after['threshold'])}.")
            else:
                self.verdict.show_message(
                    "warning", "The fine-tuned model does not do better on the held-out frames; "
                    "the profile keeps the current model.")
        elif before["needs_fine_tune"]:
            self.verdict.show_message(
                "warning", f"The current model lets {100 * worst:.1f}% of attacks through "
                f"{operating_point(before)}, above the acceptable {100 * max_apcer:g}%.",
                ["Fine-tune it on these samples (below), or save the profile as it is."])
        else:
            self.verdict.show_message(
                "ok" if before["meets_target"] else "warning",
                f"The current model lets {100 * worst:.1f}% of attacks through "
                f"{operating_point(before)} (acceptable: {100 * max_apcer:g}%). Threshold "
                f"{format_threshold(before['threshold'])}.")

    # -- fine-tuning's progress ------------------------------------------------------------
    def tuning(self, running: bool) -> None:
        self.tune_button.setEnabled(not running)
        self.tune_cancel.setEnabled(running)
        if running:
            self.save_button.setEnabled(False)

    def tune_step(self, step: int, steps: int, title: str) -> None:
        self.tune_status.setText(f"{step}/{steps}: {title}…")
        self.tune_progress.setRange(0, 0)

    def tune_event(self, event: dict) -> None:
        if event.get("event") == "progress" and event.get("total"):
            self.tune_progress.setRange(0, int(event["total"]))
            self.tune_progress.setValue(int(event.get("done", 0)))

    def tune_ended(self, text: str) -> None:
        self.tune_progress.setRange(0, 1)
        self.tune_progress.setValue(0)
        self.tune_status.setText(text)
