"""Training throughput: `python -m training.bench [--device cpu|cuda] [--json]`.

Times the real training step (training.train.train_step: augmentation, Fourier target,
forward, loss, backward, SGD update) of MiniFASNetV2-SE on random 128x128 crops and
reports the median images/s over the timed steps, after warm-up steps. The baseline in
the same process is the same step without channels_last memory format, which
training.train uses, so the ratio shows what that choice buys on this machine.
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

    def __init__(self, device, batch, size, channels_last: bool, amp: bool):
        from training.model import build_model

        torch.manual_seed(0)
        self.device, self.size, self.batch = device, size, batch
        self.channels_last = channels_last
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        self.model = build_model({"input_size": size}).to(device, memory_format=fmt).train()
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=0.01, momentum=0.9,
                                         weight_decay=5e-4)
        self.amp = amp and device.type == "cuda"
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp)
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
                             fourier_size(self.size), 0.5, self.amp)
        loss.item()  # waits for the device
        if timed:
            self.times.append(time.perf_counter() - t0)

    def result(self) -> dict:
        median = statistics.median(self.times)
        return {"device": str(self.device), "batch": self.batch, "size": self.size,
                "steps": len(self.times), "channels_last": self.channels_last, "amp": self.amp,
                "median_step_s": median, "images_per_s": self.batch / median,
                "threads": torch.get_num_threads()}


def measure(device: torch.device, batch: int, size: int, steps: int, warmup: int) -> dict:
    """The training configuration and the baseline, their steps interleaved so that both
    see the same machine load."""
    fast = _Setup(device, batch, size, channels_last=True, amp=True)
    base = _Setup(device, batch, size, channels_last=False, amp=False)
    for i in range(warmup + steps):
        fast.step(i >= warmup)
        base.step(i >= warmup)
    result = fast.result()
    result["baseline_images_per_s"] = base.result()["images_per_s"]
    result["ratio_vs_baseline"] = result["images_per_s"] / result["baseline_images_per_s"]
    return result


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
        fast = measure(device, batch, args.size, args.steps, args.warmup)
        results.append(fast)
        if not args.json:
            print(f"{device}: {fast['images_per_s']:.1f} images/s (median of {args.steps} steps, "
                  f"batch {batch}, {args.size}x{args.size}, {fast['threads']} threads"
                  f"{', AMP' if fast['amp'] else ''}); baseline (NCHW"
                  f"{', fp32' if device.type == 'cuda' else ''}) {fast['baseline_images_per_s']:.1f} "
                  f"images/s, ratio {fast['ratio_vs_baseline']:.2f}x")
    if args.json:
        print(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
