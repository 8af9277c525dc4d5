"""Calibration robustness table: `python tests/bench_robustness.py WORKDIR [--recipes ...]`.

Does a calibration fine-tune keep real faces real when the light, movement or colour
changes, and does it still catch attacks it never saw? (issue 24; the method and the
measured table are in docs/calibration-robustness.md.)

1. Calibration, as `fasdesk calibrate --fine-tune` does it (fasdesk.core.calibration.session): a
   clean real stage and one replay stage, both videos from tests/calibration_media.py (the
   live sample photo swaying in front of the camera; the same filmed off a screen).
2. Held-out sets, built here and never trained on (`heldout_sets`): new frames of the real
   face (other times of the sway, another background) under
   - low light with sensor noise, motion blur of 5-10 px, a warm indoor colour cast and
     heavy JPEG (q 30-60), 20 frames each, plus 20 clean ones;
   - replays made differently from calibration's: an RGB sub-pixel grid, a finer moire at
     other angles, a stronger display gamma, a green-blue cast and a screen glare
     (`replay_heldout`), 60 frames;
   - prints, an attack calibration never saw: halftone dots in cyan, magenta, yellow and
     black screens, dull paper contrast, a paper tint and its white margin (`print_attack`),
     40 frames.
   The face box comes from the detector on the clean frame (the same box for every
   condition: the liveness model is measured, not the detector).
3. Every model is scored with the app's crop and ONNX engine at the threshold its
   calibration picked (the pretrained model also at 0.5). Rows: the pretrained model, the
   fine-tune with today's recipe (`--augment none`) and with the new one (the recipe's
   default), plus any `--augment` list given (the ablation).

Takes 30-60 s per fine-tune on two busy cores (90 training crops). Not a unit test: run
it by hand.
"""
from __future__ import annotations

import argparse
import json
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from calibration_media import HEIGHT, WIDTH, _place, write_recording  # noqa: E402

SAMPLES = ROOT / "samples"  # the clone's own sample photos
REAL_CONDITIONS = ("clean", "low_light", "motion_blur", "warm_cast", "heavy_jpeg")
PER_CONDITION = 20
N_REPLAY, N_PRINT = 60, 40
CAL_FRAMES = 240  # per calibration stage (12 s at 20 fps; one frame in 2 kept)


# -- held-out sets -------------------------------------------------------------------------

def _u8(x):
    return np.clip(np.rint(x * 255.0), 0, 255).astype(np.uint8)


def heldout_frame(face, i: int) -> np.ndarray:
    """A real frame calibration never saw: other times of the sway (t from 100 s), a
    lighter background."""
    frame = _place(face, 100.0 + 0.37 * i)
    background = np.all(frame <= 72, axis=2)
    frame[background] = (frame[background].astype(np.int16) + 60).clip(0, 255).astype(np.uint8)
    return frame


def low_light(frame, rng):
    x = frame.astype(np.float32) / 255.0
    gain = rng.uniform(0.25, 0.45)  # 1-2 stops under, the camera's gain up: more noise
    x = gain * x ** 1.1
    sigma = np.sqrt(rng.uniform(0.001, 0.002) * x + rng.uniform(0.008, 0.016) ** 2)
    x = x + sigma * rng.standard_normal(x.shape).astype(np.float32)  # per-channel noise
    return cv2.imdecode(cv2.imencode(".jpg", _u8(x), [cv2.IMWRITE_JPEG_QUALITY, 85])[1], 1)


def motion_blur(frame, rng):
    n = int(rng.integers(5, 11))
    k = np.zeros((n, n), np.float32)
    k[n // 2, :] = 1
    m = cv2.getRotationMatrix2D(((n - 1) / 2, (n - 1) / 2), float(rng.uniform(0, 180)), 1.0)
    k = cv2.warpAffine(k, m, (n, n))
    return cv2.filter2D(frame, -1, k / k.sum())


def warm_cast(frame, rng):
    x = frame.astype(np.float32) / 255.0
    w = rng.uniform(0.25, 0.4)
    return _u8(x * np.float32([1 - w, 1 - 0.2 * w, 1 + 0.5 * w]))  # BGR


def heavy_jpeg(frame, rng):
    q = int(rng.integers(30, 61))
    return cv2.imdecode(cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, q])[1], 1)


