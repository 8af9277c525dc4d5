"""Raw training datasets: which layout a folder has, what is in it, what is wrong with it.

This is the one place that knows the two input layouts. The Training tab uses it to show
a dataset before anything runs, and `training.prep` uses it to list the samples it crops,
so both always agree on what a folder contains. No torch, no Qt.

Layouts
- CelebA-Spoof: `metas/labels/train_label.json` and/or `test_label.json` (the original
  release's `metas/intra_test/` is accepted too) map image paths, relative to the dataset
  root, to a label vector whose element 40 is the spoof type. Each `image.jpg` has an
  `image_BB.txt` whose first four numbers are `x y w h` in a 224x224 frame scaled to the
  image's size.
- Folders: `real/...` and `spoof/...`, optionally `spoof/<type>/...` with the type names in
  FOLDER_TYPES. An image may have a `_BB.txt` beside it (`x y w h` in the image's own
  pixels); without one the face comes from the detector.

Spoof types are CelebA-Spoof's numbers (0 live, 1-3 print, 4-6 paper masks, 7-9 replay,
10 3D mask); a folder-layout spoof of no known type gets SPOOF_OTHER.
"""
from __future__ import annotations

import math
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from fasdesk.core.io.files import read_regular_file
from fasdesk.core.io.imageio import is_image_path

CELEBA = "celeba-spoof"
FOLDERS = "folders"

LIVE = 0
SPOOF_OTHER = 11  # folders layout: a spoof whose kind is not given by a known sub-folder
SPOOF_TYPE_INDEX = 40  # element of a CelebA-Spoof label vector that holds the spoof type
CELEBA_FRAME = 224  # CelebA-Spoof boxes are given in a 224x224 frame
# A _BB.txt is a line of numbers; a face box may reach past the image, not be many times it.
MAX_BOX_FILE_BYTES = 64 * 1024
MAX_BOX_SCALE = 2.0

SPOOF_TYPE_NAMES = {
    0: "live", 1: "photo", 2: "poster", 3: "A4", 4: "face mask", 5: "upper body mask",
    6: "region mask", 7: "PC screen", 8: "pad screen", 9: "phone screen", 10: "3D mask",
    SPOOF_OTHER: "other spoof",
}
# Coarse categories, for grouped classes and for the data collection buttons.
CATEGORIES = {"real": (0,), "print": (1, 2, 3), "paper_mask": (4, 5, 6),
              "replay": (7, 8, 9), "3d_mask": (10,), "other": (SPOOF_OTHER,)}
# Folder names under spoof/ and the spoof type they stand for.
FOLDER_TYPES = {
    "print": 1, "photo": 1, "poster": 2, "a4": 3,
    "mask": 4, "paper_mask": 4, "face_mask": 4, "upper_body_mask": 5, "region_mask": 6,
    "replay": 7, "screen": 7, "pc": 7, "pad": 8, "tablet": 8, "phone": 9,
    "3d_mask": 10,
}
# CelebA-Spoof types used when the user picks none (upstream's training set: no masks).
DEFAULT_SPOOF_TYPES = (0, 1, 2, 3, 7, 8, 9)
CELEBA_LABEL_DIRS = ("metas/labels", "metas/intra_test")
SPLITS = ("train", "test")


class DatasetError(Exception):
    """A dataset that cannot be used at all; the message says what to do."""


@dataclass(frozen=True)
class Sample:
    path: Path  # the image
    spoof_type: int  # CelebA-Spoof numbering (0 = live)
    box_path: Path | None  # the _BB.txt beside it, if there is one
    split: str = "train"  # "train" or "test" (CelebA-Spoof); folders are all "train"

    @property
    def is_live(self) -> bool:
        return self.spoof_type == LIVE


@dataclass
class DatasetInfo:
    root: Path
    layout: str | None  # CELEBA, FOLDERS or None (not a dataset)
    counts: dict[int, int] = field(default_factory=dict)  # spoof type -> images
    split_counts: dict[str, int] = field(default_factory=dict)
    missing_boxes: int = 0  # images without a _BB.txt (the detector will look for the face)
    examples: dict[int, list[Path]] = field(default_factory=dict)  # a few per spoof type
    problems: list[str] = field(default_factory=list)  # blocking: prep would fail
    warnings: list[str] = field(default_factory=list)  # worth knowing, not blocking

    @property
    def ok(self) -> bool:
        return self.layout is not None and not self.problems

    @property
    def live(self) -> int:
        return self.counts.get(LIVE, 0)

    @property
    def spoof(self) -> int:
        return sum(n for t, n in self.counts.items() if t != LIVE)

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def type_name(spoof_type: int) -> str:
    return SPOOF_TYPE_NAMES.get(spoof_type, f"type {spoof_type}")


