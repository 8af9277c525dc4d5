"""`python -m training prep|train|eval|export`: the training backend's command line.

Each subcommand takes `--events` (JSON lines on stdout, see training.events); human
progress and messages go to stderr. Exit status: 0 on success, 1 with one line on stderr
for a problem the user can fix (bad dataset, missing checkpoint, ...), 130 when stopped
by Ctrl-C / SIGTERM (train saves a resumable checkpoint first), 2 for bad arguments.
Heavy modules (torch) are imported only by the subcommand that runs.
"""
from __future__ import annotations

import argparse
import math
import sys
import traceback

from training.events import Emitter
from fasdesk.core.decision.verdict import DEFAULT_THRESHOLD

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_STOPPED = 0, 1, 2, 130


def number(kind=float, lo=None, hi=None, lo_open=False, hi_open=False):
    """An argparse type: a finite `kind` number within [lo, hi] (open ends as asked), so a
    bad value is a one-line usage error, never a traceback or a silent nonsense run."""
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a {'whole ' if kind is int else ''}number: "
                                             f"{text!r}") from None
        if kind is float and not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
        low_bad = lo is not None and (value <= lo if lo_open else value < lo)
        high_bad = hi is not None and (value >= hi if hi_open else value > hi)
        if low_bad or high_bad:
            left = "(" if lo_open else "["
            right = ")" if hi_open else "]"
            span = f"{left}{'' if lo is None else lo}, {'' if hi is None else hi}{right}"
            raise argparse.ArgumentTypeError(f"must be in {span}, got {text!r}")
        return value
    parse.__name__ = kind.__name__  # argparse names the type in its messages
    return parse


POSITIVE = number(int, 1)
NON_NEGATIVE = number(int, 0)
SEED = number(int, 0, 2**32 - 1)
PROBABILITY = number(float, 0.0, 1.0)
FRACTION = number(float, 0.0, 1.0, lo_open=True, hi_open=True)