def replay_heldout(frame, rng):
    """A screen replay unlike calibration's: sub-pixel grid, finer moire, other gamma/cast."""
    x = frame.astype(np.float32) / 255.0
    x = x ** rng.uniform(1.5, 1.9)
    x = 0.08 + 0.85 * x  # a screen's raised blacks and limited contrast
    yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32)
    pitch = rng.uniform(2.6, 3.4)  # RGB stripes of the panel as the camera resolves them
    for c, phase in zip((2, 1, 0), (0.0, 1 / 3, 2 / 3)):
        x[..., c] *= 0.85 + 0.15 * np.cos(2 * np.pi * (xx / pitch - phase))
    angle = rng.uniform(1.2, 2.4)
    freq = rng.uniform(0.05, 0.08)
    x *= (1 + 0.08 * np.sin(2 * np.pi * freq * (xx * np.cos(angle) + yy * np.sin(angle))))[..., None]
    x = x * np.float32([1.1, 1.06, 0.9])  # green-blue cast (BGR)
    cx, cy = rng.uniform(0, WIDTH), rng.uniform(0, HEIGHT)
    glare = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * rng.uniform(60, 120) ** 2))
    x = x + 0.25 * glare[..., None]
    x = cv2.GaussianBlur(x, (0, 0), rng.uniform(0.6, 1.0))
    x = x + rng.normal(0, 0.006, x.shape).astype(np.float32)
    return _u8(x)


def _halftone(channel, angle_deg, cell):
    """Ink coverage in [0,1] -> a printed dot screen at `angle_deg` with `cell` px cells."""
    h, w = channel.shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    a = np.deg2rad(angle_deg)
    u = (xx * np.cos(a) + yy * np.sin(a)) / cell
    v = (-xx * np.sin(a) + yy * np.cos(a)) / cell
    d = np.sqrt((u - np.round(u)) ** 2 + (v - np.round(v)) ** 2)  # 0 at dot centres
    radius = np.sqrt(np.clip(channel, 0, 1) / np.pi)  # dot area = coverage
    return np.clip((radius - d) * cell + 0.5, 0, 1)  # anti-aliased dot edge


def print_attack(frame, rng):
    """A printed photo held up to the camera: CMYK halftone, paper white and tint, dull
    blacks, its white margin around the picture, then the camera's blur and noise."""
    x = frame.astype(np.float32) / 255.0
    b, g, r = x[..., 0], x[..., 1], x[..., 2]
    k = 1 - np.maximum(np.maximum(r, g), b)
    denom = np.maximum(1 - k, 1e-3)
    c, m, y = (1 - r - k) / denom, (1 - g - k) / denom, (1 - b - k) / denom
    cell = rng.uniform(3.0, 4.5)
    c, m, y, k = (_halftone(ch, ang, cell) for ch, ang in ((c, 15), (m, 75), (y, 0), (k, 45)))
    paper = np.float32([0.86, 0.93, 0.96]) * rng.uniform(0.9, 1.0)  # BGR, warm paper
    out = np.stack([(1 - y) * (1 - k), (1 - m) * (1 - k), (1 - c) * (1 - k)], -1)
    out = 0.1 + 0.9 * out * paper
    # The photo's white margin: the print is smaller than the camera's view.
    margin = int(rng.integers(25, 45))
    border = np.ones_like(out) * paper
    inner = cv2.resize(out, (WIDTH - 2 * margin, HEIGHT - 2 * margin), interpolation=cv2.INTER_AREA)
    border[margin:HEIGHT - margin, margin:WIDTH - margin] = inner
    scene = np.full_like(out, 0.25)
    s = rng.uniform(0.88, 0.95)  # the sheet held a little away: smaller, on a wall
    sheet = cv2.resize(border, (int(WIDTH * s), int(HEIGHT * s)), interpolation=cv2.INTER_AREA)
    oy, ox = (HEIGHT - sheet.shape[0]) // 2, (WIDTH - sheet.shape[1]) // 2
    scene[oy:oy + sheet.shape[0], ox:ox + sheet.shape[1]] = sheet
    scene = cv2.GaussianBlur(scene, (0, 0), rng.uniform(0.7, 1.1))
    scene = scene + rng.normal(0, 0.008, scene.shape).astype(np.float32)
    return _u8(scene)


