"""The fasdesk command line: the GUI by default, subcommands for everything else.

Each subcommand has an `add_<name>_parser(subparsers)` that registers it and sets
`func`, the function that runs it and returns the exit status.
"""
from __future__ import annotations

import argparse
import multiprocessing
import os
import sys

import fasdesk.core.io.proctime  # noqa: F401  first: its import time is the start-up clock's fallback
from fasdesk import __version__
from fasdesk.cli.args import count, seconds
from fasdesk.core.io.paths import BACKEND_FLAG

SUBCOMMANDS = ("classify", "models", "bench", "doctor", "calibrate", "profiles")


def add_gui_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--source", help="start live on this camera index, video file or image folder")
    parser.add_argument("--quit-after", type=seconds, metavar="SECONDS",
                        help="close the window after SECONDS (smoke tests, start-up timing)")


def run_gui(args: argparse.Namespace) -> int:
    from fasdesk.core.diagnostics.doctor import gui_start_problem

    problem = gui_start_problem()  # before Qt, which aborts the process instead
    if problem:
        print(f"fasdesk: {problem}", file=sys.stderr)
        return 1
    # Imported here so the subcommands never load Qt.
    from fasdesk.ui.app import run

    return run(args)


def _command(name: str):
    """A `func` that imports fasdesk.cli.commands only when the subcommand runs."""
    def run(args: argparse.Namespace) -> int:
        from fasdesk.cli import commands

        return getattr(commands, name)(args)
    return run


def add_classify_parser(sub) -> None:
    from fasdesk.core.decision.verdict import DEFAULT_THRESHOLD

    p = sub.add_parser("classify", help="classify image files and folders (recursively)",
                       description="Classify faces in images as real or spoof. Exit status: "
                                   "0 when every file was read, 2 when any was not, "
                                   "1 when nothing could run (e.g. no model).")
    p.add_argument("paths", nargs="+", metavar="PATH", help="image files or folders")
    p.add_argument("--json", action="store_true", help="one JSON object per image per line")
    p.add_argument("--threshold", type=float, default=None, metavar="P",
                   help=f"p_real at or above this is real (default: the profile's with "
                        f"--profile, else the threshold stored with the model, else "
                        f"{DEFAULT_THRESHOLD})")
    p.add_argument("--model", metavar="FILE", help="liveness model: .onnx file or registry id")
    p.add_argument("--profile", metavar="NAME",
                   help="judge with this camera profile's model and threshold "
                        "(see 'fasdesk profiles list')")
    p.add_argument("--detector", metavar="FILE", help="face detector: .onnx file or registry id")
    p.add_argument("--annotate", metavar="DIR",
                   help="write copies with the faces boxed (green real, red spoof, grey unsure)")
    p.set_defaults(func=_command("classify"))


def add_models_parser(sub) -> None:
    p = sub.add_parser("models", help="list, download and verify the known models")
    msub = p.add_subparsers(dest="models_command", metavar="ACTION")
    ls = msub.add_parser("list", help="the known models and where their files are")
    ls.add_argument("--json", action="store_true",
                    help='a JSON array of {"id", "kind", "path", "sha256", "default"}')
    ls.set_defaults(func=_command("models_list"))
    pull = msub.add_parser("pull", help="download models and check their SHA-256")
    pull.add_argument("ids", nargs="*", metavar="ID",
                      help="model ids (default: the default liveness model and detector)")
    pull.add_argument("--all", action="store_true", help="every model in the manifest")
    pull.add_argument("--dest", metavar="DIR", help="download here instead of the user data folder")
    pull.set_defaults(func=_command("models_pull"))
    verify = msub.add_parser(
        "verify", help="re-check the SHA-256 of the model files found",
        description="Re-check the SHA-256 of the model files found. Exit status: 0 when every "
                    "file found matches and the needed models (the named ones, or else the "
                    "default liveness model and detector) are present; 1 otherwise.")
    verify.add_argument("ids", nargs="*", metavar="ID", help="model ids (default: all)")
    verify.set_defaults(func=_command("models_verify"))
    opt = msub.add_parser(
        "optimize", help="build the fast copy of a liveness model now and check it",
        description="Every liveness model runs rewritten for onnxruntime's CPU kernels (same "
                    "logits, 2-4x faster), built on first use and kept in the user cache "
                    "folder. This builds it now and measures it against the original on "
                    "jittered face crops; nothing depends on running it.")
    opt.add_argument("model", nargs="?", metavar="ID|FILE",
                     help="registry id or .onnx file (default: the default liveness model)")
    opt.add_argument("--images", nargs="+", metavar="PATH",
                     help="face photos (files/folders) for the agreement report on jittered "
                          "crops (default: the sample photos, when present)")
    opt.add_argument("--crops", type=count(0, 20_000), default=510, metavar="N",
                     help="jittered face crops in the agreement report (default 510, at "
                          "most 20000)")
    opt.add_argument("--out", metavar="FILE", help="also write the fast model to FILE")
    opt.add_argument("--json", action="store_true", help="the report as JSON")
    opt.set_defaults(func=_perf("models_optimize"))
    # `fasdesk models` alone lists them.
    p.set_defaults(func=_command("models_list"), json=False)


