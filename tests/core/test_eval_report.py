"""Reading eval reports and picking a live threshold for a target error rate."""
from __future__ import annotations

import json

import numpy as np
import pytest

from fasdesk.core.models import eval_report
from training import metrics as M
from training.evaluate import build_report


def _report(p_real, labels):
    """A real report from training.evaluate for given p_real scores (class 0 real)."""
    p = np.clip(np.asarray(p_real, np.float64), 1e-9, 1 - 1e-9)
    logits = np.stack([np.log(p), np.log1p(-p)], axis=1)
    data = build_report(logits, np.asarray(labels), ["real", "spoof"], [0 if y == 0 else 7 for y in labels])
    return eval_report.from_dict(json.loads(json.dumps(data)))  # through JSON, as on disk


# Five real faces and five attacks, interleaved; a face is accepted as real when
# p_real >= threshold. Worked out by hand:
#  - BPCER <= 20%: at most one real face rejected, so the threshold is at most 0.6 (the
#    second-lowest real); every threshold in (0.4, 0.6] lets the same two attacks through
#    (0.65, 0.95), the fewest possible: the gap's middle, 0.5, rejects only the real 0.3.
#  - BPCER 0: every real accepted, threshold at most 0.3; above the attack at 0.2: 0.25,
#    three attacks (0.4, 0.65, 0.95) get through.
#  - APCER <= 20%: at most one attack accepted (0.95), so above 0.65; the fewest real
#    faces rejected with the lowest real above it, 0.7: 0.675 rejects 0.3 and 0.6.
#  - APCER 0: above 0.95, and no real face is: the gap (0.95, 1], middle 0.975.
HAND_REAL = [0.3, 0.6, 0.7, 0.8, 0.9]
HAND_ATTACK = [0.1, 0.2, 0.4, 0.65, 0.95]


@pytest.mark.parametrize("kind, target, gap, apcer, bpcer", [
    ("bpcer", 0.2, (0.4, 0.6), 0.4, 0.2),
    ("bpcer", 0.0, (0.2, 0.3), 0.6, 0.0),
    ("apcer", 0.2, (0.65, 0.7), 0.2, 0.4),
    ("apcer", 0.0, (0.95, 1.0), 0.0, 1.0),
])
def test_the_report_picks_the_threshold_worked_out_by_hand(kind, target, gap, apcer, bpcer):
    report = _report(HAND_REAL + HAND_ATTACK, [0] * 5 + [1] * 5)
    point = report.threshold_for(kind, target)
    assert point.gap == pytest.approx(gap, abs=1e-9)
    assert point.threshold == pytest.approx(sum(gap) / 2, abs=1e-9)
    assert (point.apcer, point.bpcer) == pytest.approx((apcer, bpcer))
    assert (point.n_real, point.n_attack) == (5, 5)
    if target:  # a 20% target needs 3 / 0.2 = 15 faces of its class to rely on (rule of three)
        faces = "real" if kind == "bpcer" else "attack"
        assert point.warning.startswith(f"5 {faces} faces") and "15 or more" in point.warning


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("target", [0.0, 0.02, 0.1])
def test_the_picked_threshold_holds_its_target_on_the_reports_scores(seed, target):
    """Checked with training's own error count (training.metrics), not the picking code."""
    rng = np.random.default_rng(seed)
    labels = np.array([0] * 120 + [1] * 150)
    p_real = np.round(np.concatenate([rng.beta(5, 2, 120), rng.beta(2, 4, 150)]), 3)
    report = _report(p_real, labels)
    for kind in ("bpcer", "apcer"):
        point = report.threshold_for(kind, target)
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
