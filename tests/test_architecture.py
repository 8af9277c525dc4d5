"""The layers hold without anyone remembering them: the import-linter contracts in
pyproject.toml ([tool.importlinter]) are checked here on every test run.

core imports no Qt, torch, app or front end; app no Qt or torch; ui | cli -> app -> core;
fasdesk never imports torch; from training, the GUI takes only events, layout and recipe;
and no two sibling modules or packages import each other in a circle.
"""
from __future__ import annotations

import pytest

from conftest import PROJECT_ROOT

importlinter_cli = pytest.importorskip("importlinter.cli", reason="import-linter not installed "
                                       "(pip install -e .[dev])")


def test_import_contracts_hold(monkeypatch, capsys):
    monkeypatch.chdir(PROJECT_ROOT)
    monkeypatch.syspath_prepend(str(PROJECT_ROOT))
    status = importlinter_cli.lint_imports(config_filename=str(PROJECT_ROOT / "pyproject.toml"),
                                           no_cache=True)
    out = capsys.readouterr().out
    assert status == 0, out[out.find("Broken contracts"):] or out
    assert "0 broken" in out
