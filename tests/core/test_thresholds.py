"""The one threshold function: safe choices, the small-set warning, thresholds kept with
their model, and thresholds shown exactly enough."""
from __future__ import annotations

import json

import numpy as np
import pytest

from fasdesk.core.models import registry
from fasdesk.core.models.cards import model_card_path, stored_threshold
from fasdesk.core.decision.thresholds import (equal_error_rate, format_threshold,
                                     pad_errors, support_counts,
                                     threshold_for_target)

# 3 real and 4 attack presentations, scored by p_real (the arithmetic is in the comments).
REAL = [0.9, 0.8, 0.4]
ATTACK = [0.7, 0.3, 0.2, 0.1]
P_REAL = np.array(REAL + ATTACK)
IS_ATTACK = np.array([False] * 3 + [True] * 4)


@pytest.mark.parametrize("kind, target, threshold, apcer, bpcer, gap", [
    # Reject no real face: every threshold up to 0.4 does; the fewest attacks pass above
    # 0.3 (only the 0.7 one); the empty gap is (0.3, 0.4], its middle 0.35.
    ("bpcer", 0.0, 0.35, 0.25, 0.0, (0.3, 0.4)),
    # May reject one of three: up to 0.8, where no attack passes; gap (0.7, 0.8].
    ("bpcer", 0.34, 0.75, 0.0, 1 / 3, (0.7, 0.8)),
    # Let no attack through: above 0.7; the fewest real rejected up to 0.8.
    ("apcer", 0.0, 0.75, 0.0, 1 / 3, (0.7, 0.8)),
    # May let one of four through: above 0.3; no real face rejected up to 0.4.
    ("apcer", 0.25, 0.35, 0.25, 0.0, (0.3, 0.4)),
])
def test_hand_computed_choices(kind, target, threshold, apcer, bpcer, gap):
    choice = threshold_for_target(IS_ATTACK, P_REAL, kind, target)
    assert choice.threshold == pytest.approx(threshold)
    assert (choice.apcer, choice.bpcer) == pytest.approx((apcer, bpcer))
    assert choice.gap == pytest.approx(gap)
    assert (choice.n_real, choice.n_attack) == (3, 4)


def test_small_separated_set_gets_a_safe_threshold_and_a_warning():
    """Issue 15: on a small, perfectly separated set, 'BPCER <= 1%' picked 4.4e-4, the
    highest attack score, and a printed photo scoring a little above it passed as real."""
    rng = np.random.default_rng(0)
    real = rng.uniform(0.93, 0.999, 30)
    attack = np.concatenate([rng.uniform(1e-5, 4e-4, 29), [4.4e-4]])
    is_attack = np.r_[np.zeros(30, bool), np.ones(30, bool)]
    choice = threshold_for_target(is_attack, np.r_[real, attack], "bpcer", 0.01)
    assert choice.threshold == pytest.approx((4.4e-4 + real.min()) / 2)
    assert (choice.apcer, choice.bpcer) == (0.0, 0.0)
    # A new attack scoring ten times the highest one seen is still rejected.
    assert 4.4e-3 < choice.threshold
    assert choice.warning.startswith("only 30 real faces")
    assert "300 or more" in choice.warning
    assert support_counts(0.01) == (100, 300)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("kind", ["bpcer", "apcer"])
@pytest.mark.parametrize("target", [0.0, 0.05, 0.2])
def test_the_choice_meets_the_target_and_nothing_does_better(seed, kind, target):
    rng = np.random.default_rng(seed)
    # Overlapping classes on a 0.01 grid: ties between and within classes.
    p = np.round(np.r_[rng.beta(5, 2, 80), rng.beta(2, 4, 90)], 2)
    y = np.r_[np.zeros(80, bool), np.ones(90, bool)]
    choice = threshold_for_target(y, p, kind, target)
    other = "apcer" if kind == "bpcer" else "bpcer"
    assert getattr(choice, kind) <= target + 1e-12
    # Every threshold that meets the target does no better on the other rate, nor on the
    # target's rate when it ties on the other.
    for t in np.r_[np.unique(p), np.unique(p) + 0.005, 0.0, 1.0]:
        e = pad_errors(y, p, t)
        if e[kind] <= target + 1e-12:
            assert (e[other], e[kind]) >= (getattr(choice, other) - 1e-12, getattr(choice, kind) - 1e-12)
    # Inside an empty gap of scores, at its middle.
    lo, hi = choice.gap
    assert not np.any((p > lo) & (p < hi))
    assert choice.threshold == pytest.approx((lo + hi) / 2)


