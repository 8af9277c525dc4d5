"""training.metrics against cases computed by hand (see the comments for the arithmetic)."""
import json

import numpy as np
import pytest

from training import metrics as M
from training.evaluate import build_report

# 3 bona fide (real) and 4 attack presentations, scored by p_real.
REAL = [0.9, 0.8, 0.4]
ATTACK = [0.7, 0.3, 0.2, 0.1]
P_REAL = np.array(REAL + ATTACK)
IS_ATTACK = np.array([False] * 3 + [True] * 4)
P_SPOOF = 1 - P_REAL


def test_pad_errors_at_threshold():
    e = M.pad_errors(IS_ATTACK, P_REAL, 0.5, np.array(["r"] * 3 + ["print", "print", "replay", "replay"]))
    assert e["apcer"] == pytest.approx(1 / 4)  # the 0.7 attack is accepted
    assert e["bpcer"] == pytest.approx(1 / 3)  # the 0.4 real face is rejected
    assert e["acer"] == pytest.approx((1 / 4 + 1 / 3) / 2)
    assert e["apcer_per_type"] == {"print": 0.5, "replay": 0.0}
    assert e["apcer_max"] == 0.5


def test_threshold_at_exactly_the_score_accepts():
    e = M.pad_errors(IS_ATTACK, P_REAL, 0.7)
    assert e["apcer"] == pytest.approx(1 / 4) and e["bpcer"] == pytest.approx(1 / 3)


def test_roc_auc_counts_pairs():
    # attack p_spoof 0.3 beats 2 of 3 real (0.1, 0.2); 0.7, 0.8, 0.9 beat all 3: 11/12
    assert M.roc_auc(IS_ATTACK, P_SPOOF) == pytest.approx(11 / 12)
    assert M.roc_auc([False, True], [0.5, 0.5]) == pytest.approx(0.5)  # a tie counts half
    assert M.roc_auc([True, True], [0.1, 0.2]) is None


def test_average_precision_stepwise():
    # ranked by p_spoof: A A A R A R R -> precision at each attack 1, 1, 1, 4/5
    assert M.average_precision(IS_ATTACK, P_SPOOF) == pytest.approx((1 + 1 + 1 + 0.8) / 4)


def test_roc_curve_points():
    roc = M.roc_curve(IS_ATTACK, P_SPOOF)
    np.testing.assert_allclose(roc["fpr"], [0, 0, 0, 0, 1 / 3, 1 / 3, 2 / 3, 1])
    np.testing.assert_allclose(roc["tpr"], [0, .25, .5, .75, .75, 1, 1, 1])
    pr = M.pr_curve(IS_ATTACK, P_SPOOF)
    np.testing.assert_allclose(pr["precision"][:5], [1, 1, 1, 3 / 4, 4 / 5])
    np.testing.assert_allclose(pr["recall"][-1], 1.0)


def test_operating_points_are_the_thresholds_worked_out_by_hand():
    r = build_report(np.log(np.stack([P_REAL, 1 - P_REAL], axis=1)), IS_ATTACK.astype(int),
                     ["real", "spoof"], [0] * 3 + [7] * 4, target_bpcer=0.0, target_apcer=0.25)
    # BPCER 0: every real face accepted, so at most 0.4; above the attack at 0.3: 0.35,
    # which lets the 0.7 attack through. APCER 25%: one attack (0.7) may pass, so above
    # 0.3; the fewest real faces rejected with 0.4 accepted: again 0.35.
    bpcer, apcer = r["operating_points"]["bpcer"], r["operating_points"]["apcer"]
    assert (bpcer["threshold"], bpcer["apcer"], bpcer["bpcer"]) == pytest.approx((0.35, 0.25, 0.0))
    assert (apcer["threshold"], apcer["apcer"], apcer["bpcer"]) == pytest.approx((0.35, 0.25, 0.0))
    # The raw scores travel with the report, so the app can pick for other targets.
    assert r["scores"]["p_real"] == pytest.approx(P_REAL.tolist())
    assert r["scores"]["attack_type"] == [None] * 3 + ["PC screen"] * 4


def test_equal_error_rate():
    # t = 0.7: APCER 1/4, BPCER 1/3 is the closest pair
    eer = M.equal_error_rate(IS_ATTACK, P_REAL)
    assert eer["threshold"] == pytest.approx(0.7)
    assert eer["eer"] == pytest.approx((1 / 4 + 1 / 3) / 2)


def test_confusion_matrix_and_per_class():
    cm = M.confusion_matrix([0, 0, 1, 2, 2], [0, 1, 1, 2, 0], 3)
    assert cm.tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 1]]
    assert M.per_class_accuracy(cm) == [0.5, 1.0, 0.5]
    assert M.per_class_accuracy(np.zeros((2, 2), int)) == [None, None]


def test_report_from_logits_three_classes():
    # p_real from logits; rows: real ok, real rejected -> replay, print ok, replay -> print
    logits = np.log(np.array([[0.8, 0.1, 0.1], [0.3, 0.2, 0.5], [0.1, 0.8, 0.1], [0.2, 0.5, 0.3]]))
    r = build_report(logits, np.array([0, 0, 1, 2]), ["real", "print", "replay"], [0, 0, 1, 7])
    assert r["confusion_matrix"] == [[1, 0, 1], [0, 1, 0], [0, 1, 0]]
    assert r["accuracy"] == pytest.approx(0.5)
    assert r["bpcer"] == pytest.approx(0.5) and r["apcer"] == 0
    assert r["apcer_per_type"] == {"PC screen": 0.0, "photo": 0.0}
    json.dumps(r, allow_nan=False)  # the GUI reads it as JSON


def test_downsample_keeps_ends():
    curve = {"x": np.linspace(0, 1, 2001), "t": np.r_[np.inf, np.zeros(2000)]}
    small = M.downsample_curve(curve, 100)
    assert len(small["x"]) == 100 and small["x"][0] == 0 and small["x"][-1] == 1
    assert small["t"][0] is None
