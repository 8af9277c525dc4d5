"""Scores to labels: the one place that says what a p_real means at a threshold.

The pipeline reports p_real; every label shown or written (live boxes, the Images table,
annotated images, result files, `fasdesk classify`) is decided here from the threshold in
force at that moment, so changing the threshold re-labels without new inference and no
stale copy of it can decide anything.

- A face is "real" when p_real >= threshold, else "spoof".
- A face without a score (too small, cut by the border, a broken model) is "unsure".
- Live, a face is *confirmed* real only after its last N observations were all real.
"""
from __future__ import annotations

import math
from typing import Iterable

DEFAULT_THRESHOLD = 0.5
DEFAULT_CONFIRM_FRAMES = 3
MAX_CONFIRM_FRAMES = 30  # the largest N the settings file and the UI accept

REAL, SPOOF, UNSURE = "real", "spoof", "unsure"


def verdict(p_real: float, threshold: float = DEFAULT_THRESHOLD) -> str:
    """'real' when p_real reaches the threshold, else 'spoof'."""
    return REAL if p_real >= threshold else SPOOF


def label(p_real: float | None, threshold: float = DEFAULT_THRESHOLD) -> str:
    """The label of one face: its verdict, or 'unsure' when it has no score."""
    return UNSURE if p_real is None else verdict(p_real, threshold)


def is_confirmed(recent: Iterable[float | None], threshold: float, n: int) -> bool:
    """True when the last n scores (None = not judged) are all real at this threshold."""
    if n <= 0:
        return True
    tail = list(recent)[-n:]
    return len(tail) == n and all(p is not None and p >= threshold for p in tail)


def real_streak(recent: Iterable[float | None], threshold: float, n: int) -> int:
    """How many of the last scores in a row are real at this threshold, at most n: the
    countdown to confirmation ("2/3")."""
    count = 0
    for p in reversed(list(recent)):
        if count >= n or p is None or p < threshold:
            break
        count += 1
    return count


def clamp_threshold(value: float) -> float:
    """A threshold in [0, 1]; NaN is refused (ValueError), it would label nothing."""
    value = float(value)
    if math.isnan(value):
        raise ValueError("threshold is not a number")
    return min(1.0, max(0.0, value))