def test_support_warnings():
    y = np.r_[np.zeros(40, bool), np.ones(40, bool)]
    p = np.r_[np.linspace(0.6, 1, 40), np.linspace(0, 0.4, 40)]
    assert threshold_for_target(y, p, "bpcer", 0.1).warning is None  # 40 >= 3 / 0.1
    rough = threshold_for_target(y, p, "bpcer", 0.05).warning  # 20 <= 40 < 60
    assert rough.startswith("40 real faces support a 5% BPCER target only roughly")
    assert threshold_for_target(y, p, "apcer", 0.01).warning.startswith("only 40 attack faces")
    none = threshold_for_target(y[:40], p[:40], "bpcer", 0.1)
    assert none.warning == "no attack faces: APCER is unknown" and none.apcer is None
    empty = threshold_for_target(y[40:], p[40:], "bpcer", 0.1)
    assert empty.threshold is None and "no real faces" in empty.warning


def test_nan_scores_are_left_out():
    choice = threshold_for_target([False, False, True, True], [0.9, np.nan, 0.1, np.nan], "bpcer", 0.0)
    assert (choice.n_real, choice.n_attack) == (1, 1) and choice.threshold == pytest.approx(0.5)


@pytest.mark.parametrize("value, text", [
    (0.5, "0.50"), (0.73, "0.73"), (4.4e-4, "0.00044"), (0.99957, "0.99957"),
    (0.4237, "0.42"), (0.0421, "0.042"), (0.0, "0.00"), (1.0, "1.00"), (None, "n/a"),
    (1.2e-9, "1.2e-09"),
])
def test_format_threshold(value, text):
    assert format_threshold(value) == text


def test_a_stored_threshold_applies_only_to_its_own_file(tmp_path, fp32_model):
    model = tmp_path / "cam.onnx"
    model.write_bytes(fp32_model.read_bytes())
    card = {"sha256": registry.sha256_of(model), "threshold": {"value": 0.37}}
    model_card_path(model).write_text(json.dumps(card))
    assert stored_threshold(model) == pytest.approx(0.37)
    model.write_bytes(model.read_bytes() + b"\0")  # replaced by another file of that name
    assert stored_threshold(model) is None
    entry = registry.ModelEntry(id="cam", kind="liveness", file=str(model),
                                sha256=registry.sha256_of(model), extra={"threshold": 0.42})
    assert stored_threshold(model, entry) == pytest.approx(0.42)
    model_card_path(model).write_text("{not json")
    assert stored_threshold(model, entry) == pytest.approx(0.42)
    assert stored_threshold(tmp_path / "missing.onnx") is None


def test_a_real_face_scored_zero_is_still_accepted_when_no_attack_is_below_it():
    # Before, the threshold became the smallest float above 0 and rejected that face.
    choice = threshold_for_target(np.array([True, False]), np.array([0.5, 0.0]), "bpcer", 0.05)
    assert choice.threshold == 0.0 and choice.bpcer == 0.0


def test_equal_error_rate_of_a_large_evaluation_set():
    # 200,000 scores: a candidates x scores table would need 40 GB.
    rng = np.random.default_rng(3)
    is_attack = rng.random(200_000) < 0.4
    p_real = np.where(is_attack, rng.uniform(0.0, 0.6, is_attack.size),
                      rng.uniform(0.4, 1.0, is_attack.size))
    eer = equal_error_rate(is_attack, p_real)
    # Overlap on [0.4, 0.6]: the rates cross at 0.5, each about a sixth.
    assert eer["threshold"] == pytest.approx(0.5, abs=0.01)
    assert eer["eer"] == pytest.approx(1 / 6, abs=0.01)