def _perf(name: str):
    """A `func` that imports fasdesk.perf (bench, models optimize) only when it runs."""
    def run(args: argparse.Namespace) -> int:
        from fasdesk import perf

        return getattr(perf, name)(args)
    return run


def add_profiles_parser(sub) -> None:
    p = sub.add_parser("profiles", help="list, export and import camera profiles",
                       description="Camera profiles are what a calibration decided for one "
                                   "camera: model, threshold, confirmation frames. A profile "
                                   "exported to one file (with its model) can be imported on "
                                   "another machine.")
    psub = p.add_subparsers(dest="profiles_command", metavar="ACTION")
    ls = psub.add_parser("list", help="the saved profiles")
    ls.add_argument("--json", action="store_true",
                    help='a JSON array of {"name", "source", "model", "threshold", '
                         '"confirm_frames", "created"}')
    ls.set_defaults(func=_command("profiles_list"))
    ex = psub.add_parser("export", help="write a profile, its model and the model's card to one file")
    ex.add_argument("name", metavar="NAME", help="the profile's name")
    ex.add_argument("file", metavar="FILE", help="the file to write (e.g. front-door.fasprofile)")
    ex.set_defaults(func=_command("profiles_export"))
    im = psub.add_parser("import", help="install a profile file written by 'profiles export'",
                         description="Install a profile file: its model's SHA-256 is checked "
                                     "and the model added to the model list. A profile of "
                                     "the same name is only replaced with --replace.")
    im.add_argument("file", metavar="FILE")
    im.add_argument("--replace", action="store_true",
                    help="replace a profile of the same name")
    im.set_defaults(func=_command("profiles_import"))
    p.set_defaults(func=_command("profiles_list"), json=False)


def add_bench_parser(sub) -> None:
    from fasdesk.perf import QUICK

    p = sub.add_parser("bench", help="measure the pipeline against the reference configuration",
                       description="Per-stage median latency (decode, detect, crop+preprocess, "
                                   "liveness), frames per second, 1 and 8 faces per frame, "
                                   "liveness per face and folder throughput, for the default "
                                   "configuration and upstream's (full-resolution detection, "
                                   "quantized model: 'fasdesk models pull minifasnet-v2se-dynq' "
                                   "gets it; without it the fp32 model stands in), in one "
                                   "process, with the ratios. "
                                   "It takes about 2 minutes on a 2-core laptop (more on a busy "
                                   "machine); --quick takes about 15 seconds.")
    p.add_argument("--json", action="store_true", help="the report as JSON")
    p.add_argument("--source", metavar="FILE|DIR",
                   help="images (file or folder) or a video to use as frames "
                        "(default: the sample photos)")
    p.add_argument("--repeats", type=count(1, 100_000), default=None, metavar="N",
                   help="rounds over the frames per configuration (default 20)")
    p.add_argument("--folder-images", type=count(0, 100_000), default=None, metavar="N",
                   help="photos in the folder-classification test; 0 skips it (default 200)")
    p.add_argument("--quick", action="store_true",
                   help=f"a rough version in about 15 seconds: {QUICK['repeats']} rounds, "
                        f"{QUICK['folder_images']} folder photos, {QUICK['agreement_crops']} "
                        f"agreement crops (noisier figures; --repeats and --folder-images "
                        f"still apply when given)")
    p.set_defaults(func=_perf("bench"))


