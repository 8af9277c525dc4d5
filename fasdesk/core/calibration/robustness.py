"""Does a model keep real faces real when the light, the movement or the colour changes?

A calibration records a few minutes in one room; a model fine-tuned on it can learn the
room instead of the attack ("dim, blurred or tinted = spoof"). This module checks it at
report time, without torch:

- `condition(frame, name, k)`: a held-out real frame as it would look darker (low light
  with sensor noise), moving (motion blur) or tinted (a warm indoor colour cast). Fixed,
  seeded settings per frame `k`, so every model is measured on the same images. These are
  deliberately not training.augment's ops or settings: the check must not grade the
  fine-tune on its own training distribution.
- `condition_scores(...)`: p_real of each held-out real face under each condition, scored
  with the same crop (fasdesk.core.inference.crop) and engine as everything else.
- `counts(...)`, `line(...)`: "real faces still accepted when darker / moving / tinted:
  k of n" at a threshold.
- `spread(...)`, `uniform_warning(...)`: whether the real recording varied enough in
  brightness, sharpness and face size to trust its threshold in other conditions.
- `recording_prompt(...)`: what to ask of the person while the real stage records.
"""
from __future__ import annotations

import cv2
import numpy as np

from fasdesk.core.inference.crop import face_crop, preprocess

CONDITIONS = ("darker", "moving", "tinted")
TITLES = {"darker": "darker", "moving": "moving", "tinted": "tinted"}
SCORE_KEY = "robust:"  # prefix of the condition scores among a session's scores
SPREAD_KEY = "spread:real"  # the real samples' brightness, sharpness and face size

# A real recording is too uniform to trust the threshold elsewhere when none of these
# spreads (90th / 10th percentile of the real faces) is reached.
MIN_BRIGHTNESS_RANGE = 30.0  # grey levels between the 10th and 90th percentile
MIN_SHARPNESS_RATIO = 2.0  # Laplacian variance, 90th over 10th percentile
MIN_SIZE_RATIO = 1.3  # face width, 90th over 10th percentile
MIN_SPREAD_SAMPLES = 8


def _rng(name: str, k: int) -> np.random.Generator:
    return np.random.default_rng([CONDITIONS.index(name), int(k), 7])


