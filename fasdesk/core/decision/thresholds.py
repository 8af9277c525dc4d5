"""Presentation-attack error rates and the one way fasdesk picks a threshold. numpy only.

Conventions (ISO/IEC 30107-3): a spoof is an attack presentation, a real face a bona fide
presentation. The score is p_real; a face is accepted as real when p_real >= threshold.

- APCER: share of attack presentations accepted (p_real >= t), per attack type too.
- BPCER: share of bona fide presentations rejected (p_real < t).
- ACER: (APCER + BPCER) / 2.

`threshold_for_target` is the only code that turns raw scores into a threshold for a
target error rate: the Training tab's Evaluate step, `python -m training eval` and the
camera calibration all call it. It picks the best operating point for the target and
then the middle of the empty gap of scores around it, never an edge: a threshold just
above the highest attack seen (what a ROC curve point gives) lets the next attack with a
slightly higher score through, and on a small, well separated set that edge can be 4e-4.
It also says when the set is too small to support the target.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from fasdesk.core.decision.uncertainty import min_count_for_target

KINDS = ("bpcer", "apcer")


def pad_errors(is_attack, p_real, threshold: float, attack_type=None) -> dict:
    """APCER, BPCER, ACER at `threshold` on p_real, plus APCER per attack type."""
    y = np.asarray(is_attack, bool)
    p = np.asarray(p_real, np.float64)
    accepted = p >= threshold
    apcer = float(accepted[y].mean()) if y.any() else None
    bpcer = float((~accepted[~y]).mean()) if (~y).any() else None
    result = {"threshold": float(threshold), "apcer": apcer, "bpcer": bpcer,
              "acer": (apcer + bpcer) / 2 if apcer is not None and bpcer is not None else None}
    if attack_type is not None:
        types = np.asarray(attack_type)
        per_type = {str(t): float(accepted[y & (types == t)].mean())
                    for t in sorted(set(types[y].tolist()))}
        result["apcer_per_type"] = per_type
        result["apcer_max"] = max(per_type.values()) if per_type else None
    return result


def equal_error_rate(is_attack, p_real) -> dict:
    """The threshold (among the scores) where APCER and BPCER are closest, and their mean."""
    y = np.asarray(is_attack, bool)
    p = np.asarray(p_real, np.float64)
    if not y.any() or y.all():
        return {"eer": None, "threshold": None}
    candidates = np.unique(np.concatenate([p, [np.nextafter(p.max(), np.inf)]]))
    # Counts from sorted scores (a table of candidates x scores would need n^2 memory:
    # gigabytes on a large evaluation set). Accepted as real: p_real >= threshold.
    attack, real = np.sort(p[y]), np.sort(p[~y])
    apcer = 1.0 - np.searchsorted(attack, candidates, side="left") / len(attack)
    bpcer = np.searchsorted(real, candidates, side="left") / len(real)
    i = int(np.argmin(np.abs(apcer - bpcer)))
    return {"eer": float((apcer[i] + bpcer[i]) / 2), "threshold": float(candidates[i])}


@dataclass(frozen=True)
class ThresholdChoice:
    """A threshold for a target error rate, with what it gives and how far to trust it."""
    kind: str  # "bpcer" or "apcer": the rate held at or below `target`
    target: float
    threshold: float | None  # None when the scores hold none of the class the target is on
    apcer: float | None
    bpcer: float | None
    gap: tuple[float, float] | None  # every threshold in (low, high] gives the same errors
    n_real: int
    n_attack: int
    needed: int  # faces of the target's class to measure the target at all (1/target)
    reliable: int  # ... to support it (rule of three: 3/target)
    warning: str | None

    def to_json(self) -> dict:
        data = asdict(self)
        data["gap"] = list(self.gap) if self.gap is not None else None
        return data


def support_counts(target: float) -> tuple[int, int]:
    """(needed, reliable): faces of the constrained class for a target rate.

    Below `needed` the rate moves in steps larger than the target, so the target cannot
    even be told apart from 0; below `reliable` a rate measured at the target is a rough
    estimate (rule of three)."""
    if not 0 < target < 1:
        return 1, 1
    return math.ceil(1.0 / target - 1e-9), min_count_for_target(target)


def _support_warning(kind: str, target: float, n: int) -> str | None:
    needed, reliable = support_counts(target)
    faces = "real faces" if kind == "bpcer" else "attack faces"
    rate = kind.upper()
    if n >= reliable:
        return None
    if n < needed:
        return (f"only {n} {faces}: {rate} moves in steps of {100.0 / n:.1f}%, too coarse for "
                f"a {100 * target:g}% target, so the threshold lets none of them through the "
                f"wrong way; {reliable} or more are needed to support the target")
    return (f"{n} {faces} support a {100 * target:g}% {rate} target only roughly; "
            f"{reliable} or more are needed to rely on it (rule of three)")


def threshold_for_target(is_attack, p_real, kind: str = "bpcer",
                         target: float = 0.05) -> ThresholdChoice:
    """The threshold holding `kind` ("bpcer" or "apcer") at or below `target`.

    For BPCER <= target: of the thresholds that reject at most that share of real faces,
    those that let the fewest attacks through, and of those the ones that reject the
    fewest real faces; for APCER the same with the roles swapped. These thresholds form
    an empty gap between an attack score (or 0) and a real score (or 1); the threshold is
    its midpoint, so a new face must fall inside the gap to be judged differently from
    the faces measured. Non-finite scores are left out.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be 'bpcer' or 'apcer', not {kind!r}")
    if not 0.0 <= target <= 1.0:
        raise ValueError(f"the target rate must be between 0 and 1, got {target}")
    y = np.asarray(is_attack, bool)
    p = np.asarray(p_real, np.float64)
    finite = np.isfinite(p)
    y, p = y[finite], p[finite]
    real, attack = np.sort(p[~y]), np.sort(p[y])
    n_real, n_attack = len(real), len(attack)
    needed, reliable = support_counts(target)
    constrained = n_real if kind == "bpcer" else n_attack
    if constrained == 0:
        faces = "real" if kind == "bpcer" else "attack"
        return ThresholdChoice(kind, target, None, None, None, None, n_real, n_attack,
                               needed, reliable, f"no {faces} faces to pick a threshold on")

    if kind == "bpcer":
        # Rejecting at most k real faces allows any threshold up to the k-th lowest one.
        k = int(math.floor(target * n_real + 1e-9))
        highest = real[k] if k < n_real else np.inf
        below = attack[attack < highest]
        low = float(below[-1]) if len(below) else None  # highest attack still rejected
        above = real[real > low] if low is not None else real
        high = float(above[0]) if len(above) else None  # lowest real face accepted
    else:
        # Accepting at most k attacks needs a threshold above the (k+1)-th highest one.
        k = int(math.floor(target * n_attack + 1e-9))
        floor_ = attack[::-1][k] if k < n_attack else -np.inf
        above = real[real > floor_]
        high = float(above[0]) if len(above) else None
        below = attack[attack < high] if high is not None else attack
        low = float(below[-1]) if len(below) else None
    lo = 0.0 if low is None else low
    hi = 1.0 if high is None else high
    if hi <= lo and low is None:  # the lowest real face scored 0 (or less): accept it
        threshold = hi
    elif hi <= lo:  # scores outside [0, 1] (not probabilities): stay just above the attack
        threshold = float(np.nextafter(lo, np.inf))
    else:
        threshold = (lo + hi) / 2.0
    errors = pad_errors(y, p, threshold)
    warning = _support_warning(kind, target, constrained)
    other = n_attack if kind == "bpcer" else n_real
    if other == 0:
        missing = "APCER" if kind == "bpcer" else "BPCER"
        note = f"no {'attack' if kind == 'bpcer' else 'real'} faces: {missing} is unknown"
        warning = note if warning is None else f"{warning}; {note}"
    return ThresholdChoice(kind, target, threshold, errors["apcer"], errors["bpcer"],
                           (lo, hi), n_real, n_attack, needed, reliable, warning)


def format_threshold(value: float | None) -> str:
    """A threshold as text, exact enough to tell it from its neighbours on screen.

    Two decimals when that is the value; otherwise as many as keep the shown value within
    1% of its distance to 0 or 1, so 4.4e-4 shows as 0.00044, never as 0.00."""
    if value is None or not math.isfinite(value):
        return "n/a"
    edge = min(abs(value), abs(1.0 - value))
    for decimals in range(2, 9):
        text = f"{value:.{decimals}f}"
        error = abs(float(text) - value)
        if error <= 1e-12 or (edge > 0 and error <= 0.01 * edge):
            return text
    return f"{value:.3g}"
