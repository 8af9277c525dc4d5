"""Frame sources for the live view: a camera, a video file, an image folder or one image.

Every source has the same small interface (`open`, `read`, `close`, `name`, `fps_hint`),
so the live loop treats a webcam and a recorded video alike. A source that cannot be
opened, or that stops delivering frames, raises `SourceError` with a message a person can
act on; the end of a finite source is `read()` returning None.
"""
from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from fasdesk.core.io.files import describe_path_problem, is_dir, safe_stat
from fasdesk.core.io.imageio import ImageReadError, is_image_path, iter_image_files, read_image

# A still image or a folder of images plays at this rate unless told otherwise.
IMAGE_FPS = 5.0
# A camera that returns this many failed reads in a row has gone away.
CAMERA_MAX_FAILURES = 25
# Files and folders the Live tab's source list keeps, most recent first.
RECENT_SOURCES = 8
VIDEO_EXTENSIONS = frozenset({".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v", ".mpg",
                              ".mpeg", ".wmv", ".flv", ".mjpg", ".mjpeg", ".ts"})


class SourceError(Exception):
    """A source that cannot be opened or that failed while running; one line for the user."""


@dataclass(frozen=True)
class SourceSpec:
    """What to open: kind is "camera", "video", "folder" or "image"; target the index or path."""
    kind: str
    target: str

    @classmethod
    def parse(cls, text: str | int) -> "SourceSpec":
        """A spec from command-line text: a number is a camera index, else a path."""
        text = str(text).strip()
        if text.isdigit():
            return cls("camera", text)
        path = Path(text).expanduser()
        if is_dir(path):
            return cls("folder", str(path))
        if is_image_path(path):
            return cls("image", str(path))
        return cls("video", str(path))

    @property
    def label(self) -> str:
        if self.kind == "camera":
            return f"Camera {self.target}"
        return Path(self.target).name or self.target


def add_recent(recent: list[str], target: str, keep: int = RECENT_SOURCES) -> list[str]:
    """`recent` with `target` moved to the front, at most `keep` long (a new list).

    Only sources that opened belong here: a file that failed never pushes a good one out.
    """
    return ([target] + [t for t in recent if t != target])[:keep]


class FrameSource:
    """Base class: subclasses implement _open, _read and _close."""

    #: Frames per second to play at; None means "as fast as read() returns" (cameras pace
    #: themselves).
    fps_hint: float | None = None
    #: True for sources whose frames arrive in real time (cameras).
    live: bool = False
    #: True when the frame just read is another scene than the one before (the next photo
    #: of a folder): a face in it is someone new, never the same track.
    new_scene: bool = False

    def __init__(self, name: str):
        self.name = name
        self.position = -1  # index of the last frame read
        self._opened = False

    def open(self) -> "FrameSource":
        if not self._opened:
            self._open()
            self._opened = True
            self.position = -1
        return self

    def read(self) -> np.ndarray | None:
        """The next BGR frame, or None at the end. Raises SourceError on failure."""
        if not self._opened:
            raise SourceError(f"{self.name}: not open")
        frame = self._read()
        if frame is not None:
            self.position += 1
        return frame

    def close(self) -> None:
        if self._opened:
            self._opened = False
            self._close()

    def __enter__(self):
        return self.open()

    def __exit__(self, *exc):
        self.close()

    def _open(self) -> None:
        raise NotImplementedError

    def _read(self) -> np.ndarray | None:
        raise NotImplementedError

    def _close(self) -> None:
        pass


class CameraSource(FrameSource):
    live = True

    def __init__(self, index: int, name: str | None = None):
        super().__init__(name or f"Camera {index}")
        self.index = index
        self._cap: cv2.VideoCapture | None = None
        self._failures = 0

    def _open(self) -> None:
        cap = cv2.VideoCapture(self.index)
        if not cap.isOpened():
            cap.release()
            raise SourceError(f"{self.name} could not be opened: it is not connected, or "
                              f"another program is using it")
        self._cap = cap
        self._failures = 0

    def _read(self) -> np.ndarray | None:
        while True:
            ok, frame = self._cap.read()
            if ok and frame is not None and frame.size:
                self._failures = 0
                return frame
            self._failures += 1
            if self._failures >= CAMERA_MAX_FAILURES:
                raise SourceError(f"{self.name} stopped sending frames (unplugged, or taken "
                                  f"by another program)")
            time.sleep(0.02)

    def _close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None


