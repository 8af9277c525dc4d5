"""`fasdesk doctor` names what stops the app, each with the command that fixes it: Qt's
platform plugin that cannot load (tried for real in a child process), missing models, a
FASDESK_MODELS_DIR that is no folder."""
from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path

import pytest

from fasdesk.cli import main
from fasdesk.core.diagnostics import doctor
from fasdesk.core.models import registry

LINUX_LDD = pytest.mark.skipif(not sys.platform.startswith("linux") or not shutil.which("ldd"),
                               reason="the missing-library check reads ldd (Linux)")


def pyside_qt_dir() -> Path:
    return Path(importlib.util.find_spec("PySide6").origin).parent / "Qt"


@LINUX_LDD
def test_qt_plugin_with_a_missing_library_is_named_with_the_fix(tmp_path, monkeypatch):
    # The real xcb plugin, copied with one of its libraries renamed to one that exists
    # nowhere: Qt really fails to load it, as on a machine without that package.
    original = pyside_qt_dir() / "plugins" / "platforms" / "libqxcb.so"
    data = original.read_bytes()
    needed = b"libxcb-shape.so.0\0"
    assert data.count(needed) == 1
    platforms = tmp_path / "plugins" / "platforms"
    platforms.mkdir(parents=True)
    (platforms / "libqxcb.so").write_bytes(data.replace(needed, b"libxcb-shapX.so.0\0"))
    (tmp_path / "lib").symlink_to(pyside_qt_dir() / "lib")  # its RUNPATH: $ORIGIN/../../lib
    monkeypatch.setenv("QT_QPA_PLATFORM", "xcb")
    monkeypatch.setenv("QT_QPA_PLATFORM_PLUGIN_PATH", str(platforms))
    monkeypatch.delenv("DISPLAY", raising=False)  # so the stock plugin cannot stand in
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)

    qt = doctor.check_qt()
    assert not qt["ok"] and qt["platform"] == "xcb"
    assert qt["plugin"] == str(platforms / "libqxcb.so")
    assert "libxcb-shapX.so.0" in qt["missing"]
    line = doctor.qt_problem(qt)
    assert line.startswith("the GUI cannot start: Qt's xcb platform plugin needs")
    assert "apt-file search libxcb-shapX.so.0" in line and 'dnf provides "*/libxcb-shapX.so.0"' in line
    # Libraries it knows come with the packages to install on Debian/Ubuntu and Fedora.
    hint = doctor.install_hint(["libxcb-icccm.so.4", "libxcb-keysyms.so.1"])
    assert "'sudo apt-get install libxcb-icccm4 libxcb-keysyms1' (Debian/Ubuntu)" in hint
    assert "'sudo dnf install xcb-util-wm xcb-util-keysyms' (Fedora)" in hint


def test_qt_without_a_display_is_a_problem_and_offscreen_is_not(monkeypatch, capsys):
    monkeypatch.setenv("QT_QPA_PLATFORM", "offscreen")
    qt = doctor.check_qt()
    assert qt == {"platform": "offscreen", "ok": True, "plugin": None, "missing": [],
                  "error": None}
    if sys.platform.startswith("linux"):
        # X11 asked for, no X server: whether the libraries are there or not, the GUI
        # cannot start, and doctor says so (exit status 1) instead of Qt's abort.
        monkeypatch.setenv("QT_QPA_PLATFORM", "xcb")
        monkeypatch.delenv("DISPLAY", raising=False)
        assert main(["doctor", "--no-cameras"]) == 1
        out = capsys.readouterr().out
        assert "Qt platform: xcb (cannot start: see problems)" in out
        assert "  the GUI cannot start: Qt's xcb platform plugin " in out
        assert "DISPLAY is not set" in out or "apt-get install" in out


def test_doctor_reports_missing_models_and_a_models_dir_that_is_no_folder(
        tmp_path, monkeypatch, capsys, without_bundled_models):
    monkeypatch.setenv("FASDESK_MODELS_DIR", str(tmp_path / "no-such-folder"))
    monkeypatch.setenv("QT_QPA_PLATFORM", "offscreen")
    assert main(["doctor", "--no-cameras"]) == 1
    captured = capsys.readouterr()
    problems = captured.out.split("problems:\n", 1)[1].splitlines()
    # The facts: which variable, its value, that it is ignored, and both ways out.
    assert problems[0].startswith(f"  FASDESK_MODELS_DIR={tmp_path / 'no-such-folder'} ")
    for words in ("not a folder", "ignored", "export FASDESK_MODELS_DIR=",
                  "unset FASDESK_MODELS_DIR"):
        assert words in problems[0], words
    missing = problems[1]
    assert missing.startswith("  models minifasnet-v2se, yunet-2023mar not found in ")
    for words in ("'fasdesk models pull'", "best_model.onnx and detector.onnx",
                  str(registry.user_models_dir()), "set FASDESK_MODELS_DIR to a folder"):
        assert words in missing, words
    assert len(problems) == 2
    # The warning, once, although the command looked up many files.
    assert captured.err.count("is not a folder") == 1


def test_a_runtime_that_does_not_load_is_reported_not_a_traceback(monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # `import onnxruntime` fails
    runtime = doctor.liveness_runtime()
    assert runtime["optimized"] is None
    assert runtime["note"].startswith("cannot run it here: "), runtime
