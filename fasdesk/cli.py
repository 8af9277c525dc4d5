"""The fasdesk command line: the GUI by default, subcommands for everything else.

Each subcommand has an `add_<name>_parser(subparsers)` that registers it and sets
`func`, the function that runs it and returns the exit status.
"""
from __future__ import annotations

import argparse
import multiprocessing
import sys

from fasdesk import __version__
from fasdesk.core.paths import BACKEND_FLAG

SUBCOMMANDS = ("classify", "models", "bench", "doctor")


def add_gui_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--source", help="start live on this camera index, video file or image folder")


def run_gui(args: argparse.Namespace) -> int:
    print("fasdesk: the desktop GUI is not built yet; use 'fasdesk classify --help'.")
    return 0


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


def run_backend(argv: list[str]) -> int:
    """`fasdesk --backend training ARGS...`: run `python -m training ARGS...` in this process.

    The packaged app has no separate Python, so the Training tab starts the app itself in
    this mode (see fasdesk.core.paths.backend_command). Only this path imports the
    training package, and with it torch; normal runs never do.
    """
    if argv[:1] != ["training"]:
        print(f"fasdesk: {BACKEND_FLAG} takes 'training' and its arguments, "
              f"e.g. 'fasdesk {BACKEND_FLAG} training prep SOURCE OUT'", file=sys.stderr)
        return 2
    import runpy

    sys.argv = [sys.argv[0], *argv[1:]]
    runpy.run_module("training", run_name="__main__", alter_sys=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    # In the packaged app, multiprocessing children (spawn/forkserver) re-run this
    # executable; freeze_support turns them back into workers. A no-op otherwise.
    multiprocessing.freeze_support()
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == [BACKEND_FLAG]:
        return run_backend(argv[1:])
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("fasdesk: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
