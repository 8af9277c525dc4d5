"""`fasdesk calibrate`: the camera calibration of the GUI's Calibrate... dialog, for scripts.

Records the real stage and each attack from a camera index, video file or image folder,
measures the model, picks the threshold for the target BPCER, optionally fine-tunes
(the training backend as child processes) and saves a profile. The work is done by
fasdesk.app.calibration.CalibrationFlow, the flow the dialog drives, so both give the same
report and profile. Exit status 0 with the report, 1 with one line on stderr when something is
missing (no faces in a recording, too few frames for the target, a source that cannot
be opened, no model).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from fasdesk.cli.args import seconds
from fasdesk.cli.commands import FAILED, OK, _err, _tolerant_output


def _attack(text: str) -> tuple[str, str]:
    from fasdesk.core.calibration.session import CalibrationError, attack_name

    if "=" not in text:
        raise argparse.ArgumentTypeError(f"--attack takes TYPE=SOURCE (e.g. replay=phone.mp4), "
                                         f"got '{text}'")
    kind, source = text.split("=", 1)
    try:
        return attack_name(kind), source
    except CalibrationError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text}") from None
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"give a rate between 0 and 1 (0.05 = 5%), got {text}")
    return value


def add_parser(sub) -> None:
    from fasdesk.core.calibration.defaults import EVERY, MAX_APCER, SECONDS, TARGET_BPCER

    p = sub.add_parser(
        "calibrate", help="measure the model on this camera and attacks; pick the threshold",
        description="Record real faces and attacks (camera index, video file or image folder "
                    "each), measure the model on them, pick the threshold for a target BPCER, "
                    "optionally fine-tune, and save a camera profile. Exit status 0 with the "
                    "report, 1 with one line when something is missing.")
    p.add_argument("--real", required=True, metavar="SRC",
                   help="real faces: a camera index, a video file or an image folder")
    p.add_argument("--attack", required=True, action="append", type=_attack, metavar="TYPE=SRC",
                   help="an attack and its recording, e.g. replay=phone.mp4 or print=1; "
                        "repeat for several (replay and print are known types; any other "
                        "name is kept as it is)")
    p.add_argument("--target-bpcer", type=_rate, default=TARGET_BPCER, metavar="R",
                   help=f"share of real faces the threshold may reject (default {TARGET_BPCER})")
    p.add_argument("--max-apcer", type=_rate, default=MAX_APCER, metavar="R",
                   help="attacks passed above this share at the target mean the model needs "
                        f"fine-tuning (default {MAX_APCER})")
    p.add_argument("--fine-tune", action="store_true",
                   help="fine-tune the model on the first half of each recording and compare")
    p.add_argument("--accept-robustness-loss", action="store_true",
                   help="use the fine-tuned model even when it accepts fewer real faces made "
                        "darker / moving / tinted than the current one (the report's "
                        "robustness line); without it such a model is not chosen")
    p.add_argument("--epochs", type=int, metavar="N",
                   help="fine-tuning epochs (default: the training backend's choice for the data size)")
    p.add_argument("--batch-size", type=int, metavar="B",
                   help="fine-tuning batch size (default: the training backend's choice)")
    p.add_argument("--lr", type=float, metavar="LR",
                   help="fine-tuning learning rate (default: the training backend's choice)")
    p.add_argument("--profile", metavar="NAME",
                   help="save the result as this camera profile (replacing one of that name)")
    p.add_argument("--seconds", type=seconds, default=SECONDS, metavar="S",
                   help=f"recording time per stage from a camera (default {SECONDS:g}); "
                        "files are read to their end")
    p.add_argument("--every", type=int, default=EVERY, metavar="K",
                   help=f"keep one frame in K (default {EVERY})")
    p.add_argument("--confirm-frames", type=int, default=None, metavar="N",
                   help="confirmation N stored in the profile (default: the app's setting)")
    p.add_argument("--model", metavar="FILE", help="liveness model: .onnx file or registry id "
                                                   "(default: the default model)")
    p.add_argument("--json", action="store_true", help="print the result as one JSON object")
    p.set_defaults(func=run)


class _StageProgress:
    """'real: 120 frames, 60 faces kept' rewritten on one stderr line (terminals only)."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self.width = 0

    def __call__(self, _frame, status) -> None:
        if not self.enabled:
            return
        total = f"/{status.total}" if status.total else ""
        text = f"{status.stage}: {status.position}{total} frames, {status.saved} faces kept"
        if status.limit is not None and status.stage == "real":  # a camera: ask for variation
            from fasdesk.core.calibration.robustness import recording_prompt

            text += " - " + recording_prompt(status.stage, status.t, status.limit)
        sys.stderr.write("\r" + text + " " * max(0, self.width - len(text)))
        sys.stderr.flush()
        self.width = len(text)

    def done(self) -> None:
        if self.enabled and self.width:
            sys.stderr.write("\n")
            self.width = 0


