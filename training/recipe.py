"""Training recipes: the preset settings for a dataset and the learning-rate schedule.

Plain Python, no torch: the GUI's Train step shows the preset before a run starts, and
`train` uses the same function when a setting is not given.

Two recipes:

- **fine-tune** (`--init CKPT`): linear warm-up over the first epoch (at most
  WARMUP_MAX_STEPS steps), then a cosine decay to zero at the last step; gradients clipped
  to a global norm of CLIP_NORM; the layers before the last 8x8 stage optionally frozen
  (about 2x faster steps; the preset freezes them for sets under FREEZE_BELOW images).
- **scratch** (no `--init`): upstream's SGD lr 0.1, x0.1 at epochs 10, 15, 22, 30, 50
  epochs.

Both keep BatchNorm on batch statistics while training and recompute its running
statistics after each epoch (precise BN, training.train; `precise_bn_batches`). Freezing the statistics at the
checkpoint's instead was tried for fine-tuning and was worse: without the normalisation a
large step changes the activations' scale, and at lr 0.03 runs collapsed to one class.
"""
from __future__ import annotations

import csv
import math
import os

FINE_TUNE, SCRATCH = "fine-tune", "scratch"
WARMUP_MAX_STEPS = 100
CLIP_NORM = 2.0
FREEZE_BELOW = 5000  # images: below this a fine-tune keeps the early layers as they are
SCRATCH_MILESTONES = (10, 15, 22, 30)
# Session-to-session nuisance augmentation of both classes (training.augment). Measured
# (docs/calibration-robustness.md): "light" fixes low-light real faces and keeps unseen
# prints caught; motion or defocus blur fix moving faces but let every print through (the
# prints' own blur stops being evidence), colour and JPEG changed nothing measurable.
# Plain text: the GUI shows it without importing numpy.
AUGMENT = "light"
# Fine-tuning's pull toward the starting weights (training.train.l2_sp_penalty, --l2-sp).
# Off: at 1 it did not keep prints caught with blur augmentation, and without blur it
# accepted fewer dark and moving real faces than `light` alone (docs/calibration-robustness.md).
L2_SP = 0.0
PRECISE_BN_IMAGES = 256  # fine-tuning: enough for the statistics, a fraction of an epoch


def preset_images(rows) -> int:
    """The dataset size the preset goes by: labelled crops outside a test subset (rows of a
    prep labels file)."""
    return sum(1 for row in rows if row.get("subset") != "test")


def preset_images_in(labels_csv: str | os.PathLike) -> int | None:
    """preset_images of a prep labels file; None when it cannot be read."""
    try:
        with open(labels_csv, newline="", encoding="utf-8") as fh:
            return preset_images(csv.DictReader(fh))
    except (OSError, UnicodeDecodeError, csv.Error):
        return None


def preset(images: int, fine_tune: bool) -> dict:
    """Settings for a dataset of `images` labelled crops (the test subset not counted):
    {"recipe", "epochs", "batch_size", "lr", "freeze_early"}.

    Fine-tuning: batch 16 under 200 images (less for a handful), 32 under 1,000, else 64;
    15 epochs under 500 images, 10 under 5,000, else 5 (a bigger set needs fewer passes);
    lr 0.01.
    From scratch: upstream's 50 epochs at lr 0.1, batch 256, smaller for small sets so that
    an epoch has at least 8 steps.
    """
    images = max(0, int(images))
    if fine_tune:
        batch = 16 if images < 200 else 32 if images < 1000 else 64
        while batch > 4 and 2 * batch > images:  # a tiny set still gets two steps an epoch
            batch //= 2
        epochs = 15 if images < 500 else 10 if images < 5000 else 5
        return {"recipe": FINE_TUNE, "epochs": epochs, "batch_size": batch, "lr": 0.01,
                "freeze_early": images < FREEZE_BELOW, "augment": AUGMENT, "l2_sp": L2_SP}
    batch = 256
    while batch > 16 and images < 8 * batch:
        batch //= 2
    # From scratch the data is a large dataset with its own variety; the session changes
    # were measured for fine-tuning only (a from-scratch run on a tiny set learned slower).
    return {"recipe": SCRATCH, "epochs": 50, "batch_size": batch, "lr": 0.1,
            "freeze_early": False, "augment": "none", "l2_sp": 0.0}


def precise_bn_batches(recipe: str, batch_size: int) -> int:
    """Training batches that precise BN averages after each epoch: 100 from scratch; about
    PRECISE_BN_IMAGES images when fine-tuning (the statistics need no more, and the pass
    costs a forward over them every epoch)."""
    if recipe == SCRATCH:
        return 100
    return max(2, math.ceil(PRECISE_BN_IMAGES / max(1, batch_size)))


def warmup_steps(steps_per_epoch: int, total_steps: int) -> int:
    """Fine-tuning's warm-up: the first epoch, at most WARMUP_MAX_STEPS, at most half the run."""
    return max(1, min(steps_per_epoch, WARMUP_MAX_STEPS, total_steps // 2))


def learning_rate(recipe: str, base_lr: float, step: int, steps_per_epoch: int,
                  total_steps: int, milestones=SCRATCH_MILESTONES, gamma: float = 0.1) -> float:
    """The learning rate of optimisation step `step` (0-based, counted over the whole run).

    A pure function of the step, so a resumed run needs nothing but its step count.
    """
    if recipe == FINE_TUNE:
        warm = warmup_steps(steps_per_epoch, total_steps)
        if step < warm:
            return base_lr * (step + 1) / (warm + 1)
        progress = (step - warm) / max(1, total_steps - warm)
        return base_lr * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
    epoch = step // max(1, steps_per_epoch)
    return base_lr * gamma ** sum(1 for m in milestones if m <= epoch)
