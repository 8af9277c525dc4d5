"""Reading an evaluation report (`python -m training eval --out REPORT.json`) for display,
and picking a live threshold for a target error rate from its ROC curve. No Qt, no torch.

Report keys are documented in training/evaluate.py. The ROC curve there treats an attack
as the positive class with score p_spoof = 1 - p_real: x = BPCER (real faces rejected),
y = 1 - APCER (attacks caught), one point per threshold on p_spoof ("attack if p_spoof >=
t"). The live view accepts a face as real when p_real >= threshold, so a curve point with
p_spoof threshold s corresponds to the live threshold just above 1 - s.
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

# Curve thresholds are stored rounded to 6 decimals; stay just above 1 - s.
_ABOVE = 1e-6


class ReportError(Exception):
    """A report file that cannot be shown; one line for the user."""


@dataclass(frozen=True)
class OperatingPoint:
    threshold: float  # on p_real: real when p_real >= threshold
    apcer: float
    bpcer: float


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
        d = self.data
        rows = [("images", str(d.get("n", ""))),
                ("accuracy", _pct(d.get("accuracy")))]
        for name, value in (d.get("per_class_accuracy") or {}).items():
            count = (d.get("counts") or {}).get(name)
            rows.append((f"  accuracy: {name}" + (f" ({count})" if count is not None else ""),
                         _pct(value)))
        rows += [("ROC-AUC", _num(d.get("roc_auc"))),
                 ("average precision", _num(d.get("average_precision"))),
                 (f"APCER @ {_num(d.get('threshold'), 2)}", _pct(d.get("apcer"))),
                 (f"BPCER @ {_num(d.get('threshold'), 2)}", _pct(d.get("bpcer"))),
                 (f"ACER @ {_num(d.get('threshold'), 2)}", _pct(d.get("acer"))),
                 ("EER", _pct(d.get("eer")))]
        for name, value in (d.get("apcer_per_type") or {}).items():
            rows.append((f"  APCER: {name}", _pct(value)))
        return rows

    def threshold_for(self, kind: str, target: float) -> OperatingPoint | None:
        """The live threshold meeting `target` for kind "bpcer" or "apcer", best on the other.

        For BPCER <= target: of the curve points that reject at most that share of real
        faces, the one that catches the most attacks (and vice versa for APCER). None when
        no point meets the target.
        """
        points = [(b, 1.0 - d, s) for b, d, s in
                  zip(self.roc_bpcer, self.roc_detect, self.roc_thresholds)
                  if b is not None and d is not None]
        if kind == "bpcer":
            ok = [p for p in points if p[0] <= target + 1e-12]
            best = min(ok, key=lambda p: (p[1], p[0]), default=None)
        elif kind == "apcer":
            ok = [p for p in points if p[1] <= target + 1e-12]
            best = min(ok, key=lambda p: (p[0], p[1]), default=None)
        else:
            raise ValueError(f"kind must be 'bpcer' or 'apcer', not {kind!r}")
        if best is None:
            return None
        bpcer, apcer, s = best
        # s None/inf: nothing is called an attack (every face accepted), live threshold 0.
        threshold = 0.0 if s is None or not math.isfinite(s) else min(1.0, max(0.0, 1.0 - s + _ABOVE))
        return OperatingPoint(threshold=threshold, apcer=apcer, bpcer=bpcer)


def _pct(value) -> str:
    return "n/a" if value is None else f"{100.0 * float(value):.2f}%"


def _num(value, digits: int = 4) -> str:
    return "n/a" if value is None else f"{float(value):.{digits}f}"


def load(path: str | os.PathLike) -> EvalReport:
    """Read a report file. Raises ReportError."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
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
