"""Command-line glue for `fasdesk bench` and `fasdesk models optimize` (see fasdesk.core.diagnostics.benchmark
and fasdesk.core.inference.optimize for what they measure and build)."""
from __future__ import annotations

import argparse
import json
import sys

OK, FAILED = 0, 1


def _err(message: str) -> None:
    print(f"fasdesk: {message}", file=sys.stderr)


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def bench(args: argparse.Namespace) -> int:
    from fasdesk.core.diagnostics import benchmark
    from fasdesk.core.inference.detector import DetectorError
    from fasdesk.core.io.imageio import ImageReadError
    from fasdesk.core.inference.liveness import ModelError
    from fasdesk.core.models.registry import MissingModelError

    if args.repeats < 1:
        _err(f"--repeats must be at least 1, got {args.repeats}")
        return FAILED
    if args.folder_images < 0:
        _err(f"--folder-images must be 0 or more, got {args.folder_images}")
        return FAILED
    try:
        report = benchmark.run(args.source, repeats=args.repeats, folder_images=args.folder_images,
                               log=_log if not args.json else (lambda message: None))
    except (benchmark.BenchError, MissingModelError, ModelError, DetectorError,
            ImageReadError) as exc:
        _err(str(exc))
        return FAILED
    print(json.dumps(report, indent=2) if args.json else benchmark.format_report(report))
    return OK


def models_optimize(args: argparse.Namespace) -> int:
    from fasdesk.core.inference import compare, optimize
    from fasdesk.core.inference.liveness import ModelError
    from fasdesk.core.models.registry import MissingModelError

    if args.crops < 1:
        _err(f"--crops must be at least 1, got {args.crops}")
        return FAILED
    images = list(args.images or [])
    if not images:
        from fasdesk.core.diagnostics.benchmark import default_samples_dir

        samples = default_samples_dir()
        if samples is not None:
            images = [samples]
    try:
        report = compare.check_rewrite(args.model, images, crops=args.crops, out=args.out,
                                        log=_log)
    except (optimize.OptimizeError, MissingModelError, ModelError, ValueError) as exc:
        _err(str(exc))
        return FAILED
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(compare.format_report(report))
    if args.out and not report["written"]:
        _err(f"nothing written to {args.out}: the model has no rewritten form "
             f"({report['note']})")
        return FAILED
    return OK
