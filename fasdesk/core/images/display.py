"""Turning BGR images into what a screen shows: fitted sizes and packed RGB bytes.

The UI holds no pixel math: it only wraps the bytes made here in a QImage
(`QImage(rgb.data, rgb.width, rgb.height, rgb.stride, QImage.Format_RGB888)`).
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import NamedTuple, Sequence

import cv2
import numpy as np

from fasdesk.core.datasets import dataset_info
from fasdesk.core.images.annotate import draw_faces
from fasdesk.core.inference.crop import face_crop
from fasdesk.core.io.imageio import read_image, to_bgr8
from fasdesk.core.inference.pipeline import FaceResult

# Longest side of a results-table thumbnail: small enough that thousands of rows stay in
# a few tens of MB, big enough to recognise the photo.
THUMBNAIL_SIDE = 64
# Longest side of a results-grid thumbnail (the table shows the same one scaled down).
GRID_THUMBNAIL_SIDE = 112
# A preview's longer side: at most enough for a screen pane; tiny photos are enlarged to at
# least this so their boxes and captions are drawn at a legible size, not blown up after.
PREVIEW_MAX_SIDE = 1600
PREVIEW_MIN_SIDE = 480


class RGBBytes(NamedTuple):
    """Packed 8-bit RGB pixels, rows `stride` bytes apart (stride == 3 * width)."""
    data: bytes
    width: int
    height: int
    stride: int


def fit_within(image: np.ndarray, max_side: int) -> np.ndarray:
    """Shrink `image` so its longer side is at most `max_side` (never enlarges)."""
    height, width = image.shape[:2]
    longer = max(height, width)
    if longer <= max_side:
        return image
    scale = max_side / longer
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def to_rgb_bytes(image: np.ndarray, rgb: bool = False) -> RGBBytes:
    """Any frame (see imageio.to_bgr8; `rgb` says its channel order) -> packed RGB bytes."""
    bgr = to_bgr8(image, rgb=rgb)
    height, width = bgr.shape[:2]
    rgb_pixels = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    return RGBBytes(rgb_pixels.tobytes(), width, height, 3 * width)


def thumbnail(image: np.ndarray, max_side: int = THUMBNAIL_SIDE) -> RGBBytes:
    """A small RGB copy of a BGR image for lists and tables."""
    return to_rgb_bytes(fit_within(image, max_side))


def file_thumbnail(path, max_side: int = GRID_THUMBNAIL_SIDE) -> RGBBytes:
    """A file's thumbnail, read anew. Raises imageio.ImageReadError for an unreadable file."""
    return thumbnail(read_image(path), max_side)


def sample_thumbnail(image_path, layout: str, side: int) -> RGBBytes:
    """A dataset sample as the model sees it, side x side: the face crop its `_BB.txt`
    gives (the crop prep makes), or the whole image shrunk when it has no usable box.

    Raises imageio.ImageReadError for an unreadable image.
    """
    image = read_image(image_path)
    box_path = dataset_info.box_path_for(Path(image_path))
    try:
        box = dataset_info.read_box(box_path, layout, image.shape[1], image.shape[0])
    except ValueError:  # no box file, or a broken one: the detector's job in prep
        return thumbnail(image, side)
    return to_rgb_bytes(face_crop(image, box, side))


def annotated_preview(image: np.ndarray, faces: Sequence[FaceResult],
                      threshold: float | None = None, max_side: int = PREVIEW_MAX_SIDE,
                      min_side: int = PREVIEW_MIN_SIDE) -> RGBBytes:
    """A display-sized copy of a BGR image with its faces drawn (see annotate.draw_faces).

    The image is resized first (area shrinking, linear enlarging) and the boxes scaled
    with it, so lines and captions suit the size shown, whatever the photo's size.
    """
    height, width = image.shape[:2]
    longer = max(height, width)
    scale = min(1.0, max_side / longer) if longer > min_side else min_side / longer
    if scale != 1.0:
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
        image = cv2.resize(image, size, interpolation=interpolation)
        faces = [replace(face, box=tuple(round(v * scale) for v in face.box)) for face in faces]
    return to_rgb_bytes(draw_faces(image, faces, threshold))
