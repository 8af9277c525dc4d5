"""The layers hold without anyone remembering them: the import-linter contracts in
pyproject.toml ([tool.importlinter]) are checked here on every test run.

core imports no Qt, torch, app or front end; app no Qt or torch; ui | cli -> app -> core;
fasdesk never imports torch; from training, fasdesk takes only events, layout and recipe;
and no two sibling modules or packages import each other in a circle. The size rules of
docs/architecture.md hold too: no UI file over 500 lines, no function over 80 lines in the
app layer or the UI.
"""
from __future__ import annotations

import ast
import os
import subprocess
import sys

import pytest

from conftest import PROJECT_ROOT

MAX_UI_FILE_LINES = 500
MAX_FUNCTION_LINES = 80

# In a child process: import-linter sets up logging its own way, which would silence the
# loggers of the tests that run after this one.
CHECK = ("import sys; from importlinter.cli import lint_imports; "
         "sys.exit(lint_imports(config_filename='pyproject.toml', no_cache=True))")


def test_import_contracts_hold():
    pytest.importorskip("importlinter", reason="import-linter not installed (pip install -e .[dev])")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(PROJECT_ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
    done = subprocess.run([sys.executable, "-c", CHECK], cwd=PROJECT_ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[out.find("Broken contracts"):] or out
    assert "0 broken" in out


def _sources(layer: str):
    return sorted((PROJECT_ROOT / "fasdesk" / layer).rglob("*.py"))


def test_no_ui_file_is_over_500_lines():
    files = _sources("ui")
    assert len(files) > 10  # the UI is there to be measured
    long = {f.name: n for f in files if (n := len(f.read_text().splitlines())) > MAX_UI_FILE_LINES}
    assert not long, f"split these UI files (lines): {long}"


def test_no_function_in_the_app_layer_or_ui_is_over_80_lines():
    long = []
    for f in _sources("app") + _sources("ui"):
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    long.append(f"{f.relative_to(PROJECT_ROOT)}:{node.lineno} {node.name} ({lines})")
    assert not long, "split these functions: " + ", ".join(long)