def open_video(path: str | os.PathLike) -> "cv2.VideoCapture":
    """An opened cv2.VideoCapture for a video file whose frames are within the pixel limit,
    read from the container's header before any frame is decoded (a 15000x14000 MJPG of a
    few MB would otherwise take gigabytes per frame). Raises SourceError."""
    from fasdesk.core.io.files import MAX_PIXELS

    path = Path(path)
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        cap.release()
        raise SourceError(f"{path.name}: not a video this app can read "
                          f"(unknown format or corrupt file)")
    width = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH) or 0)
    height = int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT) or 0)
    if width * height > MAX_PIXELS or width > 65535 or height > 65535:
        cap.release()
        raise SourceError(f"{path.name}: the video's header claims {width}x{height} frames, "
                          f"over the {MAX_PIXELS // 1_000_000} MP limit (corrupt or a "
                          f"decompression bomb); not decoded")
    return cap


class VideoFileSource(FrameSource):
    def __init__(self, path: str | os.PathLike, loop: bool = True):
        super().__init__(Path(path).name)
        self.path = Path(path)
        self.loop = loop
        self._cap: cv2.VideoCapture | None = None

    def _check_file(self) -> None:
        # Only regular files: FFmpeg would wait forever on a FIFO and read a device endlessly.
        problem = describe_path_problem(self.path)
        if problem == "not found":
            raise SourceError(f"video file not found: {self.path}")
        if problem is not None:
            raise SourceError(f"{self.path}: {problem}")

    def _open(self) -> None:
        self._check_file()
        cap = open_video(self.path)
        ok, first = cap.read()
        if not ok or first is None:
            cap.release()
            raise SourceError(f"{self.path.name}: the video has no readable frames "
                              f"(corrupt or empty file)")
        fps = cap.get(cv2.CAP_PROP_FPS)
        self.fps_hint = fps if 1 <= fps <= 240 else 25.0
        self._cap = cap
        self._pending = first  # the probe read above is the first frame; no seeking needed

    def _read(self) -> np.ndarray | None:
        if self._pending is not None:
            frame, self._pending = self._pending, None
            return frame
        ok, frame = self._cap.read()
        if ok and frame is not None:
            return frame
        if not self.loop or self.position < 0:
            return None
        # End of file: start again (reopen; seeking is unreliable on some containers).
        self._cap.release()
        self._check_file()
        self._cap = open_video(self.path)  # (the file may have been replaced meanwhile)
        ok, frame = self._cap.read()
        if not ok or frame is None:
            raise SourceError(f"{self.path.name}: the video can no longer be read")
        self.position = -1
        return frame

    def _close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None


class ImageFolderSource(FrameSource):
    """The images of a folder (recursively, sorted), or one image, as frames.

    Unreadable files are skipped and counted in `skipped`; a folder without a single
    readable image is an error.
    """

    def __init__(self, path: str | os.PathLike, loop: bool = True, fps: float = IMAGE_FPS):
        super().__init__(Path(path).name or str(path))
        self.path = Path(path)
        self.loop = loop
        self.fps_hint = fps
        self.files: list[Path] = []
        self.skipped: list[str] = []
        self._next = 0
        self._shown: Path | None = None

    def _open(self) -> None:
        if safe_stat(self.path) is None:
            raise SourceError(f"not found: {self.path}")
        self.files = list(iter_image_files([self.path]))
        if not self.files:
            raise SourceError(f"{self.path}: no image files in this folder")
        self.skipped = []
        self._next = 0
        self._shown = None

    def _read(self) -> np.ndarray | None:
        tried = 0
        while tried < len(self.files):
            if self._next >= len(self.files):
                if not self.loop:
                    return None
                self._next = 0
                self.position = -1
            path = self.files[self._next]
            self._next += 1
            tried += 1
            try:
                frame = read_image(path)
            except ImageReadError as exc:
                if str(exc) not in self.skipped:
                    self.skipped.append(str(exc))
                continue
            # One image shown again and again is one scene; each other photo is a new one.
            self.new_scene = path != self._shown
            self._shown = path
            return frame
        if len(self.files) == 1 and self.skipped:  # one image: its own reason says it all
            raise SourceError(self.skipped[0])
        raise SourceError(f"{self.path}: none of its {len(self.files)} image files can be read"
                          + (f" (first: {self.skipped[0]})" if self.skipped else ""))


