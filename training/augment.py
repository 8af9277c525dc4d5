"""Session-to-session nuisance augmentation: what changes between two sessions of one camera
and is no evidence of an attack. numpy + OpenCV only (no torch), on BGR uint8 face crops
(the output of fasdesk.core.inference.crop), so it is testable alone and the calibration
bench can reuse it.

Applied to BOTH classes alike, each op with its own probability, in the order a camera
does it: scene light (exposure gain and gamma down to low light), blur (motion, defocus),
sensor noise (shot + read noise, stronger the darker the frame), white balance, JPEG.
Geometry (small zoom/shift/rotation/flip) stays in training.data.augment, on the tensor.

Never synthesised here: moire, a screen's pixel grid, halftone dots, glare, paper edges or
any other attack cue; a real face must stay a real face under every op. The ops only
lower light, blur, tint and compress.

`OPS` names the ops; `--augment` (training) takes a comma list of them, `all` or `none`.
The recipe keeps the ones that helped when measured (training.recipe.AUGMENT,
docs/calibration-robustness.md); the others stay available.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from training.recipe import AUGMENT

OPS = ("light", "motion", "defocus", "colour", "jpeg")


@dataclass(frozen=True)
class NuisanceConfig:
    light: float = 0.5  # probability of each op per crop
    motion: float = 0.3
    defocus: float = 0.2
    colour: float = 0.5
    jpeg: float = 0.4
    gain: tuple[float, float] = (0.2, 1.0)  # exposure gain (1 = as recorded)
    gamma: tuple[float, float] = (1.0, 1.8)  # >1 darkens the mid-tones
    motion_px: tuple[int, int] = (2, 5)  # motion streak length on a 128 px crop
    defocus_sigma: tuple[float, float] = (0.3, 0.8)
    noise: float = 0.3  # sensor noise scale (1: a webcam's noise at full gain in the dark);
    # 0.3 accepted the most low-light real faces in the bench (0: fewer, 1: fewer)
    wb: float = 0.25  # white-balance gains in [1 - wb, 1 + wb] on red/blue
    jpeg_quality: tuple[int, int] = (25, 80)


def parse_ops(text: str | None) -> tuple[str, ...]:
    """`--augment` text -> op names. None/"" -> the recipe default; "none" -> ()."""
    if text is None or text == "":
        return DEFAULT_OPS
    text = text.strip().lower()
    if text == "none":
        return ()
    if text == "all":
        return OPS
    ops = tuple(o.strip() for o in text.split(",") if o.strip())
    unknown = [o for o in ops if o not in OPS]
    if unknown:
        raise ValueError(f"unknown augmentation {', '.join(unknown)}: choose from "
                         f"{', '.join(OPS)}, 'all' or 'none'")
    return ops


def sensor_noise(x: np.ndarray, rng: np.random.Generator, amplify: float = 1.0) -> np.ndarray:
    """Shot noise (variance proportional to the signal) and read noise (constant), both
    multiplied by the camera's analogue gain `amplify`, plus a little chroma noise."""
    shot = rng.uniform(0.0005, 0.002) * amplify
    read = rng.uniform(0.002, 0.006) * amplify
    sigma = np.sqrt(shot * np.clip(x, 0, 1) + read ** 2)
    luma = rng.standard_normal(x.shape[:2]).astype(np.float32)[..., None]
    chroma = rng.standard_normal(x.shape).astype(np.float32) * 0.5
    return x + sigma * (luma + chroma)