def category_of(spoof_type: int) -> str:
    return next((name for name, types in CATEGORIES.items() if spoof_type in types), "other")


def celeba_label_files(root: Path) -> dict[str, Path]:
    """split -> label JSON of a CelebA-Spoof root (empty when it is not one)."""
    for folder in CELEBA_LABEL_DIRS:
        found = {s: root / folder / f"{s}_label.json" for s in SPLITS}
        found = {s: p for s, p in found.items() if p.is_file()}
        if found:
            return found
    return {}


def detect_layout(root: str | os.PathLike) -> str | None:
    """CELEBA, FOLDERS, or None when the folder is neither."""
    root = Path(root)
    if celeba_label_files(root) or (root / "metas").is_dir():
        return CELEBA
    if (root / "real").is_dir() or (root / "spoof").is_dir():
        return FOLDERS
    return None


def box_path_for(image: Path) -> Path:
    return image.with_name(image.stem + "_BB.txt")


def read_box(box_path: str | os.PathLike, layout: str, width: int, height: int
             ) -> tuple[float, float, float, float]:
    """The face box (x, y, w, h) in the image's pixels from a `_BB.txt` file.

    Raises ValueError with a short reason when the file is unusable: not a small regular
    file, not four finite numbers, an empty box, a box far bigger than the image (its crop
    would need gigabytes) or one entirely outside it.
    """
    name = Path(box_path).name
    try:
        text = read_regular_file(box_path, MAX_BOX_FILE_BYTES).decode("utf-8", errors="replace")
    except OSError as exc:
        raise ValueError(f"cannot read {name}: {exc.strerror or exc}") from None
    try:
        x, y, w, h = (float(v) for v in text.split()[:4])
    except ValueError:
        raise ValueError(f"{name} does not start with four numbers x y w h") from None
    if not all(math.isfinite(v) for v in (x, y, w, h)):
        raise ValueError(f"{name} holds a value that is not a finite number")
    if layout == CELEBA:
        sx, sy = width / CELEBA_FRAME, height / CELEBA_FRAME
        x, y, w, h = x * sx, y * sy, w * sx, h * sy
    if w <= 1 or h <= 1:
        raise ValueError(f"{name} has an empty box")
    if max(w, h) > MAX_BOX_SCALE * max(width, height):
        raise ValueError(f"{name}: box {w:.4g}x{h:.4g} is far larger than the "
                         f"{width}x{height} image")
    if x + w <= 0 or y + h <= 0 or x >= width or y >= height:
        raise ValueError(f"{name}: the box lies outside the image")
    return x, y, w, h


def write_box(box_path: str | os.PathLike, box) -> None:
    """Write a folders-layout `_BB.txt`: `x y w h` in the image's pixels."""
    x, y, w, h = (int(round(float(v))) for v in box)
    Path(box_path).write_text(f"{x} {y} {w} {h}\n", encoding="utf-8")


def _walk_images(folder: Path) -> Iterator[Path]:
    for dirpath, dirs, files in os.walk(folder):
        dirs.sort()
        for name in sorted(files):
            if is_image_path(name):
                yield Path(dirpath) / name


def _folder_samples(root: Path, warnings: list[str]) -> Iterator[Sample]:
    real = root / "real"
    if real.is_dir():
        for path in _walk_images(real):
            yield Sample(path, LIVE, _box_if_any(path))
    spoof = root / "spoof"
    if not spoof.is_dir():
        return
    for path in sorted(p for p in spoof.iterdir() if p.is_file() and is_image_path(p.name)):
        yield Sample(path, SPOOF_OTHER, _box_if_any(path))
    for sub in sorted(p for p in spoof.iterdir() if p.is_dir()):
        spoof_type = FOLDER_TYPES.get(sub.name.lower())
        if spoof_type is None:
            spoof_type = SPOOF_OTHER
            warnings.append(f"spoof/{sub.name}: not a known spoof type "
                            f"({', '.join(sorted(set(FOLDER_TYPES)))}); counted as other spoof")
        for path in _walk_images(sub):
            yield Sample(path, spoof_type, _box_if_any(path))


def _box_if_any(image: Path) -> Path | None:
    box = box_path_for(image)
    return box if box.is_file() else None


