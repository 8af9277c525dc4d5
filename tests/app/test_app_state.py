"""AppState without Qt: what it derives, what it announces, what it saves (real models)."""
from __future__ import annotations

import json
import shutil

import pytest

from fasdesk.app.state import AppState
from fasdesk.core.calibration.profiles import Profile, save_profile
from fasdesk.core.decision.verdict import DEFAULT_CONFIRM_FRAMES, DEFAULT_THRESHOLD
from fasdesk.core.io.settings import Settings, load_settings
from fasdesk.core.live.sources import SourceSpec
from fasdesk.core.models import registry


class Events:
    """Every event of a state, in order, as (name, value)."""

    NAMES = ("threshold_changed", "confirm_frames_changed", "model_changed", "model_reloaded",
             "profile_changed", "setting_changed", "notice")

    def __init__(self, state: AppState):
        self.seen: list[tuple] = []
        for name in self.NAMES:
            getattr(state, name).connect(lambda *args, name=name: self.seen.append((name, *args)))

    def names(self) -> list[str]:
        return [e[0] for e in self.seen]

    def clear(self) -> None:
        self.seen.clear()


@pytest.fixture
def settings_file(tmp_path):
    return tmp_path / "settings.json"


def state_with(settings_file, **values) -> AppState:
    return AppState(Settings(**values), settings_file=settings_file)


def desk_profile(folder, threshold=0.42, confirm_frames=2, model=None, sha=None) -> Profile:
    model = model or registry.DEFAULT_LIVENESS
    path = registry.resolve(model, kind="liveness")
    return Profile(name="desk", source={"kind": "folder", "target": str(folder), "name": ""},
                   model=model, model_sha256=sha or registry.file_sha256(path),
                   threshold=threshold, confirm_frames=confirm_frames)


def test_without_a_profile_the_values_are_the_users(settings_file):
    state = state_with(settings_file, threshold=0.7, confirm_frames=5, model="")
    assert (state.threshold, state.confirm_frames, state.model) == (0.7, 5, "")
    assert state.profile is None
    assert AppState(Settings(), save=False).threshold == DEFAULT_THRESHOLD == 0.5
    assert AppState(Settings(), save=False).confirm_frames == DEFAULT_CONFIRM_FRAMES == 3


def test_a_change_is_announced_once_and_only_when_the_value_changes(settings_file):
    state = state_with(settings_file)
    events = Events(state)
    state.set_threshold(0.3)
    state.set_threshold(0.3)  # the same value again: a view setting what it shows
    state.set_threshold(1.7)  # clamped to 1.0
    state.set_threshold(1.0)
    state.set_confirm_frames(3)  # already 3
    state.set_confirm_frames(6)
    state.update(mirror=True)  # already on
    state.update(mirror=False)
    assert events.seen == [("threshold_changed", 0.3), ("threshold_changed", 1.0),
                           ("confirm_frames_changed", 6), ("setting_changed", "mirror", False)]
    assert state.settings.threshold == 1.0 and state.settings.confirm_frames == 6
    with pytest.raises(ValueError):
        state.update(threshold=0.2)  # derived: only through its setter
    with pytest.raises(ValueError):
        state.set_threshold(float("nan"))


def test_settings_go_to_the_file_and_come_back(settings_file, tmp_path):
    state = state_with(settings_file)
    state.set_threshold(0.73)
    state.set_confirm_frames(5)  # saved at once
    state.update(mirror=False, smoothing=0.6)
    state.remember_folder("images", tmp_path)
    assert state.save()
    on_disk = json.loads(settings_file.read_text())
    assert (on_disk["threshold"], on_disk["confirm_frames"], on_disk["mirror"]) == (0.73, 5, False)
    again = AppState(settings_file=settings_file)
    assert (again.threshold, again.confirm_frames, again.settings.smoothing) == (0.73, 5, 0.6)
    assert again.last_folder("images") == str(tmp_path) and again.settings_warning is None


