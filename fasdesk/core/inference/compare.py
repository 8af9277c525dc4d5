"""Measuring a liveness model against another on realistic face crops, and `fasdesk
models optimize`: jittered crops of face photos, the agreement of two models' verdicts,
and the check of the exact rewrite (fasdesk.core.inference.optimize) against its
original. Above both the rewrite and the engine (liveness.py loads models through the
rewrite; this module runs the engine), so neither imports the other in a circle.
"""
from __future__ import annotations

import os
import statistics
import time
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

from fasdesk.core.decision.verdict import DEFAULT_THRESHOLD
from fasdesk.core.inference.crop import face_crop, to_tensor
from fasdesk.core.inference.liveness import LivenessEngine
from fasdesk.core.inference.optimize import OptimizeError, describe, runtime_model
from fasdesk.core.io.files import write_atomic
from fasdesk.core.models import registry

AGREEMENT_CROPS = 510
# Untimed runs before each timed block: the first runs after a switch are slow (caches).
SETTLE_RUNS = 4


# ----------------------------------------------------------------------------- jittered crops

def jittered_crops(images: Sequence[np.ndarray], boxes: Sequence[Sequence[float]], count: int,
                   size: int = 128, seed: int = 0, crops_per_variant: int = 10) -> np.ndarray:
    """`count` model inputs [N, 3, size, size] cut from face photos with realistic jitter.

    What a camera varies is applied to the whole photo (mirror flip, brightness and
    contrast, JPEG quality 30-95); what a detector varies, to the box (scale 0.85-1.2,
    shift up to 10% of the box), `crops_per_variant` boxes per photo variant (JPEG round
    trips are the slow part). Photos are taken in turn. Crops go through
    fasdesk.core.inference.crop, like every crop a model sees. Deterministic for a given seed.
    """
    import cv2

    if not images or len(images) != len(boxes):
        raise ValueError("need one face box per image")
    rng = np.random.default_rng(seed)
    crops: list[np.ndarray] = []
    variant = 0
    while len(crops) < count:
        image = images[variant % len(images)]
        x, y, w, h = (float(v) for v in boxes[variant % len(images)])
        variant += 1
        if rng.random() < 0.5:
            image = image[:, ::-1]
            x = image.shape[1] - x - w
        image = cv2.convertScaleAbs(image, alpha=rng.uniform(0.6, 1.4), beta=rng.uniform(-25, 25))
        quality = int(rng.integers(30, 96))
        image = cv2.imdecode(cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])[1],
                             cv2.IMREAD_COLOR)
        for _ in range(min(crops_per_variant, count - len(crops))):
            scale = rng.uniform(0.85, 1.2)
            cx = x + w / 2 + rng.uniform(-0.1, 0.1) * w
            cy = y + h / 2 + rng.uniform(-0.1, 0.1) * h
            crops.append(face_crop(image, (cx - w * scale / 2, cy - h * scale / 2,
                                           w * scale, h * scale), size))
    return to_tensor(crops)


def face_photos(paths: Iterable[str | os.PathLike], detector_path: str | os.PathLike):
    """(images, boxes): the largest face of each readable photo under `paths`."""
    from fasdesk.core.inference.detector import FaceDetector
    from fasdesk.core.io.imageio import ImageReadError, iter_image_files, read_image

    detector = FaceDetector(detector_path)
    images, boxes = [], []
    for path in iter_image_files(paths):
        try:
            image = read_image(path)
        except ImageReadError:
            continue
        faces = detector.detect(image)
        if faces:
            best = max(faces, key=lambda d: d.box[2] * d.box[3])
            images.append(image)
            boxes.append(best.box)
    return images, boxes


def _engine(model):
    if isinstance(model, LivenessEngine):
        return model
    return LivenessEngine(model, providers=["CPUExecutionProvider"], optimize=False)


