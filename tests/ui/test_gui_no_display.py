"""`fasdesk` where no window can open: one line naming the cause and the fix, exit 1, not
Qt's misleading xcb-cursor hint and an abort (exit 134). Real processes, real sockets."""
from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

from fasdesk.core.diagnostics import doctor

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="X11/Wayland start-up checks are Linux's")


def start_gui(**env_changes) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items()
           if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    env.update(env_changes)
    return subprocess.run([sys.executable, "-m", "fasdesk", "--quit-after", "1"],
                          capture_output=True, text=True, env=env, timeout=120)


def one_line(done: subprocess.CompletedProcess) -> str:
    assert done.returncode == 1, done.stderr
    assert done.stderr.count("\n") == 1 and "xcb-cursor" not in done.stderr, done.stderr
    return done.stderr


def test_no_display_at_all():
    err = one_line(start_gui())
    assert err.startswith("fasdesk: the GUI cannot start: no display (neither DISPLAY nor "
                          "WAYLAND_DISPLAY is set); ")
    assert "QT_QPA_PLATFORM=offscreen" in err and "fasdesk classify" in err


def _free_display() -> int:
    return next(n for n in range(99, 200)
                if not doctor.x_server_answers(f":{n}")
                and not os.path.exists(f"/tmp/.X11-unix/X{n}"))


def test_a_display_nobody_answers_at():
    number = _free_display()
    err = one_line(start_gui(DISPLAY=f":{number}"))
    assert f"no X server answers at DISPLAY=:{number}; " in err
    assert "desktop session" in err
    err = one_line(start_gui(QT_QPA_PLATFORM="wayland", WAYLAND_DISPLAY="fasdesk-test-none"))
    assert "no Wayland compositor answers at WAYLAND_DISPLAY=fasdesk-test-none" in err


def test_missing_qt_libraries_are_named_by_their_packages():
    plugins = doctor.qt_plugins_dir()
    missing = doctor.missing_libraries(doctor.plugin_file(plugins / "platforms", "xcb"))
    if not missing:
        pytest.skip("this machine has every library Qt's xcb plugin needs")
    # Something answers at the display (an abstract socket, as an X server has), so the
    # check gets as far as the libraries.
    number = _free_display()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
        server.bind(f"\0/tmp/.X11-unix/X{number}")
        server.listen(8)
        err = one_line(start_gui(DISPLAY=f":{number}"))
    assert err.startswith("fasdesk: the GUI cannot start: ") and "xcb" in err
    for library in missing:  # each missing library, and the package that has it
        assert library in err and doctor.QT_SYSTEM_LIBRARIES[library][0] in err
    assert "apt-get install" in err


def test_offscreen_is_not_stopped():
    assert start_gui(QT_QPA_PLATFORM="offscreen", FASDESK_REPORT_FIRST_FRAME="0").returncode == 0
