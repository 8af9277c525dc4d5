"""The calibration report's score histograms: the current and the fine-tuned model on one
log-odds scale (fasdesk.core.calibration.score_axis computes it), the legend outside the
data, the threshold always labelled.

Each bin shows one bar per kind of face side by side, so a small count of real faces is
never hidden behind a tall attack bar.
"""
from __future__ import annotations

import html

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QHBoxLayout, QLabel, QSizePolicy, QVBoxLayout, QWidget

from fasdesk.core.calibration import score_axis
from fasdesk.core.decision.thresholds import format_threshold
from fasdesk.ui.training.widgets import theme_colours

# Real faces green-blue, attacks in warm hues (none is a verdict colour).
STAGE_COLOURS = ["#56B4E9", "#E69F00", "#CC79A7", "#F0E442", "#D55E00", "#B8B8FF"]
THRESHOLD_COLOUR = "#f2f2f2"  # the label's text, on a dark box readable in either theme


def legend_html(names: list[tuple[str, str]]) -> str:
    """A legend line: a coloured square before each (colour, text)."""
    return "&nbsp;&nbsp;&nbsp;".join(
        f"<span style='color:{colour}'>&#9632;</span>&nbsp;{html.escape(text)}"
        for colour, text in names)


class ScoreHistogram(QWidget):
    """One model's histograms: a title and legend line above, the plot below."""

    def __init__(self, title: str, parent=None):
        super().__init__(parent)
        background, foreground = theme_colours()
        self.title = QLabel(f"<b>{html.escape(title)}</b>")
        self.legend = QLabel()
        self.legend.setTextFormat(Qt.RichText)
        self.legend.setWordWrap(True)
        self.plot = pg.PlotWidget()
        self.plot.setBackground(background)
        for side in ("left", "bottom"):
            axis = self.plot.getAxis(side)
            axis.setPen(foreground)
            axis.setTextPen(foreground)
        self.plot.setLabel("bottom", "p_real, log-odds scale")
        self.plot.getAxis("bottom").setToolTip("0.9, 0.99 and 0.999 are equally far apart, so "
                                               "scores near 0 and 1 are told apart")
        self.plot.setLabel("left", "faces")
        self.plot.setMouseEnabled(x=False, y=False)
        self.plot.hideButtons()
        self.plot.setMinimumHeight(140)
        self.plot.setSizePolicy(QSizePolicy.Expanding, QSizePolicy.Expanding)
        self.line = pg.InfiniteLine(
            pos=0.0, angle=90, movable=False,
            pen=pg.mkPen(foreground, width=2, style=Qt.DashLine), label="",
            labelOpts={"position": 0.92, "color": THRESHOLD_COLOUR,
                       "fill": pg.mkBrush(QColor(40, 40, 40, 200)), "anchors": [(0, 0), (0, 0)]})
        self.plot.addItem(self.line)
        self.bars: list[pg.BarGraphItem] = []
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        layout.addWidget(self.title)
        layout.addWidget(self.legend)
        layout.addWidget(self.plot, 1)

    def clear(self) -> None:
        for bar in self.bars:
            self.plot.removeItem(bar)
        self.bars = []
        self.legend.clear()
        self.line.hide()

    def show_counts(self, counts: dict[str, list[int]], threshold: float,
                    view: score_axis.View, titles: dict[str, str]) -> None:
        """Draw {stage: counts on score_axis.edges()} inside `view`, with the threshold."""
        self.clear()
        edges = score_axis.edges()[view.first:view.last + 1]
        width = float(edges[1] - edges[0]) if len(edges) > 1 else 0.5
        names = list(counts)
        slot = 0.9 * width / max(1, len(names))
        legend = []
        for i, stage in enumerate(names):
            colour = QColor(STAGE_COLOURS[i % len(STAGE_COLOURS)])
            shown = view.clip(counts[stage])
            x = edges[:-1] + 0.05 * width + slot * (i + 0.5)
            bar = pg.BarGraphItem(x=x, height=np.asarray(shown, float), width=slot,
                                  brush=pg.mkBrush(colour), pen=pg.mkPen(colour.darker(130)))
            self.plot.addItem(bar)
            self.bars.append(bar)
            legend.append((colour.name(), f"{titles.get(stage, stage)} ({sum(counts[stage])})"))
        self.legend.setText(legend_html(legend))
        self.plot.setXRange(view.lo, view.hi, padding=0.02)
        # Headroom above the tallest bar for the threshold's label, the same on every plot.
        self.plot.setYRange(0, max(1, view.top) * 1.3, padding=0)
        self.plot.getAxis("bottom").setTicks([view.ticks])
        self.line.show()  # first: a hidden label does not take its new text
        self.line.label.setFormat(f"threshold {format_threshold(threshold)}")
        x = score_axis.threshold_position(threshold)
        # The label on the side with more room, so it is never cut by the plot's edge.
        side = (1, 0) if x > (view.lo + view.hi) / 2 else (0, 0)
        self.line.label.anchors = [side, side]
        self.line.setValue(x)
        self.line.label.valueChanged()  # the text, also when the position did not change


class BeforeAfterHistograms(QWidget):
    """The current model's and the fine-tuned model's histograms side by side, one scale."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.before = ScoreHistogram("p_real, current model")
        self.after = ScoreHistogram("p_real, fine-tuned model")
        self.after.hide()
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.before, 1)
        layout.addWidget(self.after, 1)
        self.view: score_axis.View | None = None

    def show_reports(self, before: dict | None, after: dict | None,
                     titles: dict[str, str]) -> None:
        """Show the `histogram_log_odds` of calibration reports (session.evaluate)."""
        reports = [r for r in (before, after) if r is not None]
        if not reports:
            self.before.clear()
            self.after.hide()
            return
        self.view = score_axis.shared_view([r["histogram_log_odds"]["counts"] for r in reports],
                                           [r["threshold"] for r in reports])
        for widget, report in ((self.before, before), (self.after, after)):
            widget.setVisible(report is not None or widget is self.before)
            if report is None:
                widget.clear()
            else:
                widget.show_counts(report["histogram_log_odds"]["counts"], report["threshold"],
                                   self.view, titles)