CONDITION_FUNCS = {"clean": lambda f, rng: f, "low_light": low_light, "motion_blur": motion_blur,
                   "warm_cast": warm_cast, "heavy_jpeg": heavy_jpeg}


def heldout_sets(detector, seed: int = 24) -> dict[str, list]:
    """{set name: [(frame, box)]}: the real conditions, "replay" and "print"."""
    face = cv2.imread(str(SAMPLES / "real_T1.jpg"))
    rng = np.random.default_rng(seed)
    sets = {name: [] for name in (*REAL_CONDITIONS, "replay", "print")}

    def box_of(frame):
        faces = detector.detect(frame)
        return None if not faces else list(max(faces, key=lambda d: d.box[2] * d.box[3]).box)

    i = 0
    for name in REAL_CONDITIONS:
        for _ in range(PER_CONDITION):
            clean = heldout_frame(face, i)
            i += 1
            box = box_of(clean)
            if box is not None:
                sets[name].append((CONDITION_FUNCS[name](clean, rng), box))
    for name, count, func in (("replay", N_REPLAY, replay_heldout), ("print", N_PRINT, print_attack)):
        for _ in range(count):
            clean = heldout_frame(face, i)
            i += 1
            attacked = func(clean, rng)
            box = box_of(attacked)
            if box is None and name == "replay":  # same geometry as the clean frame
                box = box_of(clean)
            if box is None:  # a print moves the face (the sheet): no box, no sample
                continue
            sets[name].append((attacked, box))
    return sets


def score_sets(sets, model_path) -> dict[str, np.ndarray]:
    from fasdesk.core.inference.crop import preprocess
    from fasdesk.core.inference.liveness import LivenessEngine

    engine = LivenessEngine(model_path)
    out = {}
    for name, items in sets.items():
        if not items:
            out[name] = np.zeros(0)
            continue
        x = np.concatenate([preprocess(img, [box], engine.input_size) for img, box in items])
        out[name] = np.concatenate([engine.p_real(x[i:i + 32])[0] for i in range(0, len(x), 32)])
    return out


def table_row(scores: dict, threshold: float) -> dict:
    row = {}
    for name, values in scores.items():
        if name in ("replay", "print"):
            row[name] = [int((values < threshold).sum()), len(values)]  # caught
        else:
            row[name] = [int((values >= threshold).sum()), len(values)]  # accepted
    return row


# -- calibration ---------------------------------------------------------------------------

def calibrate(work: Path, model_path: Path):
    from fasdesk.app.calibration import fine_tune_plan
    from fasdesk.core.calibration import session as C
    from fasdesk.core.inference.pipeline import build_pipeline

    media = work / "media"
    media.mkdir(parents=True, exist_ok=True)
    real, replay = media / "real.avi", media / "replay.avi"
    if not replay.is_file():
        write_recording(real, SAMPLES, CAL_FRAMES, awkward=False)
        write_recording(replay, SAMPLES, CAL_FRAMES, attack=True, seed=3)
    root = work / "sessions"
    pipeline = build_pipeline(str(model_path), None, live=True)
    earlier = sorted(root.glob("*/session.json"))
    if earlier:  # the recordings are the same every time: reuse them
        session = C.Session.load(earlier[-1].parent)
    else:
        root.mkdir(parents=True, exist_ok=True)
        session = C.Session.create("bench", parent=root)
        for stage, src in ((C.REAL, real), ("replay", replay)):
            C.record_stage(session, stage, str(src), pipeline, every=2)
    before = C.evaluate(session, C.score_session(session, model_path, pipeline.engine),
                        C.DEFAULT_TARGET_BPCER)
    plan = fine_tune_plan(session, model_path, "bench")
    backend(plan.steps[0][1])  # prep
    return session, plan, before


