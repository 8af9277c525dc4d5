"""`fasdesk bench`: per-stage latency of the pipeline against a reference configuration.

The reference mirrors the upstream demo: YuNet on the full-resolution frame, then
upstream's dynamically quantized model. Both configurations run in this process on the
same frames, in alternating blocks (see SETTLE_RUNS), so a busy machine slows both alike;
we report medians and ratios, not best cases.

Measured: decode (JPEG -> BGR), detect, crop+preprocess, liveness (per frame and per
face), total per frame and frames per second, for 1-face frames (the samples or --source)
and an 8-face frame (a 4x2 mosaic of sample faces, each >= 64 px); liveness per face at
batch 1 for the default engine (as `build_pipeline(live=True)` makes it: the fast form of
the fp32 model), the fp32 model in a plain onnxruntime session with default options, and
upstream's quantized model; the default engine's verdict agreement with plain fp32 on
jittered face crops; and folder classification (`fasdesk classify`'s path) against a
one-image-at-a-time loop of the reference.
"""
from __future__ import annotations

import os
import platform
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from fasdesk.core.models import registry
from fasdesk.core.inference.crop import preprocess
from fasdesk.core.inference.detector import FaceDetector
from fasdesk.core.io.files import describe_path_problem, is_dir
from fasdesk.core.io.imageio import decode_image, is_image_path, iter_image_files, read_image
from fasdesk.core.inference.liveness import LivenessEngine
from fasdesk.core.io.paths import samples_dir
from fasdesk.core.inference.pipeline import Pipeline, build_pipeline
from fasdesk.core.inference.compare import SETTLE_RUNS, median_ms, per_face_ms
from fasdesk.core.decision.verdict import DEFAULT_THRESHOLD

REFERENCE_MODEL = "minifasnet-v2se-dynq"
AGREEMENT_CROPS = 200
REPEATS = 20
FULL_RESOLUTION = 1 << 20  # a max_side no frame reaches: detect on the frame as it is
MOSAIC_COLUMNS, MOSAIC_ROWS = 4, 2
MOSAIC_CELL = (160, 240)  # width, height: each face ends up about 90 px wide
FOLDER_IMAGES = 200
MAX_VIDEO_FRAMES = 60
JPEG_QUALITY = 95


class BenchError(Exception):
    """One line for the user."""


@dataclass
class Frame:
    name: str
    jpeg: bytes  # frames are kept encoded so every run pays the same decode


def _encode(image: np.ndarray) -> bytes:
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise BenchError("cannot encode a benchmark frame")
    return data.tobytes()


def default_samples_dir() -> Path | None:
    """$FASDESK_SAMPLES_DIR, else the sample photos that come with fasdesk."""
    env = os.environ.get("FASDESK_SAMPLES_DIR")
    candidates = [Path(env)] if env else []
    candidates.append(samples_dir())
    return next((c for c in candidates if c.is_dir()), None)


def load_frames(source: str | os.PathLike | None) -> list[Frame]:
    """Frames from image files/folders or a video (first MAX_VIDEO_FRAMES frames)."""
    if source is None:
        samples = default_samples_dir()
        if samples is None:
            raise BenchError("no sample photos found; give --source FILE|DIR (images or a video) "
                             "or set FASDESK_SAMPLES_DIR")
        source = samples
    path = Path(source)
    problem = None if is_dir(path) else describe_path_problem(path)
    if problem == "not found":
        raise BenchError(f"--source not found: {path}")
    if problem is not None:  # a FIFO or device would hang the video reader
        raise BenchError(f"--source {path}: {problem}")
    files = list(iter_image_files([path])) if is_dir(path) or is_image_path(path) else []
    if files:
        return [Frame(f.name, _encode(read_image(f))) for f in files]
    from fasdesk.core.live.sources import SourceError, open_video

    try:
        capture = open_video(path)  # the pixel limit, from the header, before decoding
    except SourceError as exc:
        if "over the" not in str(exc):  # not a video at all: the usual message below
            raise BenchError(f"no images or video frames could be read from {path}") from None
        raise BenchError(f"--source {exc}") from None
    frames = []
    try:
        while capture.isOpened() and len(frames) < MAX_VIDEO_FRAMES:
            ok, image = capture.read()
            if not ok:
                break
            frames.append(Frame(f"{path.name}#{len(frames)}", _encode(image)))
    finally:
        capture.release()
    if not frames:
        raise BenchError(f"no images or video frames could be read from {path}")
    return frames


