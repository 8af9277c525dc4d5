"""Small synthetic liveness datasets for the training backend's tests.

Faces are the real shared sample photos (their reference face boxes from
samples/reference.json). "Spoofs" are simulated screen recaptures of those photos: a moire
interference pattern, a display gamma, blur and a colour cast, which a model can learn in
a few epochs. Real and spoof images come from the same three photos, so only the
recapture artefacts separate the classes.
"""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

SAMPLES = ("real_T1.jpg", "spoof_F1.jpg", "spoof_F2.jpg")


def load_faces(samples_dir: Path, scale: float = 0.5):
    """[(BGR image scaled by `scale`, box xywh scaled)] for the three shared samples."""
    ref = json.loads((samples_dir / "reference.json").read_text())
    faces = []
    for name in SAMPLES:
        image = cv2.imread(str(samples_dir / name))
        image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        box = [v * scale for v in ref[name][0]["box_xywh"]]
        faces.append((image, box))
    return faces


def jitter(image, box, rng):
    """A slightly different capture: shift, zoom, brightness, JPEG-like softness."""
    h, w = image.shape[:2]
    zoom = rng.uniform(0.9, 1.1)
    dx, dy = rng.uniform(-0.05, 0.05) * w, rng.uniform(-0.05, 0.05) * h
    m = np.float32([[zoom, 0, dx + (1 - zoom) * w / 2], [0, zoom, dy + (1 - zoom) * h / 2]])
    out = cv2.warpAffine(image, m, (w, h), borderMode=cv2.BORDER_REFLECT_101)
    out = np.clip(out.astype(np.float32) * rng.uniform(0.85, 1.15), 0, 255).astype(np.uint8)
    x, y, bw, bh = box
    new_box = [x * zoom + m[0, 2], y * zoom + m[1, 2], bw * zoom, bh * zoom]
    return out, new_box


def recapture(image, rng, strength: float = 1.0):
    """A simulated photo of a screen showing `image`; `strength` scales every artefact
    (1 = plain to see, about 0.3 = subtle, closer to a good screen)."""
    h, w = image.shape[:2]
    img = image.astype(np.float32) / 255.0
    img = cv2.GaussianBlur(img, (0, 0), 0.3 + strength * rng.uniform(0.5, 1.1))
    img = img ** (1 + strength * rng.uniform(0.6, 1.2))  # display gamma not undone
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    angle = rng.uniform(0, np.pi)
    # Moire: the beat of screen and sensor pixel grids, coarse enough to survive the
    # crop's downscaling (a few stripes across the face).
    freq = rng.uniform(0.04, 0.07)  # cycles per pixel
    wave = np.sin(2 * np.pi * freq * (xx * np.cos(angle) + yy * np.sin(angle)))
    img = img * (1.0 + 0.3 * strength * wave[..., None])
    # bluish cast, raised blacks
    img = img * (1 + strength * np.float32([0.15, 0.0, -0.15])) + 0.04 * strength
    return np.clip(img * 255, 0, 255).astype(np.uint8)


def _write(path: Path, image) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), image, [cv2.IMWRITE_JPEG_QUALITY, 92])


def make_folders(root: Path, samples_dir: Path, per_class: int = 12, seed: int = 0,
                 boxes: bool = True, spoof_folder: str = "replay",
                 strength: float = 1.0) -> Path:
    """real/ and spoof/<spoof_folder>/ with `per_class` images each (+ `_BB.txt` in pixels);
    `strength` as in `recapture`."""
    rng = np.random.RandomState(seed)
    faces = load_faces(samples_dir)
    for label in ("real", "spoof"):
        for i in range(per_class):
            image, box = faces[i % len(faces)]
            image, box = jitter(image, box, rng)
            if label == "spoof":
                image = recapture(image, rng, strength)
            folder = root / "real" if label == "real" else root / "spoof" / spoof_folder
            path = folder / f"{label}_{i:03d}.jpg"
            _write(path, image)
            if boxes:
                path.with_name(path.stem + "_BB.txt").write_text(
                    " ".join(str(int(round(v))) for v in box) + "\n")
    return root


def make_celeba(root: Path, samples_dir: Path, per_class: int = 8, seed: int = 0) -> Path:
    """A CelebA-Spoof-shaped dataset: live (type 0), replay (7) and paper-mask (4) images in
    train and test subsets, boxes in the 224x224 frame, label element 40 = spoof type."""
    rng = np.random.RandomState(seed)
    faces = load_faces(samples_dir)
    labels = {"train": {}, "test": {}}
    n = 0
    for subset, count in (("train", per_class), ("test", max(2, per_class // 4))):
        for spoof_type in (0, 7, 4):
            for i in range(count):
                image, box = faces[n % len(faces)]
                n += 1
                image, box = jitter(image, box, rng)
                if spoof_type:
                    image = recapture(image, rng)
                kind = "live" if spoof_type == 0 else "spoof"
                rel = f"Data/{subset}/{1000 + i}/{kind}/{spoof_type:02d}{i:04d}.jpg"
                _write(root / rel, image)
                h, w = image.shape[:2]
                x, y, bw, bh = box
                frame = [x * 224 / w, y * 224 / h, bw * 224 / w, bh * 224 / h]
                (root / rel).with_name(Path(rel).stem + "_BB.txt").write_text(
                    " ".join(f"{v:.2f}" for v in frame) + " 0.99\n")
                vector = [0] * 44
                vector[40] = spoof_type
                vector[43] = 0 if spoof_type == 0 else 1
                labels[subset][rel] = vector
    (root / "metas" / "labels").mkdir(parents=True, exist_ok=True)
    for subset, mapping in labels.items():
        (root / "metas" / "labels" / f"{subset}_label.json").write_text(json.dumps(mapping))
    return root


def run_cli(*args, timeout: float = 300, env_extra: dict | None = None):
    """Run `python -m training ARGS --events`; return (exit status, events, stderr)."""
    import os
    import subprocess
    import sys

    from training.events import parse_line

    # One thread: on a shared 2-core machine, torch's spinning OpenMP workers are many
    # times slower for these tiny batches than a single thread.
    env = dict(os.environ, OMP_NUM_THREADS="1", **(env_extra or {}))
    result = subprocess.run([sys.executable, "-m", "training", *map(str, args), "--events"],
                            capture_output=True, text=True, timeout=timeout, env=env)
    events = [e for e in map(parse_line, result.stdout.splitlines()) if e is not None]
    return result.returncode, events, result.stderr


def of_kind(events, event_type: str, **match):
    return [e for e in events if e["event"] == event_type
            and all(e.get(k) == v for k, v in match.items())]


def run_main(capsys, *args):
    """training.cli.main in this process (no interpreter start-up): (status, events, stderr)."""
    from training.cli import main
    from training.events import parse_line

    capsys.readouterr()
    rc = main([*map(str, args), "--events"])
    captured = capsys.readouterr()
    return rc, [e for e in map(parse_line, captured.out.splitlines()) if e], captured.err