def backend(args, log: Path | None = None) -> None:
    cmd = [sys.executable, "-m", "training", *map(str, args)]
    result = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if log is not None:
        log.write_text(result.stdout + result.stderr)
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed: {result.stderr.strip()[-500:]}")


def extra_tag(train_args: str) -> str:
    """A file-name part for `--train-args` ("" when none): "--lr 0.003" -> "_lr0.003"."""
    words = shlex.split(train_args or "")
    return "".join(("_" + w.lstrip("-")) if w.startswith("--") else w for w in words)


def fine_tune(session, plan, work: Path, augment: str, seed: int,
              train_args: str = "") -> tuple[Path, dict]:
    from fasdesk.core.calibration import session as C
    from training import layout

    tag = re.sub(r"[^\w.+=-]", "_", f"{augment.replace(',', '+')}{extra_tag(train_args)}-s{seed}")
    run, onnx = work / f"run-{tag}", work / f"model-{tag}.onnx"
    if not onnx.is_file():
        if run.exists():
            shutil.rmtree(run)
        backend(["train", plan.prepared, run, "--init", plan.checkpoint, "--device", "cpu",
                 "--augment", augment, "--seed", seed, *shlex.split(train_args or "")],
                work / f"train-{tag}.log")
        backend(["export", layout.best_checkpoint(run), onnx])
    after = C.evaluate(session, C.score_session(session, onnx), C.DEFAULT_TARGET_BPCER,
                       fine_tuned=True)
    return onnx, after


def fmt(row: dict) -> str:
    return " | ".join(f"{k}/{n} ({100 * k / max(n, 1):.0f}%)" for k, n in row.values())


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("work", type=Path, help="scratch folder (media and models are reused)")
    parser.add_argument("--recipes", nargs="+", default=["none", "default"],
                        help="--augment values to fine-tune with ('default' = the recipe's)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--train-args", default="", metavar="ARGS",
                        help="more `python -m training train` options for every fine-tune, one "
                        "string (write it --train-args='--lr 0.003 --epochs 5'); they name the "
                        "run's files, so each setting is trained once")
    args = parser.parse_args(argv)
    from fasdesk.core.inference.detector import FaceDetector
    from fasdesk.core.models.registry import find_file
    from training.recipe import AUGMENT

    args.work.mkdir(parents=True, exist_ok=True)
    model_path = find_file("best_model.onnx")
    detector = FaceDetector(find_file("detector.onnx"))
    sets = heldout_sets(detector)
    print("held-out sets: " + ", ".join(f"{k} {len(v)}" for k, v in sets.items()), flush=True)
    session, plan, before = calibrate(args.work, model_path)
    pre = score_sets(sets, model_path)
    header = " | ".join(sets)
    print(f"row | threshold | {header} | calibration held-out BPCER / APCER | report robustness")
    rows = []

    def show(name, scores, report, threshold):
        row = table_row(scores, threshold)
        held = report["held_out"] if report else None
        from fasdesk.core.calibration.robustness import line
        rows.append({"row": name, "threshold": threshold, "sets": row,
                     "calibration": held and {"bpcer": held["bpcer"], "apcer": held["apcer"]},
                     "robustness": report and report.get("robustness")})
        cal = f"{held['bpcer']:.3f} / {held['apcer']:.3f}" if held else "-"
        print(f"{name} | {threshold:.3f} | {fmt(row)} | {cal} | "
              f"{line(report.get('robustness')) if report else '-'}", flush=True)

    show("pretrained @0.5", pre, None, 0.5)
    show("pretrained, calibrated", pre, before, before["threshold"])
    for recipe in args.recipes:
        augment = AUGMENT if recipe == "default" else recipe
        for seed in args.seeds:
            started = time.monotonic()
            onnx, after = fine_tune(session, plan, args.work, augment, seed, args.train_args)
            extra = f" {args.train_args}" if args.train_args else ""
            show(f"fine-tune --augment {augment}{extra} seed {seed} "
                 f"[{time.monotonic() - started:.0f} s]", score_sets(sets, onnx), after,
                 after["threshold"])
    out = args.work / "robustness.json"
    existing = json.loads(out.read_text()) if out.is_file() else []
    out.write_text(json.dumps(existing + rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