def mosaic(images: list[np.ndarray], detector: FaceDetector) -> np.ndarray:
    """A MOSAIC_COLUMNS x MOSAIC_ROWS frame with one face per cell, cut from `images`
    (mirrored every other time for variety)."""
    faces = []
    for image in images:
        found = detector.detect(image)
        if found:
            faces.append((image, max(found, key=lambda d: d.box[2] * d.box[3]).box))
    if not faces:
        raise BenchError("no face found in the frames to build the 8-face mosaic from")
    cell_w, cell_h = MOSAIC_CELL
    canvas = np.zeros((cell_h * MOSAIC_ROWS, cell_w * MOSAIC_COLUMNS, 3), np.uint8)
    for i in range(MOSAIC_COLUMNS * MOSAIC_ROWS):
        image, (x, y, w, h) = faces[i % len(faces)]
        region_w = 1.8 * w
        region_h = region_w * cell_h / cell_w
        cx, cy = x + w / 2, y + h / 2
        src = np.float32([[cx - region_w / 2, cy - region_h / 2], [cx + region_w / 2, cy - region_h / 2],
                          [cx - region_w / 2, cy + region_h / 2]])
        dst = np.float32([[0, 0], [cell_w, 0], [0, cell_h]])
        cell = cv2.warpAffine(image, cv2.getAffineTransform(src, dst), (cell_w, cell_h),
                              flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REFLECT_101)
        if (i // len(faces)) % 2:
            cell = cell[:, ::-1]
        r, c = divmod(i, MOSAIC_COLUMNS)
        canvas[r * cell_h:(r + 1) * cell_h, c * cell_w:(c + 1) * cell_w] = cell
    return canvas


REFERENCE_MISSING = (f"upstream's quantized model is not here ('fasdesk models pull "
                     f"{REFERENCE_MODEL}' gets it), so the reference runs the fp32 model "
                     f"unoptimized")


def reference_model() -> tuple[Path, str | None]:
    """(model file, note): upstream's dynamically quantized model, or, where it was never
    downloaded (it is not bundled), the fp32 model as plain onnxruntime runs it, with a
    note saying so."""
    try:
        return registry.resolve(REFERENCE_MODEL), None
    except registry.ModelIntegrityError:
        raise
    except registry.MissingModelError:
        return registry.resolve(registry.DEFAULT_LIVENESS), REFERENCE_MISSING


def reference_pipeline(threshold: float = DEFAULT_THRESHOLD) -> Pipeline:
    """Upstream's demo: cv2.FaceDetectorYN on the full-resolution frame, then the
    dynamically quantized model (see reference_model)."""
    detector = FaceDetector(registry.resolve(None, kind="detector"), max_side=FULL_RESOLUTION,
                            fine_side=0, backend="opencv")
    return Pipeline(detector, LivenessEngine(reference_model()[0], optimize=False), threshold)


class PlainSession:
    """A model in onnxruntime with default session options, as a user would run it."""

    def __init__(self, model_path: str | os.PathLike):
        import onnxruntime as ort

        self.session = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name

    def logits(self, batch: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input_name: batch})[0]


def _frame_stats(samples: dict[str, list[float]], faces: list[int]) -> dict:
    out = {stage: median_ms(v) for stage, v in samples.items()}
    out["faces_per_frame"] = int(statistics.median(faces)) if faces else 0
    out["fps"] = round(1e3 / out["total"], 1) if out.get("total") else None
    return out


