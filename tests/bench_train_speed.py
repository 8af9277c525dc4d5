"""Whole-process training speed against an upstream-style trainer, side by side.

    python tests/bench_train_speed.py WORKDIR [--repeats 3] [--frames 1600] [--threads 1]
        [--variant='--init' ...]

Builds (once, in WORKDIR) a prepared set of FRAMES 128x128 crops: the sample photos,
jittered, as real, and simulated screen recaptures as spoof (tests/training_synth.py).
Then runs, one after the other and REPEATS times in turn (so both see the same machine
load), whole processes from interpreter start to exit, one epoch each at batch 32 on the
same 80/20 split:

- `baseline`: `python tests/bench_train_speed.py --baseline DATA OUT`, a trainer that
  works the way upstream's (minivision-ai/Silent-Face-Anti-Spoofing, src/train_main.py
  and src/data_io/) does, written here from its documented behaviour: a DataLoader with
  min(16, CPUs) worker processes (upstream: 16) and shuffling reads every crop from disk
  with cv2.imread every epoch; per sample it computes the Fourier target (grey image ->
  FFT -> shifted log magnitude -> min-max normalised -> resized) with numpy, then
  augments with PIL: random resized crop (area 0.9-1.1, aspect 3/4-4/3, back to the crop
  size), colour jitter (brightness, contrast, saturation 0.4, hue 0.1, in random order),
  rotation +-10 degrees, horizontal flip, to a float tensor. The model is the same
  MiniFASNetV2-SE + Fourier branch in float32, NCHW, SGD (lr 0.1, momentum 0.9, weight
  decay 5e-4), loss CE + Fourier MSE; no validation (upstream has none); the weights are
  saved at the end. Where upstream does more work (its min/max over the spectrum is a
  Python loop per row) this version does less, so the ratio is if anything understated.
- `ours ...`: `python -m training train DATA OUT --epochs 1 --batch-size 32 ...` exactly
  as a user runs it, which also validates (and with --init scores the starting model
  first) and writes its checkpoints.

Both get the same thread settings (OMP_NUM_THREADS=THREADS; 1 by default, much the
fastest on a shared 2-core machine). Prints every run's seconds, the medians, their
ratios and the load average before and after.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT  # samples/ and models/ come with the project


# -- the upstream-style baseline (runs in its own process) ---------------------------------

def _baseline(data_dir: Path, out: Path, batch: int, epochs: int) -> None:
    import cv2
    import numpy as np
    import torch
    from PIL import Image, ImageEnhance
    from torch import nn

    from training import data as D
    from training.model import build_model, fourier_size

    prepared = D.load_prepared(data_dir)
    labels = D.class_index(prepared.categories, ["real", "spoof"])
    train_idx = D.split_indices(prepared.rows, labels, 0.2, 0)["train"]
    size = prepared.size
    ft_side = fourier_size(size)

    def spectrum(bgr):
        grey = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY).astype(np.float64)
        mag = np.log(np.abs(np.fft.fftshift(np.fft.fft2(grey))) + 1)
        lo, hi = mag.min(), mag.max()
        mag = (mag - lo + 1) / (hi - lo + 1)
        return cv2.resize(mag, (ft_side, ft_side)).astype(np.float32)

    def resized_crop(img, rng):
        w, h = img.size
        for _ in range(10):
            area = w * h * rng.uniform(0.9, 1.1)
            aspect = np.exp(rng.uniform(np.log(3 / 4), np.log(4 / 3)))
            cw, ch = int(round((area * aspect) ** 0.5)), int(round((area / aspect) ** 0.5))
            if 0 < cw <= w and 0 < ch <= h:
                x, y = rng.randint(0, w - cw + 1), rng.randint(0, h - ch + 1)
                return img.resize((size, size), Image.BILINEAR, box=(x, y, x + cw, y + ch))
        return img.resize((size, size), Image.BILINEAR)

    def hue_shift(img, shift):
        hsv = np.array(img.convert("HSV"))
        hsv[..., 0] = (hsv[..., 0].astype(np.int16) + int(shift * 255)) % 256
        return Image.fromarray(hsv, "HSV").convert("RGB")

    def jitter(img, rng):
        ops = [lambda im: ImageEnhance.Brightness(im).enhance(rng.uniform(0.6, 1.4)),
               lambda im: ImageEnhance.Contrast(im).enhance(rng.uniform(0.6, 1.4)),
               lambda im: ImageEnhance.Color(im).enhance(rng.uniform(0.6, 1.4)),
               lambda im: hue_shift(im, rng.uniform(-0.1, 0.1))]
        for i in rng.permutation(len(ops)):
            img = ops[i](img)
        return img

    class Crops(torch.utils.data.Dataset):
        def __len__(self):
            return len(train_idx)

        def __getitem__(self, k):
            i = int(train_idx[k])
            rng = np.random.RandomState((torch.initial_seed() + k) % (2 ** 32))
            bgr = cv2.imread(str(prepared.crop_path(i)))
            target = torch.from_numpy(spectrum(bgr)).unsqueeze(0)
            img = Image.fromarray(bgr, "RGB")  # upstream hands cv2's BGR array to PIL as is
            img = jitter(resized_crop(img, rng), rng)
            img = img.rotate(rng.uniform(-10, 10), resample=Image.NEAREST)
            if rng.rand() < 0.5:
                img = img.transpose(Image.FLIP_LEFT_RIGHT)
            x = torch.from_numpy(np.asarray(img, np.float32) / 255).permute(2, 0, 1)
            return x, target, int(labels[i])

    loader = torch.utils.data.DataLoader(Crops(), batch_size=batch, shuffle=True,
                                         num_workers=min(16, os.cpu_count() or 1))
    torch.manual_seed(0)
    model = build_model({"input_size": size}).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    schedule = torch.optim.lr_scheduler.MultiStepLR(optimizer, [10, 15, 22, 30], 0.1)
    for _ in range(epochs):
        for x, target, y in loader:
            logits, ft = model(x)
            loss = 0.5 * nn.functional.cross_entropy(logits, y) + \
                0.5 * nn.functional.mse_loss(ft, target)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        schedule.step()
    out.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), out / "baseline.pth")


# -- the side-by-side measurement ----------------------------------------------------------

def _build(work: Path, frames: int) -> Path:
    from training_synth import make_folders, run_cli

    data = work / f"data{frames}"
    if not (data / "labels.csv").is_file():
        make_folders(work / f"raw{frames}", SHARED / "samples", per_class=frames // 2, seed=3)
        rc, _, err = run_cli("prep", work / f"raw{frames}", data, timeout=3600)
        if rc:
            raise SystemExit(f"prep failed: {err.strip().splitlines()[-1]}")
    return data


def _timed(cmd: list[str], env: dict) -> float:
    started = time.perf_counter()
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=ROOT)
    seconds = time.perf_counter() - started
    if result.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed: {result.stderr.strip()[-500:]}")
    return seconds


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("work", type=Path, nargs="?")
    parser.add_argument("--baseline", nargs=2, metavar=("DATA", "OUT"),
                        help="run the upstream-style trainer (one of the timed processes)")
    parser.add_argument("--frames", type=int, default=1600)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--variant", action="append", dest="variants", metavar="ARGS",
                        help="extra train arguments of one 'ours' run, repeatable; write "
                        "--variant='--init --no-freeze-early' ('--init' = the shipped "
                        "best_model.pth; '' = from scratch). Default: --init, "
                        "--init --no-freeze-early, ''")
    args = parser.parse_args(argv)
    if args.baseline:
        _baseline(Path(args.baseline[0]), Path(args.baseline[1]), args.batch_size, 1)
        return 0
    if args.work is None:
        parser.error("WORKDIR is required")
    if args.variants is None:
        args.variants = ["--init", "--init --no-freeze-early", ""]
    data = _build(args.work, args.frames)
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
    init = str(SHARED / "models" / "best_model.pth")
    runs = {"baseline": [sys.executable, str(Path(__file__).resolve()), "--baseline", str(data),
                         str(args.work / "out-baseline"), "--batch-size", str(args.batch_size)]}
    for variant in args.variants:
        extra = variant.split()
        if "--init" in extra:
            extra.insert(extra.index("--init") + 1, init)
        runs[f"ours {variant or '(from scratch)'}"] = [
            sys.executable, "-m", "training", "train", str(data), "OUT", "--epochs", "1",
            "--batch-size", str(args.batch_size), *extra]
    seconds = {name: [] for name in runs}
    load_before = os.getloadavg()
    for repeat in range(args.repeats):
        for n, (name, cmd) in enumerate(runs.items()):
            out = args.work / f"out-{n}-{repeat}"
            cmd = [str(out) if a == "OUT" else a for a in cmd]
            seconds[name].append(_timed(cmd, env))
            print(f"repeat {repeat + 1}: {name}: {seconds[name][-1]:.1f} s "
                  f"(load {os.getloadavg()[0]:.1f})", flush=True)
    load_after = os.getloadavg()
    base = statistics.median(seconds["baseline"])
    summary = {"frames": args.frames, "batch": args.batch_size, "threads": args.threads,
               "load_before": load_before, "load_after": load_after, "runs": {}}
    print(f"\n{args.frames} frames (80/20 split), batch {args.batch_size}, one epoch, "
          f"OMP_NUM_THREADS={args.threads}; load average {load_before[0]:.1f} before, "
          f"{load_after[0]:.1f} after")
    for name, values in seconds.items():
        median = statistics.median(values)
        summary["runs"][name] = {"seconds": values, "median": median, "speedup": base / median}
        print(f"  {name:40s} median {median:6.1f} s  ({' '.join(f'{v:.1f}' for v in values)})"
              f"  {base / median:.2f}x the baseline's speed")
    (args.work / "speed.json").write_text(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