def _events_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--events", action="store_true",
                   help="write JSON-lines progress events on stdout (see training/events.py)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m training",
        description="MiniFASNetV2-SE training backend: prepare a dataset, train, evaluate, export.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("prep", help="raw dataset -> face crops, labels.csv, manifest.json",
                       description="Crop the faces of a raw dataset (CelebA-Spoof layout, or "
                       "real/ and spoof/[TYPE/] folders) into SIZE x SIZE PNGs with a labels file "
                       "and a manifest. Re-running skips crops already made.")
    p.add_argument("source", metavar="SOURCE", help="the raw dataset folder")
    p.add_argument("out", metavar="OUT", help="output folder (created)")
    p.add_argument("--size", type=int, default=128, help="crop side in pixels (default 128)")
    p.add_argument("--spoof-types", type=int, nargs="+", metavar="T",
                   help="CelebA-Spoof spoof types to keep (0 live, 1-3 print, 4-6 paper masks, "
                   "7-9 replay, 10 3D mask, 11 other). Default for CelebA-Spoof: 0 1 2 3 7 8 9; "
                   "for folders: every type found")
    p.add_argument("--workers", type=POSITIVE, default=None, help="processes (default: all cores)")
    p.add_argument("--detector", default=None,
                   help="face detector (registry id or .onnx) for images without _BB.txt")
    _events_flag(p)

    p = sub.add_parser("train", help="train MiniFASNetV2-SE on a prepared dataset",
                       description="Train on the output of 'prep'. OUT gets latest.pth every "
                       "epoch, best.pth (best validation accuracy; with --init the starting model "
                       "until an epoch beats it) and history.json. Settings not given come from "
                       "a preset for the dataset size.")
    p.add_argument("data", metavar="DATA", help="a 'prep' output folder")
    p.add_argument("out", metavar="OUT", help="folder for checkpoints (created)")
    p.add_argument("--epochs", type=NON_NEGATIVE,
                   help="epochs (default: the preset for the dataset size; 50 from scratch)")
    p.add_argument("--batch-size", type=POSITIVE,
                   help="global batch size (default: the preset, 16-64 when fine-tuning, up to "
                   "256 from scratch)")
    p.add_argument("--lr", type=number(float, 0.0, lo_open=True),
                   help="peak learning rate (default 0.01 with --init: warm-up, then cosine; "
                   "0.1 from scratch, with the milestones)")
    p.add_argument("--milestones", type=POSITIVE, nargs="+", metavar="E",
                   help="from scratch: epochs where the lr is multiplied by 0.1 (default 10 15 22 30)")
    p.add_argument("--momentum", type=number(float, 0.0, 1.0, hi_open=True), help="SGD momentum (default 0.9)")
    p.add_argument("--weight-decay", type=number(float, 0.0, 1.0), help="SGD weight decay (default 5e-4)")
    p.add_argument("--ft-weight", type=PROBABILITY,
                   help="weight of the Fourier-spectrum loss; CE gets 1 - it (default 0.5 from "
                   "scratch; with --init the checkpoint's own, 0 for the shipped model)")
    p.add_argument("--clip-grad", type=number(float, 0.0), metavar="NORM",
                   help="clip the gradients' global norm (default 2 with --init, 0 = off from "
                   "scratch)")
    p.add_argument("--freeze-early", action=argparse.BooleanOptionalAction,
                   help="with --init: keep every layer before the last 8x8 stage as it is "
                   "(steps about 4x faster on a CPU; default on for sets under 5,000 images)")
    p.add_argument("--augment", metavar="OPS",
                   help="session-to-session augmentation of both classes: a comma list of "
                   "light, motion, defocus, colour, jpeg, or 'all' / 'none' (default: the "
                   "recipe's choice, see docs/calibration-robustness.md)")
    p.add_argument("--l2-sp", type=number(float, 0.0), metavar="STRENGTH",
                   help="with --init: pull toward the starting weights, STRENGTH / 2 * "
                   "||w - w_start||^2 added to the loss (default: the recipe's, "
                   "docs/calibration-robustness.md; 0 = off)")
    p.add_argument("--classes", type=number(int, 2, 64),
                   help="2 = real/spoof (default); N > 2 = real + N-1 spoof categories "
                   "(e.g. 3 for live/print/replay)")
    p.add_argument("--val-fraction", type=FRACTION, help="validation share per class (default 0.2)")
    p.add_argument("--seed", type=SEED, help="seed of the split, shuffle and augmentation (default 0)")
    p.add_argument("--dropout", type=number(float, 0.0, 1.0, hi_open=True), help="dropout before the last layer (default 0.2)")
    p.add_argument("--precise-bn", type=NON_NEGATIVE, metavar="BATCHES",
                   help="recompute BatchNorm statistics on this many training batches after "
                   "each epoch (default 100 from scratch, about 256 images with --init; 0 = "
                   "keep the running averages)")
    p.add_argument("--init", metavar="CKPT", help="start from this checkpoint's weights (fine-tune)")
    p.add_argument("--resume", metavar="auto|CKPT",
                   help="continue a run exactly: 'auto' = OUT/latest.pth if present")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                   help="auto = CUDA when present (default)")
    p.add_argument("--precision", choices=("auto", "fp32", "bf16"),
                   help="auto = float16 mixed precision on CUDA, float32 on CPU (default); "
                   "bf16 = bfloat16 autocast (CPUs with AVX-512 BF16 or AMX, recent GPUs)")
    p.add_argument("--no-amp", action="store_true", help="same as --precision fp32")
    p.add_argument("--threads", type=number(int, 1, 1024),
                   help="torch CPU threads (default: torch's choice; 1 is often faster on a busy machine)")
    _events_flag(p)

    p = sub.add_parser("eval", help="metrics of a .pth or .onnx model on a prepared dataset",
                       description="Accuracy, per-class accuracy, confusion matrix, ROC-AUC, AP, "
                       "APCER/BPCER/ACER (ISO/IEC 30107-3), EER, thresholds for target error "
                       "rates, ROC and PR curves. Without --out and --events the report is "
                       "printed as JSON on stdout.")
    p.add_argument("data", metavar="DATA", help="a 'prep' output folder")
    p.add_argument("model", metavar="MODEL", help="a .pth checkpoint or an .onnx model")
    p.add_argument("--out", metavar="REPORT.json", help="write the report here")
    p.add_argument("--split", choices=("val", "train", "test", "all"), default="val",
                   help="val = the training run's held-out images (default); test = "
                   "CelebA-Spoof's test subset; all = every image")
    p.add_argument("--threshold", type=PROBABILITY, default=DEFAULT_THRESHOLD,
                   help=f"p_real threshold (default {DEFAULT_THRESHOLD})")
    p.add_argument("--target-bpcer", type=PROBABILITY, default=0.05,
                   help="report the threshold that keeps BPCER at or below this (default 0.05)")
    p.add_argument("--target-apcer", type=PROBABILITY, default=0.05,
                   help="report the threshold that keeps APCER at or below this (default 0.05)")
    p.add_argument("--val-fraction", type=FRACTION, help="override the split's validation share")
    p.add_argument("--seed", type=SEED, help="override the split's seed")
    p.add_argument("--batch-size", type=number(int, 1, 65536), default=64)
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    _events_flag(p)

    p = sub.add_parser("export", help="checkpoint -> ONNX (+ optional static INT8) and model card",
                       description="Export the classifier (input 'input' [N,3,S,S], output "
                       "'output' [N,K] logits, dynamic batch), verified against torch "
                       "(max |diff| <= 1e-4) before writing; a model card <stem>.card.json "
                       "goes beside it.")
    p.add_argument("checkpoint", metavar="CHECKPOINT", help="a .pth checkpoint")
    p.add_argument("out", metavar="OUT.onnx", help="the ONNX file to write")
    p.add_argument("--int8", action="store_true",
                   help="write a static INT8 model (needs --calibration); the fp32 one is kept "
                   "as <stem>.fp32.onnx")
    p.add_argument("--calibration", metavar="DATA", help="a 'prep' output folder for calibration")
    p.add_argument("--calibration-size", type=number(int, 2, 100_000), default=256,
                   help="crops used: half calibrate, half measure agreement (default 256)")
    p.add_argument("--threshold", type=PROBABILITY, default=None,
                   help="the p_real threshold picked for this model; stored in the model card "
                   "and applied by the app whenever this model is the live one (and only then)")
    p.add_argument("--report", metavar="REPORT.json", help="an eval report to copy metrics from")
    _events_flag(p)
    return parser


