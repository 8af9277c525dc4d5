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
from fasdesk.ui.calibration.widgets import (HistogramPlot, grown, operating_point, pct,
                                            table_item)
from fasdesk.ui.training.widgets import MessageBox

SPLIT_NOTE = ("The threshold is picked on the first three quarters of each recording (the "
              "fine-tuned model: on the third quarter, it trained on the first half); the "
              "error rates are measured on the last quarter, which nothing else used.")


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
        left_box.setFixedWidth(430)
        # The report column scrolls when its notes outgrow the dialog (a small screen).
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
        self.notes.setStyleSheet("color: palette(mid);")
        left.addWidget(self.notes)
        self.save_message = grown(MessageBox())
        left.addWidget(self.save_message)
        left.addStretch(1)
        return left

    def _right(self) -> QVBoxLayout:
        right = QVBoxLayout()
        self.hist_before = HistogramPlot("p_real, current model")
        self.hist_after = HistogramPlot("p_real, fine-tuned model")
        self.hist_after.hide()
        plots = QHBoxLayout()
        plots.addWidget(self.hist_before, 1)
        plots.addWidget(self.hist_after, 1)
        right.addLayout(plots, 1)
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
        self.hist_before.show_report(None, {})
        self.save_button.setEnabled(False)
        self.tune_button.setEnabled(False)

    def show_flow(self, flow) -> None:
        """The reports the flow holds: table, histograms, verdict, notes."""
        before, after, session = flow.before, flow.after, flow.session
        self.verdict.clear_message()
        self._fill_table(session, before, after)
        titles = {r.stage: r.stage.replace("_", " ") for r in session.recordings}
        self.hist_before.show_report(before, titles)
        self.hist_after.setVisible(after is not None)
        self.hist_after.show_report(after, titles)
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
                ("BPCER (real rejected)", lambda r: pct(r["held_out"]["bpcer"]))]
        for stage in session.attacks:
            rows.append((f"APCER: {C.attack_title(stage)}",
                         lambda r, s=stage: pct(r["held_out"]["apcer_per_type"].get(s))))
        rows += [("ACER", lambda r: pct(r["held_out"]["acer"])),
                 ("EER", lambda r: pct(r["held_out"]["eer"])),
                 ("real still accepted: darker / moving / tinted", _robust_cell)]
        self.table.setRowCount(len(rows))
        for i, (name, value) in enumerate(rows):
            self.table.setItem(i, 0, table_item(name))
            self.table.item(i, 0).setToolTip(name)
            for j, report in enumerate((before, after)):
                self.table.setItem(i, j + 1, table_item(value(report) if report else "", right=True))
        self.table.setColumnHidden(2, after is None)
        self.table.resizeColumnsToContents()
        self.table.horizontalHeader().setSectionResizeMode(0, QHeaderView.Stretch)
        self.table.setFixedHeight(self.table.horizontalHeader().height() + 4
                                  + sum(self.table.rowHeight(i) for i in range(len(rows))))

    def _show_verdict(self, flow) -> None:
        before, after, max_apcer = flow.before, flow.after, flow.settings.max_apcer
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
