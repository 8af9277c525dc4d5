"""Workers behind the Images tab; each lives in its own QThread and talks by signals.

ClassifyWorker runs batches through `fasdesk.core.images.batch.classify_paths`; PreviewWorker
reads one file again and has `fasdesk.core.images.display` draw its faces for the preview pane.
Both hand the UI packed RGB bytes, never pixels to process.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Callable

from PySide6.QtCore import QObject, Signal, Slot

from fasdesk.core.images.batch import ImageResult, classify_paths, collect_files
from fasdesk.core.images.display import RGBBytes, annotated_preview, thumbnail
from fasdesk.core.io.imageio import ImageReadError, read_image
from fasdesk.core.inference.pipeline import Pipeline
from fasdesk.core.io.errors import one_line

# Files decoded in parallel while the worker thread runs the models.
DECODE_WORKERS = 2


@dataclass
class ClassifiedImage:
    """One finished file: the core result (image dropped) and its small thumbnail."""
    result: ImageResult
    thumb: RGBBytes | None


class ClassifyWorker(QObject):
    """Classifies batches of files and folders with a pipeline built on first use.

    Cancellation is a threading.Event set by the UI thread: while a batch runs this
    thread's event loop is busy, so a queued "cancel" signal would arrive only afterwards.
    """

    started = Signal(int)  # number of files in the batch
    image_done = Signal(object)  # ClassifiedImage
    finished = Signal(int, int, bool)  # done, total, cancelled
    failed = Signal(str)  # the pipeline could not be built; nothing was classified

    def __init__(self, cancel_event: threading.Event):
        super().__init__()
        self._cancel = cancel_event
        self._pipeline: Pipeline | None = None
        self._generation = -1

    @Slot(object, object, int)
    def run(self, paths: list[str], factory: Callable[[], Pipeline], generation: int) -> None:
        files = collect_files(paths)
        if generation != self._generation or self._pipeline is None:
            try:
                self._pipeline = factory()
            except Exception as exc:  # missing/corrupt model: a message, not a crash
                self._pipeline = None
                self.failed.emit(one_line(exc))
                return
            self._generation = generation
        total = len(files)
        self.started.emit(total)
        done = 0
        try:
            for result in classify_paths(files, self._pipeline, workers=DECODE_WORKERS,
                                         cancelled=self._cancel.is_set, keep_images=True):
                thumb = thumbnail(result.image) if result.image is not None else None
                result.image = None  # keep only the thumbnail; the preview re-reads the file
                done += 1
                self.image_done.emit(ClassifiedImage(result, thumb))
        except Exception as exc:  # not a bad file (those are rows): say so, keep the rows
            self.failed.emit(f"classification stopped after {done} of {total} image(s): "
                             f"{one_line(exc)}")
            return
        self.finished.emit(done, total, done < total)


class PreviewWorker(QObject):
    """Reads one file and draws its faces, fitted for display. Only the newest request
    is drawn; older ones still queued are skipped."""

    ready = Signal(int, object)  # request id, RGBBytes
    failed = Signal(int, str)  # request id, one-line reason

    def __init__(self):
        super().__init__()
        self.latest_request = 0  # written by the UI thread; a plain int is safe to share
        self._cached_path: str | None = None
        self._cached_image = None  # the last file read, so a threshold change redraws fast

    @Slot(int, str, object, float)
    def render(self, request: int, path: str, faces: list, threshold: float) -> None:
        if request != self.latest_request:
            return
        try:
            if path != self._cached_path:
                self._cached_path, self._cached_image = None, None
                self._cached_image = read_image(path)
                self._cached_path = path
            preview = annotated_preview(self._cached_image, faces, threshold)
        except ImageReadError as exc:  # e.g. the file changed or went away since
            self.failed.emit(request, str(exc))
            return
        except Exception as exc:
            self.failed.emit(request, f"cannot show this image: {one_line(exc)}")
            return
        self.ready.emit(request, preview)
