"""Saving live faces as training samples (the Live tab's Collect mode). No Qt.

Samples go into a folders-layout dataset (see fasdesk.core.datasets.dataset_info): the full frame
as `<class folder>/<name>.jpg` plus `<name>_BB.txt` with the face box `x y w h` in the
frame's pixels, so `training prep` crops it exactly the way the live view does.

One press saves one face, never every face in the frame: a frame often holds the person
and the photo they hold up, and labelling both with the button's class teaches the model
the wrong thing. The face is the one the user picked (clicked), else the largest.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

import cv2
import numpy as np

from fasdesk.core.datasets import dataset_info
from fasdesk.core.io.files import write_atomic
from fasdesk.core.io.imageio import to_bgr8
from fasdesk.core.io.paths import data_dir

# Collect classes -> folder in the dataset; each folder name is one prep understands.
CLASS_FOLDERS = {
    "real": Path("real"),
    "print": Path("spoof/print"),
    "replay": Path("spoof/replay"),
    "paper_mask": Path("spoof/paper_mask"),
    "3d_mask": Path("spoof/3d_mask"),
}
CLASS_TITLES = {"real": "Real", "print": "Print", "replay": "Replay (screen)",
                "paper_mask": "Paper mask", "3d_mask": "3D mask"}
JPEG_QUALITY = 95


class CollectError(Exception):
    """A sample that cannot be saved (disk full, no permission); one line for the user."""


def default_dataset_dir() -> Path:
    return data_dir() / "datasets" / "collected"


def face_at(faces, x: float, y: float):
    """The tracked face whose box holds the point (the smallest, when boxes nest), or None."""
    inside = [f for f in faces
              if f.result.box[0] <= x <= f.result.box[0] + f.result.box[2]
              and f.result.box[1] <= y <= f.result.box[1] + f.result.box[3]]
    return min(inside, key=lambda f: f.result.box[2] * f.result.box[3], default=None)


def pick_face(faces, selected: int | None = None):
    """(face to save, None) or (None, why not) among a frame's tracked faces.

    With `selected` (a track id the user clicked) only that face, and only while the model
    can judge it; otherwise the largest face the model can judge. A face that is too small
    or cut by the border (result.reason set) would teach the model from a crop it never
    sees in use.
    """
    if selected is not None:
        face = next((f for f in faces if f.track_id == selected), None)
        if face is None:
            return None, (f"the selected face #{selected} is not in this frame (click a face "
                          "to select it, or outside the faces for the largest)")
        if face.result.reason is not None:
            return None, f"the selected face #{selected} cannot be judged: {face.result.reason}"
        return face, None
    judged = [f for f in faces if f.result.reason is None]
    if not judged:
        return None, ("no face in this frame that the model can judge (too small, cut by "
                      "the border, or none)")
    return max(judged, key=lambda f: f.result.box[2] * f.result.box[3]), None


def write_sample(path: Path, image_bgr: np.ndarray, box) -> None:
    """One folders-layout sample: `path` (JPEG) and its `_BB.txt` with the box x y w h.

    The box file is written before the image, and the image through a temporary name,
    so an image in the dataset always has its box and is never half-written. Raises
    CollectError."""
    ok, encoded = cv2.imencode(".jpg", image_bgr, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise CollectError("the frame could not be encoded as JPEG")
    try:
        dataset_info.write_box(dataset_info.box_path_for(path), tuple(int(v) for v in box))
        write_atomic(path, encoded.tobytes())
    except OSError as exc:
        raise CollectError(f"cannot save samples into {path.parent}: "
                           f"{exc.strerror or exc}") from None


def delete_sample(image: str | os.PathLike) -> None:
    """Remove a sample: its image, then its box file. Raises CollectError."""
    image = Path(image)
    try:
        image.unlink(missing_ok=True)
        dataset_info.box_path_for(image).unlink(missing_ok=True)
    except OSError as exc:
        raise CollectError(f"cannot delete {image.name}: {exc.strerror or exc}") from None


def move_sample(image: str | os.PathLike, root: str | os.PathLike, label: str) -> Path:
    """Move a sample (its image and box file) into another class's folder of the dataset
    at `root` (a face saved under the wrong class); returns its new image path. A name
    taken there gets a number. Raises CollectError."""
    image = Path(image)
    if label not in CLASS_FOLDERS:
        raise CollectError(f"unknown sample class {label!r}")
    folder = Path(root) / CLASS_FOLDERS[label]
    target = folder / image.name
    n = 1
    while target.exists() and target != image:
        target = folder / f"{image.stem}-{n}{image.suffix}"
        n += 1
    if target == image:
        return image
    box, new_box = dataset_info.box_path_for(image), dataset_info.box_path_for(target)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        os.replace(image, target)
        if box.exists():
            os.replace(box, new_box)
    except OSError as exc:
        raise CollectError(f"cannot move {image.name}: {exc.strerror or exc}") from None
    return target


class SampleCollector:
    """Writes labelled face samples into one dataset folder and counts them per class."""

    def __init__(self, root: str | os.PathLike | None = None):
        self.root = Path(root) if root is not None else default_dataset_dir()
        self.counts: dict[str, int] = {}
        self.recount()
        self._serial = 0

    def folder(self, label: str) -> Path:
        if label not in CLASS_FOLDERS:
            raise ValueError(f"unknown sample class {label!r}; expected one of "
                             f"{', '.join(CLASS_FOLDERS)}")
        return self.root / CLASS_FOLDERS[label]

    def recount(self) -> None:
        """Count the samples on disk anew (e.g. after some were deleted elsewhere)."""
        self.counts = {name: self._count_on_disk(name) for name in CLASS_FOLDERS}

    def _count_on_disk(self, label: str) -> int:
        folder = self.folder(label)
        if not folder.is_dir():
            return 0
        return sum(1 for p in folder.iterdir() if p.suffix.lower() == ".jpg")

    def save(self, frame: np.ndarray, box, label: str, rgb: bool = False) -> Path:
        """Save one face as a sample; returns the image path written.

        `frame` is any layout imageio.to_bgr8 takes (`rgb`: its channels are RGB, as the
        live view's display frames are); `box` is (x, y, w, h) in its pixels (see
        write_sample).
        """
        folder = self.folder(label)
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CollectError(f"cannot save samples into {folder}: "
                               f"{exc.strerror or exc}") from None
        path = self._new_path(folder, label)
        write_sample(path, to_bgr8(frame, rgb=rgb), box)
        self.counts[label] += 1
        return path

    def _new_path(self, folder: Path, label: str) -> Path:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        while True:
            self._serial += 1
            path = folder / f"{label}_{stamp}_{self._serial:05d}.jpg"
            if not path.exists():
                return path


class AutoCapture:
    """While a class button is held, say which frames to keep: the first, then every k-th."""

    def __init__(self, every: int = 5):
        self.every = max(1, int(every))
        self.label: str | None = None
        self._frames = 0

    def press(self, label: str) -> None:
        self.label = label
        self._frames = 0

    def release(self) -> None:
        self.label = None

    def tick(self) -> str | None:
        """Call once per processed frame; returns the label to save this frame under, or None."""
        if self.label is None:
            return None
        due = self._frames % self.every == 0
        self._frames += 1
        return self.label if due else None
