"""The calibration flow of fasdesk.app (no Qt), end to end on the calibration media:
record the real faces and an attack, score, pick the threshold, fine-tune with the
training backend, compare and save the profile; and the one backend runner."""
from __future__ import annotations

import json

import pytest

from calibration_media import write_recording
from fasdesk.app.backend import BackendError, BackendProcess
from fasdesk.app.calibration import CalibrationError, CalibrationFlow, FlowSettings
from fasdesk.core.calibration import session as C
from fasdesk.core.calibration.profiles import find_profile
from fasdesk.core.models import registry
from fasdesk.core.models.cards import ModelCard
from fasdesk.core.inference.pipeline import build_pipeline
from training import layout

FRAMES = 100  # per recording: enough faces to pick a 5% BPCER threshold on a quarter


@pytest.fixture(scope="module")
def videos(tmp_path_factory, samples_dir):
    folder = tmp_path_factory.mktemp("flow")
    return (write_recording(folder / "door.avi", samples_dir, FRAMES),
            write_recording(folder / "phone.avi", samples_dir, FRAMES, attack=True))


@pytest.mark.e2e
def test_record_score_pick_fine_tune_compare_save(videos, fp32_model, detector_model,
                                                  checkpoint, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    real, phone = videos
    flow = CalibrationFlow("door", str(fp32_model), fp32_model, FlowSettings(every=1),
                           confirm_frames=4)
    with pytest.raises(CalibrationError, match="score the recordings first"):
        flow.conclude({})
    built = []
    factory = lambda: built.append(1) or build_pipeline(fp32_model, detector_model, live=True)  # noqa: E731
    seen = []
    flow.record(C.REAL, str(real), factory, on_frame=lambda frame, status: seen.append(status))
    flow.record("replay", str(phone), factory)
    assert len(built) == 1  # one pipeline for every stage
    assert seen[-1].position == FRAMES and seen[-1].saved == 96
    assert [r.stage for r in C.Session.load(flow.session.root).recordings] == ["real", "replay"]

    before = flow.score()
    assert before is flow.before and before["needs_fine_tune"]  # the phone passes
    assert before["held_out"]["apcer"] > 0.1 and before["picked_on"]["segments"] == ["train", "pick"]
    # A new target: the report again from the stored scores, no scoring.
    looser = flow.evaluate(target_bpcer=0.2)
    assert looser["target_bpcer"] == 0.2 and looser["threshold"] >= before["threshold"]
    flow.evaluate(target_bpcer=0.05)

    steps, events = [], []
    after = flow.fine_tune("door", epochs=1, on_step=lambda *s: steps.append(s),
                           on_event=events.append)
    assert [s[2] for s in steps] == ["Preparing the face crops", "Fine-tuning",
                                     "Exporting the model", "Scoring the fine-tuned model"]
    assert {e["event"] for e in events} >= {"start", "progress", "done"}
    assert after is flow.after and after["picked_on"]["segments"] == ["pick"]
    plan = flow.plan
    assert plan.steps[1][1] == layout.train_args(plan.prepared, plan.run, init=checkpoint,
                                                 device="auto", epochs=1)
    tuned = registry.get_entry(plan.model_id)
    assert tuned.extra["source"] == "calibration" and tuned.extra["threshold"] == after["threshold"]
    card = ModelCard.read(plan.model_out)
    assert card.threshold_value == after["threshold"] and card.threshold["from"] == "calibration"
    assert flow.tuned_model["id"] == plan.model_id

    result, profile, path = flow.save({"kind": "video", "target": str(real), "name": ""}, "door")
    assert find_profile("door").path == path and json.loads(path.read_text())["name"] == "door"
    assert result["profile"] == {"name": "door", "path": str(path)}
    assert result["chosen"]["fine_tuned"] == flow.kept == profile.fine_tuned
    chosen = after if flow.kept else before
    assert profile.threshold == chosen["threshold"] and profile.confirm_frames == 4
    assert profile.model == (plan.model_id if flow.kept else str(fp32_model))
    assert C.Session.load(flow.session.root).reports["after"]["threshold"] == after["threshold"]


def test_the_backend_runner_says_why_a_run_failed_in_one_line(tmp_path):
    events, lines = [], []
    run = BackendProcess(["prep", tmp_path / "missing", tmp_path / "out"], events.append,
                         lines.append)
    with pytest.raises(BackendError) as caught:
        run.run()
    message = str(caught.value)
    assert "\n" not in message and not caught.value.cancelled
    assert events[-1]["event"] == "error" and message == events[-1]["message"]
    assert any(message in line for line in lines)  # the same line on stderr, kept in the tail
    assert run.command[-1] == "--events"


def test_a_stopped_run_is_cancelled_not_failed(tmp_path):
    run = BackendProcess(["prep", tmp_path, tmp_path / "out"])
    run.stop()  # before it starts: it never does
    with pytest.raises(BackendError) as caught:
        run.run()
    assert caught.value.cancelled and run.process is None


def test_steps_out_of_order_are_one_message(fp32_model):
    flow = CalibrationFlow("x", None, fp32_model)
    with pytest.raises(CalibrationError, match="record the real stage first"):
        flow.fine_tune("x")
    with pytest.raises(CalibrationError, match="give the profile a name"):
        flow.save({}, " ")