def test_a_settings_file_written_by_an_older_version_still_loads(settings_file):
    # Older versions wrote fewer fields (no recent_sources, training, loop_playback) and
    # some a field since dropped; the missing ones get defaults, the unknown one is ignored.
    settings_file.write_text(json.dumps({"source": "1", "threshold": 0.61, "confirm_frames": 4,
                                         "model": "", "mirror": False, "geometry": "",
                                         "retired_option": 7}))
    state = AppState(settings_file=settings_file)
    assert (state.threshold, state.confirm_frames, state.settings.source) == (0.61, 4, "1")
    assert state.settings.loop_playback is True and state.settings_warning is None
    assert state.save()
    assert load_settings(settings_file)[0].threshold == 0.61


def test_saving_off_writes_nothing(settings_file):
    state = AppState(Settings(), save=False, settings_file=settings_file)
    state.set_confirm_frames(7)
    assert state.save() and not settings_file.exists()


def test_switching_models_brings_the_new_models_own_threshold(settings_file, fp32_model,
                                                               tmp_path):
    state = state_with(settings_file, threshold=0.8)
    events = Events(state)
    model = tmp_path / "mine.onnx"
    shutil.copy(fp32_model, model)
    assert state.use_model(model)
    assert state.model == str(model) and state.threshold == DEFAULT_THRESHOLD  # no card
    assert events.names() == ["model_changed", "threshold_changed"]
    assert json.loads(settings_file.read_text())["model"] == str(model)

    # A card naming this very file carries its threshold.
    card = {"sha256": registry.file_sha256(model), "threshold": {"value": 0.37}}
    model.with_name("mine.card.json").write_text(json.dumps(card))
    events.clear()
    assert state.use_model(registry.DEFAULT_LIVENESS)
    assert state.use_model(model)
    assert state.threshold == 0.37 and events.names()[-2:] == ["model_changed", "threshold_changed"]

    # A file that is no model: refused with a notice, nothing changes.
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a model")
    events.clear()
    assert not state.use_model(junk)
    assert events.names() == ["notice"] and "Model not changed" in events.seen[0][1]
    assert state.model == str(model) and state.threshold == 0.37


def test_a_model_whose_card_cannot_be_read_is_used_at_the_default_and_the_user_is_told(
        settings_file, fp32_model, tmp_path):
    model = tmp_path / "mine.onnx"
    shutil.copy(fp32_model, model)
    # A card that would carry a strict threshold, but nested past the reader's depth cap.
    model.with_name("mine.card.json").write_text("[" * 100 + "]" * 100)
    state = state_with(settings_file, threshold=0.8)
    events = Events(state)
    assert state.use_model(model)
    assert state.model == str(model) and state.threshold == DEFAULT_THRESHOLD
    notices = [e for e in events.seen if e[0] == "notice"]
    assert len(notices) == 1 and notices[0][2] == "warning"
    assert "mine.card.json" in notices[0][1] and "nested too deeply" in notices[0][1]
    assert "judging at 0.50 (default)" in notices[0][1]

    # A readable card without a threshold is no problem: nothing to tell.
    model.with_name("mine.card.json").write_text(json.dumps({"classes": ["real", "spoof"]}))
    assert state.use_model(registry.DEFAULT_LIVENESS)
    events.clear()
    assert state.use_model(model)
    assert "notice" not in events.names()


def test_a_profile_decides_while_active_and_the_users_values_return(settings_file, samples_dir):
    state = state_with(settings_file, threshold=0.6, confirm_frames=4)
    events = Events(state)
    desk = desk_profile(samples_dir, threshold=0.42, confirm_frames=2)
    assert state.apply_profile(desk)
    assert (state.threshold, state.confirm_frames, state.profile) == (0.42, 2, desk)
    # The default model is already in use: no model event, only what changed.
    assert events.names() == ["threshold_changed", "confirm_frames_changed", "profile_changed"]

    # The slider during the profile: holds for the session, never reaches the file.
    state.set_threshold(0.45)
    state.save()
    saved = load_settings(settings_file)[0]
    assert (saved.threshold, saved.confirm_frames) == (0.6, 4)
    assert state.settings.threshold == 0.6

    events.clear()
    state.leave_profile()
    assert (state.threshold, state.confirm_frames, state.profile) == (0.6, 4, None)
    assert events.seen == [("threshold_changed", 0.6), ("confirm_frames_changed", 4),
                           ("profile_changed", None)]
    events.clear()
    state.leave_profile()  # nothing active: nothing happens
    assert events.seen == []