def _run(args, em: Emitter) -> int:
    if args.command == "prep":
        from training import prep

        prep.run(args.source, args.out, size=args.size, spoof_types=args.spoof_types,
                 workers=args.workers, detector=args.detector, emitter=em)
    elif args.command == "train":
        from training import train

        if args.threads:
            import torch

            torch.set_num_threads(args.threads)
        train.run(args.data, args.out, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                  init=args.init, resume=args.resume, device=args.device, classes=args.classes,
                  val_fraction=args.val_fraction, seed=args.seed, ft_weight=args.ft_weight,
                  milestones=args.milestones, momentum=args.momentum,
                  weight_decay=args.weight_decay, dropout=args.dropout,
                  precise_bn=args.precise_bn, clip_grad=args.clip_grad,
                  freeze_early=args.freeze_early, augment=args.augment, l2_sp=args.l2_sp,
                  precision="fp32" if args.no_amp else args.precision, emitter=em)
    elif args.command == "eval":
        from training import evaluate

        report = evaluate.run(args.data, args.model, out=args.out, split=args.split,
                              threshold=args.threshold, target_bpcer=args.target_bpcer,
                              target_apcer=args.target_apcer, val_fraction=args.val_fraction,
                              seed=args.seed, batch_size=args.batch_size, device=args.device,
                              emitter=em)
        if not args.out and not args.events:
            import json

            print(json.dumps(report, indent=1))
    elif args.command == "export":
        from training import export

        export.run(args.checkpoint, args.out, int8=args.int8, calibration=args.calibration,
                   calibration_size=args.calibration_size, threshold=args.threshold,
                   report=args.report, emitter=em)
    return EXIT_OK


# Exceptions whose message is meant for the user: (module, class). A module that was
# never imported cannot have raised its exception, so it is not imported to check.
USER_ERRORS = (
    ("fasdesk.core.datasets.dataset_info", "DatasetError"), ("fasdesk.core.inference.detector", "DetectorError"),
    ("fasdesk.core.models.registry", "MissingModelError"), ("fasdesk.core.inference.quantize", "QuantizeError"),
    ("fasdesk.core.inference.liveness", "ModelError"), ("training.prep", "PrepError"),
    ("training.data", "DataError"), ("training.model", "CheckpointError"),
    ("training.train", "TrainError"), ("training.evaluate", "EvalError"),
    ("training.export", "ExportError"),
)


def _is(exc: BaseException, module: str, name: str) -> bool:
    mod = sys.modules.get(module)
    return mod is not None and isinstance(exc, getattr(mod, name))


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    em = Emitter(enabled=args.events)
    try:
        return _run(args, em)
    except KeyboardInterrupt:
        em.error("interrupted")
        return EXIT_STOPPED
    except Exception as exc:  # noqa: BLE001 - sorted into user errors and bugs below
        if _is(exc, "training.train", "Stopped"):
            em.log(str(exc), "warning")
            em.error(f"interrupted: {exc}")
            return EXIT_STOPPED
        if any(_is(exc, module, name) for module, name in USER_ERRORS):
            em.error(str(exc))
            return EXIT_ERROR
        if isinstance(exc, OSError):  # disk full, permissions: the user can act on these
            em.error(f"{exc.strerror or exc}: {exc.filename or ''}".strip(": "))
            return EXIT_ERROR
        traceback.print_exc()  # a bug: keep the traceback for the report
        em.error(f"unexpected {type(exc).__name__}: {exc}")
        return EXIT_ERROR
