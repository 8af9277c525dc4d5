"""`prep SOURCE OUT`: a raw dataset -> face crops, a labels file and a manifest.

The input layouts (CelebA-Spoof, folders) are read by `fasdesk.core.datasets.dataset_info`; the
crop is `fasdesk.core.inference.crop.face_crop`, the same code the live view runs. Output:

    OUT/crops/<path of the image under SOURCE, extension .png>   SIZE x SIZE BGR crops
    OUT/labels.csv     one row per crop: crop (relative to OUT), label (real|spoof),
                       spoof_type (CelebA-Spoof number: 0 live, 1-3 print, 4-6 paper
                       masks, 7-9 replay, 10 3D mask, 11 other), category (real, print,
                       paper_mask, replay, 3d_mask, other), subset (train|test: CelebA's
                       own split; folders are all train), source (image path under SOURCE)
    OUT/manifest.json  {"format", "layout", "source", "size", "complete", "spoof_types", "counts":
                       {"listed", "crops", "real", "spoof", "by_type", "by_category",
                       "by_subset", "skipped", "skipped_by_reason", "reused"},
                       "skipped": [{"source", "reason"}]}

A crop already on disk (from an earlier run with the same size) is kept, so a re-run
only does the missing work. Unreadable images, images without a usable box and images
where the detector finds no face are skipped, counted and listed with the reason.
"""
from __future__ import annotations

import csv
import io
import errno
import json
import multiprocessing
import os
import signal
import time
from collections import Counter
from pathlib import Path

import cv2

from fasdesk.core.datasets import dataset_info as dsi
from fasdesk.core.inference.crop import face_crop
from fasdesk.core.io.files import read_json, take, write_atomic
from fasdesk.core.io.imageio import ImageReadError, read_image
from training.layout import LABELS as LABELS_FILE, MANIFEST as MANIFEST_FILE
from training.events import Emitter, ProgressLine, eta
from fasdesk.core.io.errors import one_line

MANIFEST_FORMAT = 1
CROPS_DIR = "crops"
LABEL_COLUMNS = ("crop", "label", "spoof_type", "category", "subset", "source")
MIN_SIZE, MAX_SIZE = 16, 1024  # crop side in pixels


class PrepError(Exception):
    """A dataset that cannot be prepared; the message is one line for the user."""


# -- one image (runs in a worker process) --------------------------------------------------

_detector = None


def _init_worker(detector_path: str | None) -> None:
    global _detector
    # Workers leave Ctrl-C to the parent, and die quietly when it terminates the pool.
    if multiprocessing.parent_process() is not None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
    cv2.setNumThreads(1)  # the parallelism is across images, one per core
    _detector = None
    if detector_path:
        from fasdesk.core.inference.detector import FaceDetector

        _detector = FaceDetector(detector_path)


def _largest_face(image) -> tuple[float, float, float, float] | None:
    faces = _detector.detect(image)
    if not faces:
        return None
    return max(faces, key=lambda d: d.box[2] * d.box[3]).box


DISK_FULL = "disk full"
_OUTPUT_FULL = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}


def crop_one(job: tuple) -> tuple[int, str | None]:
    """(index, None) when the crop was written, (index, reason) when the image is skipped.
    Whatever goes wrong with one image skips that image, never the whole run."""
    try:
        return _crop_one(*job)
    except MemoryError:
        return job[0], "failed: not enough memory for this image"
    except OSError as exc:
        if exc.errno in _OUTPUT_FULL:  # the output's problem, not this image's: stop the run
            return job[0], f"{DISK_FULL}: {exc.strerror}"
        text = str(exc).strip()
        return job[0], f"failed: {text.splitlines()[0] if text else type(exc).__name__}"
    except Exception as exc:
        first = one_line(exc)
        return job[0], f"failed: {first}"


def _crop_one(index, image_path, box_path, layout, crop_path, size) -> tuple[int, str | None]:
    try:
        image = read_image(image_path)
    except ImageReadError as exc:
        return index, f"unreadable: {exc}"
    height, width = image.shape[:2]
    if box_path is not None:
        try:
            box = dsi.read_box(box_path, layout, width, height)
        except ValueError as exc:
            return index, f"bad box: {exc}"
    else:
        if _detector is None:
            return index, "no face: no box file and no detector"
        box = _largest_face(image)
        if box is None:
            return index, "no face: the detector found none"
    crop = face_crop(image, box, size)
    crop_path = Path(crop_path)
    crop_path.parent.mkdir(parents=True, exist_ok=True)
    ok, png = cv2.imencode(".png", crop)
    if not ok:
        return index, f"cannot encode the crop for {crop_path.name}"
    write_atomic(crop_path, png.tobytes())  # never a half-written crop
    return index, None


# -- the whole dataset ---------------------------------------------------------------------

