#!/usr/bin/env python3
"""Run fasdesk from this clone with one command (Linux, macOS, Windows; Python 3.10+).

    python3 run.py                  the app (live on a camera, or on the sample photos)
    python3 run.py --source FILE    the app, live on a camera index, video or image folder
    python3 run.py --cli ARGS...    the command line, e.g. python3 run.py --cli classify samples

The first run creates .venv/ in the clone and installs into it: the CPU build of torch
(the way .ci/run gets it) and fasdesk with its training extra. Later runs start at once:
the install is redone only when what it depends on changed (pyproject.toml, setup.py, the
torch pin, this Python). Standard library only, so any Python 3 can run it.
"""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
STAMP_NAME = "fasdesk-install.stamp"
TORCH = "torch==2.13.0"
TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"
# What the installed environment depends on: a change in any of them means install again.
INSTALL_INPUTS = ("pyproject.toml", "setup.py")
MIN_PYTHON = (3, 10)


def venv_python(venv: Path = VENV) -> Path:
    if os.name == "nt":
        return venv / "Scripts" / "python.exe"
    return venv / "bin" / "python"


def install_key(root: Path = ROOT) -> str:
    """A digest of everything the install depends on."""
    digest = hashlib.sha256()
    for name in INSTALL_INPUTS:
        path = root / name
        digest.update(name.encode() + b"\0")
        digest.update(path.read_bytes() if path.is_file() else b"(missing)")
    digest.update(f"{TORCH}\0{sys.version_info[:2]}".encode())
    return digest.hexdigest()


def needs_install(venv: Path, key: str) -> bool:
    """Whether the environment is missing or was installed for other inputs."""
    stamp = venv / STAMP_NAME
    if not venv_python(venv).is_file() or not stamp.is_file():
        return True
    return stamp.read_text(encoding="utf-8").strip() != key


def install_steps(python: Path) -> list[list[list[str]]]:
    """The install, as steps of alternatives: each step runs its first command, and the
    next one only when that fails. torch comes from PyTorch's CPU index (from PyPI, Linux
    gets the multi-GB CUDA build); where that index is out of reach, from pip's configured
    index and find-links, with one retry so an unreachable index costs seconds, not minutes."""
    pip = [str(python), "-m", "pip", "install", "--disable-pip-version-check"]
    return [
        [pip + ["-q", "--retries", "1", TORCH, "--index-url", TORCH_CPU_INDEX],
         pip + ["-q", TORCH]],
        [pip + ["-q", "-e", f"{ROOT}[train]"]],
    ]


def app_command(python: Path, argv: list[str]) -> list[str]:
    """The command run.py ends with: `--cli ARGS` runs `fasdesk ARGS`, anything else goes
    to the app as its own options (`--source`, `--quit-after`)."""
    if argv[:1] == ["--cli"]:
        return [str(python), "-m", "fasdesk", *argv[1:]]
    return [str(python), "-m", "fasdesk", *argv]


def say(message: str) -> None:
    print(f"run.py: {message}", file=sys.stderr, flush=True)


def install(venv: Path, key: str) -> None:
    python = venv_python(venv)
    if not python.is_file():
        say(f"creating the environment in {venv}")
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    say("installing torch (CPU) and fasdesk into it; this takes a few minutes once")
    for alternatives in install_steps(python):
        for i, command in enumerate(alternatives):
            if subprocess.run(command).returncode == 0:
                break
            if i + 1 < len(alternatives):
                say("that did not work; trying pip's configured package index instead")
        else:
            raise SystemExit(f"run.py: installing failed: {' '.join(command)}; see pip's "
                             f"message above (docs/install.md has the manual steps)")
    (venv / STAMP_NAME).write_text(key + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] in (["-h"], ["--help"]):
        print(__doc__.strip())
        return 0
    if sys.version_info < MIN_PYTHON:
        say(f"fasdesk needs Python {'.'.join(map(str, MIN_PYTHON))} or newer; this is "
            f"{sys.version.split()[0]}")
        return 1
    key = install_key()
    if needs_install(VENV, key):
        try:
            install(VENV, key)
        except subprocess.CalledProcessError as exc:
            say(f"could not create the environment ({exc}); on Debian/Ubuntu install "
                f"python3-venv first (docs/install.md)")
            return 1
    try:
        return subprocess.run(app_command(venv_python(VENV), argv)).returncode
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
