"""Is the UI thread free while live runs? Heartbeat jitter with and without live video.

A 10 ms QTimer on the UI thread records when it actually fires; jitter is how late each
beat comes. First a baseline with the window idle, then the same with the Live tab
running the real pipeline on a video of the sample photos (played unpaced, so the worker
is busy all the time). Target: p99 jitter <= 50 ms while live runs.

    python tests/bench_ui_responsiveness.py [--seconds 10] [--json]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
SHARED = HERE.parent  # samples/ and models/ come with the project

from livevideo import write_video  # noqa: E402

BEAT_MS = 10


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def heartbeat(app, seconds: float) -> list[float]:
    """Lateness (ms) of each 10 ms beat on the UI thread over `seconds`."""
    from PySide6.QtCore import QEventLoop, QTimer, Qt

    stamps: list[float] = []
    timer = QTimer()
    timer.setTimerType(Qt.PreciseTimer)
    timer.setInterval(BEAT_MS)
    timer.timeout.connect(lambda: stamps.append(time.perf_counter()))
    loop = QEventLoop()
    QTimer.singleShot(int(seconds * 1000), loop.quit)
    timer.start()
    loop.exec()
    timer.stop()
    return [max(0.0, (b - a) * 1000 - BEAT_MS) for a, b in zip(stamps, stamps[1:])]


def summary(jitter: list[float]) -> dict:
    return {"beats": len(jitter) + 1, "p50_ms": round(statistics.median(jitter), 2),
            "p99_ms": round(percentile(jitter, 99), 2), "max_ms": round(max(jitter), 2)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        os.environ["XDG_CONFIG_HOME"] = str(Path(tmp) / "config")  # leave real settings alone
        video = write_video(Path(tmp) / "samples.avi", SHARED / "samples", frames_per_sample=10)
        from fasdesk.core.io.settings import Settings
        from fasdesk.core.live.sources import SourceSpec
        from fasdesk.ui.app import create_app
        from fasdesk.ui.main_window import MainWindow

        app = create_app()
        window = MainWindow(settings=Settings(), save=False)
        window.resize(1100, 700)
        window.show()
        idle = heartbeat(app, min(3.0, args.seconds))

        tab = window.live_tab
        tab.options.paced = False  # the worker never rests: the hardest case for the UI
        tab.start(SourceSpec.parse(str(video)))
        start = time.perf_counter()
        while tab.frames_shown == 0 and time.perf_counter() - start < 30:
            heartbeat(app, 0.1)
        shown_before = tab.frames_shown
        live = heartbeat(app, args.seconds)
        shown = tab.frames_shown - shown_before
        window.close()

    result = {"idle": summary(idle), "live": summary(live),
              "frames_shown": shown, "fps_shown": round(shown / args.seconds, 1),
              "target_p99_ms": 50, "ok": percentile(live, 99) <= 50}
    if args.json:
        print(json.dumps(result))
    else:
        print(f"heartbeat every {BEAT_MS} ms on the UI thread")
        for name in ("idle", "live"):
            s = result[name]
            print(f"  {name:5s}: {s['beats']} beats, jitter p50 {s['p50_ms']} ms, "
                  f"p99 {s['p99_ms']} ms, max {s['max_ms']} ms")
        print(f"  live view painted {shown} frames in {args.seconds:.0f} s "
              f"({result['fps_shown']} fps); p99 target <= 50 ms: "
              f"{'met' if result['ok'] else 'MISSED'}")
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