def open_source(spec: SourceSpec, loop: bool = True, image_fps: float = IMAGE_FPS,
                camera_names: dict[int, str] | None = None) -> FrameSource:
    """Create and open the source a spec names. Raises SourceError."""
    if spec.kind == "camera":
        index = int(spec.target)
        source: FrameSource = CameraSource(index, (camera_names or {}).get(index))
    elif spec.kind == "video":
        source = VideoFileSource(spec.target, loop=loop)
    elif spec.kind in ("folder", "image"):
        source = ImageFolderSource(spec.target, loop=loop, fps=image_fps)
    else:
        raise SourceError(f"unknown source kind '{spec.kind}'")
    return source.open()


class Pacer:
    """Keeps a recorded source at its frame rate: how long to wait before the next frame.

    If processing falls behind, it does not try to catch up with a burst; it restarts the
    schedule from now.
    """

    def __init__(self, fps: float | None):
        self.interval = 1.0 / fps if fps else 0.0
        self._due = None

    def wait_time(self, now: float | None = None) -> float:
        """Seconds until the next frame is due (0 when due, late, or unpaced)."""
        if not self.interval:
            return 0.0
        now = time.monotonic() if now is None else now
        if self._due is None or now - self._due > self.interval:
            self._due = now  # first frame, or fell behind: restart the schedule
        return max(0.0, self._due - now)

    def advance(self) -> None:
        """A frame was taken: the next one is due one interval after this one."""
        if self.interval and self._due is not None:
            self._due += self.interval


@dataclass(frozen=True)
class CameraInfo:
    index: int
    name: str

    @property
    def label(self) -> str:
        return f"{self.name} ({self.index})" if self.name != f"Camera {self.index}" else self.name


V4L_ROOT = Path("/sys/class/video4linux")


def linux_cameras(root: Path = V4L_ROOT) -> list[CameraInfo]:
    """Capture devices as the kernel names them, without opening (and so locking) any."""
    cameras = []
    nodes = [p for p in root.glob("video*") if p.name[5:].isdigit()]
    for node in sorted(nodes, key=lambda p: int(p.name[5:])):
        number = int(node.name[5:])
        # A webcam exposes several nodes; the capture node has index 0.
        index_file = node / "index"
        try:
            if index_file.exists() and index_file.read_text().strip() not in ("", "0"):
                continue
            name = (node / "name").read_text(errors="replace").strip() or f"Camera {number}"
        except OSError:
            continue
        cameras.append(CameraInfo(number, name))
    return cameras


def probe_cameras(max_index: int = 4) -> list[CameraInfo]:
    """The cameras this machine has, best effort, quickest way the OS allows.

    Linux lists /sys/class/video4linux (names from the driver). Elsewhere OpenCV has no
    device names, so indices are tried in turn until one fails to open.
    """
    if sys.platform.startswith("linux"):
        return linux_cameras() if V4L_ROOT.is_dir() else []
    cameras = []
    for index in range(max_index):
        cap = cv2.VideoCapture(index)
        try:
            if not cap.isOpened():
                break
            cameras.append(CameraInfo(index, f"Camera {index}"))
        finally:
            cap.release()
    return cameras
