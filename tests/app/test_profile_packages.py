"""Profiles that deploy: one file carries a profile, its model and card; importing it on
another machine (a fresh user folder) gives the same verdicts; a tampered model or a name
clash is refused. Plus `fasdesk profiles list --json` and `classify --profile`."""
from __future__ import annotations

import json
import zipfile


from fasdesk.cli import main
from fasdesk.core.calibration import profiles as P
from fasdesk.core.io.paths import user_models_dir
from fasdesk.core.models import cards, registry


def _fresh_machine(monkeypatch, tmp_path, name):
    home = tmp_path / name
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / "config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(home / "data"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / "cache"))


def _calibrated_profile(fp32_model, name="Front door", threshold=0.7) -> P.Profile:
    """A profile whose model exists only in this user folder (as a calibration leaves it):
    the shipped model with another doc string, so its SHA-256 is its own."""
    import onnx

    out = user_models_dir() / "calibrated-front-door-20261203-075114.onnx"
    out.parent.mkdir(parents=True, exist_ok=True)
    model = onnx.load(str(fp32_model))
    model.doc_string = "fine-tuned by a calibration (test copy)"
    onnx.save(model, str(out))
    sha = registry.sha256_of(out)
    card = {"format": 1, "file": out.name, "sha256": sha, "classes": ["real", "spoof"],
            "input": {"size": 128}, "threshold": {"value": threshold},
            "display_name": "Front door, calibrated 3 Dec"}
    out.with_name(out.stem + ".card.json").write_text(json.dumps(card))
    registry.register_user_model(registry.ModelEntry(
        id=out.stem, kind="liveness", file=out.name, sha256=sha, size=out.stat().st_size,
        extra={"threshold": threshold}))
    profile = P.Profile(name=name, source={"kind": "camera", "target": "0", "name": "USB Cam"},
                        model=out.stem, model_sha256=sha, threshold=threshold,
                        confirm_frames=4, session="/nowhere")
    P.save_profile(profile)
    return profile


def _verdicts(capsys, samples_dir, *extra):
    assert main(["classify", str(samples_dir), "--json", *extra]) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    return [(r["path"], f["label"], round(f["p_real"], 6)) for r in records for f in r["faces"]]


