"""A prepared dataset (the output of `prep`): rows, classes, the validation split, batches
and the training augmentation.

Classes: 2 gives real/spoof; N > 2 groups spoof types into their categories (print,
paper_mask, replay, 3d_mask, other; see fasdesk.core.datasets.dataset_info.CATEGORIES) and needs
exactly N-1 categories in the data, e.g. `--classes 3` for live/print/replay. Class 0 is
always "real".

Splits: rows of CelebA-Spoof's own test subset ("test") are never trained on. The other
rows are split per class by *recording*, never image by image: neighbouring frames of a
video are nearly identical, so a random 20% of them measures memory, not the model
(100% accuracy on 40 frames of one clip). A recording is the files of one folder whose
names differ only in their numbers (`real_000012.jpg`, `real_20261203-100605_00007.jpg`,
CelebA's `<subject>/live/000123.jpg`), in the order of those numbers (`recording_keys`).

- With at least MIN_GROUPS recordings in a class, whole recordings go to validation
  (a seeded shuffle, until `round(val_fraction * n)` images are held out, leaving one
  recording to train on): validation sees other people, sessions or cameras.
- With fewer, each recording is split by time: its last `val_fraction` goes to
  validation, and a guard of GUARD of its length before that goes to neither side, as
  camera calibration does.

`split_indices` is the one definition of it, used by train and eval alike, so `eval
--split val` sees exactly the images the run held out; `split_warnings` says when the
validation set is too small, or too close to the training set, to mean much.
"""
from __future__ import annotations

import csv
import math
import os
import re
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from fasdesk.core.datasets import dataset_info as dsi
from fasdesk.core.inference.crop import to_tensor
from training.prep import LABEL_COLUMNS, LABELS_FILE, MANIFEST_FILE

SPLITS = ("val", "train", "test", "all")
CATEGORY_ORDER = tuple(dsi.CATEGORIES)  # real first


class DataError(Exception):
    """A prepared dataset that cannot be used; one line for the user."""


@dataclass
class Prepared:
    root: Path
    rows: list[dict]
    size: int

    @property
    def categories(self) -> list[str]:
        return [r["category"] for r in self.rows]

    def crop_path(self, i: int) -> Path:
        return self.root / self.rows[i]["crop"]


def load_prepared(root: str | os.PathLike) -> Prepared:
    root = Path(root)
    labels = root / LABELS_FILE
    if not root.is_dir():
        raise DataError(f"{root} is not a folder; give the OUT folder of 'prep'")
    if not labels.is_file():
        raise DataError(f"no labels: {labels} not found; run 'python -m training prep SOURCE {root}' first")
    try:
        with open(labels, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            missing = [c for c in ("crop", "category") if c not in (reader.fieldnames or [])]
            if missing:
                raise DataError(f"{labels}: not a prep labels file (columns {', '.join(LABEL_COLUMNS)} expected)")
            rows = list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"cannot read {labels}: {exc}") from None
    if not rows:
        raise DataError(f"no labels: {labels} lists no crops")
    size = 128
    try:
        from fasdesk.core.io.files import read_json, take

        size = take(read_json(root / MANIFEST_FILE, 16 << 20), "size", int)
    except (OSError, ValueError, KeyError, TypeError):
        first = cv2.imread(str(root / rows[0]["crop"]))
        if first is not None:
            size = first.shape[0]
    return Prepared(root, rows, size)


def class_names(categories: list[str], num_classes: int) -> list[str]:
    """Class names for a dataset: real/spoof, or real + the spoof categories present."""
    if num_classes < 2:
        raise DataError(f"--classes must be 2 or more, got {num_classes}")
    if num_classes == 2:
        return ["real", "spoof"]
    present = [c for c in CATEGORY_ORDER if c != "real" and c in set(categories)]
    if len(present) != num_classes - 1:
        raise DataError(f"--classes {num_classes} needs {num_classes - 1} spoof categories; "
                        f"this dataset has {len(present)} ({', '.join(present) or 'none'}): "
                        f"use --classes {len(present) + 1} or --classes 2")
    return ["real"] + present


