"""Does a big Images-tab batch keep the UI thread free, and what does the tab cost?

Same heartbeat as bench_ui_responsiveness.py (a 10 ms QTimer on the UI thread; jitter is
how late each beat comes), first with the tab idle, then while it classifies a folder of
copies of the sample photos. Throughput is compared with `core.batch.classify_paths` on
the same folder in the same process (no UI), so the ratio shows the tab's overhead.
Repeated `--reps` times; medians reported.

    python tests/bench_images_tab.py [--images 150] [--reps 3] [--ort-threads N] [--json]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_ui_responsiveness import SHARED, heartbeat, summary  # noqa: E402

NAMES = ("real_T1.jpg", "spoof_F1.jpg", "spoof_F2.jpg")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=150)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--ort-threads", type=int, default=0,
                        help="onnxruntime intra-op threads for the liveness model "
                             "(0: onnxruntime's default, as the app uses now)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)

    from PySide6.QtWidgets import QApplication

    from fasdesk.core.models import registry
    from fasdesk.core.images.batch import classify_paths
    from fasdesk.core.inference.detector import FaceDetector
    from fasdesk.core.inference.liveness import LivenessEngine
    from fasdesk.core.inference.pipeline import Pipeline
    from fasdesk.ui.images_tab import ImagesTab

    app = QApplication.instance() or QApplication([])
    pipeline = Pipeline(FaceDetector(registry.resolve(None, kind="detector")),
                        LivenessEngine(registry.resolve(None, kind="liveness"),
                                       threads=args.ort_threads or None))
    runs = []

    def run_core() -> dict:
        start = time.perf_counter()
        count = sum(1 for _ in classify_paths([folder], pipeline, workers=2))
        assert count == args.images
        return {"core_s": time.perf_counter() - start}

    def run_tab() -> dict:
        tab = ImagesTab()
        tab.set_pipeline_factory(lambda: pipeline)
        tab.resize(1100, 650)
        tab.show()
        idle = heartbeat(app, 2.0)
        start = time.perf_counter()
        tab.add_paths([str(folder)])
        busy: list[float] = []
        while tab.is_running():
            busy += heartbeat(app, 0.5)
        tab_s = time.perf_counter() - start
        assert tab.model.rowCount() == args.images
        tab.close()
        tab.deleteLater()
        return {"tab_s": tab_s, "idle": summary(idle), "busy": summary(busy)}

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "many"
        folder.mkdir()
        for i in range(args.images):
            shutil.copy(SHARED / "samples" / NAMES[i % 3], folder / f"{i:04d}_{NAMES[i % 3]}")
        list(classify_paths([folder / f"0000_{NAMES[0]}"], pipeline))  # warm-up
        for rep in range(args.reps):
            # Alternate which goes first, so neither always meets a warmer or cooler machine.
            order = (run_core, run_tab) if rep % 2 == 0 else (run_tab, run_core)
            measured = {}
            for run in order:
                measured.update(run())
            runs.append(measured)

    def median(key, sub=None):
        return round(statistics.median(r[key][sub] if sub else r[key] for r in runs), 2)

    result = {"images": args.images, "reps": args.reps, "ort_threads": args.ort_threads,
              "core_images_per_s": round(args.images / median("core_s"), 1),
              "tab_images_per_s": round(args.images / median("tab_s"), 1),
              "tab_over_core_time": round(statistics.median(r["tab_s"] / r["core_s"]
                                                            for r in runs), 2),
              "idle_p99_ms": median("idle", "p99_ms"), "busy_p50_ms": median("busy", "p50_ms"),
              "busy_p99_ms": median("busy", "p99_ms"), "busy_max_ms": median("busy", "max_ms")}
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{args.images} images, {args.reps} runs, onnxruntime threads "
              f"{args.ort_threads or 'default'}; medians:")
        print(f"  core.batch alone {result['core_images_per_s']} images/s, Images tab "
              f"{result['tab_images_per_s']} images/s (time ratio tab/core "
              f"{result['tab_over_core_time']})")
        print(f"  UI heartbeat jitter: idle p99 {result['idle_p99_ms']} ms; during the batch "
              f"p50 {result['busy_p50_ms']} ms, p99 {result['busy_p99_ms']} ms, "
              f"max {result['busy_max_ms']} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
