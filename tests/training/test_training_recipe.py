"""The training recipes: presets, the learning-rate schedule, gradient clipping and the
"better than the best so far" rule."""
import math
import subprocess
import sys

import pytest
import torch

from training import recipe as R


def test_fine_tune_schedule_warms_up_over_the_first_epoch_then_decays_to_zero():
    base, per_epoch, total = 0.03, 10, 30
    lrs = [R.learning_rate(R.FINE_TUNE, base, s, per_epoch, total) for s in range(total)]
    warm = lrs[:per_epoch]
    assert warm == sorted(warm) and warm[0] < 0.1 * base  # starts small, rises linearly
    assert lrs[per_epoch] == pytest.approx(base)  # the peak right after the warm-up
    decay = lrs[per_epoch:]
    assert decay == sorted(decay, reverse=True) and decay[-1] < 0.01 * base
    assert all(0 < lr <= base for lr in lrs)
    # By hand: a warm-up of 10 steps rises by base/11 a step; then half a cosine over the
    # remaining 20 steps, at its middle (step 20) exactly half the base rate.
    assert lrs[0] == pytest.approx(0.03 / 11) and lrs[9] == pytest.approx(0.3 / 11)
    assert lrs[20] == pytest.approx(0.015) and lrs[29] == pytest.approx(0.015 * (1 + math.cos(math.pi * 0.95)))
    # the warm-up is at most WARMUP_MAX_STEPS and at most half of a short run
    assert R.warmup_steps(1000, 10_000) == R.WARMUP_MAX_STEPS
    assert R.warmup_steps(8, 6) == 3


def test_scratch_schedule_keeps_upstreams_milestones():
    lr = [R.learning_rate(R.SCRATCH, 0.1, epoch * 5, 5, 250) for epoch in range(50)]
    assert lr[0] == lr[9] == 0.1
    assert lr[10] == pytest.approx(0.01) and lr[15] == pytest.approx(0.001)
    assert lr[30] == pytest.approx(1e-5)


def test_presets_follow_the_dataset_size():
    small, issue_size, laptop, large = (R.preset(n, True) for n in (120, 288, 2000, 20_000))
    assert (small["batch_size"], small["epochs"]) == (16, 15)
    assert (issue_size["batch_size"], issue_size["epochs"]) == (32, 15)
    assert (laptop["batch_size"], laptop["epochs"]) == (64, 10)
    assert (large["batch_size"], large["epochs"], large["freeze_early"]) == (64, 5, False)
    assert all(p["lr"] == 0.01 and p["recipe"] == R.FINE_TUNE for p in (small, laptop))
    assert small["freeze_early"] and laptop["freeze_early"]
    scratch = R.preset(100_000, False)
    assert (scratch["lr"], scratch["epochs"], scratch["batch_size"]) == (0.1, 50, 256)
    assert R.preset(288, False)["batch_size"] == 32  # at least 8 steps an epoch
    assert R.preset_images([{"subset": "train"}, {"subset": "test"}, {}]) == 2
    assert R.preset(12, True)["batch_size"] == 4  # still two steps an epoch
    # precise BN: about 256 images when fine-tuning, upstream-sized 100 batches otherwise
    assert R.precise_bn_batches(R.FINE_TUNE, 32) == 8
    assert R.precise_bn_batches(R.FINE_TUNE, 1024) == 2
    assert R.precise_bn_batches(R.SCRATCH, 32) == 100


def test_gradient_clipping_bounds_the_update(tmp_path):
    from training.model import build_model, fourier_size
    from training.train import train_step

    def grad_norm(clip):
        torch.manual_seed(0)
        model = build_model({"input_size": 32}).train()
        optimizer = torch.optim.SGD(model.parameters(), lr=0.0)  # keep the weights
        scaler = torch.amp.GradScaler("cuda", enabled=False)
        x = torch.rand(4, 3, 32, 32)
        y = torch.tensor([0, 1, 0, 1])
        train_step(model, x, y, torch.Generator().manual_seed(1), optimizer, scaler,
                   fourier_size(32), 0.5, None, clip)
        grads = [p.grad for p in model.parameters() if p.grad is not None]
        return float(torch.linalg.vector_norm(torch.stack([g.norm() for g in grads])))

    free = grad_norm(0.0)
    assert free > 0.2
    assert grad_norm(free / 10) == pytest.approx(free / 10, rel=1e-3)


def test_an_epoch_must_beat_the_best_to_replace_it():
    from training.train import _better

    assert _better((0.6, 0.9), None)
    assert _better((0.7, 2.0), (0.63, 0.5))  # accuracy first
    assert not _better((0.33, 4.8), (0.63, 0.5))  # the issue's epoch 1: worse, never best
    assert _better((0.63, 0.4), (0.63, 0.5))  # same accuracy, lower loss
    assert not _better((0.63, 0.5), (0.63, 0.5))  # a tie is not better
    assert not _better((0.9, None), (0.9, None))


def test_the_gui_side_of_training_does_not_import_torch():
    code = ("import sys, training.recipe, training.events; "
            "import fasdesk.ui.training.tab; print('torch' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


def test_training_bench_reports_every_configuration():
    result = subprocess.run([sys.executable, "-m", "training.bench", "--device", "cpu",
                             "--steps", "1", "--warmup", "0", "--size", "32", "--batch-size",
                             "4", "--threads", "1", "--json"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    import json

    rows = json.loads(result.stdout)
    configs = [r["config"] for r in rows]
    assert configs[0] == "baseline" and configs[-1] == "fine-tune" and "channels_last" in configs
    assert rows[0]["ratio_vs_baseline"] == 1.0
    assert all(r["images_per_s"] > 0 and r["steps"] == 1 for r in rows)
