"""The live loop without any GUI: read a frame, detect, classify, track, package for display.

`LiveLoop.step()` does one frame and returns a `LiveFrame` that holds everything the view
paints together: the RGB pixels and the faces found in exactly those pixels, so the boxes
on screen always belong to the frame on screen.
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field

import cv2
import numpy as np

from fasdesk.core.inference.pipeline import FrameTimings, Pipeline
from fasdesk.core.live.sources import FrameSource
from fasdesk.core.live.tracking import FaceTracker, TrackedFace


@dataclass
class LiveFrame:
    rgb: np.ndarray  # H x W x 3 uint8, C-contiguous, already mirrored when mirror is on
    faces: list[TrackedFace]  # boxes in rgb's pixel coordinates
    index: int  # the source's frame position
    time: float  # time.monotonic() when the frame was read
    timings: FrameTimings = field(default_factory=FrameTimings)
    fps: float = 0.0
    source_name: str = ""
    histories: dict = field(default_factory=dict)  # track id -> (times, p_real)
    mirrored: bool = False
    spec: object = None  # the SourceSpec the frame came from (set by the live worker)

    @property
    def width(self) -> int:
        return self.rgb.shape[1]

    @property
    def height(self) -> int:
        return self.rgb.shape[0]


def display_rgb(frame_bgr: np.ndarray, mirror: bool = False) -> np.ndarray:
    """Contiguous RGB bytes for display (Qt wraps them without copying)."""
    if mirror:
        frame_bgr = cv2.flip(frame_bgr, 1)
    return np.ascontiguousarray(cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2RGB))


def mirror_face(face: TrackedFace, width: int) -> TrackedFace:
    """The face as seen in the horizontally flipped frame."""
    x, y, w, h = face.result.box
    result = dataclasses.replace(
        face.result, box=(width - x - w, y, w, h),
        landmarks=tuple((width - lx, ly) for lx, ly in face.result.landmarks))
    return dataclasses.replace(face, result=result)


class LiveLoop:
    """One source through one pipeline and a tracker, a frame per `step()`."""

    def __init__(self, source: FrameSource, pipeline: Pipeline, tracker: FaceTracker | None = None,
                 mirror: bool = False):
        self.source = source
        self.pipeline = pipeline
        self.tracker = tracker or FaceTracker()
        self.mirror = mirror
        self._fps = 0.0
        self._last = None
        self.frame: np.ndarray | None = None  # the last frame read, as the source gave it

    def step(self) -> LiveFrame | None:
        """The next processed frame, or None when a finite source has ended.

        Raises sources.SourceError when the source fails.
        """
        frame = self.frame = self.source.read()
        if frame is None:
            return None
        now = time.monotonic()
        results = self.pipeline.process(frame)
        if self.source.new_scene:
            self.tracker.new_scene()
        faces = self.tracker.update(results, now)
        mirror = self.mirror
        rgb = display_rgb(frame, mirror)
        if mirror:
            faces = [mirror_face(f, rgb.shape[1]) for f in faces]
        if self._last is not None:
            dt = now - self._last
            if dt > 0:
                self._fps = 1.0 / dt if not self._fps else 0.9 * self._fps + 0.1 / dt
        self._last = now
        return LiveFrame(rgb=rgb, faces=faces, index=self.source.position, time=now,
                         timings=dataclasses.replace(self.pipeline.last_timings), fps=self._fps,
                         source_name=self.source.name, histories=self.tracker.histories(),
                         mirrored=mirror)
