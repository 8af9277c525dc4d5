"""Reading an evaluation report (`python -m training eval --out REPORT.json`) for display,
and picking a live threshold for a target error rate from its raw scores. No Qt, no torch.

Report keys are documented in training/evaluate.py. The ROC curve there treats an attack
as the positive class with score p_spoof = 1 - p_real: x = BPCER (real faces rejected),
y = 1 - APCER (attacks caught); it is drawn, never used to pick a threshold: that comes
from the report's raw scores through fasdesk.core.decision.thresholds.threshold_for_target, the
same function `training eval` used for the report's own operating points.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fasdesk.core.decision.thresholds import ThresholdChoice, format_threshold, threshold_for_target


class ReportError(Exception):
    """A report file that cannot be shown; one line for the user."""


@dataclass
class EvalReport:
    data: dict
    roc_bpcer: list[float] = field(default_factory=list)
    roc_detect: list[float] = field(default_factory=list)
    roc_thresholds: list[float | None] = field(default_factory=list)
    pr_recall: list[float] = field(default_factory=list)
    pr_precision: list[float] = field(default_factory=list)

    @property
    def class_names(self) -> list[str]:
        return [str(c) for c in self.data.get("classes", [])]

    @property
    def confusion(self) -> list[list[int]]:
        return [[int(v) for v in row] for row in self.data.get("confusion_matrix", [])]

    def metric_rows(self) -> list[tuple[str, str]]:
        """(name, formatted value) rows for the metrics table."""
        headline, breakdown = self.metric_groups()
        return headline + breakdown

    def metric_groups(self) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
        """metric_rows in two groups: the overall metrics (images ... EER), and the
        breakdowns (APCER per attack type, real faces accepted under each condition)."""
        d = self.data
        rows = [("images", str(d.get("n", ""))),
                ("accuracy", _pct(d.get("accuracy")))]
        for name, value in (d.get("per_class_accuracy") or {}).items():
            count = (d.get("counts") or {}).get(name)
            rows.append((f"  accuracy: {name}" + (f" ({count})" if count is not None else ""),
                         _pct(value)))
        at = format_threshold(d.get("threshold"))
        rows += [("ROC-AUC", _num(d.get("roc_auc"))),
                 ("average precision", _num(d.get("average_precision"))),
                 (f"APCER @ {at}", _pct(d.get("apcer"))),
                 (f"BPCER @ {at}", _pct(d.get("bpcer"))),
                 (f"ACER @ {at}", _pct(d.get("acer"))),
                 ("EER", _pct(d.get("eer")))]
        headline, rows = rows, []
        for name, value in (d.get("apcer_per_type") or {}).items():
            rows.append((f"  APCER: {name}", _pct(value)))
        robust = d.get("robustness")
        if isinstance(robust, dict):  # reports since issue 24 (fasdesk.core.calibration.robustness)
            rows.append(("real faces still accepted when", ""))
            # the conditions are the report's dict entries, in its order (darker, moving,
            # tinted); the totals beside them are plain numbers
            for name, counts in robust.items():
                if isinstance(counts, dict):
                    rows.append((f"  {name}", f"{counts.get('accepted', '?')} of "
                                              f"{counts.get('n', '?')}"))
        return headline, rows

    @property
    def has_scores(self) -> bool:
        scores = self.data.get("scores")
        return isinstance(scores, dict) and bool(scores.get("p_real"))

    def threshold_for(self, kind: str, target: float) -> ThresholdChoice | None:
        """The live threshold holding `kind` ("bpcer" or "apcer") at or below `target`,
        from the report's raw scores; None for a report written before it kept them."""
        if not self.has_scores:
            return None
        scores = self.data["scores"]
        try:
            p_real = np.array([np.nan if v is None else float(v) for v in scores["p_real"]])
            is_attack = np.asarray(scores.get("label", []), np.int64) != 0
        except (TypeError, ValueError):
            return None
        if len(is_attack) != len(p_real):
            return None
        return threshold_for_target(is_attack, p_real, kind, target)


def _pct(value) -> str:
    return "n/a" if value is None else f"{100.0 * float(value):.2f}%"


def _num(value, digits: int = 4) -> str:
    return "n/a" if value is None else f"{float(value):.{digits}f}"


def load(path: str | os.PathLike) -> EvalReport:
    """Read a report file. Raises ReportError."""
    path = Path(path)
    try:
        from fasdesk.core.io.files import read_json

        data = read_json(path, 16 << 20)
    except FileNotFoundError:
        raise ReportError(f"no evaluation report at {path}; run Evaluate first") from None
    except (OSError, ValueError) as exc:
        raise ReportError(f"{path.name} is not a readable evaluation report ({exc})") from None
    if not isinstance(data, dict) or "confusion_matrix" not in data:
        raise ReportError(f"{path.name} is not an evaluation report (no confusion_matrix)")
    return from_dict(data)


def from_dict(data: dict) -> EvalReport:
    curves = data.get("curves") or {}
    roc = curves.get("roc") or {}
    pr = curves.get("pr") or {}
    return EvalReport(data=data, roc_bpcer=list(roc.get("fpr", [])),
                      roc_detect=list(roc.get("tpr", [])),
                      roc_thresholds=list(roc.get("thresholds", [])),
                      pr_recall=list(pr.get("recall", [])),
                      pr_precision=list(pr.get("precision", [])))
