"""Reading eval reports and picking a live threshold for a target error rate."""
from __future__ import annotations

import json

import numpy as np
import pytest

from fasdesk.core.models import eval_report
from fasdesk.core.decision.thresholds import threshold_for_target
from training import metrics as M
from training.evaluate import build_report


def _report(p_real, labels):
    """A real report from training.evaluate for given p_real scores (class 0 real)."""
    p = np.clip(np.asarray(p_real, np.float64), 1e-9, 1 - 1e-9)
    logits = np.stack([np.log(p), np.log1p(-p)], axis=1)
    data = build_report(logits, np.asarray(labels), ["real", "spoof"], [0 if y == 0 else 7 for y in labels])
    return eval_report.from_dict(json.loads(json.dumps(data)))  # through JSON, as on disk


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("target", [0.0, 0.02, 0.1])
def test_the_report_picks_with_the_one_function_from_its_raw_scores(seed, target):
    rng = np.random.default_rng(seed)
    labels = np.array([0] * 120 + [1] * 150)
    p_real = np.round(np.concatenate([rng.beta(5, 2, 120), rng.beta(2, 4, 150)]), 3)
    report = _report(p_real, labels)
    p = np.clip(p_real, 1e-9, 1 - 1e-9)  # what the report's logits give back
    for kind in ("bpcer", "apcer"):
        point = report.threshold_for(kind, target)
        direct = threshold_for_target(labels == 1, p, kind, target)
        assert point.threshold == pytest.approx(direct.threshold, abs=1e-12)
        assert (point.apcer, point.bpcer, point.warning) == (direct.apcer, direct.bpcer, direct.warning)
        errors = M.pad_errors(labels == 1, p_real, point.threshold)
        assert errors[kind] <= target + 1e-12
        assert (errors["apcer"], errors["bpcer"]) == pytest.approx((point.apcer, point.bpcer))


def test_separable_scores_get_the_middle_of_the_gap():
    report = _report([0.9, 0.8, 0.95, 0.1, 0.2, 0.05], [0, 0, 0, 1, 1, 1])
    point = report.threshold_for("bpcer", 0.05)
    assert (point.apcer, point.bpcer) == (0.0, 0.0)
    assert point.threshold == pytest.approx(0.5)  # between the attack at 0.2 and the real at 0.8
    assert "only 3 real faces" in point.warning


def test_a_report_without_raw_scores_picks_nothing():
    report = _report([0.9, 0.1], [0, 1])
    del report.data["scores"]
    assert report.threshold_for("bpcer", 0.05) is None


def test_metric_rows_and_matrix(tmp_path):
    report = _report([0.9, 0.4, 0.3, 0.6], [0, 0, 1, 1])
    path = tmp_path / "r.json"
    path.write_text(json.dumps(report.data))
    loaded = eval_report.load(path)
    assert loaded.confusion == [[1, 1], [1, 1]] and loaded.class_names == ["real", "spoof"]
    rows = dict(loaded.metric_rows())
    assert rows["accuracy"] == "50.00%" and rows["APCER @ 0.50"] == "50.00%"
    assert rows["  accuracy: real (2)"] == "50.00%"


def test_unreadable_reports_say_why(tmp_path):
    with pytest.raises(eval_report.ReportError, match="run Evaluate first"):
        eval_report.load(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(eval_report.ReportError, match="not a readable"):
        eval_report.load(tmp_path / "bad.json")
    (tmp_path / "other.json").write_text('{"a": 1}')
    with pytest.raises(eval_report.ReportError, match="no confusion_matrix"):
        eval_report.load(tmp_path / "other.json")
