"""training.augment: session-to-session nuisance changes applied to both classes alike, on
real face crops of the shared samples; never an attack cue on a real face."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from calibration_media import screen_recapture  # noqa: E402

from fasdesk.core.inference.crop import face_crop  # noqa: E402
from training import augment as A  # noqa: E402
from training import recipe  # noqa: E402


@pytest.fixture(scope="module")
def crops(samples_dir):
    """{"real": [B,128,128,3] BGR crops of the live sample, "spoof": the same face filmed
    off a screen (moire, gamma, cast: tests/calibration_media.py)}."""
    ref = json.loads((samples_dir / "reference.json").read_text())
    image = cv2.imread(str(samples_dir / "real_T1.jpg"))
    box = ref["real_T1.jpg"][0]["box_xywh"]
    rng = np.random.RandomState(0)
    real, spoof = [], []
    for i in range(8):
        shifted = np.roll(image, 3 * i, axis=1)
        real.append(face_crop(shifted, [box[0] + 3 * i, *box[1:]]))
        h, w = shifted.shape[:2]
        screen = screen_recapture(cv2.resize(shifted, (640, 480)), i / 10, rng)
        screen = cv2.resize(screen, (w, h))
        spoof.append(face_crop(screen, [box[0] + 3 * i, *box[1:]]))
    return {"real": np.stack(real), "spoof": np.stack(spoof)}




@pytest.mark.parametrize("ops", [A.OPS, *[(op,) for op in A.OPS]])
def test_shape_dtype_and_range_kept_for_both_classes(crops, ops):
    cfg = A.NuisanceConfig(**{op: 1.0 for op in A.OPS})  # every chosen op on every crop
    for kind, batch in crops.items():
        out = A.nuisance(batch, np.random.default_rng(1), ops, cfg)
        assert out.shape == batch.shape and out.dtype == np.uint8, kind
        assert not np.array_equal(out, batch), f"{ops} changed nothing on {kind} crops"
        assert 0 <= out.min() and out.max() <= 255


def test_both_classes_get_the_same_draws(crops):
    """The ops and their strengths depend on the random numbers only, never on the class:
    with the same generator state a real and a spoof crop are darkened, blurred and tinted
    alike (measured by the brightness ratio of the light op)."""
    cfg = A.NuisanceConfig(light=1.0, motion=0.0, defocus=0.0, colour=0.0, jpeg=0.0)
    ratios = {}
    for kind, batch in crops.items():
        out = A.nuisance(batch, np.random.default_rng(5), ("light",), cfg)
        ratios[kind] = out.reshape(len(out), -1).mean(1) / batch.reshape(len(batch), -1).mean(1)
    assert np.all(ratios["real"] < 1.0) and np.all(ratios["spoof"] < 1.0)
    np.testing.assert_allclose(ratios["real"], ratios["spoof"], atol=0.08)


def test_light_reaches_low_light_with_noise(crops):
    cfg = A.NuisanceConfig(light=1.0, gain=(0.2, 0.2), gamma=(1.5, 1.5))
    real = crops["real"]
    out = A.nuisance(real, np.random.default_rng(2), ("light",), cfg)
    assert out.mean() < 0.3 * real.mean()
    # sensor noise: a flat region of the dark image is not flat any more
    dark = out.astype(np.float32)
    noise = [np.std(d - cv2.GaussianBlur(d, (0, 0), 2)) for d in dark]
    quiet = [np.std(c - cv2.GaussianBlur(c, (0, 0), 2)) * 0.2
             for c in real.astype(np.float32)]  # the clean crops' detail, darkened
    assert np.mean(noise) > np.mean(quiet) + 0.5


def test_blurs_lower_sharpness_and_colour_shifts_white_balance(crops):
    real = crops["real"]

    def sharpness(batch):
        return np.mean([cv2.Laplacian(cv2.cvtColor(c, cv2.COLOR_BGR2GRAY), cv2.CV_32F).var()
                        for c in batch])

    for op in ("motion", "defocus"):
        cfg = A.NuisanceConfig(**{o: float(o == op) for o in A.OPS})
        assert sharpness(A.nuisance(real, np.random.default_rng(3), (op,), cfg)) < 0.7 * sharpness(real)
    cfg = A.NuisanceConfig(**{o: float(o == "colour") for o in A.OPS})
    out = A.nuisance(real, np.random.default_rng(4), ("colour",), cfg).astype(np.float32)
    ratio_before = real[..., 2].mean((1, 2)) / real[..., 0].mean((1, 2))
    ratio_after = out[..., 2].mean((1, 2)) / out[..., 0].mean((1, 2))
    assert np.max(np.abs(ratio_after / ratio_before - 1)) > 0.1  # red/blue balance moved


def _periodic_peak(crop: np.ndarray) -> float:
    """How far one spatial frequency stands out of its neighbours in the crop's spectrum
    (moire, a pixel grid and halftone dots are such peaks; a face's spectrum is smooth)."""
    grey = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY).astype(np.float32)
    grey -= grey.mean()
    window = np.outer(np.hanning(128), np.hanning(128))
    spec = np.abs(np.fft.fftshift(np.fft.fft2(grey * window))).astype(np.float32)
    envelope = cv2.blur(spec, (9, 9))
    yy, xx = np.mgrid[-64:64, -64:64]
    band = (np.hypot(yy, xx) > 6) & (np.hypot(yy, xx) < 60)
    return float((spec / (envelope + 1e-6))[band].max())


