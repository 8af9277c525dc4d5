"""The live p_real plot: one curve per tracked face over the last 30 s, and the threshold."""
from __future__ import annotations

import pyqtgraph as pg
from PySide6.QtGui import QColor

from fasdesk.core.decision.thresholds import format_threshold
from fasdesk.core.live.tracking import HISTORY_SECONDS
from fasdesk.core.decision.verdict import DEFAULT_THRESHOLD

# Distinct hues for faces, none of them the verdict green or red (so a curve never reads
# as a verdict), cycled by face id.
PALETTE = ["#56B4E9", "#E69F00", "#CC79A7", "#F0E442", "#0072B2", "#B8B8FF", "#E0E0E0"]
# The legend names only faces on screen now (at most this many, the newest); the curves of
# faces gone stay drawn, unnamed, until they scroll out.
LEGEND_MAX = 5


class ScorePlot(pg.PlotWidget):
    def __init__(self, parent=None, window: float = HISTORY_SECONDS):
        super().__init__(parent, background="#16181c")
        self.window = window
        self.setFocusPolicy(pg.QtCore.Qt.NoFocus)  # nothing to do with keys: not a Tab stop
        self.curves: dict[int, pg.PlotDataItem] = {}
        self.last_seen: dict[int, float] = {}
        item = self.getPlotItem()
        item.setMenuEnabled(False)
        item.hideButtons()
        self.setMouseEnabled(x=False, y=False)
        self.setXRange(-window, 0, padding=0)
        self.setYRange(0, 1, padding=0.04)
        item.setLabel("left", "p_real")
        # Fixed ticks: the axis reads the same whether or not curves are drawn yet.
        left = item.getAxis("left")
        left.setTicks([[(v / 5, f"{v / 5:.1f}") for v in range(6)]])
        left.setStyle(hideOverlappingLabels=False)
        item.setLabel("bottom", "seconds")
        item.showGrid(x=True, y=True, alpha=0.15)
        # Right-hand side, below the p = 1 line where live faces' curves run.
        self.legend = item.addLegend(offset=(-6, 30), labelTextSize="8pt",
                                     brush=pg.mkBrush(22, 24, 28, 200))
        self.threshold_line = pg.InfiniteLine(
            pos=DEFAULT_THRESHOLD, angle=0, movable=False,
            pen=pg.mkPen(QColor(255, 255, 255, 170), width=1.5, style=pg.QtCore.Qt.DashLine),
            label="threshold {value:.2f}",
            labelOpts={"position": 0.05, "color": (220, 220, 220), "anchors": [(0, 1), (0, 1)]})
        self.addItem(self.threshold_line)

    def set_threshold(self, value: float) -> None:
        self.threshold_line.setValue(value)
        self.threshold_line.label.setFormat(f"threshold {format_threshold(value)}")

    def clear_tracks(self) -> None:
        for tid in list(self.curves):
            self._remove(tid)

    def _remove(self, tid: int) -> None:
        curve = self.curves.pop(tid)
        if curve._in_legend:
            self.legend.removeItem(curve)
        self.removeItem(curve)
        self.last_seen.pop(tid, None)

    def update_histories(self, histories: dict, now: float, on_screen=None) -> None:
        """histories: track id -> (times, values) with times on the monotonic clock;
        on_screen: the track ids of the faces in the frame shown (default: every track
        with a history), the only ones the legend names."""
        for tid, (times, values) in histories.items():
            curve = self.curves.get(tid)
            if curve is None:
                colour = PALETTE[(tid - 1) % len(PALETTE)]
                curve = self.plot([], [], pen=pg.mkPen(colour, width=2))
                curve.opts["name"] = f"face #{tid}"
                curve._in_legend = False
                self.curves[tid] = curve
            curve.setData(times - now, values)
            self.last_seen[tid] = float(times[-1]) if len(times) else now
        # A face gone for longer than the window has nothing left to show.
        for tid in [t for t, seen in self.last_seen.items() if seen < now - self.window]:
            self._remove(tid)
        for tid, curve in self.curves.items():
            if tid not in histories:
                # Keep the stale curve, shifted so it scrolls out as time passes.
                x, y = curve.getData()
                if x is not None and len(x):
                    shift = now - getattr(curve, "_fasdesk_now", now)
                    curve.setData(x - shift, y)
            curve._fasdesk_now = now
        self._update_legend(histories if on_screen is None else on_screen)

    def legend_names(self) -> list[str]:
        return [label.text for _sample, label in self.legend.items]

    def _update_legend(self, track_ids) -> None:
        on_screen = set(sorted(t for t in track_ids if t in self.curves)[-LEGEND_MAX:])
        for tid, curve in sorted(self.curves.items()):
            if curve._in_legend and tid not in on_screen:
                self.legend.removeItem(curve)
                curve._in_legend = False
            elif not curve._in_legend and tid in on_screen:
                self.legend.addItem(curve, curve.opts["name"])
                curve._in_legend = True