def motion_blur(x: np.ndarray, rng: np.random.Generator, cfg: NuisanceConfig = NuisanceConfig(),
                length: int | None = None) -> np.ndarray:
    """A straight streak of `length` px at a random angle (the head or camera moving)."""
    n = int(length or rng.integers(cfg.motion_px[0], cfg.motion_px[1] + 1))
    n = max(2, n)
    k = np.zeros((n, n), np.float32)
    k[n // 2, :] = 1.0
    m = cv2.getRotationMatrix2D(((n - 1) / 2, (n - 1) / 2), float(rng.uniform(0, 180)), 1.0)
    k = cv2.warpAffine(k, m, (n, n))
    k /= max(float(k.sum()), 1e-6)
    return cv2.filter2D(x, -1, k, borderType=cv2.BORDER_REFLECT_101)


def defocus(x: np.ndarray, rng: np.random.Generator, cfg: NuisanceConfig = NuisanceConfig()) -> np.ndarray:
    """Out of focus (autofocus hunting, the face too close): a Gaussian blur."""
    return cv2.GaussianBlur(x, (0, 0), float(rng.uniform(*cfg.defocus_sigma)),
                            borderType=cv2.BORDER_REFLECT_101)


def white_balance(x: np.ndarray, rng: np.random.Generator, cfg: NuisanceConfig = NuisanceConfig(),
                  warmth: float | None = None) -> np.ndarray:
    """A white-balance shift along the warm-cool axis (tungsten to daylight) with a little
    green-magenta tint. x is BGR. warmth in [-1, 1] (None: random)."""
    w = float(rng.uniform(-1, 1) if warmth is None else warmth)
    tint = float(rng.uniform(-0.05, 0.05))
    gains = np.float32([1 - cfg.wb * w, 1 + tint, 1 + cfg.wb * w])  # B, G, R
    return x * gains


def jpeg(img_u8: np.ndarray, rng: np.random.Generator, cfg: NuisanceConfig = NuisanceConfig(),
         quality: int | None = None) -> np.ndarray:
    """JPEG round trip at a random quality (a webcam's or a streaming app's compression)."""
    q = int(quality or rng.integers(cfg.jpeg_quality[0], cfg.jpeg_quality[1] + 1))
    ok, buf = cv2.imencode(".jpg", img_u8, [cv2.IMWRITE_JPEG_QUALITY, q])
    return cv2.imdecode(buf, cv2.IMREAD_COLOR) if ok else img_u8


def to_u8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x * 255.0), 0, 255).astype(np.uint8)


def nuisance_one(img: np.ndarray, rng: np.random.Generator, ops=None,
                 cfg: NuisanceConfig = NuisanceConfig()) -> np.ndarray:
    """One BGR uint8 crop with the chosen ops applied, each with its probability."""
    ops = DEFAULT_OPS if ops is None else ops
    draw = {op: op in ops and rng.random() < getattr(cfg, op) for op in OPS}
    if not any(draw.values()):
        return img
    x = img.astype(np.float32) / 255.0
    amplify = None
    if draw["light"]:
        gain = rng.uniform(*cfg.gain)
        x = gain * x ** rng.uniform(*cfg.gamma)
        amplify = 1.0 / max(gain, 0.05)
    if draw["motion"]:
        x = motion_blur(x, rng, cfg)
    if draw["defocus"]:
        x = defocus(x, rng, cfg)
    if amplify is not None and cfg.noise > 0:  # noise after the blur, as a sensor adds it
        x = sensor_noise(x, rng, amplify * cfg.noise)
    if draw["colour"]:
        x = white_balance(x, rng, cfg)
    out = to_u8(x)
    if draw["jpeg"]:
        out = jpeg(out, rng, cfg)
    return out


def nuisance(batch: np.ndarray, rng: np.random.Generator, ops=None,
             cfg: NuisanceConfig | None = None) -> np.ndarray:
    """A batch of BGR uint8 crops [B, S, S, 3] -> the same shape and dtype, each crop
    augmented on its own. Both classes go through the same call."""
    cfg = cfg or NuisanceConfig()
    ops = DEFAULT_OPS if ops is None else tuple(ops)
    if not ops:
        return batch
    return np.stack([nuisance_one(img, rng, ops, cfg) for img in batch])


def fixed(batch: np.ndarray, rows, seed: int = 0, ops=None,
          cfg: NuisanceConfig | None = None) -> np.ndarray:
    """Each crop augmented with its own row's fixed draws: the same every time it is read
    (validation under session changes, so best.pth is the epoch most robust to them)."""
    cfg = cfg or NuisanceConfig()
    ops = DEFAULT_OPS if ops is None else tuple(ops)
    if not ops:
        return batch
    return np.stack([nuisance_one(img, np.random.default_rng([int(seed), int(r), 99]), ops, cfg)
                     for img, r in zip(batch, rows)])


def batch_rng(seed: int, epoch: int, step: int, rank: int = 0) -> np.random.Generator:
    """The generator for one training batch: a pure function of where the run is, so a
    resumed run augments exactly as the uninterrupted one would."""
    return np.random.default_rng([int(seed), int(epoch), int(step), int(rank), 24])


# The recipe's choice, kept in training.recipe (the GUI shows it without numpy).
DEFAULT_OPS: tuple[str, ...] = tuple(AUGMENT.split(","))
