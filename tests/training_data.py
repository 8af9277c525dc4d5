"""A tiny folders-layout liveness dataset for GUI training tests and screenshots.

Real: the shared live sample with light photometric changes (exposure, contrast, sensor
noise), mirrored half of the time. Spoof: the same faces through a simulated screen
recapture (moire stripes, display gamma, blur, a colour cast) plus the two real recaptured
samples. Every image has a `_BB.txt` with the face box from the real detector, so prep
needs no detector.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from fasdesk.core import dataset_info
from fasdesk.core.imageio import read_image


def _variant(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    gain = rng.uniform(0.8, 1.2)
    bias = rng.uniform(-15, 15)
    noise = rng.normal(0, 3, image.shape)
    return np.clip(image.astype(np.float32) * gain + bias + noise, 0, 255).astype(np.uint8)


def recapture(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A face as a camera sees it on a screen: moire, gamma, blur, colour cast."""
    h, w = image.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    angle = rng.uniform(0, np.pi)
    period = rng.uniform(3.0, 6.0)
    stripes = np.sin(2 * np.pi * (xx * np.cos(angle) + yy * np.sin(angle)) / period)
    out = image.astype(np.float32) / 255.0
    out = out ** rng.uniform(1.3, 1.7)
    out = out * (1.0 + 0.18 * stripes[..., None])
    out = out * np.array([1.05, 1.0, 0.9], np.float32)  # BGR: a bluish screen
    out = cv2.GaussianBlur(out, (0, 0), rng.uniform(0.8, 1.4))
    return np.clip(out * 255.0, 0, 255).astype(np.uint8)


def _save(folder: Path, name: str, image: np.ndarray, box) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(folder / f"{name}.jpg"), image, [cv2.IMWRITE_JPEG_QUALITY, 92])
    dataset_info.write_box(folder / f"{name}_BB.txt", box)


def make_dataset(root: Path, samples_dir: Path, pipeline, per_class: int = 6,
                 seed: int = 0) -> Path:
    """`per_class` real images in root/real, as many simulated screen recaptures in
    root/spoof/replay, and the two real recaptures in root/spoof."""
    rng = np.random.default_rng(seed)
    live = read_image(samples_dir / "real_T1.jpg")
    box = pipeline.process(live)[0].box
    width = live.shape[1]
    mirrored_box = (width - box[0] - box[2], box[1], box[2], box[3])
    for i in range(per_class):
        flip = i % 2 == 1
        base = live[:, ::-1].copy() if flip else live
        face_box = mirrored_box if flip else box
        _save(root / "real", f"live_{i:03d}", _variant(base, rng), face_box)
        _save(root / "spoof" / "replay", f"screen_{i:03d}", recapture(_variant(base, rng), rng),
              face_box)
    for name in ("spoof_F1.jpg", "spoof_F2.jpg"):
        image = read_image(samples_dir / name)
        # Recaptures of unknown kind: straight under spoof/ ("other spoof").
        _save(root / "spoof", Path(name).stem, image, pipeline.process(image)[0].box)
    return root
