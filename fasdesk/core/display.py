"""Turning BGR images into what a screen shows: fitted sizes and packed RGB bytes.

The UI holds no pixel math: it only wraps the bytes made here in a QImage
(`QImage(rgb.data, rgb.width, rgb.height, rgb.stride, QImage.Format_RGB888)`).
"""
from __future__ import annotations

from typing import NamedTuple

import cv2
import numpy as np

from fasdesk.core.imageio import to_bgr8

# Longest side of a results-table thumbnail: small enough that thousands of rows stay in
# a few tens of MB, big enough to recognise the photo.
THUMBNAIL_SIDE = 64


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