def class_index(categories: list[str], classes: list[str]) -> np.ndarray:
    """Class index per row: 0 real; for two classes every spoof is 1."""
    if len(classes) == 2:
        return np.array([0 if c == "real" else 1 for c in categories], np.int64)
    lookup = {name: i for i, name in enumerate(classes)}
    missing = sorted({c for c in categories if c not in lookup})
    if missing:
        raise DataError(f"the model's classes {classes} do not cover the dataset's "
                        f"categories {missing}")
    return np.array([lookup[c] for c in categories], np.int64)


MIN_GROUPS = 5  # recordings per class for a split by whole recordings
GUARD = 0.02  # of a recording's length left out between its training and validation part
MIN_VAL_PER_CLASS = 50  # validation images per class for an accuracy worth reading


def _name_key(row: dict) -> tuple[str, tuple[int, ...], str]:
    """(recording key, numbers in the name, name) of a row, from its source file (or crop)."""
    path = str(row.get("source") or row.get("crop") or "").replace("\\", "/")
    folder, _, name = path.rpartition("/")
    stem = name.rsplit(".", 1)[0] if "." in name else name
    numbers = tuple(int(n) for n in re.findall(r"\d+", stem))
    return f"{folder}/{re.sub(r'[0-9]+', '#', stem)}", numbers, name


def recording_keys(rows: list[dict]) -> list[str]:
    """The recording each row belongs to (see the module docstring)."""
    return [_name_key(r)[0] for r in rows]


def _time_split(members: list[int], rows: list[dict], val_fraction: float) -> tuple[list, list]:
    """(validation, guard) row indices of one recording: its last part, and the frames just
    before it."""
    ordered = sorted(members, key=lambda i: _name_key(rows[i])[1:])
    n = len(ordered)
    n_val = int(round(val_fraction * n))
    if val_fraction > 0 and n >= 2:
        n_val = min(max(n_val, 1), n - 1)
    guard = max(1, int(round(GUARD * n))) if n >= 10 and n_val else 0
    guard = min(guard, n - n_val - 1) if n_val else 0
    cut = n - n_val
    return ordered[cut:], ordered[cut - guard:cut] if guard > 0 else []


def split_indices(rows: list[dict], labels: np.ndarray, val_fraction: float = 0.2,
                  seed: int = 0) -> dict[str, np.ndarray]:
    """{"train", "val", "guard", "test", "all"} -> row indices (see the module docstring);
    "guard" rows are in neither train nor val."""
    if not 0 <= val_fraction < 1:
        raise DataError(f"--val-fraction must be in [0, 1), got {val_fraction}")
    test = np.array([i for i, r in enumerate(rows) if r.get("subset") == "test"], np.int64)
    pool = np.array([i for i, r in enumerate(rows) if r.get("subset") != "test"], np.int64)
    keys = recording_keys(rows)
    rng = np.random.RandomState(seed)
    val, guard = [], []
    for c in np.unique(labels[pool]) if len(pool) else []:
        members = pool[labels[pool] == c]
        groups: dict[str, list[int]] = {}
        for i in members.tolist():
            groups.setdefault(keys[i], []).append(i)
        if val_fraction <= 0:
            continue
        if len(groups) >= MIN_GROUPS:
            wanted = int(round(val_fraction * len(members)))
            held = 0
            names = sorted(groups)
            for g in rng.permutation(len(names)).tolist()[:-1]:  # one recording stays
                if held >= max(1, wanted):
                    break
                val.extend(groups[names[g]])
                held += len(groups[names[g]])
        else:
            for name in sorted(groups):
                v, gd = _time_split(groups[name], rows, val_fraction)
                val.extend(v)
                guard.extend(gd)
    val = np.array(sorted(val), np.int64)
    guard = np.array(sorted(guard), np.int64)
    train = np.setdiff1d(np.setdiff1d(pool, val), guard)
    return {"train": train, "val": val, "guard": guard, "test": test,
            "all": np.arange(len(rows), dtype=np.int64)}


