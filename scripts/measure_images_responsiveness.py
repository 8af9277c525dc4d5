"""How long the UI thread stays blocked while the Images tab classifies a big folder.

    python scripts/measure_images_responsiveness.py [N_FILES] [SECONDS] [list|grid]

Makes N_FILES small JPEGs from samples/ (every tenth 200 px, big enough to judge; the rest
64 px), drops the folder on a shown Images tab in the chosen view, and runs a 50 ms
QTimer heartbeat on the UI thread for SECONDS (or until the batch ends; a model is loaded
once before, as the app's live view does at start). Prints the
median and largest gap between beats: anything well over 50 ms is time the window could
not repaint or take input. A measurement by hand, not a test (it depends on the machine).
"""
from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
ROOT = Path(__file__).resolve().parents[1]
HEARTBEAT_MS = 50


def make_folder(folder: Path, count: int) -> None:
    import cv2

    photos = [cv2.imread(str(ROOT / "samples" / n))
              for n in ("real_T1.jpg", "spoof_F1.jpg", "spoof_F2.jpg")]
    encoded = {}
    for side in (200, 64):
        for k, photo in enumerate(photos):
            scale = side / max(photo.shape[:2])
            small = cv2.resize(photo, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
            encoded[side, k] = cv2.imencode(".jpg", small)[1].tobytes()
    for i in range(count):
        (folder / f"p{i}.jpg").write_bytes(encoded[200 if i % 10 == 0 else 64, i % 3])


def main() -> int:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000
    limit_s = float(sys.argv[2]) if len(sys.argv) > 2 else 120.0
    view = sys.argv[3] if len(sys.argv) > 3 else "grid"
    from PySide6.QtCore import QElapsedTimer, QTimer
    from PySide6.QtWidgets import QApplication

    from fasdesk.ui import workers
    from fasdesk.ui.images_tab import ImagesTab

    app = QApplication.instance() or QApplication([])
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        started = time.monotonic()
        make_folder(folder, count)
        print(f"made {count} files in {time.monotonic() - started:.1f} s")
        tab = ImagesTab()
        # As in the app, where the live view loaded a model at start: the first model load
        # in a process imports onnx (about a second holding the GIL), not the batch's cost.
        tab.state.pipeline_factory()()
        tab.resize(1366, 720)
        if hasattr(tab, "set_view"):
            tab.set_view(view)
        tab.show()
        gaps: list[float] = []
        stamps: list[float] = []
        clock = QElapsedTimer()
        clock.start()
        last = [clock.elapsed()]

        def beat():
            now = clock.elapsed()
            gaps.append(now - last[0])
            stamps.append(now)
            last[0] = now
            if not tab.is_running() or now > limit_s * 1000:
                app.quit()

        heartbeat = QTimer(interval=HEARTBEAT_MS, timeout=beat)
        tab.add_paths([str(folder)])
        heartbeat.start()
        app.exec()
        heartbeat.stop()
        seconds = clock.elapsed() / 1000
        done, total = tab._done, tab._total
        tab.cancel()
        workers.stop_all()
        tab.close()
        gaps = gaps[1:]  # the first beat includes the start
        print(f"{view} view: {done} of {total} files classified in {seconds:.1f} s "
              f"({done / seconds:.0f}/s)")
        print(f"heartbeat every {HEARTBEAT_MS} ms: median gap {statistics.median(gaps):.0f} ms, "
              f"max {max(gaps):.0f} ms, 95th percentile "
              f"{statistics.quantiles(gaps, n=20)[-1]:.0f} ms, {len(gaps)} beats")
        worst = sorted(zip(gaps, stamps[1:]), reverse=True)[:5]
        print("largest gaps (ms, ending at s):",
              ", ".join(f"{g:.0f} @ {t / 1000:.1f}" for g, t in worst))
        thumbnails = getattr(tab.model, "thumbnails", None)
        if thumbnails is not None:
            print(f"thumbnails read: {thumbnails.requested}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