def _crop_name(image: Path, root: Path) -> Path:
    try:
        rel = image.resolve().relative_to(root.resolve())
    except ValueError:  # a CelebA label pointing outside the root
        rel = Path(*[p for p in image.parts if p not in ("/", "..")])
    return Path(CROPS_DIR) / rel.with_suffix(".png")


def _reason_kind(reason: str) -> str:
    return reason.split(":", 1)[0]


def is_prep_output(folder: Path) -> bool:
    """Whether `folder` holds a prep output (its manifest and labels file)."""
    try:
        data = read_json(folder / MANIFEST_FILE, 16 << 20)
    except (OSError, ValueError):
        return False
    return "size" in data and "format" in data


def _prep_output_above(path: Path, root: Path, _known: dict) -> Path | None:
    """The prep output folder `path` lies in, between it and `root`, or None."""
    folder = path.parent
    root = root.resolve()
    while True:
        resolved = folder.resolve()
        if resolved not in _known:
            _known[resolved] = is_prep_output(folder)
        if _known[resolved]:
            return folder
        if resolved == root or resolved.parent == resolved:
            return None
        folder = folder.parent


def _check_not_nested(source: Path, out: Path) -> None:
    """Refuse an output inside the source (its crops would be read as raw images by the
    next prep) and a source that is, or lies in, an earlier prep output."""
    src, dst = source.resolve(), out.resolve()
    if dst == src or src in dst.parents:
        raise PrepError(f"the output {out} is inside the dataset {source}; its crops would "
                        f"be taken for raw images next time: choose a folder outside it")
    for folder in (src, *src.parents):
        if is_prep_output(folder):
            raise PrepError(f"{source} is (inside) a prep output ({folder}), not a raw "
                            f"dataset; give the raw dataset folder")


def _previous_size(out: Path) -> int | None:
    try:
        return take(read_json(out / MANIFEST_FILE, 16 << 20), "size", int)
    except (OSError, ValueError, KeyError, TypeError):
        return None