# A session's thread pool keeps spinning for a few ms after each run (fasdesk.core.inference.runtime),
# which slows whatever other session runs next. Each configuration therefore runs in blocks,
# the first runs of a block untimed, as it would run on its own in the app; the blocks
# alternate, in alternating order, so a change in machine load hits every configuration.


def _run_frames(configs: dict[str, Pipeline], frames: list[Frame], repeats: int,
                warmup: int = 2) -> dict[str, dict]:
    """Median per-stage ms per configuration, each round a block of all frames per
    configuration (after SETTLE_RUNS untimed frames)."""
    stages = ("decode", "detect", "preprocess", "liveness", "liveness_per_face", "total")
    samples = {name: {s: [] for s in stages} for name in configs}
    faces = {name: [] for name in configs}
    verdicts: dict[str, dict[str, list[str]]] = {name: {} for name in configs}
    for round_ in range(warmup + repeats):
        order = list(configs.items())[::-1 if round_ % 2 else 1]
        for name, pipeline in order:
            for i in range(SETTLE_RUNS):
                pipeline.process(decode_image(frames[i % len(frames)].jpeg))
            for frame in frames:
                t0 = time.perf_counter()
                image = decode_image(frame.jpeg, frame.name)
                t1 = time.perf_counter()
                results = pipeline.process(image)
                t2 = time.perf_counter()
                if round_ < warmup:
                    verdicts[name][frame.name] = [r.label for r in results]
                    continue
                timing = pipeline.last_timings
                judged = sum(r.p_real is not None for r in results)
                s = samples[name]
                s["decode"].append(t1 - t0)
                s["detect"].append(timing.detect)
                s["preprocess"].append(timing.preprocess)
                s["liveness"].append(timing.liveness)
                if judged:
                    s["liveness_per_face"].append(timing.liveness / judged)
                s["total"].append(t2 - t0)
                faces[name].append(judged)
    report = {name: _frame_stats(samples[name], faces[name]) for name in configs}
    for name in configs:
        report[name]["verdicts"] = verdicts[name]
    return report


