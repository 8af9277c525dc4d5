"""build_app.spec bundles the models the app itself would find (registry.search_dirs),
checked without a PyInstaller build: the spec runs in a child process, on a fresh copy of
the project (no model files in its models/), with PyInstaller's build steps recorded
instead of run."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from fasdesk.core.models import registry
from fasdesk.core.io.paths import user_models_dir

ROOT = Path(__file__).resolve().parents[1]

# Runs the spec as PyInstaller would, with Analysis/PYZ/EXE/COLLECT only recorded, and
# prints the model files it would bundle.
RUN_SPEC = """
import json, sys
class Step:
    def __init__(self, *args, **kwargs):
        self.datas, self.binaries = kwargs.get("datas", []), kwargs.get("binaries", [])
        self.pure, self.scripts = [], []
spec = sys.argv[1]
namespace = {"SPECPATH": str(__import__("pathlib").Path(spec).parent), "__file__": spec,
             "Analysis": Step, "PYZ": Step, "EXE": Step, "COLLECT": Step}
exec(compile(open(spec, encoding="utf-8").read(), spec, "exec"), namespace)
print(json.dumps({"fasdesk": sys.modules["fasdesk"].__file__,
                  "models": [src for src, dest in namespace["datas"] if dest == "models"]}))
"""


def fresh_project(tmp_path: Path) -> Path:
    """The spec and what it reads, as a fresh clone has them: no model files."""
    copy = tmp_path / "project"
    ignore = shutil.ignore_patterns("__pycache__", "*.onnx", "*.pth")
    for folder in ("fasdesk", "training", "resources"):
        shutil.copytree(ROOT / folder, copy / folder, ignore=ignore)
    (copy / "models").mkdir()
    shutil.copy(ROOT / "models" / "manifest.json", copy / "models")
    shutil.copy(ROOT / "build_app.spec", copy)
    return copy


def run_spec(project: Path, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", RUN_SPEC, str(project / "build_app.spec")],
                          capture_output=True, text=True, timeout=300, cwd=project, env=env)


def test_spec_finds_models_where_the_app_does(tmp_path, fp32_model, detector_model,
                                              checkpoint):
    project = fresh_project(tmp_path)
    env = {k: v for k, v in os.environ.items() if k != registry.MODELS_DIR_ENV}

    # Nothing anywhere: the build stops, saying where it looked and what to do.
    done = run_spec(project, env)
    assert done.returncode != 0
    message = done.stderr.strip().splitlines()[-1]
    assert message.startswith("build_app.spec: cannot build the app: liveness model "
                              "'minifasnet-v2se' (best_model.onnx) not found")
    assert "'yunet-2023mar' (detector.onnx) not found" in message
    assert str(user_models_dir()) in message and "fasdesk models pull" in message

    # Where 'fasdesk models pull' puts them (the user data folder): found and bundled.
    user_models_dir().mkdir(parents=True)
    for model in (fp32_model, detector_model, checkpoint):
        shutil.copy(model, user_models_dir())
    done = run_spec(project, env)
    assert done.returncode == 0, done.stderr[-2000:]
    bundled = json.loads(done.stdout.strip().splitlines()[-1])
    assert Path(bundled["fasdesk"]).is_relative_to(project)  # the copy's code ran, not ours
    assert bundled["models"] == [str(project / "models" / "manifest.json"),
                       str(user_models_dir() / "best_model.onnx"),
                       str(user_models_dir() / "detector.onnx"),
                       str(user_models_dir() / "best_model.pth")]

    # $FASDESK_MODELS_DIR comes first, as in the app; a damaged file there stops the build.
    folder = tmp_path / "env-models"
    folder.mkdir()
    shutil.copy(fp32_model, folder)
    (folder / "detector.onnx").write_bytes(b"not the detector")
    done = run_spec(project, {**env, registry.MODELS_DIR_ENV: str(folder)})
    assert done.returncode != 0
    assert (f"{folder / 'detector.onnx'} does not match the sha256 of 'yunet-2023mar'"
            in done.stderr)
    (folder / "detector.onnx").unlink()
    done = run_spec(project, {**env, registry.MODELS_DIR_ENV: str(folder)})
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.strip().splitlines()[-1])["models"][1:] == [
        str(folder / "best_model.onnx"), str(user_models_dir() / "detector.onnx"),
        str(user_models_dir() / "best_model.pth")]