def add_doctor_parser(sub) -> None:
    p = sub.add_parser("doctor", help="versions, execution providers, models and cameras")
    p.add_argument("--json", action="store_true", help="the report as JSON")
    p.add_argument("--no-cameras", action="store_true", help="skip the camera probe")
    p.set_defaults(func=_command("doctor"))


def add_calibrate_parser(sub) -> None:
    from fasdesk.cli.calibrate import add_parser

    add_parser(sub)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fasdesk", description="Face liveness (anti-spoofing) checking: GUI and tools.")
    parser.add_argument("--version", action="version", version=f"fasdesk {__version__}")
    add_gui_arguments(parser)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMANDS:
        adder = globals().get(f"add_{name}_parser")
        if adder is not None:
            adder(sub)
    parser.set_defaults(func=run_gui)
    return parser


# What `fasdesk --backend NAME ARGS...` runs, as `python -m MODULE ARGS...` would.
BACKENDS = {
    "training": "training",
    # several training processes in the packaged app: fasdesk --backend torchrun
    # --nproc_per_node N --no-python <this executable> --backend training train ...
    "torchrun": "torch.distributed.run",
    # `fasdesk doctor` tries Qt's platform plugin in a child process (fasdesk.core.diagnostics.doctor)
    "qt-probe": "fasdesk.ui.qt_probe",
}


def run_backend(argv: list[str]) -> int:
    """`fasdesk --backend training ARGS...`: run `python -m training ARGS...` in this process.

    The packaged app has no separate Python, so the Training tab starts the app itself in
    this mode (see fasdesk.core.io.paths.backend_command); `--backend torchrun` is torchrun
    for several training processes. Only this path imports the training package, and
    with it torch; normal runs never do.
    """
    if not argv or argv[0] not in BACKENDS:
        print(f"fasdesk: {BACKEND_FLAG} takes one of {', '.join(BACKENDS)} and its arguments, "
              f"e.g. 'fasdesk {BACKEND_FLAG} training prep SOURCE OUT'", file=sys.stderr)
        return 2
    import runpy

    sys.argv = [sys.argv[0], *argv[1:]]
    runpy.run_module(BACKENDS[argv[0]], run_name="__main__", alter_sys=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    # In the packaged app, multiprocessing children (spawn/forkserver) re-run this
    # executable; freeze_support turns them back into workers. A no-op otherwise.
    multiprocessing.freeze_support()
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == [BACKEND_FLAG]:
        return run_backend(argv[1:])
    args = build_parser().parse_args(argv)
    if args.func is not run_gui and sys.stdout is None:  # started with stdout closed (>&-)
        print("fasdesk: standard output is closed; nothing can be printed "
              "(redirect it to a file or /dev/null)", file=sys.stderr)
        return 1
    try:
        status = args.func(args)
        if sys.stdout is not None:
            # What is still buffered fails here, where it is caught, not in Python's own
            # flush at exit ("Exception ignored ...", exit 120).
            sys.stdout.flush()
        return status
    except KeyboardInterrupt:
        print("fasdesk: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (`fasdesk classify ... | head -1`): stop quietly, like other
        # Unix tools, and keep Python from failing again when it flushes stdout at exit.
        _silence_stdout()
        return 128 + 13  # as if killed by SIGPIPE
    except OSError as exc:
        if not _is_output_error(exc):
            raise
        # A full disk or a dead terminal under stdout (`> /dev/full`): one line, and no
        # second failure when Python flushes stdout at exit.
        _silence_stdout()
        print(f"fasdesk: cannot write the output: {exc.strerror or exc}", file=sys.stderr)
        return 1


def _is_output_error(exc: OSError) -> bool:
    """Whether `exc` came from writing stdout (not from a file a command wrote)."""
    import errno
    import traceback

    if exc.errno not in (errno.ENOSPC, errno.EIO, errno.EBADF, errno.EDQUOT, errno.EFBIG):
        return False
    frames = traceback.extract_tb(exc.__traceback__)
    line = frames[-1].line if frames else None
    return line is not None and ("print(" in line or "sys.stdout.flush()" in line)


def _silence_stdout() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass


if __name__ == "__main__":
    raise SystemExit(main())