def split_warnings(rows: list[dict], labels: np.ndarray, split: dict[str, np.ndarray],
                   class_names: list[str]) -> list[str]:
    """Why the validation accuracy of this split may mean little, one sentence each:
    too few validation images of a class, or validation frames taken from the same
    recordings as training frames."""
    val, train = split["val"], split["train"]
    if len(val) == 0:
        return []
    out = []
    small = [(name, int((labels[val] == c).sum())) for c, name in enumerate(class_names)
             if (labels[val] == c).sum() < MIN_VAL_PER_CLASS]
    if small:
        counts = ", ".join(f"{n} {name}" for name, n in small)
        out.append(f"only {len(val)} validation images ({counts}): one mistake moves the "
                   f"accuracy by {100 / len(val):.1f}%, so it is a rough guide; "
                   f"{MIN_VAL_PER_CLASS} or more per class give a usable estimate")
    keys = recording_keys(rows)
    shared = {keys[i] for i in val.tolist()} & {keys[i] for i in train.tolist()}
    if shared:
        share = sum(keys[i] in shared for i in val.tolist()) / len(val)
        out.append(f"{100 * share:.0f}% of the validation images come from the same "
                   f"{len(shared)} recording(s) as training images (their last "
                   f"frames): accuracy on them overstates accuracy on new people and "
                   f"cameras; with {MIN_GROUPS} or more recordings per class whole "
                   f"recordings are held out")
    return out


class CropStore:
    """Reads crops by row index; keeps them in memory when they fit under `cache_bytes`.

    Reading runs on a few threads (PNG decoding releases the GIL), so a large dataset on
    disk keeps up with the training step.
    """

    def __init__(self, data: Prepared, indices: np.ndarray, cache_bytes: int = 2 << 30):
        self.data = data
        self.size = data.size
        self._pool = ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1))
        self._prefetcher = ThreadPoolExecutor(max_workers=1)  # never waits on itself
        self._cache: dict[int, np.ndarray] | None = None
        if len(indices) * self.size * self.size * 3 <= cache_bytes:
            crops = self._pool.map(self._read, (int(i) for i in indices))
            self._cache = dict(zip((int(i) for i in indices), crops))

    def _read(self, i: int) -> np.ndarray:
        path = self.data.crop_path(i)
        crop = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if crop is None:
            raise DataError(f"crop {path} is missing or corrupt; re-run 'prep' on the dataset")
        if crop.shape[:2] != (self.size, self.size):
            raise DataError(f"crop {path} is {crop.shape[1]}x{crop.shape[0]}, expected "
                            f"{self.size}x{self.size}; re-run 'prep' into a fresh folder")
        return crop

    def batch(self, indices) -> np.ndarray:
        """BGR uint8 [B, S, S, 3]."""
        if self._cache is not None:
            return np.stack([self._cache[int(i)] for i in indices])
        return np.stack(list(self._pool.map(self._read, (int(i) for i in indices))))

    def prefetch(self, indices) -> Future:
        """Start reading a batch in the background; `.result()` gives what batch() would."""
        return self._prefetcher.submit(self.batch, indices)


class NuisanceView:
    """A CropStore whose crops come back with fixed session-to-session changes
    (training.augment.fixed): validation that rewards robustness to them."""

    def __init__(self, store: CropStore, ops, seed: int = 0):
        self.store, self.ops, self.seed = store, tuple(ops), seed
        self.size = store.size

    def batch(self, indices) -> np.ndarray:
        from training import augment

        return augment.fixed(self.store.batch(indices), indices, self.seed, self.ops)


def tensor_batch(crops_bgr: np.ndarray) -> torch.Tensor:
    """The network input for BGR uint8 crops: fasdesk.core.inference.crop.to_tensor, as torch."""
    return torch.from_numpy(to_tensor(crops_bgr))


def epoch_batches(n: int, batch_size: int, epoch: int, seed: int, rank: int = 0,
                  world: int = 1) -> list[np.ndarray]:
    """This rank's batches (positions into the training index list) for one epoch.

    The shuffle depends only on (seed, epoch), so every rank and every resumed run sees
    the same order; each rank gets the same number of batches (DDP needs that).
    """
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 1000 + epoch)).numpy()
    if world > 1:
        pad = (-len(order)) % world
        order = np.concatenate([order, order[:pad]])
        order = order[rank::world]
    batches = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    if len(batches) > 1 and len(batches[-1]) == 1:  # BatchNorm cannot train on one image
        batches[-2] = np.concatenate([batches[-2], batches.pop()])
    return batches


