"""Training step 4, Evaluate: `training eval`, the report, and the threshold for a target."""
from __future__ import annotations

import hashlib
import html
from pathlib import Path

import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (QAbstractItemView, QComboBox, QDoubleSpinBox, QFormLayout,
                               QGridLayout, QGroupBox, QHBoxLayout, QHeaderView, QLabel,
                               QPushButton, QSplitter, QTableWidget, QWidget)

from fasdesk.core.models import eval_report
from fasdesk.core.io.paths import data_dir
from fasdesk.core.decision.thresholds import format_threshold
from fasdesk.ui.training.widgets import PathField, StepPage
from fasdesk.ui.training.common import TRAIN_COLOURS, new_plot, stacked, table_item
from fasdesk.ui.theme import text_colour
from training import layout


# -- 4. Evaluate -----------------------------------------------------------------------------

class EvaluateStep(StepPage):
    KEY = "evaluate"
    TITLE = "Evaluate"
    HELP = ("Measures a model (.pth or .onnx) on prepared crops: by default the validation "
            "images the training run held out.")

    def __init__(self, tab):
        super().__init__(tab)
        self.report: eval_report.EvalReport | None = None
        self.suggested: float | None = None
        form = QFormLayout()
        self.data = PathField("dir", placeholder="prepared folder")
        self.model = PathField("file", "Models (*.pth *.onnx)", placeholder="best.pth or .onnx")
        self.split = QComboBox()
        for label, value in (("validation (held out by training)", "val"),
                             ("all crops", "all"), ("test subset (CelebA-Spoof)", "test")):
            self.split.addItem(label, value)
        form.addRow("Prepared data:", self.data)
        form.addRow("Model:", self.model)
        form.addRow("Images:", self.split)
        self.layout_.addLayout(form)
        self.add_run_controls("Evaluate", self.start)
        self.layout_.addWidget(self.message)

        results = QSplitter(Qt.Horizontal)
        results.addWidget(self._left())
        results.addWidget(self._right())
        results.setStretchFactor(1, 1)
        results.setSizes([560, 840])  # the threshold's text in few lines
        results.setChildrenCollapsible(False)
        self.layout_.addWidget(results, 1)

    def _left(self) -> QWidget:
        """The metrics table and the threshold for a target rate."""
        # The overall metrics in the first two columns, the breakdowns (per attack type,
        # per condition) beside them: every row on a 1366x768 screen, the threshold's
        # warning under them. No "Metric | Value" header: the names say what each row is.
        self.metrics = QTableWidget(0, 4)
        self.metrics.horizontalHeader().hide()
        self.metrics.verticalHeader().hide()
        self.metrics.verticalHeader().setDefaultSectionSize(19)
        for column in (0, 2):
            self.metrics.horizontalHeader().setSectionResizeMode(column, QHeaderView.Stretch)
        self.metrics.setEditTriggers(QAbstractItemView.NoEditTriggers)
        threshold_box = QGroupBox("Threshold for the live view")
        threshold_row = QGridLayout(threshold_box)
        threshold_row.setContentsMargins(8, 2, 8, 2)  # (the box's title and padding frame it)
        self.target_kind = QComboBox()
        self.target_kind.addItem("BPCER at most (real rejected)", "bpcer")
        self.target_kind.addItem("APCER at most (attacks passed)", "apcer")
        self.target_rate = QDoubleSpinBox()
        self.target_rate.setRange(0.1, 50.0)
        self.target_rate.setSingleStep(0.5)
        self.target_rate.setValue(1.0)
        self.target_rate.setSuffix(" %")
        self.suggestion = QLabel("")
        self.suggestion.setWordWrap(True)
        self.apply_button = QPushButton("Apply to live")
        self.apply_button.setEnabled(False)
        self.apply_button.clicked.connect(self.apply_threshold)
        self.target_kind.currentIndexChanged.connect(self.update_suggestion)
        self.target_rate.valueChanged.connect(self.update_suggestion)
        # The target's name on a line of its own: never cut to "BPCER at most (real reje".
        threshold_row.addWidget(self.target_kind, 0, 0, 1, 2)
        threshold_row.addWidget(self.target_rate, 1, 0)
        threshold_row.addWidget(self.apply_button, 1, 1)
        threshold_row.addWidget(self.suggestion, 2, 0, 1, 2)
        threshold_row.setColumnStretch(0, 1)
        left = stacked(self.metrics, threshold_box, stretch_first=True)
        left.setMinimumWidth(300)
        left.setMaximumWidth(560)
        return left

    def _right(self) -> QWidget:
        """ROC and precision-recall curves, the confusion matrix."""
        self.confusion = QTableWidget(0, 0)
        self.confusion.setEditTriggers(QAbstractItemView.NoEditTriggers)
        self.confusion.setFixedHeight(96)
        self.roc_plot = new_plot("ROC")
        self.pr_plot = new_plot("Precision-recall (attacks)")
        for plot, (x, y) in ((self.roc_plot, ("real rejected (BPCER)", "attacks caught (1 - APCER)")),
                             (self.pr_plot, ("recall", "precision"))):
            plot.setXRange(0, 1, padding=0.02)
            plot.setYRange(0, 1, padding=0.04)
            plot.setLabel("bottom", x)
            plot.setLabel("left", y)
            plot.setMinimumWidth(140)
        self.roc_plot.plot([0, 1], [0, 1], pen=pg.mkPen("#8a8f98", style=Qt.DashLine))
        self.roc_curve = self.roc_plot.plot(pen=pg.mkPen(TRAIN_COLOURS["train"], width=2))
        self.roc_marker = self.roc_plot.plot(pen=None, symbol="o", symbolSize=11,
                                             symbolBrush="#f0b429")
        self.pr_curve = self.pr_plot.plot(pen=pg.mkPen("#3fb27f", width=2))
        plots = QWidget()
        plots_row = QHBoxLayout(plots)
        plots_row.setContentsMargins(0, 0, 0, 0)
        plots_row.addWidget(self.roc_plot)
        plots_row.addWidget(self.pr_plot)
        confusion_title = QLabel("Confusion matrix (rows: truth, columns: predicted at the "
                                 "report's threshold)")
        confusion_title.setWordWrap(True)
        return stacked(plots, confusion_title, self.confusion, stretch_first=True)

    def memory_values(self) -> dict:
        return {"data": self.data.text(), "model": self.model.text(),
                "split": self.split.currentData(), "target_kind": self.target_kind.currentData(),
                "target_rate": self.target_rate.value()}

    def apply_memory(self, values: dict) -> None:
        self.data.set_text(values.get("data", ""))
        self.model.set_text(values.get("model", ""))
        for combo, key in ((self.split, "split"), (self.target_kind, "target_kind")):
            index = combo.findData(values.get(key))
            if index >= 0:
                combo.setCurrentIndex(index)
        self.target_rate.setValue(float(values.get("target_rate", 1.0)))
        report = self.report_path()
        if report is not None and report.is_file():
            self.show_report(report)

    def set_data(self, prepared: Path) -> None:
        self.data.set_text(prepared)
        self.remember()

    def set_model(self, model: Path, prepared: Path | None) -> None:
        self.model.set_text(model)
        if prepared is not None:
            self.data.set_text(prepared)
        self.remember()

    def report_path(self) -> Path | None:
        model = self.model.path()
        if model is None:
            return None
        # Under the user data dir, never beside the model (it may be read-only or shared);
        # named by the model's full path so each model keeps its own last report.
        tag = hashlib.sha1(str(model.expanduser().resolve()).encode("utf-8")).hexdigest()[:10]
        return (data_dir() / "training" / "reports"
                / f"{model.stem}-{tag}.eval-{self.split.currentData()}.json")

    def start(self) -> None:
        self.message.clear_message()
        data, model = self.data.path(), self.model.path()
        if data is None or not layout.is_prepared(data):
            self.message.show_message("error", f"Choose a prepared folder (with {layout.LABELS}).")
            return
        if model is None or not model.is_file():
            self.message.show_message("error", "Choose the model to evaluate (.pth or .onnx).")
            return
        self.remember()
        args = layout.eval_args(data, model, self.report_path(), self.split.currentData())
        if self.tab.start_backend(self, args):
            self.progress.busy("evaluating…")

    def on_finished(self, ok: bool, message: str) -> None:
        self.finish_progress(ok, message)
        if ok:
            self.show_report(self.report_path())

    def show_report(self, path: Path) -> None:
        try:
            self.report = eval_report.load(path)
        except eval_report.ReportError as exc:
            self.message.show_message("error", str(exc))
            return
        report = self.report
        groups = report.metric_groups()
        self.metrics.clearContents()
        self.metrics.setRowCount(max(len(rows) for rows in groups))
        for column, rows in zip((0, 2), groups):
            for row, (name, value) in enumerate(rows):
                self.metrics.setItem(row, column, table_item(name))
                self.metrics.setItem(row, column + 1, table_item(value, align_right=True))
        for column in (2, 3):
            self.metrics.setColumnHidden(column, not groups[1])
        # Every metric on screen (BPCER, ACER, EER among them), never behind a scroll bar:
        # when the window is short the page scrolls instead.
        for column in (1, 3):
            self.metrics.resizeColumnToContents(column)
        self.metrics.setMinimumHeight(4 + sum(
            self.metrics.rowHeight(r) for r in range(self.metrics.rowCount())))
        self._show_confusion(report)
        self.roc_curve.setData(report.roc_bpcer, report.roc_detect)
        self.pr_curve.setData(report.pr_recall, report.pr_precision)
        self.update_suggestion()

    def _show_confusion(self, report) -> None:
        names, matrix = report.class_names, report.confusion
        self.confusion.setRowCount(len(names))
        self.confusion.setColumnCount(len(names))
        self.confusion.setHorizontalHeaderLabels(names)
        self.confusion.setVerticalHeaderLabels(names)
        for i, row in enumerate(matrix):
            total = max(1, sum(row))
            for j, count in enumerate(row):
                item = table_item(f"{count}  ({100.0 * count / total:.1f}%)", align_right=True)
                share = count / total
                good = i == j
                colour = QColor(46, 125, 50) if good else QColor(198, 40, 40)
                colour.setAlphaF(0.12 + 0.6 * share)
                item.setBackground(colour)
                self.confusion.setItem(i, j, item)
        self.confusion.horizontalHeader().setSectionResizeMode(QHeaderView.Stretch)
        self.confusion.resizeRowsToContents()
        height = self.confusion.horizontalHeader().height() + 4 + sum(
            self.confusion.rowHeight(i) for i in range(len(names)))
        self.confusion.setFixedHeight(height)

    def update_suggestion(self) -> None:
        """The threshold for the chosen target, from the report's raw scores (the same
        function `training eval` and the calibration use), with what it gives and how far
        the evaluated images support it."""
        if self.report is None:
            return
        kind = self.target_kind.currentData()
        target = self.target_rate.value() / 100.0
        choice = self.report.threshold_for(kind, target)
        self.suggested = None
        self.apply_button.setEnabled(False)
        self.roc_marker.setData([], [])
        if choice is None:
            self.suggestion.setText("This report has no per-image scores (it was written by an "
                                    "older version): press Evaluate again.")
            return
        if choice.threshold is None:
            self.suggestion.setText(choice.warning or "no threshold for this target")
            return
        self.suggested = choice.threshold
        text = (f"threshold <b>{format_threshold(choice.threshold)}</b>: APCER "
                f"{100 * (choice.apcer or 0):.2f}%, BPCER {100 * (choice.bpcer or 0):.2f}%")
        self.suggestion.setToolTip(f"The middle of the score gap {format_threshold(choice.gap[0])}"
                                   f"–{format_threshold(choice.gap[1])}")
        if choice.warning:
            text += (f"<br><span style='color:{text_colour('warning')}'>"
                     f"⚠ {html.escape(choice.warning)}</span>")
        self.suggestion.setText(text)
        if choice.apcer is not None and choice.bpcer is not None:
            self.roc_marker.setData([choice.bpcer], [1.0 - choice.apcer])
        model = self.evaluated_model()
        onnx = model is not None and model.suffix.lower() == ".onnx"
        self.apply_button.setText("Use in Live with this model" if onnx else "Store with the export")
        self.apply_button.setToolTip(
            "Switch the live view to the evaluated model, with this threshold" if onnx else
            "The threshold belongs to the evaluated checkpoint: the Export step stores it in "
            "the exported model, and it applies whenever that model is the live one")
        self.apply_button.setEnabled(model is not None)
        self.remember()

    def evaluated_model(self) -> Path | None:
        if self.report is None or not self.report.data.get("model"):
            return None
        return Path(self.report.data["model"])

    def apply_threshold(self) -> None:
        """A threshold goes only with the model it was picked for: an evaluated .onnx goes
        to the live view together with it; a checkpoint's goes into its export."""
        model, value = self.evaluated_model(), self.suggested
        if model is None or value is None:
            return
        if model.suffix.lower() == ".onnx":
            self.tab.model_threshold_requested.emit(str(model), float(value))
            self.tab.log(f"live view: {model.name} with threshold {format_threshold(value)}")
        else:
            self.tab.export.set_threshold(float(value), model)
            self.tab.log(f"threshold {format_threshold(value)} will be stored with the export "
                         f"of {model}")
            self.tab.go_to("export")
