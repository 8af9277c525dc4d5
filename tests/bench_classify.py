"""Whole-process `fasdesk classify FOLDER --json` against the reference loop.

Both sides are timed as whole processes, start-up included, on the same folder of
one-face 640x480 JPEG frames (made from the sample photos: each photo scaled into a
landscape frame at a different place and brightness):

- fasdesk: `fasdesk classify FOLDER --json`, each run with brand-new user folders
  (config, data, cache), so nothing is prepared by hand or left from an earlier run
  ("cold"), and once more on the folders the cold run left ("warm");
- reference: upstream's demo as a one-image-at-a-time loop (cv2.imread, YuNet through
  cv2.FaceDetectorYN on the full-resolution frame, the crop, upstream's dynamically
  quantized model in onnxruntime with default session options), printing one JSON line
  per image too.

Besides the wall-clock time, each process's CPU time (user + system) is reported: other
programs on a shared machine stretch the wall clock far more than the CPU time.
Runs alternate in alternating order; medians and the per-run ratios are reported. The
verdicts of both sides are compared. Run it on a quiet machine and quote the load
average it prints.

    python tests/bench_classify.py [--frames 400] [--runs 5] [--json]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SHARED = HERE.parent  # samples/ and models/ come with the project
NAMES = ("real_T1.jpg", "spoof_F1.jpg", "spoof_F2.jpg")
FRAME_W, FRAME_H = 640, 480

# The reference: one image at a time, nothing overlapped, nothing cached between runs.
REFERENCE_LOOP = r"""
import json, sys
from pathlib import Path
import cv2
import numpy as np
import onnxruntime as ort
from fasdesk.core.models import registry
from fasdesk.core.inference.crop import preprocess
cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
detector = cv2.FaceDetectorYN.create(str(registry.resolve(None, kind="detector")), "",
                                     (320, 320), 0.8, 0.3, 5000)
session = ort.InferenceSession(str(registry.resolve("minifasnet-v2se-dynq")),
                               providers=["CPUExecutionProvider"])
name = session.get_inputs()[0].name
for path in sorted(Path(sys.argv[1]).iterdir()):
    image = cv2.imread(str(path))
    h, w = image.shape[:2]
    detector.setInputSize((w, h))
    _, found = detector.detect(cv2.cvtColor(image, cv2.COLOR_BGR2RGB))
    faces = []
    for row in ([] if found is None else found):
        box = [int(v) for v in row[:4]]
        logits = session.run(None, {name: preprocess(image, [box])})[0][0]
        z = np.exp(logits - logits.max())
        p_real = float(z[0] / z.sum())
        faces.append({"box": box, "p_real": p_real, "label": "real" if p_real >= 0.5 else "spoof"})
    print(json.dumps({"path": str(path), "width": w, "height": h, "faces": faces}))
