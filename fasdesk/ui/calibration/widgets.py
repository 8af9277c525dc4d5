"""What the calibration and profiles dialogs share: source pickers, histograms, table
items, percentages, and stopping work however a dialog ends."""
from __future__ import annotations

import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (QComboBox, QFileDialog, QHBoxLayout, QPushButton, QSizePolicy,
                               QTableWidgetItem, QWidget)

from fasdesk.core.decision.thresholds import format_threshold
from fasdesk.core.live.sources import SourceSpec
from fasdesk.ui.training.widgets import MessageBox, theme_colours

# Histogram colours: real faces green-blue, attacks in warm hues (none is a verdict colour).
STAGE_COLOURS = ["#56B4E9", "#E69F00", "#CC79A7", "#F0E442", "#D55E00", "#B8B8FF"]
SAME_AS_REAL = "same"


def pct(value) -> str:
    return "n/a" if value is None else f"{100.0 * value:.1f}%"


def grown(box: MessageBox) -> MessageBox:
    """A message box that takes the height its wrapped text needs."""
    box.setSizePolicy(QSizePolicy.Preferred, QSizePolicy.Minimum)
    return box


def table_item(text: str, right: bool = False) -> QTableWidgetItem:
    item = QTableWidgetItem(text)
    item.setFlags(item.flags() & ~Qt.ItemIsEditable)
    if right:
        item.setTextAlignment(Qt.AlignRight | Qt.AlignVCenter)
    return item


def operating_point(report: dict) -> str:
    """Where the attack rate was measured: at the target BPCER when the held-out frames
    meet it, else at the threshold picked for it, with the real-face rate it really gave."""
    target = 100 * report["target_bpcer"]
    bpcer = report["held_out"]["bpcer"]
    if report["meets_target"] or bpcer is None:
        return f"at BPCER ≤ {target:g}%"
    return (f"at the threshold picked for BPCER ≤ {target:g}% (on the held-out frames it "
            f"rejects {100 * bpcer:.1f}% of real faces)")


def close_row(dialog) -> tuple[QPushButton, QHBoxLayout]:
    """The dialog's Close button, at the right of a row of its own."""
    button = QPushButton("Close")
    button.clicked.connect(dialog.close)
    row = QHBoxLayout()
    row.addStretch(1)
    row.addWidget(button)
    return button, row


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
