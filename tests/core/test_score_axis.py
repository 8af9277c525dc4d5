"""The histograms' log-odds axis: scores near 0 and 1 spread out, extremes clipped into
the end bins, one scale for the reports before and after fine-tuning."""
from __future__ import annotations

import math

import numpy as np
import pytest

from fasdesk.core.calibration import score_axis as A
from fasdesk.core.calibration import session as C


def test_scores_near_the_ends_spread_out():
    # ln(p / (1 - p)): 0.5 -> 0, 0.9 -> ln 9 = 2.197, 0.99 -> ln 99 = 4.595; 0 and 1 clip to -+9.
    assert A.to_axis([0.5, 0.9, 0.99, 0.1, 1.0, 0.0]) == pytest.approx(
        [0.0, 2.1972246, 4.5951199, -2.1972246, 9.0, -9.0])
    assert A.from_axis(A.to_axis([0.2, 0.7])) == pytest.approx([0.2, 0.7])
    edges = A.edges()
    assert len(edges) == 37 and edges[0] == -9 and edges[-1] == 9 and edges[1] - edges[0] == 0.5


def test_histogram_counts_by_hand():
    counts = A.histogram([0.5, 0.9, 0.99, 1.0, 0.0, 0.1, float("nan")])
    expected = [0] * 36
    # bins of 0.5 from -9: 0 -> [0, 0.5) = 18; 2.197 -> [2, 2.5) = 22; 4.595 -> [4.5, 5) = 27;
    # 9 (clipped 1.0) -> the last bin, 35; -9 (clipped 0.0) -> 0; -2.197 -> [-2.5, -2) = 13.
    for i in (18, 22, 27, 35, 0, 13):
        expected[i] += 1
    assert counts == expected
    # On the old linear axis of 20 bins, 0.96, 0.99 and 1.0 share the last bin; here not.
    assert np.histogram([0.96, 0.99, 1.0], bins=np.linspace(0, 1, 21))[0][-1] == 3
    assert sum(n > 0 for n in A.histogram([0.96, 0.99, 1.0])) == 3


def test_one_view_for_before_and_after():
    before = A.histograms({"real": [0.5, 0.9], "replay": [0.6]})
    after = A.histograms({"real": [0.99, 0.999], "replay": [0.01, 0.0101, 0.02]})
    view = A.shared_view([before, after], thresholds=[0.7, 0.95])
    # Lowest data: 0.01 -> -4.595 in [-5, -4.5); highest: 0.999 -> 6.907 in [6.5, 7).
    assert (view.lo, view.hi) == (-5.0, 7.0)
    assert (view.first, view.last) == (8, 32)  # bins from -5 to 7
    assert view.top == 2  # 0.01 and 0.0101 (-4.595, -4.585) share the bin [-5, -4.5)
    assert [label for _, label in view.ticks] == ["0.01", "0.1", "0.5", "0.9", "0.99", "0.999"]
    assert view.ticks[0][0] == pytest.approx(-math.log(99))
    assert sum(view.clip(after["replay"])) == 3 and len(view.clip(after["real"])) == 24


def test_the_threshold_is_always_on_the_axis_and_the_ends_are_labelled():
    view = A.shared_view([A.histograms({"real": [0.5]})], thresholds=[0.9999])
    assert view.lo == 0.0 and view.hi == 9.0 and A.threshold_position(0.9999) == pytest.approx(9.0, abs=0.22)
    assert view.ticks[-1] == (9.0, "1")
    empty = A.shared_view([{}])
    assert (empty.lo, empty.hi, empty.top) == (-9.0, 9.0, 0) and empty.ticks[0] == (-9.0, "0")


def test_the_report_carries_the_log_odds_histogram(tmp_path):
    session = C.Session.create("axis", tmp_path)
    for stage in (C.REAL, "replay"):
        session.recordings.append(C.Recording(
            stage=stage, source="x", duration=10.0,
            samples=[C.Sample(f"f{i}", i, i / 10, [0, 0, 9, 9]) for i in range(100)]))
    scores = {C.REAL: np.full(100, 0.999), "replay": np.full(100, 0.02)}
    report = C.evaluate(session, scores, target_bpcer=0.05)
    hist = report["histogram_log_odds"]
    assert hist["edges"] == pytest.approx(A.edges().tolist())
    shown = sum(report["histogram"]["counts"][C.REAL])  # the same faces as the linear one
    assert hist["counts"][C.REAL][31] == shown  # ln 999 = 6.907 in [6.5, 7)
    assert hist["counts"]["replay"][10] == sum(report["histogram"]["counts"]["replay"])  # -3.89
    assert hist["threshold_at"] == pytest.approx(A.threshold_position(report["threshold"]), abs=1e-4)