def test_export_import_round_trip_gives_the_same_verdicts(tmp_path, monkeypatch, capsys,
                                                          samples_dir, fp32_model):
    profile = _calibrated_profile(fp32_model)
    before = _verdicts(capsys, samples_dir, "--profile", "Front door")
    assert [label for _, label, _ in before] == [
        "real" if p >= 0.7 else "spoof" for _, _, p in before]
    package = tmp_path / "front-door.fasprofile"
    assert main(["profiles", "export", "Front door", str(package)]) == 0
    assert "written to" in capsys.readouterr().out
    assert set(zipfile.ZipFile(package).namelist()) == {
        "package.json", "profile.json", "model.onnx", "model.card.json"}

    _fresh_machine(monkeypatch, tmp_path, "laptop")
    assert P.list_profiles()[0] == [] and registry.get_entry(profile.model) is None
    assert main(["profiles", "import", str(package)]) == 0
    capsys.readouterr()
    after = _verdicts(capsys, samples_dir, "--profile", "Front door")
    assert after == before
    assert main(["profiles", "list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert listed == [{"name": "Front door",
                       "source": {"kind": "camera", "target": "0", "name": "USB Cam"},
                       "model": profile.model, "threshold": 0.7, "confirm_frames": 4,
                       "created": profile.created}]
    entry = registry.get_entry(profile.model)
    assert cards.display_name(entry) == "Front door, calibrated 3 Dec"
    assert registry.resolve(profile.model) == user_models_dir() / f"{profile.model}.onnx"

    # The same name again: refused without --replace, nothing changed; replaced with it.
    assert main(["profiles", "import", str(package)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "already a profile named 'Front door'" in err
    assert "--replace" in err
    assert main(["profiles", "import", str(package), "--replace"]) == 0
    assert [p.name for p in P.list_profiles()[0]] == ["Front door"]
    # The model already known (same SHA-256) is used again, not copied a second time.
    assert sorted(p.name for p in user_models_dir().glob("*.onnx")) == [f"{profile.model}.onnx"]


def test_a_tampered_model_is_refused_and_nothing_is_installed(tmp_path, monkeypatch, capsys,
                                                              fp32_model):
    _calibrated_profile(fp32_model)
    package = P.export_package(P.find_profile("Front door"), tmp_path / "door.fasprofile")
    tampered = tmp_path / "tampered.fasprofile"
    with zipfile.ZipFile(package) as src, zipfile.ZipFile(tampered, "w") as dst:
        for item in src.infolist():
            data = src.read(item)
            if item.filename == "model.onnx":
                data = data[:-1] + bytes([data[-1] ^ 1])
            dst.writestr(item, data)
    _fresh_machine(monkeypatch, tmp_path, "laptop")
    assert main(["profiles", "import", str(tampered)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "does not match the profile's SHA-256" in err
    assert P.list_profiles()[0] == [] and not user_models_dir().exists()
    # Not a profile file at all: one line too.
    (tmp_path / "notes.txt").write_text("hello")
    assert main(["profiles", "import", str(tmp_path / "notes.txt")]) == 1
    assert "is not a fasdesk profile file" in capsys.readouterr().err


def test_classify_with_a_missing_or_changed_profile_is_one_line(tmp_path, capsys, samples_dir,
                                                                fp32_model):
    profile = _calibrated_profile(fp32_model)
    assert main(["classify", str(samples_dir), "--profile", "Back door"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no profile named 'Back door'" in err and "'Front door'" in err
    assert main(["classify", str(samples_dir), "--profile", "Front door", "--model", "x"]) == 1
    assert "give one of them" in capsys.readouterr().err
    path = registry.resolve(profile.model, verify=False)
    path.write_bytes(path.read_bytes() + b"\0")  # the model replaced since the calibration
    assert main(["classify", str(samples_dir), "--profile", "Front door"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "profile 'Front door'" in err, err
    assert "cannot be used" in err or "has changed" in err


def test_profiles_list_text_and_empty(capsys):
    assert main(["profiles", "list", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []
    assert main(["profiles"]) == 0
    assert "no camera profiles yet" in capsys.readouterr().out


def test_a_profile_of_the_shipped_model_imports_without_a_copy(tmp_path, monkeypatch, capsys,
                                                               samples_dir, fp32_model):
    sha = registry.sha256_of(fp32_model)
    P.save_profile(P.Profile(name="Hall", source={"kind": "video", "target": "/v/hall.avi",
                                                  "name": ""},
                             model="minifasnet-v2se", model_sha256=sha, threshold=0.3))
    package = P.export_package(P.find_profile("Hall"), tmp_path / "hall.fasprofile")
    _fresh_machine(monkeypatch, tmp_path, "laptop")
    imported = P.import_package(package)
    # The model is known here by its SHA-256: the profile keeps the shipped id, nothing copied.
    assert imported.model == "minifasnet-v2se" and not user_models_dir().exists()
    assert imported.session == "" and P.find_profile("Hall").threshold == 0.3
    verdicts = _verdicts(capsys, samples_dir, "--profile", "Hall")
    assert [label for _, label, _ in verdicts] == ["real" if p >= 0.3 else "spoof"
                                                   for _, _, p in verdicts]


def test_classify_with_a_profile_says_the_threshold_came_from_it(capsys, samples_dir,
                                                                 fp32_model):
    _calibrated_profile(fp32_model, threshold=0.7)
    assert main(["classify", str(samples_dir), "--profile", "Front door"]) == 0
    assert capsys.readouterr().out.rstrip().endswith("threshold 0.7 (profile 'Front door')")
    assert main(["classify", str(samples_dir), "--profile", "Front door", "--json"]) == 0
    assert capsys.readouterr().err == "fasdesk: note: threshold 0.7 (profile 'Front door')\n"
    # The user's own --threshold wins over the profile's, and the output says so.
    assert main(["classify", str(samples_dir), "--profile", "Front door",
                 "--threshold", "0.4"]) == 0
    assert capsys.readouterr().out.rstrip().endswith("threshold 0.4 (--threshold)")
