"""Human names: a profile is named after its camera or file, a calibrated model after its
profile and day; files and ids stay slugs, people see the names."""
from __future__ import annotations

import json
import time

from fasdesk.app.calibration import fine_tune_plan
from fasdesk.core.calibration import session as C
from fasdesk.core.calibration.naming import default_profile_name, model_display_name
from fasdesk.core.live.sources import SourceSpec
from fasdesk.core.models import cards, registry


def test_default_profile_names(tmp_path):
    assert default_profile_name(SourceSpec("camera", "0"), "Integrated Webcam") == "Integrated Webcam"
    assert default_profile_name(SourceSpec("camera", "2"), None) == "Camera 2"
    assert default_profile_name(SourceSpec("camera", "1"), "  ") == "Camera 1"
    assert default_profile_name(SourceSpec("video", str(tmp_path / "front door.avi"))) == "front door"
    assert default_profile_name(SourceSpec("video", "/videos/hall.cam.mp4")) == "hall.cam"
    assert default_profile_name(SourceSpec("image", "/p/desk.JPG")) == "desk"
    assert default_profile_name(SourceSpec("folder", "/data/Kiosk photos/")) == "Kiosk photos"


def test_model_display_name_is_profile_and_day():
    when = time.struct_time((2026, 12, 3, 7, 51, 14, 3, 337, 0))
    assert model_display_name("Front door", when) == "Front door, calibrated 3 Dec"
    assert model_display_name("", when) == "Camera, calibrated 3 Dec"
    assert model_display_name("Hall").startswith("Hall, calibrated ")


def test_display_name_from_entry_card_or_id(tmp_path, monkeypatch):
    monkeypatch.setenv("FASDESK_MODELS_DIR", str(tmp_path))
    model = tmp_path / "calibrated-front-door-avi-20261203-075114.onnx"
    model.write_bytes(b"not really a model")
    entry = registry.ModelEntry(id=model.stem, kind="liveness", file=model.name)
    assert cards.display_name(entry) == model.stem  # no name anywhere: the id
    model.with_name(model.stem + ".card.json").write_text(
        json.dumps({"display_name": "Front door, calibrated 3 Dec"}))
    assert cards.display_name(entry) == "Front door, calibrated 3 Dec"
    named = registry.ModelEntry(id=model.stem, kind="liveness", file=model.name,
                                extra={"display_name": "Hall, calibrated 1 Dec"})
    assert cards.display_name(named) == "Hall, calibrated 1 Dec"
    assert cards.display_name(None, tmp_path / "x.onnx") == "x.onnx"


def test_a_fine_tune_names_its_model_after_the_profile(tmp_path, checkpoint):
    session = C.Session.create("front door", tmp_path)
    for stage in (C.REAL, "replay"):
        folder = session.dataset / ("real" if stage == C.REAL else f"spoof/{stage}")
        folder.mkdir(parents=True)
        samples = []
        for i in range(4):
            (folder / f"{stage}_{i}.jpg").write_bytes(b"jpg")
            (folder / f"{stage}_{i}_BB.txt").write_text("0 0 9 9")
            samples.append(C.Sample(f"{folder.relative_to(session.root).as_posix()}/{stage}_{i}.jpg",
                                    i, i / 4, [0, 0, 9, 9]))
        session.recordings.append(C.Recording(stage=stage, source="x", duration=1.0,
                                              samples=samples))
    plan = fine_tune_plan(session, checkpoint.with_name("best_model.onnx"), "Front door")
    assert plan.model_id.startswith("calibrated-front-door-")  # the file stays a slug
    day = time.localtime()
    assert plan.display_name == f"Front door, calibrated {day.tm_mday} {time.strftime('%b', day)}"
