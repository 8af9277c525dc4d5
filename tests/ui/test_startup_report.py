"""FASDESK_REPORT_FIRST_FRAME=1: the app prints how long after its process started the
first live frame was painted (launch -> first frame, as a person waits for it)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time

from conftest import run_until_first_frame


def test_seconds_since_start_counts_from_the_process_start():
    # The child sleeps before it even imports fasdesk: a clock started by fasdesk would
    # miss that time, the OS's record of the process start does not.
    code = ("import time; time.sleep(0.6); from fasdesk.core.io.proctime import seconds_since_start; "
            "print(*seconds_since_start())")
    launched = time.monotonic()
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    waited = time.monotonic() - launched
    assert done.returncode == 0, done.stderr
    seconds, since = done.stdout.split(maxsplit=1)
    if sys.platform.startswith("linux") or sys.platform == "win32":
        assert since.strip() == "process start"
        # The OS records the start in clock ticks (10 ms on Linux), rounded down.
        assert 0.6 <= float(seconds) <= waited + 0.02
    else:
        assert since.strip() == "fasdesk start" and 0 <= float(seconds) < waited


def test_first_frame_is_reported_as_a_duration_and_sigterm_closes_cleanly(samples_dir, tmp_path):
    # --quit-after far off: the app is closed by SIGTERM once its report line arrived.
    env = {**os.environ, "FASDESK_REPORT_FIRST_FRAME": "1", "QT_QPA_PLATFORM": "offscreen",
           "XDG_CONFIG_HOME": str(tmp_path)}
    found, waited, status, stderr = run_until_first_frame(
        [sys.executable, "-m", "fasdesk", "--source", samples_dir, "--quit-after", "300"], env)
    assert found, stderr[-3000:]
    # The OS keeps the start in clock ticks (10 ms), rounded down; the line rounds to 0.01 s.
    assert 0 < float(found.group(1)) <= waited + 0.02, stderr
    # SIGTERM closed the window as a user's close does: exit 0, the report printed once,
    # no traceback, the settings written (with the source it ran).
    assert status == 0, stderr[-3000:]
    assert stderr.count("first live frame") == 1 and "Traceback" not in stderr
    saved = json.loads((tmp_path / "fasdesk" / "settings.json").read_text())
    assert saved["source"] == str(samples_dir)
