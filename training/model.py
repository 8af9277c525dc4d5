"""MiniFASNetV2-SE with its Fourier-spectrum auxiliary branch, and the checkpoint format.

The layout is read off the reference checkpoint `best_model.pth` (tensor names and
shapes) and its ONNX export; it loads that checkpoint strictly (every tensor used).

Network, for a 128x128 RGB input (channel counts are those of the reference checkpoint):

    conv1       3x3 s2 conv-BN-PReLU, 3->32                         64x64
    conv2_dw    3x3 depthwise conv-BN-PReLU, 32                     64x64
    conv_23     bottleneck 32->103->64, depthwise stride 2          32x32
    conv_3      4 residual bottlenecks 64->13->64, the last with SE
    conv_34     bottleneck 64->231->128, stride 2                   16x16
    conv_4      6 residual bottlenecks 128->{231,52,26,77,26,26}->128, last with SE
    conv_45     bottleneck 128->308->128, stride 2                  8x8
    conv_5      2 residual bottlenecks 128->26->128, last with SE
    conv_6_sep  1x1 conv-BN-PReLU 128->512
    conv_6_dw   8x8 depthwise conv-BN (global, no activation)       1x1
    linear      512->128 (no bias), BN, dropout, logits 128->K (no bias)

A bottleneck is 1x1 expand (conv-BN-PReLU), 3x3 depthwise (conv-BN-PReLU), 1x1 project
(conv-BN, linear); residual ones add their input. SE (squeeze-excitation): global average,
1x1 conv C->C/4, BN, ReLU, 1x1 conv C/4->C, BN, sigmoid, scales the projected features
before the residual addition.

The Fourier branch (training only) reads the conv_4 output (128 x 16 x 16) through three
3x3 conv-BN-ReLU layers (128->128->64->1) and predicts the normalised log-magnitude
spectrum of the grey input crop, resized to 16x16 (`fourier_target`). It is dropped
from the exported ONNX model.

Checkpoint format (a dict saved with torch.save; `save_checkpoint`/`load_checkpoint`):

    model_state_dict      keys "model.*" (classifier) and "FTGenerator.fourier_transform.*"
    config                {"input_size": 128, "num_classes": K, "ft_weight": float,
                           "classes": [names, class 0 = "real"], "dropout": float}
    validation_accuracy   float or None
    -- written by `train` for resuming (absent from the reference checkpoint) --
    epoch, step           epochs completed, steps into the next one
    optimizer_state_dict, scaler_state_dict (AMP), rng_states (per process: torch,
    numpy and Python states as tensors, lists and numbers), best_val_acc, start_val_acc,
    history (per-epoch metrics), train_args

Checkpoints are read with torch.load(weights_only=True): tensors and plain data only, so a
crafted file cannot run code (`read_checkpoint`).
"""
from __future__ import annotations

import contextlib
import copy
import io
import math
import os
import pickle
import re
import warnings
from pathlib import Path

import torch
from torch import nn

from fasdesk.core.io.files import write_atomic
from fasdesk.core.io.errors import one_line

INPUT_SIZE = 128
EMBEDDING_SIZE = 128
DEFAULT_CLASSES = ("real", "spoof")
# Expansion widths of the reference MiniFASNetV2-SE (the "keep" list of pruned channels).
_WIDTHS = {
    "conv1": 32, "conv_23": 103, "conv_3": [13, 13, 13, 13], "conv_34": 231,
    "conv_4": [231, 52, 26, 77, 26, 26], "conv_45": 308, "conv_5": [26, 26],
}


class CheckpointError(Exception):
    """A checkpoint that is missing, unreadable or not a MiniFAS checkpoint."""


class ConvBlock(nn.Module):
    """conv (no bias) - BatchNorm - optional PReLU."""

    def __init__(self, cin: int, cout: int, kernel: int = 1, stride: int = 1,
                 padding: int = 0, groups: int = 1, activation: bool = True):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride, padding, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(cout)
        self.prelu = nn.PReLU(cout) if activation else None

    def forward(self, x):
        x = self.bn(self.conv(x))
        return self.prelu(x) if self.prelu is not None else x


