"""The score axis of the calibration's histograms: log-odds, so scores near 0 and 1 spread
out. numpy only; the plot (fasdesk.ui.score_histogram) draws what this computes.

A liveness model puts most faces within 0.01 of 0 or 1, where a linear p_real axis has
one bin for all of them. On the log-odds axis x = ln(p / (1 - p)) the steps 0.5, 0.9,
0.99, 0.999 are equally far apart. Scores beyond 1e-4 of either end (x beyond +-LIMIT,
including exact 0 and 1) are clipped into the end bins, so nothing is dropped.

The bins are the same for every report (fixed edges from -LIMIT to LIMIT), so the
histograms of the current and the fine-tuned model share one scale by construction;
`shared_view` picks the part of the axis that holds data (or a threshold) in any of
them and one height for all.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

LIMIT = 9.0  # |log-odds| beyond this (p within 1.2e-4 of 0 or 1) goes into the end bins
PER_UNIT = 2  # bins per unit of log-odds
TICKS = (0.001, 0.01, 0.1, 0.5, 0.9, 0.99, 0.999)


def to_axis(p) -> np.ndarray:
    """p_real -> log-odds, clipped to [-LIMIT, LIMIT] (NaN stays NaN)."""
    p = np.asarray(p, np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        x = np.log(p) - np.log1p(-p)
    return np.clip(x, -LIMIT, LIMIT)


def from_axis(x) -> np.ndarray:
    """log-odds -> p_real."""
    return 1.0 / (1.0 + np.exp(-np.asarray(x, np.float64)))


def threshold_position(threshold: float) -> float:
    """Where a threshold sits on the axis."""
    return float(to_axis(threshold))


def edges(per_unit: int = PER_UNIT) -> np.ndarray:
    """The bin edges: -LIMIT to LIMIT in steps of 1/per_unit."""
    return np.linspace(-LIMIT, LIMIT, int(round(2 * LIMIT * per_unit)) + 1)


def histogram(scores: Sequence[float], bin_edges: np.ndarray | None = None) -> list[int]:
    """Counts of p_real scores per bin of the log-odds axis (NaN left out; the last bin
    includes its right edge, so clipped 1.0 scores count)."""
    bin_edges = edges() if bin_edges is None else bin_edges
    x = to_axis(scores)
    return np.histogram(x[np.isfinite(x)], bins=bin_edges)[0].astype(int).tolist()


def histograms(scores_by_type: Mapping[str, Sequence[float]],
               bin_edges: np.ndarray | None = None) -> dict[str, list[int]]:
    """{type: counts} for the real faces and each attack type."""
    return {name: histogram(values, bin_edges) for name, values in scores_by_type.items()}


@dataclass(frozen=True)
class View:
    """What the plots of several reports share: the x range, the bins inside it, the
    height, and the ticks labelled with p_real."""
    lo: float
    hi: float
    first: int  # index of the first bin shown
    last: int  # index past the last bin shown
    top: int  # the highest count in any shown histogram
    ticks: list[tuple[float, str]]

    def clip(self, counts: Sequence[int]) -> list[int]:
        return list(counts[self.first:self.last])


def shared_view(count_sets: Sequence[Mapping[str, Sequence[int]]],
                thresholds: Sequence[float | None] = (),
                bin_edges: np.ndarray | None = None) -> View:
    """The one view for several histograms (before and after fine-tuning): from the whole
    unit of log-odds below the lowest non-empty bin (or threshold) to the whole unit above
    the highest, in every histogram; the full axis when there is nothing."""
    bin_edges = edges() if bin_edges is None else np.asarray(bin_edges, np.float64)
    used = [i for counts in count_sets for c in counts.values()
            for i, n in enumerate(c) if n > 0]
    points = [float(bin_edges[i]) for i in used] + [float(bin_edges[i + 1]) for i in used]
    points += [threshold_position(t) for t in thresholds if t is not None]
    if not points:
        lo, hi = -LIMIT, LIMIT
    else:
        lo = max(-LIMIT, math.floor(min(points)))
        hi = min(LIMIT, math.ceil(max(points)))
        if hi <= lo:
            lo, hi = max(-LIMIT, lo - 1), min(LIMIT, hi + 1)
    first = int(np.searchsorted(bin_edges, lo - 1e-9))
    last = int(np.searchsorted(bin_edges, hi - 1e-9))
    top = max((max(c[first:last], default=0) for counts in count_sets for c in counts.values()),
              default=0)
    return View(float(lo), float(hi), first, last, int(top), ticks(lo, hi))


def tick_label(p: float) -> str:
    return f"{p:g}"


def ticks(lo: float, hi: float) -> list[tuple[float, str]]:
    """(position, p_real label) of the ticks within [lo, hi]; an end of the axis that is
    its clipping limit is labelled 0 or 1 (it holds everything beyond)."""
    out = [(float(to_axis(p)), tick_label(p)) for p in TICKS if lo - 1e-9 <= to_axis(p) <= hi + 1e-9]
    if lo <= -LIMIT + 1e-9:
        out.insert(0, (-LIMIT, "0"))
    if hi >= LIMIT - 1e-9:
        out.append((LIMIT, "1"))
    return out
