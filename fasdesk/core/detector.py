"""Face detection with YuNet through cv2.FaceDetectorYN.

YuNet's anchors cover faces of roughly 10 to 300 pixels at its input size, so running it
on a full-resolution photo misses big faces (a 3840x2560 portrait yields nothing). We
therefore detect on a copy scaled down to fit `max_side`, and for large images add a
second, finer pass so small faces in a crowd photo are still found; the boxes of all
passes are mapped back to original pixels and merged with non-maximum suppression.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import cv2
import numpy as np

# OpenCV 5's DNN engine warns on every detector creation that it ignores target hints.
cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)

SCORE_THRESHOLD = 0.8
NMS_THRESHOLD = 0.3
TOP_K = 5000
# Coarse-pass side for live camera frames (one pass, no fine pass). Faces smaller than the
# liveness model's 64 px minimum get no verdict anyway, and at 320 px a 64 px face of a
# 640x480 frame is still 32 px, well inside YuNet's range; boxes stay within ~6% of the
# face size of full-resolution detection (verdicts unchanged on the samples) at a third of
# the cost.
LIVE_MAX_SIDE = 320


@dataclass(frozen=True)
class Detection:
    box: tuple[float, float, float, float]  # x, y, w, h in original image pixels
    score: float
    landmarks: tuple[tuple[float, float], ...]  # eyes, nose tip, mouth corners


class DetectorError(Exception):
    """The detector model is missing or cannot be loaded."""


class FaceDetector:
    """YuNet face detector working on any image size.

    max_side: the longer side of the coarse pass (faces from about 1/60 to the whole
    frame). fine_side: the longer side of the extra pass for images much larger than
    max_side; 0 disables it.
    """

    def __init__(self, model_path: str | os.PathLike, score_threshold: float = SCORE_THRESHOLD,
                 nms_threshold: float = NMS_THRESHOLD, max_side: int = 640, fine_side: int = 1920):
        self.model_path = str(model_path)
        if not os.path.isfile(self.model_path):
            raise DetectorError(f"detector model not found: {self.model_path}")
        self.score_threshold = score_threshold
        self.nms_threshold = nms_threshold
        self.max_side = max_side
        self.fine_side = fine_side
        try:
            self._yunet = cv2.FaceDetectorYN.create(
                self.model_path, "", (320, 320), score_threshold, nms_threshold, TOP_K)
        except cv2.error as exc:
            raise DetectorError(f"cannot load detector model {self.model_path}: "
                                f"{str(exc).strip().splitlines()[-1]}") from None
        self._input_size = (320, 320)

    def _pass_sides(self, width: int, height: int) -> list[int]:
        longest = max(width, height)
        sides = [min(longest, self.max_side)]
        if self.fine_side and longest > 1.5 * self.max_side:
            sides.append(min(longest, self.fine_side))
        return sides

    def _run(self, image: np.ndarray, side: int) -> np.ndarray:
        height, width = image.shape[:2]
        scale = side / max(width, height)
        if scale < 1.0:
            size = (max(1, round(width * scale)), max(1, round(height * scale)))
            small = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        else:
            scale, small = 1.0, image
        in_size = (small.shape[1], small.shape[0])
        if in_size != self._input_size:
            self._yunet.setInputSize(in_size)
            self._input_size = in_size
        # The upstream pipeline the pretrained liveness model was validated with feeds YuNet
        # RGB; doing the same keeps our boxes (and so the crops) on its reference boxes.
        _, faces = self._yunet.detect(cv2.cvtColor(small, cv2.COLOR_BGR2RGB))
        if faces is None or len(faces) == 0:
            return np.zeros((0, 15), np.float32)
        faces = faces.copy()
        # Columns: x, y, w, h, 5 landmark (x, y) pairs, score.
        sx = width / in_size[0]
        sy = height / in_size[1]
        faces[:, 0:14:2] *= sx
        faces[:, 1:14:2] *= sy
        return faces

    def detect(self, image_bgr: np.ndarray) -> list[Detection]:
        """Faces in an 8-bit BGR image, best score first."""
        height, width = image_bgr.shape[:2]
        if min(height, width) < 8:
            return []
        runs = [self._run(image_bgr, side) for side in self._pass_sides(width, height)]
        faces = np.concatenate(runs) if len(runs) > 1 else runs[0]
        if len(runs) > 1 and len(faces) > 1:
            keep = cv2.dnn.NMSBoxes(faces[:, :4].tolist(), faces[:, 14].tolist(),
                                    self.score_threshold, self.nms_threshold)
            faces = faces[np.asarray(keep, int).reshape(-1)]
        order = np.argsort(-faces[:, 14])
        return [Detection(box=tuple(float(v) for v in f[:4]), score=float(f[14]),
                          landmarks=tuple((float(f[4 + 2 * i]), float(f[5 + 2 * i])) for i in range(5)))
                for f in faces[order]]
