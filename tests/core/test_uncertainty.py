"""Rates with honest uncertainty: the exact binomial interval, the words the report uses,
and the counts the calibration report carries."""
from __future__ import annotations

import numpy as np
import pytest

from fasdesk.core.calibration import session as C
from fasdesk.core.decision import uncertainty as U


@pytest.mark.parametrize("k, n, low, high", [
    # Values of R's binom.test(k, n)$conf.int (Clopper-Pearson), computed independently.
    (1, 23, 0.0011002, 0.2194866),
    (5, 20, 0.0865715, 0.4910459),
    (10, 100, 0.0490047, 0.1762226),
])
def test_clopper_pearson_matches_known_intervals(k, n, low, high):
    got = U.clopper_pearson(k, n)
    assert got == pytest.approx((low, high), abs=2e-7)


@pytest.mark.parametrize("n", [1, 23, 60, 300, 5000])
def test_no_error_and_all_errors_have_closed_forms(n):
    # k = 0: (1 - p)^n = 0.025 at the upper end; k = n mirrors it.
    assert U.clopper_pearson(0, n) == pytest.approx((0.0, 1 - 0.025 ** (1 / n)), abs=1e-9)
    assert U.clopper_pearson(n, n) == pytest.approx((0.025 ** (1 / n), 1.0), abs=1e-9)


def test_zero_of_sixty_is_about_the_rule_of_three():
    assert U.upper_bound(0, 60) == pytest.approx(0.0596, abs=5e-4)
    assert abs(U.upper_bound(0, 60) - 3 / 60) < 0.011
    assert U.min_count_for_target(0.05) == 60
    assert U.min_count_for_target(0.01) == 300
    with pytest.raises(ValueError):
        U.min_count_for_target(0)
    with pytest.raises(ValueError):
        U.clopper_pearson(3, 2)


def test_the_sentence_gives_counts_and_the_bound():
    text = U.rates_sentence("0.99", (1, 23), [("phone replays", 13, 23)])
    assert text == ("At 0.99: 1 of 23 real people rejected (could be up to 22%), "
                    "13 of 23 phone replays accepted.")
    assert U.count_phrase(0, 0, "real people", "rejected") == "no real people measured"
    assert U.percent(0.0596) == "6%" and U.percent(0.004) == "0.4%"


def test_every_term_has_a_one_sentence_definition():
    for term in ("BPCER", "APCER", "ACER", "EER"):
        text = U.DEFINITIONS[term]
        assert text.startswith(term) and text.count(". ") == 0 and text.endswith(".")


def test_the_calibration_report_gives_k_of_n_with_bounds(tmp_path):
    session = C.Session.create("counts", tmp_path)
    for stage in (C.REAL, "replay", "print"):
        session.recordings.append(C.Recording(
            stage=stage, source="x", duration=10.0,
            samples=[C.Sample(f"f{i}", i, i / 10, [0, 0, 9, 9]) for i in range(100)]))
    rng = np.random.default_rng(1)
    real = rng.uniform(0.3, 1.0, 100)
    scores = {C.REAL: real, "replay": rng.uniform(0.0, 0.6, 100), "print": np.zeros(100)}
    report = C.evaluate(session, scores, target_bpcer=0.05)
    held = report["held_out"]
    segs = C.segments(session.recording(C.REAL))
    held_real = real[[s == "held_out" for s in segs]]
    rejected = int((held_real < report["threshold"]).sum())
    counts = held["counts"]
    assert counts["real"]["n"] == held["n_real"] == len(held_real) == 23
    assert counts["real"]["k"] == rejected
    assert counts["real"]["high"] == pytest.approx(U.upper_bound(rejected, 23), abs=1e-6)
    assert counts["attacks"]["print"] == {"k": 0, "n": 23, "rate": 0.0, "low": 0.0,
                                          "high": pytest.approx(1 - 0.025 ** (1 / 23), abs=1e-6)}
    replay = counts["attacks"]["replay"]
    assert replay["k"] / replay["n"] == pytest.approx(held["apcer_per_type"]["replay"])
    assert report["real_needed"] == 60
    assert f"{rejected} of 23 real people rejected (could be up to" in report["sentence"]
    assert f"{replay['k']} of 23 phone or tablet replays accepted" in report["sentence"]
    assert "0 of 23 printed photos accepted" in report["sentence"]


def test_a_default_recording_length_gives_the_held_out_faces_a_target_needs():
    needed = C.samples_needed(0.05)
    assert needed == 261  # 60 held-out real faces / 0.23 of a recording

    def held_out(n):
        rec = C.Recording(stage=C.REAL, source="x", duration=n / 10,
                          samples=[C.Sample(f"f{i}", i, i / 10, [0, 0, 9, 9]) for i in range(n)])
        return C.segments(rec).count("held_out")

    assert held_out(needed) >= 60 and held_out(needed - 15) < 60
    # A camera at 25 fps keeping one frame in 2: about 21 s, within the default (was 10).
    assert C.seconds_needed(0.05, fps=25, every=2) == pytest.approx(20.88)
    assert C.seconds_needed(0.05, fps=25, every=2) <= C.DEFAULT_SECONDS
    with pytest.raises(ValueError):
        C.seconds_needed(0.05, fps=0)