def test_a_profile_with_another_model_switches_it_and_back(settings_file, samples_dir):
    quantized = "minifasnet-v2se-dynq"
    if registry.find_file(registry.get_entry(quantized).file) is None:
        pytest.skip("quantized model not found")
    state = state_with(settings_file)
    events = Events(state)
    assert state.apply_profile(desk_profile(samples_dir, model=quantized))
    assert state.model == quantized and "model_changed" in events.names()
    assert state.settings.model == ""  # the user's own model is kept
    state.leave_profile()
    assert state.model == "" and events.names().count("model_changed") == 2


def test_a_stale_profile_is_not_applied(settings_file, samples_dir):
    state = state_with(settings_file, threshold=0.6)
    events = Events(state)
    assert not state.apply_profile(desk_profile(samples_dir, sha="0" * 64))
    assert state.profile is None and state.threshold == 0.6
    assert events.names() == ["notice"] and "has changed since the calibration" in events.seen[0][1]


def test_a_source_applies_its_saved_profile_and_another_source_leaves_it(settings_file,
                                                                          samples_dir, tmp_path):
    save_profile(desk_profile(samples_dir, threshold=0.42))
    state = state_with(settings_file, threshold=0.6)
    state.select_source(SourceSpec.parse(str(samples_dir)))
    assert state.profile is not None and state.profile.name == "desk" and state.threshold == 0.42
    other = tmp_path / "other"
    other.mkdir()
    state.select_source(SourceSpec.parse(str(other)))
    assert state.profile is None and state.threshold == 0.6


def test_a_renamed_active_profile_keeps_running(settings_file, samples_dir):
    state = state_with(settings_file)
    desk = desk_profile(samples_dir)
    assert state.apply_profile(desk)
    events = Events(state)
    renamed = Profile(**{**desk.__dict__, "name": "desk 2"})
    state.profile_renamed("desk", renamed)
    assert state.profile is renamed and events.seen == [("profile_changed", renamed)]
    state.profile_renamed("someone else", desk)
    assert state.profile is renamed


def test_a_model_file_written_over_is_reloaded_with_its_new_threshold(settings_file, fp32_model,
                                                                       tmp_path):
    model = tmp_path / "export.onnx"
    shutil.copy(fp32_model, model)
    state = state_with(settings_file)
    assert state.use_model(model)
    events = Events(state)
    assert not state.reload_model_files([str(tmp_path / "another.onnx")])
    card = {"sha256": registry.file_sha256(model), "threshold": {"value": 0.31}}
    model.with_name("export.card.json").write_text(json.dumps(card))
    assert state.reload_model_files([str(model)])
    assert state.threshold == 0.31
    assert events.names() == ["threshold_changed", "model_reloaded"]


def test_the_model_check_names_missing_and_refused_files(settings_file, tmp_path, monkeypatch):
    state = state_with(settings_file)
    assert state.check_models().ok
    state.settings.model = str(tmp_path / "gone.onnx")
    check = state.check_models()
    assert not check.ok and "liveness" in check.missing and not check.refused
    assert check.missing_text() == "The liveness model could not be found on this computer."

    # The default model's file altered: refused (hash mismatch), with the reason.
    models = tmp_path / "models"
    models.mkdir()
    entry = registry.get_entry(registry.DEFAULT_LIVENESS)
    (models / entry.file).write_bytes(b"tampered")
    shutil.copy(registry.resolve(None, kind="detector"), models)
    monkeypatch.setenv("FASDESK_MODELS_DIR", str(models))
    state.settings.model = ""
    seen = []
    state.models_checked.connect(seen.append)
    check = state.check_models()
    assert check.refused and "SHA-256" in check.refused[0] and seen == [check]


def test_the_pipeline_factory_builds_the_model_in_use_and_reports_scores(settings_file,
                                                                          fp32_model, samples_dir):
    from fasdesk.core.io.imageio import read_image

    state = state_with(settings_file)
    assert state.use_model(fp32_model)
    pipeline = state.pipeline_factory()()
    assert pipeline.engine.model_path == fp32_model
    face = pipeline.process(read_image(samples_dir / "real_T1.jpg"))[0]
    # The label shown comes from the threshold in use when it is shown.
    state.set_threshold(1.0)
    assert face.relabel(state.threshold) == "spoof"
    state.set_threshold(0.0)
    assert face.relabel(state.threshold) == "real"