def agreement(reference, candidate, inputs: np.ndarray, threshold: float = DEFAULT_THRESHOLD,
              chunk: int = 32) -> dict:
    """Share of identical verdicts and median / max |delta p_real| of `candidate` against
    `reference` on model inputs [N, 3, S, S] (run in chunks to bound memory). Each is a
    LivenessEngine, or a model file run as it is."""
    ref, cand = _engine(reference), _engine(candidate)
    p_ref = np.concatenate([ref.p_real(inputs[i:i + chunk])[0] for i in range(0, len(inputs), chunk)])
    p_cand = np.concatenate([cand.p_real(inputs[i:i + chunk])[0] for i in range(0, len(inputs), chunk)])
    delta = np.abs(p_ref - p_cand)
    return {"crops": int(len(inputs)), "threshold": float(threshold),
            "agreement": float(np.mean((p_ref >= threshold) == (p_cand >= threshold))),
            "median_abs_delta_p_real": float(np.median(delta)),
            "max_abs_delta_p_real": float(delta.max()),
            "crops_near_threshold": int(np.sum(np.abs(p_ref - threshold) < 0.2))}


# ----------------------------------------------------------------------------- models optimize

def check_rewrite(model: str | None = None, images: Iterable[str | os.PathLike] = (),
                crops: int = AGREEMENT_CROPS, out: str | os.PathLike | None = None,
                log: Callable[[str], None] = lambda message: None) -> dict:
    """`fasdesk models optimize`: build (or find) the fast copy of a liveness model (a
    registry id or a file; None = the default), write a copy to `out` if asked, and
    measure it against the original on jittered crops of the face photos in `images`.
    Returns the report. Raises OptimizeError, registry.MissingModelError,
    liveness.ModelError."""
    source = registry.resolve(model, kind="liveness")
    log(f"rewriting {source.name} ...")
    try:
        derived = runtime_model(source)
    except OSError as exc:
        raise OptimizeError(f"cannot read {source}: {exc.strerror or exc}") from None
    report = {"model": model or registry.default_liveness_id(), "source": str(source),
              "source_sha256": registry.file_sha256(source),
              "optimized": bool(derived.info.get("optimized")), "note": derived.info.get("note"),
              "cached": str(derived.path) if derived.path else None,
              "max_abs_logit_delta_random": derived.info.get("max_abs_logit_delta_random"),
              "agreement": None, "written": None}
    if not derived.derived:
        return report
    if out is not None:
        out = Path(out)
        try:
            data = derived.data if derived.data is not None else derived.path.read_bytes()
            out.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(out, data)
        except OSError as exc:
            raise OptimizeError(f"cannot write {out}: {exc.strerror or exc}") from None
        report["written"] = str(out)
    image_list = list(images)
    if image_list:
        photos, boxes = face_photos(image_list, registry.resolve(None, kind="detector"))
        if not photos:
            raise OptimizeError("no face found in the images given for the agreement check")
        log(f"agreement on {crops} jittered crops from {len(photos)} photo(s) ...")
        original = LivenessEngine(source, providers=["CPUExecutionProvider"], optimize=False)
        fast = LivenessEngine(source, providers=["CPUExecutionProvider"])
        inputs = jittered_crops(photos, boxes, crops, size=original.input_size)
        report["agreement"] = agreement(original, fast, inputs)
    return report


def format_report(report: dict) -> str:
    lines = [f"{report['model']}: optimized: {describe(report['optimized'], report['note'] or '')}"]
    if report.get("cached"):
        lines.append(f"fast copy (rebuilt when missing): {report['cached']}")
    if report.get("written"):
        lines.append(f"written to {report['written']}")
    a = report.get("agreement")
    if a:
        lines.append(f"agreement with the original on {a['crops']} jittered face crops: "
                     f"{100 * a['agreement']:.2f}% identical verdicts, |delta p_real| median "
                     f"{a['median_abs_delta_p_real']:.2g}, max {a['max_abs_delta_p_real']:.2g}")
    elif report["optimized"] and report.get("cached") is not None:
        lines.append("agreement on face crops: not measured (no --images given)")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- timing

def median_ms(values: list[float]) -> float | None:
    return round(1e3 * statistics.median(values), 3) if values else None


def per_face_ms(engines: dict, crop: np.ndarray, runs: int, block: int = 20) -> dict:
    """Median ms of one batch-1 inference per engine, in alternating blocks of `block`
    timed runs (after SETTLE_RUNS untimed ones)."""
    times = {name: [] for name in engines}
    for i in range(-(-runs // block)):
        for name, engine in list(engines.items())[::-1 if i % 2 else 1]:
            for _ in range(SETTLE_RUNS):
                engine.logits(crop)
            for _ in range(block):
                t = time.perf_counter()
                engine.logits(crop)
                times[name].append(time.perf_counter() - t)
    return {name: median_ms(v) for name, v in times.items()}