class SqueezeExcite(nn.Module):
    def __init__(self, channels: int, reduction: int = 4):
        super().__init__()
        hidden = channels // reduction
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, hidden, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(hidden)
        self.relu = nn.ReLU(inplace=True)
        self.fc2 = nn.Conv2d(hidden, channels, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.sigmoid = nn.Sigmoid()

    def forward(self, x):
        w = self.avg_pool(x)
        w = self.relu(self.bn1(self.fc1(w)))
        w = self.sigmoid(self.bn2(self.fc2(w)))
        return x * w


class Bottleneck(nn.Module):
    """1x1 expand, 3x3 depthwise (stride), 1x1 linear project; optional residual and SE."""

    def __init__(self, cin: int, cout: int, width: int, stride: int = 1,
                 residual: bool = False, se: bool = False):
        super().__init__()
        self.residual = residual
        self.conv = ConvBlock(cin, width)
        self.conv_dw = ConvBlock(width, width, 3, stride, 1, groups=width)
        self.project = ConvBlock(width, cout, activation=False)
        if se:
            self.se_module = SqueezeExcite(cout)
        else:
            self.se_module = None

    def forward(self, x):
        y = self.project(self.conv_dw(self.conv(x)))
        if self.se_module is not None:
            y = self.se_module(y)
        return x + y if self.residual else y


class ResidualStage(nn.Module):
    """Residual bottlenecks of equal in/out width; the last one has SE."""

    def __init__(self, channels: int, widths: list[int]):
        super().__init__()
        self.model = nn.Sequential(*[
            Bottleneck(channels, channels, w, residual=True, se=(i == len(widths) - 1))
            for i, w in enumerate(widths)])

    def forward(self, x):
        return self.model(x)


class MiniFASNetV2SE(nn.Module):
    def __init__(self, num_classes: int = 2, input_size: int = INPUT_SIZE, dropout: float = 0.2):
        super().__init__()
        if input_size % 16:
            raise ValueError(f"input size must be a multiple of 16, got {input_size}")
        w = _WIDTHS
        self.conv1 = ConvBlock(3, w["conv1"], 3, 2, 1)
        self.conv2_dw = ConvBlock(32, 32, 3, 1, 1, groups=32)
        self.conv_23 = Bottleneck(32, 64, w["conv_23"], stride=2)
        self.conv_3 = ResidualStage(64, w["conv_3"])
        self.conv_34 = Bottleneck(64, 128, w["conv_34"], stride=2)
        self.conv_4 = ResidualStage(128, w["conv_4"])
        self.conv_45 = Bottleneck(128, 128, w["conv_45"], stride=2)
        self.conv_5 = ResidualStage(128, w["conv_5"])
        self.conv_6_sep = ConvBlock(128, 512)
        final = input_size // 16
        self.conv_6_dw = ConvBlock(512, 512, final, groups=512, activation=False)
        self.linear = nn.Linear(512, EMBEDDING_SIZE, bias=False)
        self.bn = nn.BatchNorm1d(EMBEDDING_SIZE)
        self.drop = nn.Dropout(dropout)
        self.logits = nn.Linear(EMBEDDING_SIZE, num_classes, bias=False)

    def features(self, x):
        """The conv_4 output, which the Fourier branch reads."""
        x = self.conv2_dw(self.conv1(x))
        x = self.conv_3(self.conv_23(x))
        return self.conv_4(self.conv_34(x))

    def head(self, x):
        x = self.conv_5(self.conv_45(x))
        x = self.conv_6_dw(self.conv_6_sep(x))
        x = torch.flatten(x, 1)
        return self.logits(self.drop(self.bn(self.linear(x))))

    def forward(self, x):
        return self.head(self.features(x))


class FourierGenerator(nn.Module):
    def __init__(self, channels: int = 128):
        super().__init__()
        self.fourier_transform = nn.Sequential(
            nn.Conv2d(channels, 128, 3, padding=1), nn.BatchNorm2d(128), nn.ReLU(inplace=True),
            nn.Conv2d(128, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(inplace=True),
            nn.Conv2d(64, 1, 3, padding=1), nn.BatchNorm2d(1), nn.ReLU(inplace=True))

    def forward(self, x):
        return self.fourier_transform(x)


class MultiFTNet(nn.Module):
    """The classifier plus the Fourier branch: returns (logits, spectrum) in training mode,
    logits only in eval mode (what export and evaluation need) and when `with_fourier` is
    off (training without the Fourier loss skips the branch's cost)."""

    def __init__(self, num_classes: int = 2, input_size: int = INPUT_SIZE, dropout: float = 0.2):
        super().__init__()
        self.model = MiniFASNetV2SE(num_classes, input_size, dropout)
        self.FTGenerator = FourierGenerator(128)
        self.with_fourier = True
        self.frozen_features = None  # a FrozenFeatures when training with early layers kept

    def forward(self, x):
        if self.training and self.frozen_features is not None:
            feat = self.frozen_features(x)
        else:
            feat = self.model.features(x)
        logits = self.model.head(feat)
        if self.training and self.with_fourier:
            return logits, self.FTGenerator(feat)
        return logits

    def early_layers(self) -> list[nn.Module]:
        """Every stage before the last, low-resolution one (conv1 to conv_4: 64x64 to 16x16
        for a 128 input): most of a backward pass's cost, and features generic enough to
        keep when fine-tuning on a small set (the recapture table of tests/bench_finetune.py
        learns as well with them kept)."""
        m = self.model
        return [m.conv1, m.conv2_dw, m.conv_23, m.conv_3, m.conv_34, m.conv_4]


class _Features(nn.Module):
    def __init__(self, net: MiniFASNetV2SE):
        super().__init__()
        self.net = net

    def forward(self, x):
        return self.net.features(x)


class FrozenFeatures:
    """MultiFTNet.features as an inference-only function, for training with the early
    layers kept: BatchNorm folded into the convolutions (torch.fx; equal to ~1e-8) and,
    with `dtype`, run under that autocast (bfloat16 on a CPU that has it: about 2x faster
    again for these convolutions, which without a backward pass use the native bf16 dot
    products). Built from a copy, after the early layers are final; not a Module, so it is
    never part of a state dict. Returns float32.
    """

    def __init__(self, net: "MultiFTNet", dtype: torch.dtype | None = None):
        with warnings.catch_warnings():  # torch.jit deprecation notes from fx's imports
            warnings.simplefilter("ignore", DeprecationWarning)
            from torch.fx.experimental.optimization import fuse

        self.fused = fuse(_Features(copy.deepcopy(net.model)).eval())
        self.dtype = dtype

    @torch.no_grad()
    def __call__(self, x: torch.Tensor, exact: bool = False) -> torch.Tensor:
        """exact: float32 whatever autocast is around (validation features)."""
        if exact:
            context = torch.autocast(x.device.type, enabled=False)
        elif self.dtype is not None:
            context = torch.autocast(x.device.type, dtype=self.dtype)
        else:
            context = contextlib.nullcontext()  # whatever the caller runs under (CUDA AMP)
        with context:
            return self.fused(x).float()


def fourier_size(input_size: int = INPUT_SIZE) -> int:
    """Side of the Fourier branch's output (conv_4 runs at 1/8 of the input)."""
    return input_size // 8


def fourier_target(images: torch.Tensor, size: int) -> torch.Tensor:
    """The Fourier branch's target for RGB [N,3,S,S] images in [0,1]: [N,1,size,size].

    Grey (ITU-R 601 luma) -> 2-D FFT -> centred log(1 + |F|) -> resized to size x size
    (area average) -> scaled to [0, 1] per image (min-max). Computed on the augmented
    batch, so it always matches what the network sees.
    """
    r, g, b = images[:, 0], images[:, 1], images[:, 2]
    grey = (0.299 * r + 0.587 * g + 0.114 * b).float()
    spectrum = torch.fft.fftshift(torch.fft.fft2(grey), dim=(-2, -1))
    mag = torch.log1p(spectrum.abs()).unsqueeze(1)
    mag = nn.functional.adaptive_avg_pool2d(mag, size)
    lo = mag.amin(dim=(2, 3), keepdim=True)
    hi = mag.amax(dim=(2, 3), keepdim=True)
    return (mag - lo) / (hi - lo).clamp_min(1e-6)


def build_model(config: dict | None = None) -> MultiFTNet:
    config = config or {}
    return MultiFTNet(int(config.get("num_classes", 2)), int(config.get("input_size", INPUT_SIZE)),
                      float(config.get("dropout", 0.2)))


def _numpy_array_globals() -> list:
    """What pickle needs to rebuild plain numpy arrays and numbers (checkpoints of earlier
    versions of this trainer hold an RNG state array and numpy floats): data only, nothing
    that runs code."""
    import numpy as np

    core = getattr(np, "_core", None) or np.core
    return [core.multiarray._reconstruct, core.multiarray.scalar, np.ndarray, np.dtype,
            *[t for t in vars(np.dtypes).values() if isinstance(t, type)]]


def read_checkpoint(path: str | os.PathLike) -> dict:
    """torch.load a checkpoint dict safely, with a one-line CheckpointError when it is not one.

    weights_only=True: the file may only hold tensors and plain data (numbers, strings,
    lists, dicts; numpy arrays for the RNG state of older checkpoints). A pickle that would
    import anything else - and a crafted .pth can run any code that way - is refused before
    anything in it runs.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch's notes on pickle protocols, not for users
            with torch.serialization.safe_globals(_numpy_array_globals()):
                ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        unsafe = re.search(r"GLOBAL (\S+)", str(exc))
        if unsafe is None:  # not a pickle the safe loader understands (junk, or exotic)
            raise CheckpointError(f"cannot read checkpoint {path}: not a plain torch "
                                  "checkpoint") from None
        raise CheckpointError(
            f"{path}: refused: it is not a plain checkpoint (it holds Python objects such as "
            f"{unsafe.group(1)}, which could run code when loaded); use a checkpoint written "
            "by 'python -m training train' or a plain state dict") from None
    except Exception as exc:
        raise CheckpointError(f"cannot read checkpoint {path}: {one_line(exc)}") from None
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("model_state_dict"), dict):
        raise CheckpointError(f"{path}: not a MiniFAS checkpoint (no model_state_dict)")
    if not all(isinstance(k, str) and isinstance(v, torch.Tensor)
               for k, v in ckpt["model_state_dict"].items()):
        raise CheckpointError(f"{path}: not a MiniFAS checkpoint (model_state_dict holds "
                              "something other than named tensors)")
    if "config" in ckpt and ckpt["config"] is not None and not isinstance(ckpt["config"], dict):
        raise CheckpointError(f"{path}: bad checkpoint config: a {type(ckpt['config']).__name__}, "
                              "not a dictionary")
    return ckpt


def checkpoint_config(ckpt: dict, path: str | os.PathLike = "checkpoint") -> dict:
    """The model config of a checkpoint, with defaults filled in from its tensors; a
    CheckpointError naming the field when a value cannot describe this network."""
    config = dict(ckpt.get("config") or {})
    state = ckpt["model_state_dict"]
    if "model.logits.weight" in state:
        config.setdefault("num_classes", int(state["model.logits.weight"].shape[0]))
    if "model.conv_6_dw.conv.weight" in state:
        config.setdefault("input_size", int(state["model.conv_6_dw.conv.weight"].shape[-1]) * 16)

    def bad(field, why):
        return CheckpointError(f"{path}: bad checkpoint config: {field} {config.get(field)!r} "
                               f"{why}")

    def number(field, kind, lo, hi, default):
        value = config.get(field, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or \
                (kind is int and value != int(value)) or not math.isfinite(value) \
                or not lo <= value <= hi:
            raise bad(field, f"is not {'an integer' if kind is int else 'a number'} in "
                      f"[{lo}, {hi}]")
        return kind(value)

    config["input_size"] = number("input_size", int, 16, 1024, INPUT_SIZE)
    if config["input_size"] % 16:
        raise bad("input_size", "is not a multiple of 16")
    config["num_classes"] = number("num_classes", int, 2, 64, 2)
    config["dropout"] = number("dropout", float, 0.0, 0.99, 0.2)
    config["ft_weight"] = number("ft_weight", float, 0.0, 1.0, 0.5)
    num_classes = config["num_classes"]
    if "classes" not in config:
        config["classes"] = (list(DEFAULT_CLASSES) if num_classes == 2
                             else ["real"] + [f"spoof_{i}" for i in range(1, num_classes)])
    classes = config["classes"]
    if not (isinstance(classes, (list, tuple)) and len(classes) == num_classes
            and all(isinstance(c, str) and c for c in classes)):
        raise bad("classes", f"is not a list of {num_classes} class names")
    config["classes"] = list(classes)
    return config


def load_model(path: str | os.PathLike) -> tuple[MultiFTNet, dict]:
    """(model in eval mode, checkpoint dict) from a checkpoint file, loaded strictly."""
    ckpt = read_checkpoint(path)
    config = checkpoint_config(ckpt, path)
    ckpt["config"] = config
    model = build_model(config)
    try:
        model.load_state_dict(ckpt["model_state_dict"], strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"{path}: does not match MiniFASNetV2-SE "
                              f"({state_mismatch(model, ckpt['model_state_dict'])})") from None
    model.eval()
    return model, ckpt


def state_mismatch(model: nn.Module, state: dict) -> str:
    """Why `state` does not fit `model`, in a few words (for one-line errors)."""
    own = model.state_dict()
    unknown = [k for k in state if k not in own]
    missing = [k for k in own if k not in state]
    shapes = [k for k, v in state.items() if k in own and own[k].shape != v.shape]
    parts = []
    for label, keys in (("unknown", unknown), ("missing", missing), ("wrong-shape", shapes)):
        if keys:
            parts.append(f"{len(keys)} {label} tensor{'s' if len(keys) > 1 else ''}, e.g. {keys[0]}"
                         + (f" {tuple(state[keys[0]].shape)} instead of {tuple(own[keys[0]].shape)}"
                            if label == "wrong-shape" else ""))
    return "; ".join(parts) or "no difference in names or shapes"


def save_checkpoint(ckpt: dict, path: str | os.PathLike) -> None:
    """Write atomically: a crash mid-write never leaves a truncated checkpoint behind."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = io.BytesIO()
    torch.save(ckpt, data)
    write_atomic(path, data.getvalue(), durable=True)
