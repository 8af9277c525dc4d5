"""`pip install .` from a clone, or from a built wheel, carries the bundled models, the
sample photos and the resources: the installed package works offline, from any folder."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _tracked_files() -> list[str]:
    out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                         cwd=ROOT, capture_output=True, check=True).stdout
    return [name for name in out.decode().split("\0") if name and (ROOT / name).is_file()]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    pytest.importorskip("setuptools")
    root = tmp_path_factory.mktemp("wheel")
    src = root / "src"
    for name in _tracked_files():  # a clean clone's files, so nothing stray gets in
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, src / name)
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps",
                           "--no-build-isolation", "-q", "-w", str(root / "dist"), str(src)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    (built,) = (root / "dist").glob("fasdesk-*.whl")
    return built


def test_the_wheel_carries_the_bundled_models_samples_and_resources(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    manifest = json.loads((ROOT / "models" / "manifest.json").read_text())
    bundled = [m["file"] for m in manifest["models"] if m.get("bundled")]
    assert sorted(bundled) == ["best_model.onnx", "best_model.pth", "detector.onnx"]
    for name in bundled + ["manifest.json", "README.md", "LICENSE-Apache-2.0.txt",
                           "LICENSE-MIT-YuNet.txt"]:
        assert f"fasdesk/_data/models/{name}" in names, name
    for name in ("real_T1.jpg", "spoof_F1.jpg", "spoof_F2.jpg", "reference.json"):
        assert f"fasdesk/_data/samples/{name}" in names, name
    assert "fasdesk/_data/resources/style.qss" in names
    # Only the bundled models: no other model binary slips in.
    models = [n for n in names if n.endswith((".onnx", ".pth"))]
    assert sorted(Path(n).name for n in models) == sorted(bundled)


def test_the_installed_wheel_finds_its_models_and_samples(wheel, tmp_path):
    target = tmp_path / "site"
    done = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps",
                           "--target", str(target), str(wheel)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    env = {k: v for k, v in os.environ.items() if k != "FASDESK_MODELS_DIR"}
    env["PYTHONPATH"] = str(target)  # the installed copy, not this checkout
    run = tmp_path / "elsewhere"
    run.mkdir()
    verify = subprocess.run([sys.executable, "-m", "fasdesk", "models", "verify"], cwd=run,
                            env=env, capture_output=True, text=True, timeout=300)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    data = target / "fasdesk" / "_data"
    for model_id, file in (("minifasnet-v2se", "best_model.onnx"),
                           ("yunet-2023mar", "detector.onnx"),
                           ("minifasnet-v2se-pth", "best_model.pth")):
        assert f"{model_id}: ok ({data / 'models' / file})" in verify.stdout
    classify = subprocess.run([sys.executable, "-m", "fasdesk", "classify", "--json",
                               str(data / "samples")], cwd=run, env=env, capture_output=True,
                              text=True, timeout=300)
    assert classify.returncode == 0, classify.stderr
    labels = {Path(r["path"]).name: r["faces"][0]["label"]
              for r in map(json.loads, classify.stdout.splitlines())}
    assert labels == {"real_T1.jpg": "real", "spoof_F1.jpg": "spoof", "spoof_F2.jpg": "spoof"}