def run(source: str | os.PathLike, out: str | os.PathLike, size: int = 128,
        spoof_types=None, workers: int | None = None, detector: str | None = None,
        emitter: Emitter | None = None) -> dict:
    """Prepare a dataset; returns the manifest. Raises PrepError for unusable datasets."""
    emitter = emitter or Emitter()
    source, out = Path(source), Path(out)
    if not MIN_SIZE <= size <= MAX_SIZE or size % 16:  # (a 100000 px crop: 30 GB per image)
        raise PrepError(f"--size must be a multiple of 16 from {MIN_SIZE} to {MAX_SIZE} (the "
                        f"network halves the crop four times), got {size}")
    _check_not_nested(source, out)
    layout = dsi.detect_layout(source)
    if layout is None:
        raise PrepError(dsi._not_a_dataset(source))
    # CelebA-Spoof defaults to upstream's subset; a folders dataset keeps every type it has.
    if spoof_types is None and layout == dsi.CELEBA:
        spoof_types = dsi.DEFAULT_SPOOF_TYPES
    try:
        samples = list(dsi.iter_samples(source, spoof_types))
    except dsi.DatasetError as exc:
        raise PrepError(str(exc)) from None
    # Crops of an earlier prep written inside the source (before that was refused) are
    # not raw images: their folder is found by its manifest and left out.
    known: dict = {}
    samples = [s for s in samples if _prep_output_above(s.path, source, known) is None]
    _check_classes(Counter(s.spoof_type for s in samples), layout, "listed")

    out.mkdir(parents=True, exist_ok=True)
    reuse = _previous_size(out) == size
    if not reuse:  # record the size first, so crops from an interrupted run are reused
        write_atomic(out / MANIFEST_FILE, json.dumps(
            {"format": MANIFEST_FORMAT, "size": size, "complete": False}))
    names = [_crop_name(s.path, source) for s in samples]
    todo = [i for i, name in enumerate(names) if not (reuse and (out / name).is_file())]
    needs_detector = any(samples[i].box_path is None for i in todo)
    detector_path = None
    if needs_detector:
        from fasdesk.core.models import registry

        try:
            detector_path = str(registry.resolve(detector, "detector"))
        except registry.MissingModelError as exc:
            raise PrepError(f"images without _BB.txt need the face detector: {exc}") from None

    total = len(samples)
    reused = total - len(todo)
    emitter.start("prep", total=total, source=str(source), out=str(out), layout=layout,
                  size=size, reused=reused)
    emitter.log(f"prep: {total} images listed ({layout}), {reused} already cropped, "
                f"{len(todo)} to do")
    jobs = [(i, str(samples[i].path), None if samples[i].box_path is None else str(samples[i].box_path),
             layout, str(out / names[i]), size) for i in todo]
    skipped: dict[int, str] = {}
    workers = max(1, min(workers or os.cpu_count() or 1, len(jobs) or 1))
    line = ProgressLine("prep")
    started = time.monotonic()
    done = reused

    def results():
        if workers == 1:
            _init_worker(detector_path)
            yield from map(crop_one, jobs)
            return
        with multiprocessing.Pool(workers, _init_worker, (detector_path,)) as pool:
            yield from pool.imap_unordered(crop_one, jobs, chunksize=max(1, min(16, len(jobs) // (workers * 8))))

    def stop(signum, frame):  # SIGTERM (e.g. the GUI's Cancel): stop the workers, keep the crops
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, stop)
    last_event = 0.0
    try:
        for index, reason in results():
            done += 1
            if reason is not None and reason.startswith(DISK_FULL):
                raise PrepError(f"the output folder {out} is full ({reason.split(': ', 1)[-1]}); "
                                f"free some space and run prep again (the crops made so far "
                                f"are reused)")
            if reason is not None:
                skipped[index] = reason
            now = time.monotonic()
            if now - last_event >= 0.2 or done == total:
                last_event = now
                left = eta(done - reused, total - reused, now - started)
                emitter.progress(done, total, left, skipped=len(skipped))
                line.update(done, total, f"skipped {len(skipped)}")
    finally:
        signal.signal(signal.SIGTERM, previous)
    line.update(done, total, f"skipped {len(skipped)}", force=True)

    kept = [i for i in range(total) if i not in skipped]
    manifest = _write_outputs(source, out, layout, size, spoof_types, samples, names, kept,
                              skipped, reused)
    emitter.artifact(out / LABELS_FILE, "labels")
    emitter.artifact(out / MANIFEST_FILE, "manifest")
    counts = manifest["counts"]
    _check_classes(Counter(samples[i].spoof_type for i in kept), layout, "usable",
                   hint=f" ({counts['skipped']} images were skipped; reasons in {out / MANIFEST_FILE})")
    emitter.log(f"prep: {counts['crops']} crops ({counts['real']} real, {counts['spoof']} spoof), "
                f"{counts['skipped']} skipped -> {out}")
    emitter.done(**counts)
    return manifest


def _check_classes(types: Counter, layout: str, what: str, hint: str = "") -> None:
    live = types.get(dsi.LIVE, 0)
    spoof = sum(n for t, n in types.items() if t != dsi.LIVE)
    if live + spoof == 0:
        raise PrepError(f"no {what} images: nothing to prepare" + hint)
    if live == 0:
        where = "real/" if layout == dsi.FOLDERS else "the selected spoof types"
        raise PrepError(f"the real (live) class is empty: no {what} images in {where}" + hint)
    if spoof == 0:
        where = "spoof/" if layout == dsi.FOLDERS else "the selected spoof types (--spoof-types)"
        raise PrepError(f"the spoof class is empty: no {what} images in {where}" + hint)


def _write_outputs(source, out, layout, size, spoof_types, samples, names, kept, skipped,
                   reused) -> dict:
    rows = []
    for i in kept:
        s = samples[i]
        rows.append({
            "crop": names[i].as_posix(),
            "label": "real" if s.is_live else "spoof",
            "spoof_type": s.spoof_type,
            "category": dsi.category_of(s.spoof_type),
            "subset": s.split,
            "source": _rel(s.path, source),
        })
    table = io.StringIO(newline="")
    writer = csv.DictWriter(table, LABEL_COLUMNS)
    writer.writeheader()
    writer.writerows(rows)
    write_atomic(out / LABELS_FILE, table.getvalue())
    skipped_list = [{"source": _rel(samples[i].path, source), "reason": r}
                    for i, r in sorted(skipped.items())]
    counts = {
        "listed": len(samples),
        "crops": len(rows),
        "real": sum(r["label"] == "real" for r in rows),
        "spoof": sum(r["label"] == "spoof" for r in rows),
        "by_type": {dsi.type_name(t): n for t, n in sorted(Counter(r["spoof_type"] for r in rows).items())},
        "by_category": dict(sorted(Counter(r["category"] for r in rows).items())),
        "by_subset": dict(sorted(Counter(r["subset"] for r in rows).items())),
        "skipped": len(skipped),
        "skipped_by_reason": dict(sorted(Counter(_reason_kind(r) for r in skipped.values()).items())),
        "reused": reused,
    }
    manifest = {
        "format": MANIFEST_FORMAT,
        "layout": layout,
        "source": str(source.resolve()),
        "size": size,
        "complete": True,
        "spoof_types": None if spoof_types is None else sorted(int(t) for t in spoof_types),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "counts": counts,
        "skipped": skipped_list,
    }
    write_atomic(out / MANIFEST_FILE, json.dumps(manifest, indent=1))
    return manifest


def _rel(path: Path, root: Path) -> str:
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return str(path)