"""


def make_frames(folder: Path, count: int) -> None:
    """`count` one-face 640x480 JPEGs: a sample photo scaled to the frame height, placed at
    a different x on a plain background, with its own brightness."""
    import cv2
    import numpy as np

    rng = np.random.default_rng(0)
    photos = [cv2.imread(str(SHARED / "samples" / n)) for n in NAMES]
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        photo = photos[i % len(photos)]
        scale = FRAME_H / photo.shape[0]
        small = cv2.resize(photo, (round(photo.shape[1] * scale), FRAME_H), interpolation=cv2.INTER_AREA)
        frame = np.empty((FRAME_H, FRAME_W, 3), np.uint8)
        frame[:] = small.reshape(-1, 3).mean(axis=0)
        x = int(rng.integers(0, FRAME_W - small.shape[1] + 1))
        frame[:, x:x + small.shape[1]] = small
        frame = cv2.convertScaleAbs(frame, alpha=rng.uniform(0.85, 1.15), beta=rng.uniform(-12, 12))
        cv2.imwrite(str(folder / f"frame_{i:04d}.jpg"), frame, [cv2.IMWRITE_JPEG_QUALITY, 90])


def fasdesk_command() -> list[str]:
    script = Path(sys.executable).with_name("fasdesk")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "fasdesk"]


def timed(command: list[str], env: dict, expect: int) -> tuple[float, float, list[dict]]:
    """(wall seconds, CPU seconds (user + system), JSON records) of one whole process."""
    import resource

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=900)
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command[:3])}... failed ({done.returncode}): {done.stderr[-2000:]}")
    records = [json.loads(line) for line in done.stdout.splitlines()]
    if len(records) != expect:
        raise SystemExit(f"expected {expect} records, got {len(records)}")
    return seconds, cpu, records


def verdicts(records: list[dict]) -> list[tuple]:
    return [tuple(f["label"] for f in r["faces"]) for r in sorted(records, key=lambda r: r["path"])]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=400)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="fasdesk-bench-classify-"))
    try:
        folder = work / "frames"
        make_frames(folder, args.frames)
        base_env = {k: v for k, v in os.environ.items() if not k.startswith("XDG_")}
        runs = []
        load_before = os.getloadavg()
        for run in range(args.runs):
            user = work / f"user{run}"
            env = {**base_env, "XDG_CONFIG_HOME": str(user / "config"),
                   "XDG_DATA_HOME": str(user / "data"), "XDG_CACHE_HOME": str(user / "cache")}
            fasdesk = fasdesk_command() + ["classify", str(folder), "--json"]
            reference = [sys.executable, "-c", REFERENCE_LOOP, str(folder)]
            times, cpu = {}, {}
            order = ("reference", "cold", "warm") if run % 2 == 0 else ("cold", "warm", "reference")
            for which in order:
                command = reference if which == "reference" else fasdesk
                times[which], cpu[which], records = timed(command, env, args.frames)
                if which == "reference":
                    ref_verdicts = verdicts(records)
                else:
                    ours = verdicts(records)
                    one_face = sum(len(v) == 1 for v in ours)
            same = sum(a == b for a, b in zip(ours, ref_verdicts)) / args.frames
            runs.append({**{k: round(v, 3) for k, v in times.items()},
                         "cpu_s": {k: round(v, 2) for k, v in cpu.items()},
                         "ratio_cold": round(times["reference"] / times["cold"], 2),
                         "ratio_warm": round(times["reference"] / times["warm"], 2),
                         "same_verdicts": round(same, 4), "one_face_frames": one_face,
                         "load_average": round(os.getloadavg()[0], 2)})
            if not args.json:
                print(f"run {run + 1}: reference {times['reference']:.2f} s, fasdesk cold "
                      f"{times['cold']:.2f} s ({runs[-1]['ratio_cold']:.2f}x), warm "
                      f"{times['warm']:.2f} s ({runs[-1]['ratio_warm']:.2f}x); CPU s: reference "
                      f"{cpu['reference']:.1f}, cold {cpu['cold']:.1f}, warm {cpu['warm']:.1f}; "
                      f"same verdicts {100 * same:.1f}%; load {runs[-1]['load_average']:.2f}",
                      flush=True)
        load_after = os.getloadavg()
    finally:
        shutil.rmtree(work, ignore_errors=True)

    def median(key):
        return round(statistics.median(r[key] for r in runs), 3)

    report = {"frames": args.frames, "size": [FRAME_W, FRAME_H], "runs": runs,
              "median_s": {k: median(k) for k in ("reference", "cold", "warm")},
              "median_ratio_cold": median("ratio_cold"), "median_ratio_warm": median("ratio_warm"),
              "load_average_before": [round(v, 2) for v in load_before],
              "load_average_after": [round(v, 2) for v in load_after]}
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        m = report["median_s"]
        print(f"\n{args.frames} one-face {FRAME_W}x{FRAME_H} frames, median of {args.runs} runs: "
              f"reference {m['reference']:.2f} s, fasdesk classify {m['cold']:.2f} s on fresh "
              f"user folders ({report['median_ratio_cold']:.2f}x), {m['warm']:.2f} s on the "
              f"second run ({report['median_ratio_warm']:.2f}x); load average "
              f"{report['load_average_before'][0]:.2f} before, {report['load_average_after'][0]:.2f} after")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
