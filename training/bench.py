"""Training-step throughput: `python -m training.bench [--device cpu|cuda] [--json]`.

Times the real training step (training.train.train_step: augmentation, Fourier target,
forward, loss, backward, clipping, SGD update) of MiniFASNetV2-SE on random 128x128 crops
in several configurations, their steps interleaved so that all see the same machine load,
and reports the median images/s of each after warm-up steps, and its ratio to the
baseline:

- baseline: float32, NCHW, every layer trained, Fourier branch on (how upstream trains);
- channels_last: the memory format training.train uses;
- channels_last + bf16: bfloat16 autocast (CPUs with AVX-512 BF16 or AMX; CUDA);
- fine-tune: what `train --init` does with the shipped model on a small set: channels_last,
  early layers kept (run fused, in bfloat16 on a CPU that has it), no Fourier branch (the
  checkpoint's Fourier weight is 0).

On CUDA, fp16 autocast replaces bf16. For the whole process (data loading, validation,
checkpoints) against an upstream-style trainer see tests/bench_train_speed.py.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

import torch


class _Setup:
    """A model, optimiser and batch ready for timed training steps."""

    def __init__(self, name, device, batch, size, channels_last: bool, amp_dtype,
                 freeze_early: bool = False, fourier: bool = True):
        from training.model import FrozenFeatures, build_model
        from training.train import _freeze, frozen_dtype

        torch.manual_seed(0)
        self.name, self.device, self.size, self.batch = name, device, size, batch
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        self.model = build_model({"input_size": size}).to(device, memory_format=fmt).train()
        _freeze(self.model, freeze_early, fourier)
        if freeze_early:  # as training.train runs the kept layers
            self.model.frozen_features = FrozenFeatures(self.model, frozen_dtype("auto", device))
        self.ft_weight = 0.5 if fourier else 0.0
        params = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.SGD(params, lr=0.01, momentum=0.9, weight_decay=5e-4)
        self.amp_dtype = amp_dtype
        self.scaler = torch.amp.GradScaler("cuda", enabled=amp_dtype == torch.float16)
        self.gen = torch.Generator().manual_seed(0)
        self.x = torch.rand(batch, 3, size, size).to(device, memory_format=fmt)
        self.y = torch.randint(0, 2, (batch,)).to(device)
        self.times: list[float] = []

    def step(self, timed: bool) -> None:
        from training.model import fourier_size
        from training.train import train_step

        if self.device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        loss, _ = train_step(self.model, self.x, self.y, self.gen, self.optimizer, self.scaler,
                             fourier_size(self.size), self.ft_weight, self.amp_dtype, 2.0)
        loss.item()  # waits for the device
        if timed:
            self.times.append(time.perf_counter() - t0)

    def result(self) -> dict:
        median = statistics.median(self.times)
        return {"config": self.name, "device": str(self.device), "batch": self.batch,
                "size": self.size, "steps": len(self.times), "median_step_s": median,
                "images_per_s": self.batch / median, "threads": torch.get_num_threads()}


def measure(device: torch.device, batch: int, size: int, steps: int, warmup: int) -> list[dict]:
    from training.train import cpu_has_bf16

    half = torch.float16 if device.type == "cuda" else torch.bfloat16
    setups = [_Setup("baseline", device, batch, size, False, None),
              _Setup("channels_last", device, batch, size, True, None)]
    if device.type == "cuda" or cpu_has_bf16():
        setups.append(_Setup(f"channels_last + {'fp16' if device.type == 'cuda' else 'bf16'}",
                             device, batch, size, True, half))
    setups.append(_Setup("fine-tune", device, batch, size, True,
                         half if device.type == "cuda" else None, freeze_early=True,
                         fourier=False))
    for i in range(warmup + steps):
        for setup in setups:
            setup.step(i >= warmup)
    results = [s.result() for s in setups]
    for r in results:
        r["ratio_vs_baseline"] = r["images_per_s"] / results[0]["images_per_s"]
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", choices=("cpu", "cuda", "all"), default="all",
                        help="all = CPU, and CUDA when present (default)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    devices = []
    if args.device in ("cpu", "all"):
        devices.append(torch.device("cpu"))
    if args.device in ("cuda", "all") and torch.cuda.is_available():
        devices.append(torch.device("cuda"))
    elif args.device == "cuda":
        print("error: no CUDA device is available to torch", file=sys.stderr)
        return 1
    results = []
    for device in devices:
        batch = args.batch_size if device.type == "cpu" else max(args.batch_size, 256)
        rows = measure(device, batch, args.size, args.steps, args.warmup)
        results.extend(rows)
        if not args.json:
            print(f"{device}: batch {batch}, {args.size}x{args.size}, {rows[0]['threads']} "
                  f"threads, median of {args.steps} steps")
            for r in rows:
                print(f"  {r['config']:26s} {r['images_per_s']:7.1f} images/s  "
                      f"{r['ratio_vs_baseline']:.2f}x")
    if args.json:
        print(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
