"""FASDESK_REPORT_FIRST_FRAME=1: the app prints how long after its process started the
first live frame was painted (launch -> first frame, as a person waits for it)."""
from __future__ import annotations

import os
import re
import subprocess
import sys
import time

FIRST_FRAME = re.compile(r"^fasdesk: first live frame ([0-9.]+) s after (process start|fasdesk start)$")


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


def test_first_frame_is_reported_as_a_duration(samples_dir, fp32_model, detector_model):
    env = {**os.environ, "FASDESK_REPORT_FIRST_FRAME": "1", "QT_QPA_PLATFORM": "offscreen"}
    launched = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "fasdesk", "--source", str(samples_dir),
                           "--quit-after", "4"], capture_output=True, text=True, timeout=120,
                          env=env)
    waited = time.monotonic() - launched
    assert done.returncode == 0, done.stderr[-3000:]
    found = [m for m in map(FIRST_FRAME.match, done.stderr.splitlines()) if m]
    assert len(found) == 1, done.stderr[-3000:]
    assert 0 < float(found[0].group(1)) < waited
