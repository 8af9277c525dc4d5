"""The face crop and tensor preprocessing: the one copy of this code.

Inference (`fasdesk.core.inference.pipeline`), training data preparation (`training.prep`) and
INT8 calibration (`training.export`, `fasdesk.core.inference.optimize`) all call these functions, so
a model always sees crops made exactly the way it was trained on. Changing anything here
changes what every model sees; the reference logits test guards it.

Crop: a square of CROP_SCALE x the box's longer side around the box centre; parts outside
the image are filled by BORDER_REFLECT_101. Preprocess: resize to the model's input size
(Lanczos-4 when enlarging, area when shrinking), BGR -> RGB, float32 / 255, CHW.
"""
from __future__ import annotations

from typing import Iterable, Sequence

import cv2
import numpy as np

CROP_SCALE = 1.5
DEFAULT_INPUT_SIZE = 128


def crop_region(box: Sequence[float], scale: float = CROP_SCALE) -> tuple[int, int, int]:
    """Return (x0, y0, side) of the square crop for a face box (x, y, w, h).

    The integer conversion truncates (like Python's int()), which is what the upstream
    pipeline the pretrained models were trained and evaluated with does; rounding instead
    moves the crop by a pixel and shifts the logits by up to 0.7.
    """
    x, y, w, h = (float(v) for v in box)
    side = scale * max(w, h)
    cx, cy = x + w / 2.0, y + h / 2.0
    return int(cx - side / 2.0), int(cy - side / 2.0), max(1, int(side))


def crop_face(image: np.ndarray, box: Sequence[float], scale: float = CROP_SCALE) -> np.ndarray:
    """Cut the square face crop out of `image` (any channel count), reflecting at borders."""
    height, width = image.shape[:2]
    x0, y0, side = crop_region(box, scale)
    x1, y1 = x0 + side, y0 + side
    pad_left, pad_top = max(0, -x0), max(0, -y0)
    pad_right, pad_bottom = max(0, x1 - width), max(0, y1 - height)
    if not (pad_left or pad_top or pad_right or pad_bottom):
        return image[y0:y1, x0:x1]
    # Pad only a window around the crop, not the whole frame: the window reaches far
    # enough past the crop that reflection sees the same pixels as padding the full image.
    wx0 = max(0, x0 - pad_right)
    wx1 = min(width, x1 + pad_left)
    wy0 = max(0, y0 - pad_bottom)
    wy1 = min(height, y1 + pad_top)
    window = image[wy0:wy1, wx0:wx1]
    padded = cv2.copyMakeBorder(window, pad_top, pad_bottom, pad_left, pad_right,
                                cv2.BORDER_REFLECT_101)
    ox, oy = x0 - wx0 + pad_left, y0 - wy0 + pad_top
    return padded[oy:oy + side, ox:ox + side]


def resize_square(crop: np.ndarray, size: int = DEFAULT_INPUT_SIZE) -> np.ndarray:
    """Resize a square crop to size x size: Lanczos-4 enlarging, area shrinking."""
    if crop.shape[0] == size and crop.shape[1] == size:
        return crop
    interpolation = cv2.INTER_LANCZOS4 if crop.shape[0] < size else cv2.INTER_AREA
    return cv2.resize(crop, (size, size), interpolation=interpolation)


def face_crop(image_bgr: np.ndarray, box: Sequence[float], size: int = DEFAULT_INPUT_SIZE) -> np.ndarray:
    """The BGR uint8 size x size crop a model sees (what `prep` stores on disk)."""
    return resize_square(crop_face(image_bgr, box), size)


def to_tensor(crops_bgr: Iterable[np.ndarray]) -> np.ndarray:
    """Stack BGR uint8 crops into the model input: float32 [N, 3, S, S], RGB in [0, 1]."""
    batch = np.stack([np.asarray(c) for c in crops_bgr])
    if batch.ndim != 4 or batch.shape[-1] != 3:
        raise ValueError(f"expected BGR crops of shape (S, S, 3), got {batch.shape[1:]}")
    rgb = batch[..., ::-1].transpose(0, 3, 1, 2)
    return np.ascontiguousarray(rgb, dtype=np.float32) * np.float32(1.0 / 255.0)


def preprocess(image_bgr: np.ndarray, boxes: Sequence[Sequence[float]],
               size: int = DEFAULT_INPUT_SIZE) -> np.ndarray:
    """Crop every box from one BGR image and return the batched model input."""
    if len(boxes) == 0:
        return np.zeros((0, 3, size, size), np.float32)
    return to_tensor(face_crop(image_bgr, b, size) for b in boxes)
