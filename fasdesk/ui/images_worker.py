"""The Images tab's background work, run as workers (fasdesk.ui.workers).

`classify_batch` runs files and folders through `fasdesk.core.images.batch.classify_paths`
and yields each finished file; `make_thumbnails` reads the files the views ask to show and
yields their thumbnails; `render_preview` reads one file again and has
`fasdesk.core.images.display` draw its faces. They hand the UI packed RGB bytes, never
pixels to process.
"""
from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass
from typing import Callable, Iterator

from fasdesk.core.images.batch import ImageResult, classify_paths, collect_files
from fasdesk.core.images.display import RGBBytes, annotated_preview, file_thumbnail
from fasdesk.core.inference.pipeline import Pipeline
from fasdesk.core.io.imageio import ImageReadError, read_image
from fasdesk.ui.workers import current_worker

# Files decoded in parallel while the worker runs the models.
DECODE_WORKERS = 2
# Thumbnails waiting to be made at most; older requests are dropped first (their rows have
# scrolled away; a row shown again asks again).
MAX_QUEUED_THUMBNAILS = 256


@dataclass
class ClassifiedImage:
    """One finished file: the core result (no image: the views read thumbnails when
    they show the row)."""
    result: ImageResult


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
                                 cancelled=worker.is_cancelled):
        yield ClassifiedImage(result)


class ThumbnailQueue:
    """Files whose thumbnails are wanted, newest first (the rows painted last are the
    ones on screen); shared by the UI thread (put) and one thumbnail worker (take)."""

    def __init__(self, limit: int = MAX_QUEUED_THUMBNAILS):
        self._lock = threading.Lock()
        self._paths: deque[str] = deque()
        self.limit = limit

    def put(self, path: str) -> list[str]:
        """Queue a file; returns the requests dropped to stay within the limit."""
        with self._lock:
            self._paths.append(path)
            dropped = []
            while len(self._paths) > self.limit:
                dropped.append(self._paths.popleft())
            return dropped

    def take(self) -> str | None:
        with self._lock:
            return self._paths.pop() if self._paths else None

    def clear(self) -> None:
        with self._lock:
            self._paths.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._paths)


def make_thumbnails(queue: ThumbnailQueue) -> Iterator[tuple[str, RGBBytes | None]]:
    """In a worker: (path, thumbnail) for each queued file until the queue is empty;
    None for a file that cannot be read (any more)."""
    while (path := queue.take()) is not None:
        try:
            yield path, file_thumbnail(path)
        except ImageReadError:
            yield path, None


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
