"""The packaged app: build it with build_app.spec in a clean folder, then run the result.

The build takes a few minutes, so those tests are marked `slow`: a plain `pytest` leaves them
out (`.ci/run` runs them); run them alone with

    python -m pytest -m slow tests/test_packaging.py

(FASDESK_PACKAGED_APP=dist/fasdesk/fasdesk tests an existing build instead of building.)

The built executable runs with a bare environment (no FASDESK_MODELS_DIR, a different
working folder), so everything it uses must come from inside dist/fasdesk.
"""
from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from fasdesk import __version__
from fasdesk.core.io.paths import BACKEND_FLAG, backend_command

from conftest import run_until_first_frame

PROJECT_ROOT = Path(__file__).resolve().parents[1]
EXPECTED = {"real_T1.jpg": "real", "spoof_F1.jpg": "spoof", "spoof_F2.jpg": "spoof"}


# --- backend mode from the source tree (fast) ---------------------------------------

def test_backend_command_runs_the_training_backend():
    assert backend_command()[:2] == [sys.executable, "-m"]
    done = subprocess.run(backend_command() + ["--help"], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    assert "prep" in done.stdout and "export" in done.stdout


def test_backend_flag_dispatches_and_rejects_unknown_backends():
    ok = subprocess.run([sys.executable, "-m", "fasdesk", BACKEND_FLAG, "training", "--help"],
                        capture_output=True, text=True, timeout=300)
    assert ok.returncode == 0, ok.stderr
    assert "prep" in ok.stdout
    bad = subprocess.run([sys.executable, "-m", "fasdesk", BACKEND_FLAG, "nope"],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2
    assert bad.stderr.strip().count("\n") == 0 and "training" in bad.stderr


# --- the packaged app (slow) ---------------------------------------------------------

def _project_files() -> list[str]:
    """What would be committed: tracked files plus new files that git does not ignore."""
    out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                         cwd=PROJECT_ROOT, capture_output=True, check=True).stdout
    return [name for name in out.decode().split("\0") if name]


@pytest.fixture(scope="module")
def app(tmp_path_factory, models_dir, fp32_model, detector_model) -> Path:
    """dist/fasdesk/fasdesk built from a clean copy of the project; removed afterwards.

    FASDESK_PACKAGED_APP=path/to/dist/fasdesk/fasdesk tests an existing build instead.
    """
    prebuilt = os.environ.get("FASDESK_PACKAGED_APP")
    if prebuilt:
        yield Path(prebuilt).resolve()
        return
    root = tmp_path_factory.mktemp("packaged")
    src = root / "src"
    for name in _project_files():
        if (PROJECT_ROOT / name).is_file():
            (src / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(PROJECT_ROOT / name, src / name)
    env = dict(os.environ, FASDESK_MODELS_DIR=str(models_dir))
    build = subprocess.run(
        [sys.executable, "-m", "PyInstaller", "--noconfirm", "--log-level", "WARN",
         "--distpath", str(root / "dist"), "--workpath", str(root / "build"), "build_app.spec"],
        cwd=src, env=env, capture_output=True, text=True, timeout=3600)
    if build.returncode != 0:
        shutil.rmtree(root, ignore_errors=True)
        pytest.fail("build_app.spec failed:\n" + build.stderr[-4000:])
    exe = root / "dist" / "fasdesk" / ("fasdesk.exe" if os.name == "nt" else "fasdesk")
    assert exe.is_file()
    yield exe
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def app_env():
    """The packaged app's environment: nothing from the source tree or the shared models."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("FASDESK_MODELS_DIR", "PYTHONPATH", "PYTHONHOME")}
    env["QT_QPA_PLATFORM"] = "offscreen"
    return env


@pytest.fixture
def run_app(app, app_env, tmp_path):
    """Run the packaged executable with `app_env`."""
    def run(*args, timeout=300, extra_env=None):
        return subprocess.run([str(app), *map(str, args)], cwd=tmp_path,
                              env={**app_env, **(extra_env or {})},
                              capture_output=True, text=True, timeout=timeout)
    return run


@pytest.mark.slow
def test_packaged_version(run_app):
    done = run_app("--version")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"fasdesk {__version__}"


@pytest.mark.slow
def test_packaged_models_resolve_inside_the_bundle(run_app, app):
    done = run_app("models", "list", "--json")
    assert done.returncode == 0, done.stderr
    rows = {row["id"]: row for row in json.loads(done.stdout)}
    bundle = app.parent.resolve()
    for model_id in ("minifasnet-v2se", "yunet-2023mar"):
        assert rows[model_id]["path"] is not None
        assert Path(rows[model_id]["path"]).resolve().is_relative_to(bundle)


@pytest.mark.slow
def test_packaged_doctor(run_app):
    done = run_app("doctor")
    assert done.returncode == 0, done.stdout + done.stderr
    assert __version__ in done.stdout
    assert "CPUExecutionProvider" in done.stdout
    assert "liveness model minifasnet-v2se optimized: yes" in done.stdout  # from the first load
    # Qt's platform plugin is tried in a child of the bundle (`fasdesk --backend qt-probe`).
    assert "Qt platform: offscreen (starts)" in done.stdout
    assert "Traceback" not in done.stderr


@pytest.mark.slow
def test_packaged_classify_gives_the_right_verdicts(run_app, samples_dir):
    done = run_app("classify", samples_dir, "--json")
    assert done.returncode == 0, done.stderr
    results = {Path(r["path"]).name: r for r in map(json.loads, done.stdout.splitlines())}
    reference = json.loads((samples_dir / "reference.json").read_text())
    assert set(results) == set(EXPECTED)
    for name, label in EXPECTED.items():
        (face,) = results[name]["faces"]
        assert face["label"] == label, (name, face)
        expected_logits = reference[name][0]["best_model.onnx"]["logits_real_spoof"]
        assert np.allclose(face["logits"], expected_logits, atol=1e-3), (name, face["logits"])


@pytest.mark.slow
def test_packaged_bench(run_app, samples_dir):
    done = run_app("bench", "--json", "--source", samples_dir, "--repeats", 2,
                   "--folder-images", 0)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["default_config"]["optimized"] is True
    frames = report["frames"]
    assert frames["count"] == len(EXPECTED)
    assert frames["default"]["total"] > 0 and frames["default"]["faces_per_frame"] == 1


def _sample_video(samples_dir: Path, path: Path, frames: int = 90) -> Path:
    """A short MJPG video of the shared samples (30 frames each), as a camera would give."""
    images = [cv2.imread(str(samples_dir / name)) for name in EXPECTED]
    height, width = images[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 15, (width, height))
    for i in range(frames):
        writer.write(images[i * len(images) // frames])
    writer.release()
    assert path.stat().st_size > 0
    return path


@pytest.mark.slow
def test_packaged_gui_runs_live_offscreen_and_exits_cleanly(app, app_env, samples_dir, tmp_path):
    video = _sample_video(samples_dir, tmp_path / "samples.avi")
    env = {**app_env, "FASDESK_REPORT_FIRST_FRAME": "1"}
    startups = []
    for _ in range(3):
        # Runs until its first frame is painted, however long that takes here, then is
        # closed by SIGTERM: it must close as from the window (exit 0, no traceback).
        found, waited, status, stderr = run_until_first_frame(
            [app, "--source", video, "--quit-after", 300], env)
        assert found and found.group(2) == "process start", stderr[-3000:]
        assert status == 0 and "Traceback" not in stderr, stderr[-3000:]
        startup = float(found.group(1))
        # Measured from the start of that very process (the OS's clock ticks, rounded
        # down): within what the launcher waited.
        assert 0 < startup <= waited + 0.02, (startup, waited)
        startups.append(startup)
    # A measurement for the README, not a pass/fail threshold.
    print(f"\npackaged app: launch -> first live frame: median {statistics.median(startups):.2f} s "
          f"({', '.join(f'{s:.2f}' for s in startups)})")


def _tiny_dataset(samples_dir: Path, root: Path, copies: int = 6) -> Path:
    """A folders-layout dataset (real/, spoof/replay/) of flipped and re-lit sample copies."""
    for name, label in EXPECTED.items():
        image = cv2.imread(str(samples_dir / name))
        folder = root / ("real" if label == "real" else "spoof/replay")
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(copies if label == "real" else copies // 2):
            variant = cv2.flip(image, 1) if i % 2 else image
            variant = cv2.convertScaleAbs(variant, alpha=1.0, beta=8 * (i // 2))
            cv2.imwrite(str(folder / f"{Path(name).stem}_{i}.jpg"), variant)
    return root


def _events(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]


def _bundled_checkpoint(run_app, app) -> Path:
    """The pretrained checkpoint inside the bundle, where the app finds it (the Train step's
    "Start from the pretrained model" and calibration's fine-tune start from this file)."""
    done = run_app("models", "list", "--json")
    assert done.returncode == 0, done.stderr
    rows = {row["id"]: row for row in json.loads(done.stdout)}
    path = Path(rows["minifasnet-v2se-pth"]["path"]).resolve()
    assert path.is_relative_to(app.parent.resolve()) and path.name == "best_model.pth"
    return path


@pytest.mark.slow
def test_packaged_backend_prep_train_export_eval(run_app, app, samples_dir, tmp_path,
                                                 monkeypatch):
    # The command the Training tab would start inside the packaged app.
    with monkeypatch.context() as frozen:
        frozen.setattr(sys, "frozen", True, raising=False)
        frozen.setattr(sys, "executable", str(app))
        command = backend_command()
    assert command[0] == str(app)
    source = _tiny_dataset(samples_dir, tmp_path / "raw")
    prepared, run_dir = tmp_path / "prepared", tmp_path / "run"
    onnx_out, report = tmp_path / "tiny.onnx", tmp_path / "report.json"
    steps = [
        ("prep", source, prepared, "--workers", 2),  # a multiprocessing pool in the frozen app
        ("train", prepared, run_dir, "--epochs", 1, "--batch-size", 4, "--device", "cpu",
         "--init", _bundled_checkpoint(run_app, app)),
        ("export", run_dir / "best.pth", onnx_out, "--int8", "--calibration", prepared),
        ("eval", prepared, onnx_out, "--out", report),
    ]
    for step in steps:
        done = run_app(*command[1:], *step, "--events", timeout=900)
        assert done.returncode == 0, f"{step[0]}: {done.stderr[-3000:]}"
        events = _events(done.stdout)
        assert events[-1]["event"] == "done", events[-3:]
    card = json.loads(onnx_out.with_suffix(".card.json").read_text())
    # INT8 is kept only when it agrees and is faster here; then fp32 stays beside it.
    assert onnx_out.is_file()
    assert onnx_out.with_suffix(".fp32.onnx").is_file() == card["int8"]["kept"]
    # Two training processes (DDP over gloo) started by the packaged torchrun.
    done = run_app(BACKEND_FLAG, "torchrun", "--nproc_per_node", 2, "--no-python", *command,
                   "train", prepared, tmp_path / "run2", "--epochs", 1, "--batch-size", 4,
                   "--device", "cpu", "--events", timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    assert _events(done.stdout)[-1]["event"] == "done"
    assert (tmp_path / "run2" / "best.pth").is_file()
    assert 0.0 <= json.loads(report.read_text())["accuracy"] <= 1.0
    done = run_app("classify", samples_dir, "--json", "--model", onnx_out)
    assert done.returncode == 0, done.stderr
    results = [json.loads(line) for line in done.stdout.splitlines()]
    assert len(results) == 3
    assert all(0.0 <= r["faces"][0]["p_real"] <= 1.0 for r in results)


@pytest.mark.slow
def test_packaged_calibration_fine_tunes_from_the_bundled_model(run_app, app, samples_dir,
                                                                tmp_path):
    """`calibrate --fine-tune` in the packaged app: recordings of a real face and of a phone
    replay, then prep, train --init (the bundle's checkpoint) and export through the app's
    own backend mode, and a profile with the fine-tuned model."""
    from calibration_media import write_recording

    _bundled_checkpoint(run_app, app)
    real = write_recording(tmp_path / "door.avi", samples_dir, 100)
    phone = write_recording(tmp_path / "phone.avi", samples_dir, 100, attack=True)
    home = tmp_path / "home"
    done = run_app("calibrate", "--real", real, "--attack", f"replay={phone}", "--every", 1,
                   "--fine-tune", "--epochs", 1, "--profile", "frozen door", "--json",
                   timeout=1800,
                   extra_env={"OMP_NUM_THREADS": "1", "XDG_DATA_HOME": str(home / "data"),
                              "XDG_CONFIG_HOME": str(home / "config")})
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout)
    assert result["after"] is not None and result["fine_tuned_model"], result.keys()
    tuned = Path(result["fine_tuned_model"]["path"])
    assert tuned.is_file() and tuned.is_relative_to(home)