def _check(args: argparse.Namespace) -> str | None:
    """What is wrong with the arguments argparse cannot tell, or None."""
    if not args.seconds > 0 or args.every < 1:
        return "--seconds must be above 0 and --every at least 1"
    names = [a for a, _ in args.attack]
    if len(set(names)) != len(names):
        return "each attack type may be given once"
    if not 1 <= args.confirm_frames <= 30:
        return f"--confirm-frames must be from 1 to 30, got {args.confirm_frames}"
    return None


def run(args: argparse.Namespace) -> int:
    from fasdesk.app.calibration import (CalibrationError, CalibrationFlow, FlowSettings,
                                         attack_source_problem)
    from fasdesk.core.calibration.profiles import ProfileError, source_of
    from fasdesk.core.calibration.session import REAL
    from fasdesk.core.inference.detector import DetectorError
    from fasdesk.core.inference.liveness import ModelError
    from fasdesk.core.inference.pipeline import build_pipeline
    from fasdesk.core.io.settings import load_settings
    from fasdesk.core.live.sources import SourceSpec, probe_cameras
    from fasdesk.core.models.registry import MissingModelError, default_liveness_id, resolve

    _tolerant_output()
    args.confirm_frames = args.confirm_frames or load_settings()[0].confirm_frames
    problem = _check(args)
    if problem:
        _err(problem)
        return FAILED
    try:
        model_path = resolve(args.model, kind="liveness")
        pipeline = build_pipeline(args.model, None, live=True)
    except (MissingModelError, ModelError, DetectorError) as exc:
        _err(str(exc))
        return FAILED
    specs = [SourceSpec.parse(args.real)] + [SourceSpec.parse(s) for _, s in args.attack]
    problem = attack_source_problem(specs[0], [(n, spec) for (n, _), spec in zip(args.attack, specs[1:])])
    if problem:
        _err(problem)
        return FAILED
    cameras = {c.index: c.name for c in probe_cameras()} if any(
        s.kind == "camera" for s in specs) else {}
    real_spec = specs[0]
    camera_name = cameras.get(int(real_spec.target)) if real_spec.kind == "camera" else None
    progress = _StageProgress(sys.stderr.isatty())
    name = args.profile or real_spec.label
    try:
        flow = CalibrationFlow(name, args.model or default_liveness_id(), model_path,
                               FlowSettings(args.seconds, args.every, args.target_bpcer,
                                            args.max_apcer), args.confirm_frames)
        flow.pipeline = pipeline
        for stage, source in [(REAL, args.real)] + list(args.attack):
            try:
                flow.record(stage, source, on_frame=progress, camera_names=cameras)
            finally:
                progress.done()
        flow.score(pipeline.engine)
        if args.fine_tune:
            flow.fine_tune(name, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                           on_step=_say_step)
        flow.accept_robustness_loss = args.accept_robustness_loss
        source = source_of(real_spec, camera_name)
        if args.profile:
            result = flow.save(source, args.profile)[0]
        else:
            result = flow.conclude(source)[0]
    except (CalibrationError, ProfileError, ModelError) as exc:
        _err(str(exc))
        return FAILED
    except OSError as exc:  # a full disk, an unwritable data folder: one line, no traceback
        where = f" ({exc.filename})" if exc.filename else ""
        _err(f"calibration stopped: {exc.strerror or exc}{where}")
        return FAILED
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        print("\n".join(report_lines(result)))
    return OK


