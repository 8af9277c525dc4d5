"""The Images tab's background work, run as workers (fasdesk.ui.workers).

`classify_batch` runs files and folders through `fasdesk.core.images.batch.classify_paths`
and yields each finished file with a small thumbnail; `render_preview` reads one file
again and has `fasdesk.core.images.display` draw its faces. Both hand the UI packed RGB
bytes, never pixels to process.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Callable, Iterator

from fasdesk.core.images.batch import ImageResult, classify_paths, collect_files
from fasdesk.core.images.display import RGBBytes, annotated_preview, thumbnail
from fasdesk.core.inference.pipeline import Pipeline
from fasdesk.core.io.imageio import read_image
from fasdesk.ui.workers import current_worker

# Files decoded in parallel while the worker runs the models.
DECODE_WORKERS = 2


@dataclass
class ClassifiedImage:
    """One finished file: the core result (image dropped) and its small thumbnail."""
    result: ImageResult
    thumb: RGBBytes | None


@dataclass
class BatchStarted:
    """The first thing a batch yields: how many files it found."""
    total: int


class PipelineCache:
    """The pipeline of the current model, built on first use and kept for later batches
    until the factory changes (one batch at a time uses it)."""

    def __init__(self):
        self._factory: Callable[[], Pipeline] | None = None
        self._pipeline: Pipeline | None = None

    def get(self, factory: Callable[[], Pipeline]) -> Pipeline:
        if factory is not self._factory or self._pipeline is None:
            self._pipeline, self._factory = None, None
            self._pipeline = factory()  # a missing/corrupt model raises: the batch fails
            self._factory = factory
        return self._pipeline


def classify_batch(paths: list[str], factory: Callable[[], Pipeline],
                   cache: PipelineCache) -> Iterator[BatchStarted | ClassifiedImage]:
    """In a worker: BatchStarted, then one ClassifiedImage per file; stops early when the
    worker is cancelled. Returns (done, total)."""
    files = collect_files(paths)
    pipeline = cache.get(factory)
    worker = current_worker()
    yield BatchStarted(len(files))
    for result in classify_paths(files, pipeline, workers=DECODE_WORKERS,
                                 cancelled=worker.is_cancelled, keep_images=True):
        thumb = thumbnail(result.image) if result.image is not None else None
        result.image = None  # keep only the thumbnail; the preview re-reads the file
        yield ClassifiedImage(result, thumb)


class PreviewCache:
    """The last file read, so a threshold change redraws fast."""

    def __init__(self):
        self._lock = threading.Lock()
        self._path: str | None = None
        self._image = None

    def read(self, path: str):
        with self._lock:
            if path == self._path:
                return self._image
        image = read_image(path)
        with self._lock:
            self._path, self._image = path, image
        return image


def render_preview(path: str, faces: list, threshold: float, cache: PreviewCache) -> RGBBytes:
    """In a worker: the file with its faces drawn under `threshold`, fitted for display
    (raises ImageReadError when the file changed or went away since)."""
    return annotated_preview(cache.read(path), faces, threshold)