# -- augmentation (torch only, on the batch, on the training device) -----------------------

@dataclass
class AugmentConfig:
    scale: tuple[float, float] = (0.9, 1.1)  # zoom of the random resized crop
    shift: float = 0.05  # max translation, fraction of the side
    rotation_deg: float = 10.0
    flip: float = 0.5
    brightness: float = 0.2
    contrast: float = 0.2
    saturation: float = 0.2
    hue: float = 0.05  # fraction of a full turn


def _uniform(gen: torch.Generator, n: int, lo: float, hi: float) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=gen)


def augment(x: torch.Tensor, gen: torch.Generator, cfg: AugmentConfig = AugmentConfig()) -> torch.Tensor:
    """Random geometry (zoom, shift, rotation, flip; reflect borders) and colour jitter.

    x: RGB [B, 3, S, S] in [0, 1]. The random numbers come from `gen` (CPU), so a run is
    reproducible and resumable whatever the device.
    """
    n = x.shape[0]
    zoom = _uniform(gen, n, *cfg.scale)
    angle = _uniform(gen, n, -cfg.rotation_deg, cfg.rotation_deg) * (math.pi / 180)
    flip = torch.where(torch.rand(n, generator=gen) < cfg.flip, -1.0, 1.0)
    tx = _uniform(gen, n, -cfg.shift, cfg.shift) * 2
    ty = _uniform(gen, n, -cfg.shift, cfg.shift) * 2
    bright = _uniform(gen, n, 1 - cfg.brightness, 1 + cfg.brightness)
    contrast = _uniform(gen, n, 1 - cfg.contrast, 1 + cfg.contrast)
    satur = _uniform(gen, n, 1 - cfg.saturation, 1 + cfg.saturation)
    hue = _uniform(gen, n, -cfg.hue, cfg.hue) * (2 * math.pi)

    # theta maps output to input coordinates: a zoom > 1 shows more of the image.
    cos, sin = torch.cos(angle) * zoom, torch.sin(angle) * zoom
    theta = torch.stack([torch.stack([cos * flip, -sin, tx], 1),
                         torch.stack([sin * flip, cos, ty], 1)], 1).to(x.device, x.dtype)
    grid = torch.nn.functional.affine_grid(theta, list(x.shape), align_corners=False)
    x = torch.nn.functional.grid_sample(x, grid, mode="bilinear", padding_mode="reflection",
                                        align_corners=False)

    def per_image(v):
        return v.to(x.device, x.dtype).view(n, 1, 1, 1)

    x = x * per_image(bright)
    mean = _grey(x).mean(dim=(2, 3), keepdim=True)
    x = (x - mean) * per_image(contrast) + mean
    grey = _grey(x)
    x = grey + (x - grey) * per_image(satur)
    x = _rotate_hue(x, hue.to(x.device, x.dtype))
    return x.clamp_(0.0, 1.0)


def _grey(x: torch.Tensor) -> torch.Tensor:
    return 0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3]


# RGB <-> YIQ: a hue shift is a rotation of the I/Q chroma plane.
_YIQ = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])


def _rotate_hue(x: torch.Tensor, angle: torch.Tensor) -> torch.Tensor:
    yiq = _YIQ.to(x.device, x.dtype)
    rgb = torch.linalg.inv(yiq)
    c, s = torch.cos(angle), torch.sin(angle)
    one, zero = torch.ones_like(c), torch.zeros_like(c)
    rot = torch.stack([torch.stack([one, zero, zero], 1), torch.stack([zero, c, -s], 1),
                       torch.stack([zero, s, c], 1)], 1)  # [B, 3, 3]
    m = rgb @ rot @ yiq  # per-image RGB -> RGB
    return torch.einsum("bij,bjhw->bihw", m, x)
