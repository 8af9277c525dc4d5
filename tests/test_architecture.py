"""The layers hold without anyone remembering them: the import-linter contracts in
pyproject.toml ([tool.importlinter]) are checked here on every test run.

core imports no Qt, torch, app or front end; app no Qt or torch; ui | cli -> app -> core;
fasdesk never imports torch; from training, fasdesk takes only events, layout and recipe;
and no two sibling modules or packages import each other in a circle.
"""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from conftest import PROJECT_ROOT

pytest.importorskip("importlinter", reason="import-linter not installed (pip install -e .[dev])")

# In a child process: import-linter sets up logging its own way, which would silence the
# loggers of the tests that run after this one.
CHECK = ("import sys; from importlinter.cli import lint_imports; "
         "sys.exit(lint_imports(config_filename='pyproject.toml', no_cache=True))")


def test_import_contracts_hold():
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(PROJECT_ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
    done = subprocess.run([sys.executable, "-c", CHECK], cwd=PROJECT_ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[out.find("Broken contracts"):] or out
    assert "0 broken" in out
