"""Classification and presentation-attack-detection metrics, numpy only.

Conventions (ISO/IEC 30107-3): a spoof is an attack presentation, a real face a bona fide
presentation. The model's score is p_real; a face is accepted as bona fide (real) when
p_real >= threshold.

- APCER: share of attack presentations accepted as bona fide (p_real >= t). Per PAI
  species (spoof type) too; the standard's headline APCER is the worst species.
- BPCER: share of bona fide presentations rejected as attacks (p_real < t).
- ACER: (APCER + BPCER) / 2 (with the overall APCER).

ROC and PR curves treat "attack" as the positive class with score p_spoof = 1 - p_real:
ROC x = BPCER (false positive rate), y = 1 - APCER (attack detection rate); PR precision
and recall of attack detection. ROC-AUC is the Mann-Whitney probability that a random
attack scores above a random bona fide (ties count half); AP is the step-wise area under
the PR curve (sum of precision x recall increase over the distinct thresholds).

APCER/BPCER/ACER, the EER and the threshold for a target rate live in
fasdesk.core.decision.thresholds (the app computes them too, and one rule has one implementation);
they are re-exported here.
"""
from __future__ import annotations

import numpy as np

from fasdesk.core.decision.thresholds import (equal_error_rate, pad_errors,  # noqa: F401 - re-exported
                                     threshold_for_target)


class NonFiniteScores(ValueError):
    """Scores with NaN or infinite values: no metric over them means anything (NaN ranks
    as if it were a perfect score), so they are an error, not a number."""


def finite_scores(scores) -> np.ndarray:
    """`scores` as float64; raises NonFiniteScores when any is NaN or infinite."""
    s = np.asarray(scores, np.float64)
    bad = int(np.count_nonzero(~np.isfinite(s)))
    if bad:
        raise NonFiniteScores(f"{bad} of {s.size} scores are NaN or infinite")
    return s


def confusion_matrix(y_true, y_pred, num_classes: int) -> np.ndarray:
    """[true, predicted] counts."""
    cm = np.zeros((num_classes, num_classes), np.int64)
    np.add.at(cm, (np.asarray(y_true, np.int64), np.asarray(y_pred, np.int64)), 1)
    return cm


def per_class_accuracy(cm: np.ndarray) -> list[float | None]:
    totals = cm.sum(axis=1)
    return [float(cm[i, i] / t) if t else None for i, t in enumerate(totals)]


def roc_auc(is_attack, p_spoof) -> float | None:
    """Probability a random attack outscores a random bona fide (ties 1/2); None if one
    class is absent."""
    y = np.asarray(is_attack, bool)
    s = finite_scores(p_spoof)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return None
    ranks = _average_ranks(s)
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _average_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks, ties sharing their average rank."""
    order = np.argsort(values, kind="mergesort")
    sorted_vals = values[order]
    ranks = np.empty(len(values), np.float64)
    boundaries = np.flatnonzero(np.diff(sorted_vals)) + 1
    starts = np.concatenate([[0], boundaries])
    ends = np.concatenate([boundaries, [len(values)]])
    for a, b in zip(starts, ends):
        ranks[order[a:b]] = (a + 1 + b) / 2.0
    return ranks


def _sweep(is_attack, p_spoof):
    """Cumulative true/false positives at each distinct score, highest score first."""
    y = np.asarray(is_attack, bool)
    s = finite_scores(p_spoof)
    order = np.argsort(-s, kind="mergesort")
    s, y = s[order], y[order]
    last = np.concatenate([np.flatnonzero(np.diff(s)), [len(s) - 1]])  # end of each tie group
    tp = np.cumsum(y)[last].astype(np.float64)
    fp = np.cumsum(~y)[last].astype(np.float64)
    return s[last], tp, fp


def roc_curve(is_attack, p_spoof) -> dict:
    """{"fpr", "tpr", "thresholds"} (thresholds on p_spoof: predict attack if >=)."""
    thresholds, tp, fp = _sweep(is_attack, p_spoof)
    n_pos, n_neg = tp[-1] if len(tp) else 0, fp[-1] if len(fp) else 0
    fpr = np.concatenate([[0.0], fp / n_neg if n_neg else np.zeros_like(fp)])
    tpr = np.concatenate([[0.0], tp / n_pos if n_pos else np.zeros_like(tp)])
    return {"fpr": fpr, "tpr": tpr, "thresholds": np.concatenate([[np.inf], thresholds])}


def pr_curve(is_attack, p_spoof) -> dict:
    """{"precision", "recall", "thresholds"} for attack detection, highest threshold first."""
    thresholds, tp, fp = _sweep(is_attack, p_spoof)
    n_pos = tp[-1] if len(tp) else 0
    precision = tp / np.maximum(tp + fp, 1)
    recall = tp / n_pos if n_pos else np.zeros_like(tp)
    return {"precision": precision, "recall": recall, "thresholds": thresholds}


def average_precision(is_attack, p_spoof) -> float | None:
    y = np.asarray(is_attack, bool)
    if not y.any():
        return None
    pr = pr_curve(y, p_spoof)
    recall = np.concatenate([[0.0], pr["recall"]])
    return float(np.sum(np.diff(recall) * pr["precision"]))


def downsample_curve(curve: dict, max_points: int = 500) -> dict:
    """At most max_points evenly spaced points (first and last kept), as JSON-ready lists."""
    n = len(next(iter(curve.values())))
    keep = np.arange(n) if n <= max_points else np.unique(np.linspace(0, n - 1, max_points).round().astype(int))
    out = {}
    for key, values in curve.items():
        v = np.asarray(values, np.float64)[keep]
        out[key] = [None if not np.isfinite(x) else round(float(x), 6) for x in v]
    return out