def with_moire(batch: np.ndarray, amplitude: float = 0.1) -> np.ndarray:
    """The crops with a screen's moire (a 10% stripe pattern at some angle)."""
    yy, xx = np.mgrid[0:128, 0:128].astype(np.float32)
    out = []
    for i, crop in enumerate(batch):
        angle = 0.3 + 0.4 * i
        wave = np.sin(2 * np.pi * 0.15 * (xx * np.cos(angle) + yy * np.sin(angle)))
        out.append(np.clip(crop * (1 + amplitude * wave[..., None]), 0, 255).astype(np.uint8))
    return np.stack(out)


def test_no_attack_cues_on_real_faces(crops):
    """Every op, at full probability and over many draws, leaves no periodic pattern on a
    real face that stands out the way a screen's moire does."""
    cfg = A.NuisanceConfig(**{op: 1.0 for op in A.OPS})
    real = crops["real"]
    moire = min(_periodic_peak(c) for c in with_moire(real))
    clean = max(_periodic_peak(c) for c in real)
    assert moire > 2 * clean  # the measure tells a moire from a face
    rng = np.random.default_rng(7)
    for _ in range(4):
        for ops in [A.OPS, *[(op,) for op in A.OPS]]:
            peaks = [_periodic_peak(c) for c in A.nuisance(real, rng, ops, cfg)]
            assert max(peaks) < 0.8 * moire, (ops, max(peaks), moire)


def test_batches_are_reproducible_and_none_is_a_no_op(crops):
    batch = crops["real"]
    a = A.nuisance(batch, A.batch_rng(0, 2, 5), A.OPS)
    b = A.nuisance(batch, A.batch_rng(0, 2, 5), A.OPS)
    c = A.nuisance(batch, A.batch_rng(0, 2, 6), A.OPS)
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert A.nuisance(batch, A.batch_rng(0, 0, 0), ()) is batch


def test_ops_text_and_the_recipe_default():
    assert A.parse_ops(None) == A.DEFAULT_OPS == tuple(recipe.AUGMENT.split(","))
    assert A.parse_ops("none") == () and A.parse_ops("all") == A.OPS
    assert A.parse_ops("light, jpeg") == ("light", "jpeg")
    with pytest.raises(ValueError, match="unknown augmentation moire"):
        A.parse_ops("light,moire")
    # Fine-tuning (calibration and the Training tab's preset) uses the recipe; from
    # scratch trains as before.
    assert recipe.preset(300, True)["augment"] == recipe.AUGMENT
    assert recipe.preset(300, False)["augment"] == "none"


def test_validation_crops_get_the_same_changes_every_epoch(crops):
    """training.augment.fixed (what validation sees): one crop's changes depend on its row
    only, so every epoch is measured on the same images."""
    batch = np.concatenate([crops["real"], crops["spoof"]])
    rows = np.arange(len(batch)) + 100
    cfg = A.NuisanceConfig(**{op: 1.0 for op in A.OPS})
    a = A.fixed(batch, rows, 0, A.OPS, cfg)
    b = A.fixed(batch[::-1], rows[::-1], 0, A.OPS, cfg)[::-1]  # another order, same rows
    assert np.array_equal(a, b) and a.shape == batch.shape and a.dtype == np.uint8
    assert not np.array_equal(a, A.fixed(batch, rows, 1, A.OPS, cfg))  # the seed matters
    assert A.fixed(batch, rows, 0, ()) is batch
