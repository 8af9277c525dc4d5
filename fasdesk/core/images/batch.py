"""Classifying many image files: folders expanded, images processed in parallel.

A small thread pool decodes and classifies whole images (OpenCV and onnxruntime release
the GIL), each worker with its own pipeline replica, a few files ahead at most so memory
stays bounded. Results come back in input order. A file that cannot be read or processed
becomes a result with an `error` and the batch goes on. Used by `fasdesk classify`, the
GUI's images tab and the benchmark.
"""
from __future__ import annotations

import itertools
import logging
import os
import threading
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np

from fasdesk.core.io.imageio import ImageReadError, iter_image_files, read_image
from fasdesk.core.inference.pipeline import FaceResult, Pipeline
from fasdesk.core.io.errors import one_line

log = logging.getLogger(__name__)


@dataclass
class ImageResult:
    path: str
    width: int = 0
    height: int = 0
    faces: list[FaceResult] = field(default_factory=list)
    error: str | None = None  # one line; None when the file was read and processed
    image: np.ndarray | None = field(default=None, repr=False)  # 8-bit BGR, if kept

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_json(self) -> dict:
        """The `fasdesk classify --json` record (see DESIGN.md)."""
        return {"path": self.path, "width": self.width, "height": self.height,
                "faces": [f.to_json() for f in self.faces], "error": self.error}


def _short_reason(message: str, path: Path) -> str:
    """imageio's messages start with the path; the record carries it already."""
    prefix = f"{path}: "
    return message[len(prefix):] if message.startswith(prefix) else message


def _load(path: Path) -> np.ndarray | str:
    """The decoded image, or the one-line reason it cannot be used."""
    try:
        return read_image(path)
    except ImageReadError as exc:
        return _short_reason(str(exc), path)
    except MemoryError:
        return "not enough memory to decode this image"
    except Exception as exc:  # a decoder failure must not stop the batch
        return f"cannot decode ({one_line(exc, with_type=True)})"


def collect_files(paths: Iterable[str | os.PathLike]) -> list[Path]:
    """Files named explicitly plus image files found (recursively, sorted) in folders."""
    return list(iter_image_files(paths))


def _classify_one(path: Path, pipeline: Callable[[], Pipeline], keep_images: bool) -> ImageResult:
    result = ImageResult(path=str(path))
    loaded = _load(path)
    if isinstance(loaded, str):
        result.error = loaded
        return result
    result.height, result.width = loaded.shape[:2]
    try:
        result.faces = pipeline().process(loaded)
    except Exception as exc:  # one bad image never stops the batch
        result.error = f"processing failed ({one_line(exc, with_type=True)})"
    if keep_images:
        result.image = loaded
    return result


def classify_paths(paths: Iterable[str | os.PathLike], pipeline: Pipeline, *, workers: int = 2,
                   progress: Callable[[int, int, Path], None] | None = None,
                   cancelled: Callable[[], bool] | None = None,
                   keep_images: bool = False) -> Iterator[ImageResult]:
    """Classify every image in `paths` (files and folders); yield results in input order.

    Each of `workers` threads decodes and runs a whole image (OpenCV and onnxruntime
    release the GIL), with its own single-threaded pipeline when there are several
    (`pipeline` itself when it is single-threaded, and replicas kept on it for the next
    batch, each made by its worker as it starts), so all cores work on different images
    instead of sharing one image's small operations.
    progress(done, total, path) is called after each file; cancelled() is polled before
    each one and stops the batch (the results so far have been yielded). keep_images
    keeps the decoded BGR image on each result (for annotation or display). One batch at
    a time per pipeline: the workers' replicas are shared between its batches.
    """
    files = collect_files(paths)
    total = len(files)
    if total == 0:
        return
    workers = max(1, min(int(workers), total))
    lookahead = workers * 2
    local = threading.local()
    slots = itertools.count()  # next() on it is atomic

    def worker_pipeline() -> Pipeline:
        if not hasattr(local, "pipeline"):  # the pool makes at most `workers` threads
            local.pipeline = pipeline
            if workers > 1:
                try:
                    local.pipeline = pipeline.worker_replica(next(slots))
                except Exception as exc:  # e.g. out of memory: share the pipeline, once
                    log.warning("a parallel worker could not load its own models (%s); "
                                "it shares the first one's", one_line(exc, with_type=True))
        return local.pipeline

    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="fasdesk-classify")
    pending: deque[tuple[Path, Future]] = deque()
    queued = 0
    try:
        for done in range(total):
            if cancelled is not None and cancelled():
                return
            while queued < total and len(pending) < lookahead:
                pending.append((files[queued], pool.submit(_classify_one, files[queued],
                                                           worker_pipeline, keep_images)))
                queued += 1
            path, future = pending.popleft()
            result = future.result()
            if progress is not None:
                progress(done + 1, total, path)
            yield result
    finally:
        for _, future in pending:
            future.cancel()
        pool.shutdown(wait=True, cancel_futures=True)
