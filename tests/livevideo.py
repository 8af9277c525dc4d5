"""A short video built from the shared samples, for live-view tests and benchmarks."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

FRAMES_PER_SAMPLE = 4
# The samples in the order the video shows them, with the verdict each must get.
SEQUENCE = (("real_T1.jpg", "real"), ("spoof_F1.jpg", "spoof"), ("spoof_F2.jpg", "spoof"))


def write_video(path: Path, samples_dir: Path, frames_per_sample: int = FRAMES_PER_SAMPLE,
                fps: float = 30) -> Path:
    """A 640x480 MJPG video: each portrait sample centred on a black frame."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (640, 480))
    for name, _ in SEQUENCE:
        image = cv2.imread(str(Path(samples_dir) / name))
        small = cv2.resize(image, (360, 480), interpolation=cv2.INTER_AREA)
        frame = np.zeros((480, 640, 3), np.uint8)
        frame[:, 140:500] = small
        for _ in range(frames_per_sample):
            writer.write(frame)
    writer.release()
    return path


def two_face_frame(samples_dir: Path) -> np.ndarray:
    """960x480: the live face (smaller, left) beside a recaptured photo (larger, right), as
    when someone holds a printed photo up next to their face."""
    frame = np.zeros((480, 960, 3), np.uint8)
    real = cv2.imread(str(Path(samples_dir) / "real_T1.jpg"))
    photo = cv2.imread(str(Path(samples_dir) / "spoof_F1.jpg"))
    frame[80:480, 60:360] = cv2.resize(real, (300, 400), interpolation=cv2.INTER_AREA)
    frame[:, 540:900] = cv2.resize(photo, (360, 480), interpolation=cv2.INTER_AREA)
    return frame
