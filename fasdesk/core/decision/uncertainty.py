"""Error rates as counts with an honest bound, and the words that explain them. numpy only.

A rate measured on a few faces says little: 0 of 23 real faces rejected is also what a
model that rejects 1 real face in 8 shows one time in twenty. So every rate the
calibration reports is given as "k of n" with the 95% Clopper-Pearson interval (the
exact binomial interval: 2.5% in each tail), and a target error rate is only claimed
when enough faces were measured to show it (`min_count_for_target`, the rule of three).

The interval is found from the binomial distribution directly (its CDF is monotone in
p, so bisection on p finds the bound to 1e-12), without scipy.
"""
from __future__ import annotations

import math

import numpy as np

CONFIDENCE = 0.95
# Rule of three: with n faces and no error the 95% upper bound of the rate is about 3/n.
RULE_OF_THREE = 3.0

# One sentence each, for tooltips and the report's glossary (ISO/IEC 30107-3 terms).
DEFINITIONS = {
    "BPCER": "BPCER (bona fide presentation classification error rate): the share of real "
             "faces wrongly rejected as attacks.",
    "APCER": "APCER (attack presentation classification error rate): the share of attacks "
             "(photos, screens, masks) wrongly accepted as real faces, given per attack type.",
    "ACER": "ACER (average classification error rate): the mean of APCER and BPCER at one "
            "threshold, a single number to compare models by.",
    "EER": "EER (equal error rate): the error rate at the threshold where APCER and BPCER "
           "are equal; lower means the model separates real faces from attacks better.",
}


def _log_choose(n: int, k: int) -> np.ndarray:
    """ln C(n, i) for i = 0..k."""
    i = np.arange(k + 1, dtype=np.float64)
    return math.lgamma(n + 1) - _lgamma(i + 1) - _lgamma(n - i + 1)


_lgamma = np.vectorize(math.lgamma, otypes=[np.float64])


def _binom_cdf(k: int, n: int, p: float, log_choose: np.ndarray | None = None) -> float:
    """P(X <= k) for X ~ Binomial(n, p), summed in log space (stable for large n)."""
    if k < 0:
        return 0.0
    if k >= n or p <= 0.0:
        return 1.0
    if p >= 1.0:
        return 0.0
    coef = _log_choose(n, k) if log_choose is None else log_choose
    i = np.arange(k + 1, dtype=np.float64)
    terms = coef + i * math.log(p) + (n - i) * math.log1p(-p)
    top = float(terms.max())
    return min(1.0, math.exp(top) * float(np.exp(terms - top).sum()))


def _bisect(f, lo: float = 0.0, hi: float = 1.0) -> float:
    """The root of a function that goes from >= 0 at lo to <= 0 at hi."""
    for _ in range(80):
        mid = (lo + hi) / 2
        if f(mid) > 0:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def clopper_pearson(k: int, n: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """The exact (Clopper-Pearson) two-sided interval (low, high) of a rate seen k times in
    n. Raises ValueError unless 0 <= k <= n and n >= 1."""
    if not (isinstance(k, int) and isinstance(n, int)) or n < 1 or not 0 <= k <= n:
        raise ValueError(f"a rate needs 0 <= k <= n and n >= 1, got k={k}, n={n}")
    tail = (1.0 - confidence) / 2
    # high: the p at which seeing k or fewer is just `tail` likely.
    coef = _log_choose(n, k)
    high = 1.0 if k == n else _bisect(lambda p: _binom_cdf(k, n, p, coef) - tail)
    # low: the p at which seeing k or more is just `tail` likely (P(X >= k) grows with p).
    low = 0.0 if k == 0 else _bisect(
        lambda p: tail - (1.0 - _binom_cdf(k - 1, n, p, coef[:k])))
    return low, high


def upper_bound(k: int, n: int, confidence: float = CONFIDENCE) -> float:
    """The rate that k errors in n could still hide (the interval's upper end)."""
    return clopper_pearson(k, n, confidence)[1]


def rate(k: int, n: int, confidence: float = CONFIDENCE) -> dict:
    """{"k", "n", "rate", "low", "high"}: a measured rate with its 95% interval, for the
    calibration report (rate, low and high are None when n is 0)."""
    if n == 0:
        return {"k": 0, "n": 0, "rate": None, "low": None, "high": None}
    low, high = clopper_pearson(int(k), int(n), confidence)
    return {"k": int(k), "n": int(n), "rate": k / n, "low": round(low, 6),
            "high": round(high, 6)}


def min_count_for_target(target: float) -> int:
    """The fewest faces that can show an error rate at or below `target` (rule of three:
    with no error in n faces the 95% upper bound is about 3/n): 60 for 5%, 300 for 1%.
    Raises ValueError unless 0 < target < 1."""
    if not 0.0 < target < 1.0:
        raise ValueError(f"a target rate is between 0 and 1, got {target}")
    return math.ceil(RULE_OF_THREE / target - 1e-9)


def percent(value: float) -> str:
    """A share as a short percentage: 0.2195 -> '22%', 0.0596 -> '6%', 0.004 -> '0.4%'."""
    pct = 100.0 * value
    if pct == 0 or pct >= 9.95:
        return f"{pct:.0f}%"
    if pct >= 0.995:
        return f"{pct:.1f}".rstrip("0").rstrip(".") + "%"
    return f"{pct:.2g}%"


def count_phrase(k: int, n: int, who: str, verb: str, bound: bool = True) -> str:
    """'1 of 23 real people rejected (could be up to 22%)'. `bound` adds the upper end of
    the 95% interval: the worst rate these counts cannot rule out."""
    if n == 0:
        return f"no {who} measured"
    text = f"{k} of {n} {who} {verb}"
    if bound:
        text += f" (could be up to {percent(upper_bound(k, n))})"
    return text


def rates_sentence(threshold_text: str, real: tuple[int, int],
                   attacks: list[tuple[str, int, int]], bound_attacks: bool = False) -> str:
    """The report's headline in words, e.g. 'At 0.99: 1 of 23 real people rejected (could
    be up to 22%), 13 of 23 phone replays accepted.'

    real: (rejected, measured) real faces; attacks: (plural name, accepted, measured) per
    attack type. Attacks get their bound too with `bound_attacks`."""
    parts = [count_phrase(real[0], real[1], "real people", "rejected")]
    parts += [count_phrase(k, n, name, "accepted", bound_attacks) for name, k, n in attacks]
    return f"At {threshold_text}: " + ", ".join(parts) + "."

