"""The decision module: scores to labels, by hand-computed cases (no models needed)."""
from __future__ import annotations

import math

import pytest

from fasdesk.core.decision import verdict as D
from fasdesk.core.inference.pipeline import FaceResult
from fasdesk.core.images.report import image_verdict, relabelled


def test_defaults():
    assert D.DEFAULT_THRESHOLD == 0.5 and D.DEFAULT_CONFIRM_FRAMES == 3


@pytest.mark.parametrize("p_real, threshold, expected", [
    (0.5, 0.5, "real"),        # reaching the threshold is real
    (0.4999, 0.5, "spoof"),
    (0.0, 0.0, "real"),        # threshold 0: everything with a score is real
    (0.9999, 1.0, "spoof"),    # threshold 1: only certainty is real
    (1.0, 1.0, "real"),
    (0.00044, 0.00044, "real"),  # an exact calibrated threshold is not rounded
    (0.00043, 0.00044, "spoof"),
])
def test_verdict(p_real, threshold, expected):
    assert D.verdict(p_real, threshold) == expected
    assert D.label(p_real, threshold) == expected


def test_a_face_without_a_score_is_unsure_at_any_threshold():
    assert {D.label(None, t) for t in (0.0, 0.5, 1.0)} == {"unsure"}


@pytest.mark.parametrize("recent, threshold, n, expected", [
    ([0.9, 0.8, 0.7], 0.5, 3, True),
    ([0.9, 0.8, 0.7], 0.75, 3, False),    # the last one is below
    ([0.1, 0.9, 0.8, 0.7], 0.5, 3, True),  # only the last n count
    ([0.9, 0.8], 0.5, 3, False),          # not seen n times yet
    ([0.9, None, 0.8], 0.5, 3, False),    # an unjudged observation breaks the run
    ([0.9, None, 0.8, 0.7], 0.5, 2, True),
    ([], 0.5, 0, True),                   # n = 0 asks for nothing
])
def test_confirmation_needs_the_last_n_observations_real(recent, threshold, n, expected):
    assert D.is_confirmed(recent, threshold, n) is expected


def test_clamp_threshold():
    assert [D.clamp_threshold(v) for v in (-0.2, 0.25, 1.5)] == [0.0, 0.25, 1.0]
    with pytest.raises(ValueError):
        D.clamp_threshold(math.nan)


def test_relabel_uses_the_stored_score_and_the_threshold_given():
    faces = [FaceResult(box=(0, 0, 80, 80), detector_score=0.9, p_real=0.7, label="real"),
             FaceResult(box=(0, 0, 80, 80), detector_score=0.9, p_real=0.2, label="spoof"),
             FaceResult(box=(0, 0, 30, 30), detector_score=0.9, p_real=None, label="unsure",
                        reason="face too small")]
    assert [f.label for f in relabelled(faces, 0.1)] == ["real", "real", "unsure"]
    assert [f.label for f in relabelled(faces, 0.8)] == ["spoof", "spoof", "unsure"]
    assert faces[0].label == "real"  # copies: the results themselves are unchanged
    # One word per image: any spoof face makes it spoof; unjudged faces alone, unsure.
    assert image_verdict(f.label for f in relabelled(faces, 0.1)) == "real"
    assert image_verdict(f.label for f in relabelled(faces, 0.5)) == "spoof"
    assert image_verdict(["unsure"]) == "unsure" and image_verdict([]) == "no face"
