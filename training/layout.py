"""The training backend's artifact names and command lines, in one place.

`python -m training` writes its outputs under fixed names; the Training tab, the camera
calibration and the backend itself take them from here instead of spelling them. The
command-line builders give the argument lists (without the program and without
`--events`, which the runner adds). Standard library only: no torch, so the GUI and the
command line can import it.

- prep OUT:   `labels.csv` (one row per crop), `manifest.json` (counts, skipped images)
- train OUT:  `latest.pth` (every epoch), `best.pth` (best validation score), `history.json`
- export OUT.onnx: the model, its card `<stem>.card.json` (fasdesk.core.models.cards) and,
  with a kept INT8 model at OUT, the fp32 model beside it as `<stem>.fp32.onnx`
"""
from __future__ import annotations

import os
from pathlib import Path

LABELS = "labels.csv"
MANIFEST = "manifest.json"
LATEST = "latest.pth"
BEST = "best.pth"
HISTORY = "history.json"
FP32_SUFFIX = ".fp32.onnx"

PathLike = str | os.PathLike


def labels_file(prepared: PathLike) -> Path:
    """A prepared folder's label table (its presence says the folder is a prep output)."""
    return Path(prepared) / LABELS


def manifest_file(prepared: PathLike) -> Path:
    return Path(prepared) / MANIFEST


def is_prepared(folder: PathLike | None) -> bool:
    """Whether `folder` is the output of `prep` (it has the label table)."""
    return folder is not None and labels_file(folder).is_file()


def best_checkpoint(run: PathLike) -> Path:
    return Path(run) / BEST


def latest_checkpoint(run: PathLike) -> Path:
    return Path(run) / LATEST


def history_file(run: PathLike) -> Path:
    return Path(run) / HISTORY


def fp32_twin(onnx: PathLike) -> Path:
    """Where a kept INT8 export puts the fp32 model: beside OUT as `<stem>.fp32.onnx`."""
    p = Path(onnx)
    return p.with_name(p.stem + FP32_SUFFIX)


def is_fp32_twin(path: PathLike) -> bool:
    return Path(path).name.endswith(FP32_SUFFIX)


def _number(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(int(value))


def prep_args(source: PathLike, out: PathLike, size: int | None = None,
              spoof_types=None) -> list[str]:
    args = ["prep", str(source), str(out)]
    if size:
        args += ["--size", str(int(size))]
    if spoof_types:
        args += ["--spoof-types", *(str(t) for t in spoof_types)]
    return args


def train_args(data: PathLike, out: PathLike, *, epochs=None, batch_size=None, lr=None,
               classes=None, init: PathLike | None = None, freeze_early: bool | None = None,
               resume: str | None = None, device: str | None = None) -> list[str]:
    """`train DATA OUT ...`; options left None are the backend's own choice."""
    args = ["train", str(data), str(out)]
    if resume:
        args += ["--resume", str(resume)]
    for flag, value in (("--epochs", epochs), ("--batch-size", batch_size), ("--lr", lr)):
        if value:
            args += [flag, _number(value)]
    if classes is not None:
        args += ["--classes", str(classes)]
    if init is not None:
        args += ["--init", str(init)]
    if freeze_early is not None:
        args.append("--freeze-early" if freeze_early else "--no-freeze-early")
    if device:
        args += ["--device", str(device)]
    return args


def eval_args(data: PathLike, model: PathLike, out: PathLike | None = None,
              split: str | None = None) -> list[str]:
    args = ["eval", str(data), str(model)]
    if out is not None:
        args += ["--out", str(out)]
    if split:
        args += ["--split", str(split)]
    return args


def export_args(checkpoint: PathLike, out: PathLike, threshold: float | None = None,
                calibration: PathLike | None = None) -> list[str]:
    """`export CHECKPOINT OUT.onnx`; with `calibration` (a prepared folder) also INT8."""
    args = ["export", str(checkpoint), str(out)]
    if threshold is not None:
        args += ["--threshold", repr(float(threshold))]
    if calibration is not None:
        args += ["--int8", "--calibration", str(calibration)]
    return args
