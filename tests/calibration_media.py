"""Recordings for calibration tests and screenshots, made from the shared samples.

A "real" recording is the live sample photo (real_T1.jpg) moving a little in front of the
camera: a slow sway, zoom and brightness drift. An "attack" recording is the same face
shown on a screen and filmed again: blur, a display gamma that was not undone, a moire
pattern that drifts across the face and a colour cast (tests/training_synth.py has the
same artefacts for still images). These are mild enough that the face is found in every
frame, and the shipped model takes most of them for real faces: the case a calibration
is for. A few frames of the real recording show the face too small or cut by the border,
so the quality gate has something to reject.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

WIDTH, HEIGHT = 640, 480
FPS = 20


def _place(face: np.ndarray, t: float, zoom_extra: float = 1.0, shift=(0, 0)) -> np.ndarray:
    """The portrait on a 640x480 frame at time t (seconds): sway, zoom, brightness."""
    zoom = (0.72 + 0.04 * np.sin(2 * np.pi * t / 3.1)) * zoom_extra
    h, w = face.shape[:2]
    small = cv2.resize(face, (max(8, int(w * zoom)), max(8, int(h * zoom))),
                       interpolation=cv2.INTER_AREA)
    frame = np.full((HEIGHT, WIDTH, 3), 40, np.uint8)
    frame[:] = np.linspace(30, 70, WIDTH, dtype=np.uint8)[None, :, None]
    cx = WIDTH / 2 + 40 * np.sin(2 * np.pi * t / 4.3) + shift[0]
    cy = HEIGHT / 2 + 12 * np.cos(2 * np.pi * t / 3.7) + shift[1]
    x0, y0 = int(cx - small.shape[1] / 2), int(cy - small.shape[0] / 2)
    # Paste with clipping at the frame edges.
    sx0, sy0 = max(0, -x0), max(0, -y0)
    dx0, dy0 = max(0, x0), max(0, y0)
    dx1 = min(WIDTH, x0 + small.shape[1])
    dy1 = min(HEIGHT, y0 + small.shape[0])
    frame[dy0:dy1, dx0:dx1] = small[sy0:sy0 + dy1 - dy0, sx0:sx0 + dx1 - dx0]
    gain = 1.0 + 0.08 * np.sin(2 * np.pi * t / 2.3)
    return np.clip(frame.astype(np.float32) * gain, 0, 255).astype(np.uint8)


def screen_recapture(frame: np.ndarray, t: float, rng) -> np.ndarray:
    """The frame as a camera sees it on a phone screen: blur, gamma, drifting moire, cast."""
    img = frame.astype(np.float32) / 255.0
    img = cv2.GaussianBlur(img, (0, 0), 0.8)
    img = img ** 1.3
    yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32)
    angle = 0.6 + 0.05 * np.sin(t)
    wave = np.sin(2 * np.pi * (0.03 * (xx * np.cos(angle) + yy * np.sin(angle)) + 0.4 * t))
    img = img * (1.0 + 0.1 * wave[..., None])
    img = img * np.float32([1.12, 1.0, 0.88]) + 0.03 + rng.normal(0, 0.004, img.shape)
    return np.clip(img * 255, 0, 255).astype(np.uint8)


def frames(samples_dir: Path, count: int, attack: bool = False, seed: int = 0,
           awkward: bool = True):
    """`count` BGR frames of a real or an attack recording (see the module docstring).

    awkward: frames 8-9 show the face too small, 14-15 cut by the left border (real
    recordings only)."""
    face = cv2.imread(str(Path(samples_dir) / "real_T1.jpg"))
    rng = np.random.RandomState(seed)
    for i in range(count):
        t = i / FPS
        if awkward and not attack and i in (8, 9):
            frame = _place(face, t, zoom_extra=0.33)
        elif awkward and not attack and i in (14, 15):
            frame = _place(face, t, shift=(-305, 0))
        else:
            frame = _place(face, t)
        yield screen_recapture(frame, t, rng) if attack else frame


def write_recording(path: Path, samples_dir: Path, count: int, attack: bool = False,
                    seed: int = 0, awkward: bool = True) -> Path:
    """An MJPG video of `count` frames at FPS (see frames())."""
    path = Path(path)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), FPS, (WIDTH, HEIGHT))
    for frame in frames(samples_dir, count, attack, seed, awkward):
        writer.write(frame)
    writer.release()
    return path


def write_blank(path: Path, count: int = 20) -> Path:
    """A video with no face in it: a grey wall with a little noise."""
    rng = np.random.RandomState(1)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), FPS, (WIDTH, HEIGHT))
    for _ in range(count):
        writer.write(np.clip(120 + rng.normal(0, 6, (HEIGHT, WIDTH, 3)), 0, 255).astype(np.uint8))
    writer.release()
    return Path(path)