def _celeba_samples(root: Path, problems: list[str]) -> Iterator[Sample]:
    files = celeba_label_files(root)
    if not files:
        problems.append(f"no labels: {root / CELEBA_LABEL_DIRS[0]} has no train_label.json "
                        "or test_label.json")
        return
    for split, label_file in files.items():
        try:
            from fasdesk.core.io.files import read_json

            labels = read_json(label_file, 1 << 30)
        except (OSError, ValueError) as exc:
            problems.append(f"{label_file.name} cannot be read as labels: {exc}")
            continue
        for rel, vector in labels.items():
            try:
                spoof_type = int(vector[SPOOF_TYPE_INDEX])
            except (TypeError, ValueError, IndexError, KeyError):
                problems.append(f"{label_file.name}: label of {rel} has no spoof type at "
                                f"element {SPOOF_TYPE_INDEX}")
                return
            path = root / rel
            yield Sample(path, spoof_type, box_path_for(path), split)


def iter_samples(root: str | os.PathLike, spoof_types=None) -> Iterator[Sample]:
    """Every labelled image of a dataset, in a stable order.

    `spoof_types` keeps only those types (None: all). Raises DatasetError when the folder is
    no dataset or its labels cannot be read. CelebA-Spoof samples are listed from the
    labels without touching the image files (prep reports missing ones as skipped).
    """
    root = Path(root)
    layout = detect_layout(root)
    if layout is None:
        raise DatasetError(_not_a_dataset(root))
    problems: list[str] = []
    samples = (_celeba_samples(root, problems) if layout == CELEBA
               else _folder_samples(root, []))
    keep = None if spoof_types is None else {int(t) for t in spoof_types}
    for sample in samples:
        if keep is None or sample.spoof_type in keep:
            yield sample
    if problems:
        raise DatasetError(problems[0])


def _not_a_dataset(root: Path) -> str:
    if not root.is_dir():
        return f"{root} is not a folder"
    return (f"{root} is not a dataset: expected real/ and spoof/ sub-folders, or a "
            f"CelebA-Spoof folder with metas/labels/train_label.json")


def scan(root: str | os.PathLike, spoof_types=None, examples_per_type: int = 4,
         check_files: int = 200) -> DatasetInfo:
    """Layout, counts per spoof type and problems of a dataset, without reading pixels.

    For CelebA-Spoof, only the first `check_files` listed images are checked on disk (the
    full set can be 600k files); a missing one there is reported as a warning. `examples`
    holds the first `examples_per_type` images of each type (folders: the last, in name
    order, which for Collect mode's samples are the newest).
    """
    root = Path(root)
    info = DatasetInfo(root=root, layout=detect_layout(root))
    if info.layout is None:
        info.problems.append(_not_a_dataset(root))
        return info
    keep = None if spoof_types is None else {int(t) for t in spoof_types}
    counts: Counter = Counter()
    splits: Counter = Counter()
    checked = missing_files = 0
    if info.layout == CELEBA:
        samples = _celeba_samples(root, info.problems)
    else:
        samples = _folder_samples(root, info.warnings)
    for sample in samples:
        if keep is not None and sample.spoof_type not in keep:
            continue
        if info.layout == CELEBA and checked < check_files:
            checked += 1
            if not sample.path.is_file():
                missing_files += 1
                continue
            if not sample.box_path.is_file():
                info.missing_boxes += 1
        elif info.layout == FOLDERS and sample.box_path is None:
            info.missing_boxes += 1
        counts[sample.spoof_type] += 1
        splits[sample.split] += 1
        shown = info.examples.setdefault(sample.spoof_type, [])
        if info.layout == FOLDERS:
            # The last ones in name order: for collected samples (named by time), the newest.
            shown.append(sample.path)
            del shown[:-examples_per_type]
        elif len(shown) < examples_per_type and sample.path.is_file():
            shown.append(sample.path)
    info.counts = dict(sorted(counts.items()))
    info.split_counts = dict(splits)
    if missing_files:
        info.warnings.append(f"{missing_files} of the first {checked} listed images "
                             "missing on disk: prep will skip them")
    if info.missing_boxes and info.layout == FOLDERS:
        info.warnings.append(f"{_images(info.missing_boxes)} without a _BB.txt: the face "
                             "detector will find the face")
    if info.layout == CELEBA and info.missing_boxes:
        info.warnings.append(f"{_images(info.missing_boxes)} (of those checked) without a "
                             "_BB.txt: prep will skip them")
    if not info.problems:
        _class_problems(info)
    return info


def _images(n: int) -> str:
    return f"{n} image" if n == 1 else f"{n} images"


def _class_problems(info: DatasetInfo) -> None:
    if info.total == 0:
        where = "real/ and spoof/" if info.layout == FOLDERS else "the label files"
        info.problems.append(f"no images found in {where}")
    elif info.live == 0:
        where = "real/" if info.layout == FOLDERS else "the selected spoof types"
        info.problems.append(f"the real (live) class is empty: no images in {where}")
    elif info.spoof == 0:
        where = "spoof/" if info.layout == FOLDERS else "the selected spoof types"
        info.problems.append(f"the spoof class is empty: no images in {where}")
