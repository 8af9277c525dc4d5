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
