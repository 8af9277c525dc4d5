"""run.py, the one command that installs and starts fasdesk: when it installs, what it
runs. Nothing here installs anything (the install itself is what .ci/run does too)."""
from __future__ import annotations

import importlib.util
import os
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def run():
    spec = importlib.util.spec_from_file_location("fasdesk_run_script", ROOT / "run.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _venv_with_python(run, venv: Path) -> Path:
    """An environment whose python is this test's Python (a script that runs it)."""
    if os.name == "nt":
        pytest.skip("the stand-in python is a shell script")
    python = run.venv_python(venv)
    python.parent.mkdir(parents=True)
    python.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    python.chmod(0o755)
    return python


def test_installs_when_missing_or_changed_and_not_otherwise(run, tmp_path):
    project = tmp_path / "project"
    project.mkdir()
    for name in run.INSTALL_INPUTS:
        shutil.copy(ROOT / name, project / name)
    venv = tmp_path / ".venv"
    key = run.install_key(project)
    assert run.needs_install(venv, key)  # no environment yet
    _venv_with_python(run, venv)
    assert run.needs_install(venv, key)  # an environment, but never installed into
    (venv / run.STAMP_NAME).write_text(key + "\n")
    assert not run.needs_install(venv, key)  # installed for these inputs: start at once
    # A changed dependency list means installing again.
    with open(project / "pyproject.toml", "a") as fh:
        fh.write("\n# changed\n")
    assert run.install_key(project) != key
    assert run.needs_install(venv, run.install_key(project))
    assert run.install_key(ROOT) == run.install_key(ROOT)  # stable between runs


def test_torch_comes_from_the_cpu_index_then_the_configured_one(run, tmp_path):
    python = tmp_path / "python"
    torch_step, project_step = run.install_steps(python)
    first, fallback = torch_step
    assert first[:3] == [str(python), "-m", "pip"]
    assert run.TORCH in first and first[first.index("--index-url") + 1] == run.TORCH_CPU_INDEX
    assert first[first.index("--retries") + 1] == "1"  # an unreachable index costs seconds
    assert run.TORCH in fallback and "--index-url" not in fallback
    assert project_step == [[str(python), "-m", "pip", "install", "--disable-pip-version-check",
                             "-q", "-e", f"{run.ROOT}[train]"]]
    # The same pin as CI's.
    assert run.TORCH in (ROOT / ".ci" / "run").read_text()


def test_arguments_go_to_the_app_or_with_cli_to_the_command_line(run, tmp_path):
    python = tmp_path / "python"
    base = [str(python), "-m", "fasdesk"]
    assert run.app_command(python, []) == base
    assert run.app_command(python, ["--source", "0"]) == base + ["--source", "0"]
    assert run.app_command(python, ["--cli", "classify", "samples", "--json"]) == (
        base + ["classify", "samples", "--json"])


def test_a_second_run_starts_without_installing(run, tmp_path, monkeypatch, capfd):
    venv = tmp_path / ".venv"
    _venv_with_python(run, venv)
    (venv / run.STAMP_NAME).write_text(run.install_key() + "\n")
    monkeypatch.setattr(run, "VENV", venv)
    monkeypatch.setattr(run, "install", lambda *a: pytest.fail("installed again"))
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    monkeypatch.chdir(ROOT)
    assert run.main(["--cli", "classify", "samples"]) == 0
    out = capfd.readouterr().out
    assert "3 image(s), 3 face(s): 1 real, 2 spoof" in out


def test_help_needs_no_environment(run, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(run, "VENV", tmp_path / "none")
    assert run.main(["--help"]) == 0
    assert "python3 run.py --cli" in capsys.readouterr().out
    assert not (tmp_path / "none").exists()
