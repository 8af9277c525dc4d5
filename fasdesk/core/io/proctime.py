"""How long this process has been running, from the operating system's record of its start.

Used by FASDESK_REPORT_FIRST_FRAME to report launch -> first live frame: the process
start (before Python, the bootloader of the packaged app, or any import) is the moment a
person double-clicked or pressed Enter.
"""
from __future__ import annotations

import os
import sys
import time

# Where the OS gives no start time: the moment this module was first imported (early in
# start-up; the GUI imports it before building any window).
_IMPORTED = time.monotonic()


def _linux_seconds() -> float:
    # Field 22 of /proc/self/stat is the start time in clock ticks after boot; the name
    # field (2) may hold spaces and parentheses, so count from the last ')'.
    with open("/proc/self/stat", encoding="ascii", errors="replace") as fh:
        fields = fh.read().rpartition(")")[2].split()
    started = int(fields[19]) / os.sysconf("SC_CLK_TCK")
    return time.clock_gettime(time.CLOCK_BOOTTIME) - started


def _windows_seconds() -> float:
    import ctypes
    from ctypes import wintypes

    kernel32 = ctypes.windll.kernel32
    created, exited, kernel, user, now = (wintypes.FILETIME() for _ in range(5))
    if not kernel32.GetProcessTimes(kernel32.GetCurrentProcess(), ctypes.byref(created),
                                    ctypes.byref(exited), ctypes.byref(kernel),
                                    ctypes.byref(user)):
        raise OSError("GetProcessTimes failed")
    kernel32.GetSystemTimePreciseAsFileTime(ctypes.byref(now))

    def ticks(ft) -> int:  # 100 ns units
        return (ft.dwHighDateTime << 32) | ft.dwLowDateTime
    return (ticks(now) - ticks(created)) / 1e7


def seconds_since_start() -> tuple[float, str]:
    """(seconds, what they count from): "process start" where the OS says when this
    process started (Linux, Windows), else "fasdesk start" (its first import)."""
    try:
        if sys.platform.startswith("linux"):
            return _linux_seconds(), "process start"
        if sys.platform == "win32":
            return _windows_seconds(), "process start"
    except (OSError, ValueError, IndexError, AttributeError):
        pass
    return time.monotonic() - _IMPORTED, "fasdesk start"