def condition(frame_bgr: np.ndarray, name: str, k: int = 0) -> np.ndarray:
    """The frame under condition `name` (one of CONDITIONS); `k` picks the frame's fixed
    settings. BGR uint8 in and out, the same size."""
    if name not in CONDITIONS:
        raise ValueError(f"unknown condition {name!r}; choose from {', '.join(CONDITIONS)}")
    rng = _rng(name, k)
    x = frame_bgr.astype(np.float32) / 255.0
    if name == "darker":
        gain = rng.uniform(0.2, 0.4)  # about 1.5-2.5 stops under
        x = gain * x ** 1.2
        sigma = np.sqrt(0.0015 * x + 0.012 ** 2) / gain * 0.35  # noise grows with the gain
        x = x + sigma * rng.standard_normal(x.shape[:2]).astype(np.float32)[..., None]
    elif name == "moving":
        n = int(rng.integers(6, 11))  # pixels of the frame
        k_ = np.zeros((n, n), np.float32)
        k_[n // 2, :] = 1.0
        m = cv2.getRotationMatrix2D(((n - 1) / 2, (n - 1) / 2), float(rng.uniform(-30, 30)), 1.0)
        k_ = cv2.warpAffine(k_, m, (n, n))
        x = cv2.filter2D(x, -1, k_ / max(float(k_.sum()), 1e-6),
                         borderType=cv2.BORDER_REFLECT_101)
    else:  # tinted
        warm = rng.uniform(0.2, 0.35)  # tungsten light on a daylight white balance
        x = x * np.float32([1 - warm, 1.0, 1 + 0.7 * warm]) + np.float32([0, 0.01, 0.02])
    return np.clip(np.rint(x * 255.0), 0, 255).astype(np.uint8)


def condition_scores(items, engine, batch: int = 32) -> dict[str, np.ndarray]:
    """p_real of each (frame_bgr, box) under each condition: {condition: [n]}.
    `items` may be an iterable; frames are read once."""
    items = list(items)
    out = {}
    for name in CONDITIONS:
        values = np.full(len(items), np.nan)
        for start in range(0, len(items), batch):
            part = items[start:start + batch]
            x = np.concatenate([preprocess(condition(img, name, start + i), [box],
                                           engine.input_size)
                                for i, (img, box) in enumerate(part)])
            values[start:start + len(part)] = engine.p_real(x)[0]
        out[name] = values
    return out


def counts(scores: dict, threshold: float) -> dict | None:
    """{condition: {"accepted": k, "n": n}, "accepted": total k, "n": total n} at the
    threshold (p_real >= threshold is accepted as real); None without condition scores."""
    if not scores:
        return None
    out, total_k, total_n = {}, 0, 0
    for name in CONDITIONS:
        values = np.asarray(scores.get(name, []), float)
        values = values[np.isfinite(values)]
        k, n = int((values >= threshold).sum()), int(len(values))
        out[name] = {"accepted": k, "n": n}
        total_k += k
        total_n += n
    out["accepted"], out["n"] = total_k, total_n
    return out


def line(result: dict | None) -> str:
    """The report's line: "real faces still accepted when darker / moving / tinted: 9 of
    10, 8 of 10, 10 of 10"."""
    if not result:
        return "real faces under other conditions: not measured (no held-out real faces)"
    parts = ", ".join(f"{result[c]['accepted']} of {result[c]['n']}" for c in CONDITIONS)
    return f"real faces still accepted when {' / '.join(TITLES[c] for c in CONDITIONS)}: {parts}"


def loss(before: dict | None, after: dict | None) -> bool:
    """Whether `after` accepts fewer of the changed real faces than `before` under any one
    condition (a gain in the dark does not pay for faces lost when moving)."""
    if not before or not after:
        return False
    return any(after[c]["accepted"] < before[c]["accepted"] for c in CONDITIONS)


# -- how much the real recording varied -----------------------------------------------------

def face_stats(image_bgr: np.ndarray, box) -> tuple[float, float, float]:
    """(mean brightness 0-255, sharpness as Laplacian variance, face width px) of one face."""
    crop = cv2.cvtColor(face_crop(image_bgr, box, 128), cv2.COLOR_BGR2GRAY)
    return (float(crop.mean()), float(cv2.Laplacian(crop, cv2.CV_32F).var()),
            float(max(box[2], box[3])))


def spread(stats) -> dict | None:
    """Spread of face_stats rows: brightness range (p90 - p10), sharpness and size ratios
    (p90 / p10) and whether any reaches its minimum; None with too few faces to tell."""
    a = np.asarray(stats, float).reshape(-1, 3)
    a = a[np.all(np.isfinite(a), axis=1)]
    if len(a) < MIN_SPREAD_SAMPLES:
        return None
    lo, hi = np.percentile(a, 10, axis=0), np.percentile(a, 90, axis=0)
    out = {"brightness_range": round(float(hi[0] - lo[0]), 1),
           "sharpness_ratio": round(float(hi[1] / max(lo[1], 1e-6)), 2),
           "size_ratio": round(float(hi[2] / max(lo[2], 1e-6)), 2)}
    out["uniform"] = bool(out["brightness_range"] < MIN_BRIGHTNESS_RANGE
                          and out["sharpness_ratio"] < MIN_SHARPNESS_RATIO
                          and out["size_ratio"] < MIN_SIZE_RATIO)
    return out


def uniform_warning(result: dict | None) -> str | None:
    if not result or not result["uniform"]:
        return None
    return (f"the real recording was very uniform (brightness range {result['brightness_range']:g} "
            f"grey levels, sharpness x{result['sharpness_ratio']:g}, face size "
            f"x{result['size_ratio']:g}): the threshold may not hold in other light or with "
            f"movement; record again with the light turned down for a while, moving closer "
            f"and further and turning your head")


# -- guidance while recording ----------------------------------------------------------------

PROMPTS = ((0.0, "Look at the camera as you normally would."),
           (0.2, "Turn the light down for a few seconds (or step away from the lamp)."),
           (0.4, "Light back on. Move closer to the camera, then further away."),
           (0.6, "Turn your head slowly left and right, then up and down."),
           (0.8, "Keep moving a little: talk, nod, shift in your seat."))


def recording_prompt(stage: str, t: float, limit: float | None, position: int = 0,
                     total: int | None = None) -> str:
    """What to ask of the person now; only the real stage asks for variation (an attack
    stage just shows the attack). Progress from time (camera) or frames (file)."""
    if stage != "real":
        return "Hold the attack in front of the camera; tilt and move it a little."
    if limit:
        fraction = t / limit
    elif total:
        fraction = position / total
    else:
        fraction = 0.0
    text = PROMPTS[0][1]
    for start, prompt in PROMPTS:
        if fraction >= start:
            text = prompt
    return text