def _say_step(step: int, steps: int, title: str) -> None:
    print(f"fine-tune: {title.lower()}...", file=sys.stderr, flush=True)


def _pct(value) -> str:
    return "n/a" if value is None else f"{100.0 * value:.2f}%"


def report_lines(result: dict) -> list[str]:
    """The result as text for the terminal."""
    from fasdesk.app.calibration import profile_shortfall
    from fasdesk.core.calibration.robustness import line as robustness_line
    from fasdesk.core.calibration.session import attack_title, fine_tune_kept
    from fasdesk.core.decision.thresholds import format_threshold

    lines = [f"Calibration in {result['session']}"]
    for rec in result["recordings"]:
        rejected = ", ".join(f"{n} {k}" for k, n in rec["rejected"].items()) or "none"
        lines.append(f"  {rec['title']}: {rec['frames']} frames from {rec['source']}, "
                     f"{rec['samples']} faces kept (rejected: {rejected})")

    def block(title: str, report: dict, model: dict) -> None:
        held = report["held_out"]
        picked = report["picked_on"]
        lines.append(f"{title}: {model['id'] or Path(model['path']).name}")
        lines.append(f"  threshold for BPCER <= {100 * report['target_bpcer']:g}%: "
                     f"{format_threshold(report['threshold'])} (picked on {picked['n_real']} real "
                     f"and {picked['n_attack']} attack faces)")
        lines.append(f"  {report['sentence']}")
        lines.append(f"  held-out frames ({held['n_real']} real, {held['n_attack']} attack): "
                     f"BPCER {_pct(held['bpcer'])}, APCER {_pct(held['apcer'])}, "
                     f"ACER {_pct(held['acer'])}, EER {_pct(held['eer'])}")
        for stage, value in held["apcer_per_type"].items():
            lines.append(f"    APCER {attack_title(stage)}: {_pct(value)}")
        lines.append(f"  {robustness_line(report.get('robustness'))}")
        for warning in report["warnings"]:
            lines.append(f"  note: {warning}")

    block("Current model", result["before"], result["model"])
    if result["before"]["needs_fine_tune"] and result["after"] is None:
        lines.append(f"  attacks pass above the {100 * result['max_apcer']:g}% limit: "
                     "fine-tuning on these recordings (--fine-tune) may help")
    if result["after"] is not None:
        block("Fine-tuned model", result["after"], result["fine_tuned_model"])
    chosen = result["chosen"]
    if result.get("robustness_loss"):
        lines.append("  the fine-tuned model accepts fewer real faces that are darker, moving or "
                     "tinted than the current one" + (
                         ": used anyway (--accept-robustness-loss)" if chosen["fine_tuned"] else
                         "; not chosen (--accept-robustness-loss uses it anyway)"
                         if fine_tune_kept(result["before"], result["after"], True) else ""))
    lines.append(f"Use: model {chosen['model']}, threshold {format_threshold(chosen['threshold'])}"
                 f", confirm after {chosen['confirm_frames']} frames"
                 + (" (the fine-tuned model did better)" if chosen["fine_tuned"] else
                    " (the fine-tuned model did not do better; kept the current one)"
                    if result["after"] is not None else ""))
    if result["profile"]:
        lines.append(f"Profile '{result['profile']['name']}' saved: {result['profile']['path']}")
    missed = profile_shortfall(result)
    if missed:
        lines.append(missed)
    return lines