def _folder(default: Callable[[list[Path]], int], reference: Pipeline, files: list[Path],
            chunks: int = 4) -> dict:
    """Images per second of the default folder path and of the reference one-at-a-time
    loop, measured in alternating chunks so a change in machine load hits both."""
    ref_seconds = seconds = 0.0
    done = 0
    size = -(-len(files) // chunks)
    for i in range(0, len(files), size):
        part = files[i:i + size]
        for which in (("reference", "default") if (i // size) % 2 == 0 else ("default", "reference")):
            t = time.perf_counter()
            if which == "reference":
                for path in part:  # the reference: one image at a time, nothing overlapped
                    reference.process(read_image(path))
                ref_seconds += time.perf_counter() - t
            else:
                done += default(part)
                seconds += time.perf_counter() - t
    return {"images": len(files), "default_images_per_s": round(done / seconds, 1),
            "reference_images_per_s": round(len(files) / ref_seconds, 1),
            "speedup": round(ref_seconds / seconds * done / len(files), 2)}


def _ratio(reference: float | None, value: float | None) -> float | None:
    return round(reference / value, 2) if reference and value else None


def run(source: str | os.PathLike | None = None, repeats: int = 20, folder_images: int = FOLDER_IMAGES,
        log: Callable[[str], None] = lambda message: None,
        agreement_crops: int = AGREEMENT_CROPS) -> dict:
    """Run every measurement; returns the report (see format_report)."""
    from fasdesk.core.images.batch import classify_paths

    from fasdesk.core.inference.compare import agreement, jittered_crops
    from fasdesk.core.inference.optimize import describe

    frames = load_frames(source)
    default_live = build_pipeline(live=True)
    reference = reference_pipeline()
    configs = {"default": default_live, "reference": reference}
    engine = default_live.engine
    report: dict = {
        "machine": {"cpu": _cpu_name(), "cores": os.cpu_count(), "python": platform.python_version(),
                    "onnxruntime": _ort_version(), "opencv": cv2.__version__},
        "default_config": {"model": registry.default_liveness_id(),
                           "file": engine.model_path.name, "optimized": engine.optimized,
                           "optimization": describe(engine.optimized, engine.optimization),
                           "detect_max_side": default_live.detector.max_side,
                           "detector_backend": default_live.detector.backend,
                           "fine_side": default_live.detector.fine_side},
        "reference_config": {"model": reference.engine.model_path.name,
                             "note": reference_model()[1],
                             "detect_max_side": "full resolution", "fine_side": 0,
                             "detector_backend": reference.detector.backend},
        "repeats": repeats,
    }
    log(f"1-face frames: {len(frames)} frame(s) x {repeats} ...")
    one = _run_frames(configs, frames, repeats)
    one["speedup"] = _ratio(one["reference"]["total"], one["default"]["total"])
    one["same_verdicts"] = one["default"].pop("verdicts") == one["reference"].pop("verdicts")
    report["frames"] = {"source": str(source) if source else "samples", "count": len(frames),
                        "size": list(decode_image(frames[0].jpeg).shape[1::-1]), **one}

    log("8-face frame ...")
    images = [decode_image(f.jpeg) for f in frames[:8]]
    eight = [Frame("mosaic", _encode(mosaic(images, reference.detector)))]
    many = _run_frames(configs, eight, repeats)
    for name in configs:
        many[name].pop("verdicts")
    many["speedup"] = _ratio(many["reference"]["total"], many["default"]["total"])
    many["default_8_vs_1_face_time"] = _ratio(many["default"]["total"], one["default"]["total"])
    report["frames_8_faces"] = many

    log("liveness per face, batch 1 ...")
    fp32 = PlainSession(registry.resolve(registry.DEFAULT_LIVENESS))
    engines = {"default": engine, "fp32": fp32}
    if reference_model()[1] is None:
        engines["dynq"] = reference.engine
    image = decode_image(frames[0].jpeg)
    found = reference.detector.detect(image)
    box = tuple(int(v) for v in found[0].box) if found else (0, 0, image.shape[1], image.shape[0])
    crop = preprocess(image, [box], engine.input_size)
    per_face = per_face_ms(engines, crop, runs=max(20, 10 * repeats))
    per_face["default_model"] = engine.model_path.name
    per_face["speedup_vs_fp32"] = _ratio(per_face["fp32"], per_face["default"])
    per_face["speedup_vs_dynq"] = _ratio(per_face.get("dynq"), per_face["default"])
    report["liveness_batch1_ms"] = per_face

    log(f"verdict agreement with fp32 on {agreement_crops} jittered face crops ...")
    photos, boxes = [], []
    for frame in frames[:8]:
        photo = decode_image(frame.jpeg)
        faces = reference.detector.detect(photo)
        if faces:
            photos.append(photo)
            boxes.append(max(faces, key=lambda d: d.box[2] * d.box[3]).box)
    if photos:
        crops = jittered_crops(photos, boxes, agreement_crops, size=engine.input_size)
        report["agreement_vs_fp32"] = agreement(registry.resolve(registry.DEFAULT_LIVENESS),
                                                engine, crops)

    if folder_images > 0:
        log(f"folder of {folder_images} photos ...")
        photo_pipeline = build_pipeline(threads=1)  # as `fasdesk classify` builds it
        with tempfile.TemporaryDirectory(prefix="fasdesk-bench-") as tmp:
            folder = Path(tmp)
            files = []
            for i in range(folder_images):
                frame = frames[i % len(frames)]
                path = folder / f"{i:04d}.jpg"
                path.write_bytes(frame.jpeg)
                files.append(path)

            def classify_files(part: list[Path]) -> int:
                return sum(1 for r in classify_paths(part, photo_pipeline) if r.ok)

            # Untimed warm-up: the workers' replicas load their models once, as in the app
            # (they are kept on the pipeline), and both paths fill their caches.
            classify_files(files[:4])
            for path in files[:2]:
                reference.process(read_image(path))
            report["folder"] = _folder(classify_files, reference, files)
    return report


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _ort_version() -> str:
    import onnxruntime

    return onnxruntime.__version__


def format_report(r: dict) -> str:
    def row(label, d, ref):
        return (f"  {label:26s} {_fmt(d):>9s} {_fmt(ref):>11s}   "
                f"{_fmt(_ratio(ref, d), 'x') if isinstance(d, (int, float)) else ''}")
    lines = [f"machine: {r['machine']['cpu']}, {r['machine']['cores']} cores, onnxruntime "
             f"{r['machine']['onnxruntime']}, OpenCV {r['machine']['opencv']}",
             f"default:   {r['default_config']['model']} ({r['default_config']['file']}), YuNet "
             f"({r['default_config']['detector_backend']}) at max side "
             f"{r['default_config']['detect_max_side']}",
             f"           optimized: {r['default_config']['optimization']}",
             f"reference: {r['reference_config']['model']}, YuNet (cv2.FaceDetectorYN) at full resolution"
             + (f" ({r['reference_config']['note']})" if r["reference_config"].get("note") else ""),
             f"medians of {r['repeats']} rounds, configurations in alternating blocks"]
    for key, title in (("frames", f"{r['frames']['count']} frame(s) {r['frames']['size'][0]}x"
                                  f"{r['frames']['size'][1]}, 1 face"),
                       ("frames_8_faces", "8-face frame (4x2 mosaic)")):
        block = r[key]
        d, ref = block["default"], block["reference"]
        lines.append(f"\n{title}: faces judged {d['faces_per_frame']} (default), "
                     f"{ref['faces_per_frame']} (reference)")
        lines.append(f"  {'stage (ms)':26s} {'default':>9s} {'reference':>11s}   speedup")
        for stage in ("decode", "detect", "preprocess", "liveness", "liveness_per_face", "total"):
            lines.append(row(stage.replace("_", " "), d[stage], ref[stage]))
        lines.append(f"  {'frames per second':26s} {_fmt(d['fps']):>9s} {_fmt(ref['fps']):>11s}")
    lines.append(f"\n1-face verdicts identical to the reference: {r['frames']['same_verdicts']}")
    lines.append(f"8-face frame / 1-face frame time (default): "
                 f"{_fmt(r['frames_8_faces']['default_8_vs_1_face_time'], 'x')}")
    lv = r["liveness_batch1_ms"]
    lines.append(f"\nliveness per face, batch 1 (ms): default {_fmt(lv['default'])} "
                 f"({lv['default_model']}, as build_pipeline(live=True) runs it), fp32 in plain "
                 f"onnxruntime {_fmt(lv['fp32'])}, dynq {_fmt(lv.get('dynq'))}; "
                 f"{_fmt(lv['speedup_vs_fp32'], 'x')} vs fp32")
    if "agreement_vs_fp32" in r:
        a = r["agreement_vs_fp32"]
        lines.append(f"default vs fp32 on {a['crops']} jittered face crops: "
                     f"{100 * a['agreement']:.2f}% identical verdicts, |delta p_real| median "
                     f"{a['median_abs_delta_p_real']:.2g}, max {a['max_abs_delta_p_real']:.2g}")
    if "folder" in r:
        f = r["folder"]
        lines.append(f"\nfolder of {f['images']} photos: {_fmt(f['default_images_per_s'])} images/s "
                     f"(fasdesk classify) vs {_fmt(f['reference_images_per_s'])} images/s "
                     f"(reference, one at a time): {_fmt(f['speedup'], 'x')}")
    return "\n".join(lines)


def _fmt(value, suffix: str = "") -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.2f}{suffix}"
    return f"{value}{suffix}"
