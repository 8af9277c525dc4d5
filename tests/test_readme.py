"""The commands of README.md and docs/*.md work as written: each one is checked against the real parsers and
files of this checkout, so a renamed flag or a moved script breaks this test, not a
newcomer's first hour.

- Fenced blocks with a shell language (bash, sh, console, powershell, bat) are commands to
  copy: every `fasdesk ...`, `python -m fasdesk ...`, `python -m training ...` (also
  through torchrun or `fasdesk --backend training`) must parse with the real argparse
  parser, values included (so write `--epochs 10`, not `--epochs N`); `python FILE.py`,
  `bash FILE`, `pyinstaller FILE.spec` and pytest's paths must exist; `python -m MODULE`
  must exist and list the flags used in its `--help`; `--init` checkpoints and paths into
  ../shared must exist; `pip install` extras must exist in
  pyproject.toml, and a pinned torch must be the version .ci/run installs.
- Plain fenced blocks (the command synopsis) and inline `fasdesk ...` / `python -m
  training ...` spans use placeholders (`PATH...`, `[--json]`, `list|pull|verify`): there
  every subcommand and every --flag must exist in that (sub)command's parser.
- The Quick start's apt-get and dnf lines must hold every package of the Qt libraries
  `fasdesk doctor` knows about (fasdesk.core.diagnostics.doctor.QT_SYSTEM_LIBRARIES).

Other programs (git, cd, sudo apt-get, ...) are not checked.
"""
from __future__ import annotations

import argparse
import contextlib
import functools
import importlib.util
import io
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from fasdesk.cli import BACKENDS, build_parser
from fasdesk.core.diagnostics.doctor import QT_SYSTEM_LIBRARIES
from fasdesk.core.io.paths import BACKEND_FLAG
from training.cli import build_parser as training_parser

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = [README] + sorted((ROOT / "docs").glob("*.md"))
README_MAX_LINES = 150
SHELLS = {"bash", "sh", "shell", "console", "powershell", "ps1", "pwsh", "bat", "cmd"}
WINDOWS_SHELLS = {"powershell", "ps1", "pwsh", "bat", "cmd"}
SEPARATORS = {"&&", "||", ";", "|"}


@dataclass
class Command:
    text: str  # as README shows it (for messages)
    line: int
    strict: bool  # a command to copy (shell block) or a synopsis with placeholders
    windows: bool = False
    file: str = "README.md"


def readme_commands(text: str) -> list[Command]:
    """Shell-block lines (continuations joined) and synopsis lines / inline spans."""
    found = []
    fence = None  # the language of the open fenced block, "" for a plain one
    pending, start = "", 0
    for number, line in enumerate(text.splitlines(), 1):
        if line.lstrip().startswith("```"):
            fence = line.strip()[3:].strip().lower() if fence is None else None
            continue
        if fence is None:
            for span in re.findall(r"`([^`]+)`", line):
                if re.match(r"((\S*/)?fasdesk(\.exe)?|python -m (fasdesk|training))(\s|$)", span):
                    found.append(Command(span, number, strict=False))
            continue
        if fence in SHELLS:
            if not pending:
                start = number
            if line.rstrip().endswith("\\"):
                pending += line.rstrip()[:-1] + " "
                continue
            pending += line
            if pending.strip():
                found.append(Command(pending.strip(), start, strict=True,
                                     windows=fence in WINDOWS_SHELLS))
            pending = ""
        elif fence == "" and line.strip():
            # The synopsis: "fasdesk classify PATH... [--json]    what it does".
            found.append(Command(re.split(r"\s{3,}", line.strip())[0], number, strict=False))
    return found


def split_commands(command: Command) -> list[list[str]]:
    """The simple commands of a line, without VAR=value prefixes, sudo and xvfb-run."""
    if command.windows:
        tokens = [t.strip("\"'") for t in shlex.split(command.text, comments=True, posix=False)]
    else:
        tokens = shlex.split(command.text, comments=True)
    simple, current = [], []
    for token in tokens:
        if token in SEPARATORS:
            simple.append(current)
            current = []
        else:
            current.append(token)
    simple.append(current)
    out = []
    for argv in simple:
        while argv and (re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", argv[0]) or argv[0] == "sudo"):
            argv = argv[1:]
        if argv[:1] == ["xvfb-run"]:
            argv = argv[1:]
            while argv and argv[0].startswith("-"):
                argv = argv[2:] if argv[0] in ("-s", "--server-args", "-n") else argv[1:]
        if argv:
            out.append(argv)
    return out


# ------------------------------------------------------------------ parsing, strictly

def parse_strictly(parser: argparse.ArgumentParser, argv: list[str]) -> str | None:
    """argparse's error for argv, or None when it parses (--help/--version count as ok)."""
    errors = io.StringIO()
    with contextlib.redirect_stderr(errors), contextlib.redirect_stdout(io.StringIO()):
        try:
            parser.parse_args(argv)
        except SystemExit as exc:
            if exc.code not in (0, None):
                return errors.getvalue().strip().splitlines()[-1]
    return None


@functools.lru_cache(maxsize=None)
def module_help(module: str) -> str:
    done = subprocess.run([sys.executable, "-m", module, "--help"], capture_output=True,
                          text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 0, f"python -m {module} --help: {done.stderr[-500:]}"
    return done.stdout


def module_flags_missing(module: str, flags: list[str]) -> list[str]:
    """Flags not mentioned in `python -m module --help`."""
    return [f for f in flags if not re.search(rf"{re.escape(f)}\b", module_help(module))] if flags else []


def extras_of(spec: str) -> set[str]:
    match = re.search(r"\[([^\]]+)\]", spec)
    return {e.strip() for e in match.group(1).split(",")} if match else set()


def pyproject_table(name: str) -> str:
    """The text of one [table] of pyproject.toml (tomllib is Python 3.11+ only)."""
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    match = re.search(rf"^\[{re.escape(name)}\]\n(.*?)(?=^\[|\Z)", text, re.M | re.S)
    return match.group(1) if match else ""


def pyproject_extras() -> set[str]:
    return set(re.findall(r"^([\w-]+)\s*=", pyproject_table("project.optional-dependencies"), re.M))


def pytest_markers() -> set[str]:
    return set(re.findall(r'^\s*"(\w+):', pyproject_table("tool.pytest.ini_options"), re.M))


def ci_torch_pin() -> str:
    return re.search(r"torch==([\w.+]+)", (ROOT / ".ci" / "run").read_text()).group(1)


def fasdesk_target(argv: list[str]) -> tuple[str, list[str]] | None:
    """("fasdesk" | "training", its arguments) when argv runs one of them, else None."""
    program = argv[0].replace("\\", "/").rsplit("/", 1)[-1]
    if program in ("fasdesk", "fasdesk.exe"):
        args = argv[1:]
        if args[:1] == [BACKEND_FLAG]:
            # fasdesk --backend torchrun ... --backend training train ...: the last one counts
            rest = args
            while BACKEND_FLAG in rest[1:]:
                rest = rest[rest.index(BACKEND_FLAG, 1):]
            return ("training", rest[2:]) if rest[1:2] == ["training"] else ("backend", rest[1:])
        return "fasdesk", args
    if "-m" in argv[:-1] and program in ("python", "python3", "py", "python.exe", "torchrun"):
        module = argv[argv.index("-m") + 1]
        if module in ("fasdesk", "training"):
            return module, argv[argv.index("-m") + 2:]
    return None


def strict_problems(argv: list[str]) -> list[str]:
    problems = []
    target = fasdesk_target(argv)
    if target is not None:
        kind, args = target
        if kind == "backend":
            if args[:1] and args[0] not in BACKENDS:
                problems.append(f"unknown backend {args[0]}")
            return problems
        parser = build_parser() if kind == "fasdesk" else training_parser()
        error = parse_strictly(parser, args)
        if error:
            problems.append(error)
        # Inputs that must be there already: the checkpoint to start from, shared files.
        for i, arg in enumerate(args):
            named = args[i - 1] if i else ""
            if ((named == "--init" or arg.startswith("../shared/"))
                    and not (ROOT / arg).exists()):
                problems.append(f"{arg} does not exist (relative to the project folder)")
        return problems
    program = argv[0].replace("\\", "/").rsplit("/", 1)[-1]
    if program in ("python", "python3", "py", "python.exe"):
        if "-m" in argv[:-1]:
            module, args = argv[argv.index("-m") + 1], argv[argv.index("-m") + 2:]
            if module == "pip":
                problems += pip_problems(args)
            elif module == "pytest":
                problems += pytest_problems(args)
            elif module != "venv":
                if importlib.util.find_spec(module) is None:
                    problems.append(f"no module {module}")
                else:
                    missing = module_flags_missing(module, [a for a in args if a.startswith("--")])
                    problems += [f"python -m {module} has no {flag}" for flag in missing]
        elif argv[1:] and argv[1].endswith(".py") and not (ROOT / argv[1]).is_file():
            problems.append(f"no file {argv[1]}")
    elif program in ("pip", "pip3"):
        problems += pip_problems(argv[1:])
    elif program == "pytest":
        problems += pytest_problems(argv[1:])
    elif program == "bash" and argv[1:] and not (ROOT / argv[1]).is_file():
        problems.append(f"no file {argv[1]}")
    elif program == "pyinstaller":
        problems += [f"no file {a}" for a in argv[1:]
                     if a.endswith(".spec") and not (ROOT / a).is_file()]
    return problems


def pip_problems(args: list[str]) -> list[str]:
    if args[:1] != ["install"]:
        return []
    problems = []
    known = pyproject_extras()
    for arg in args[1:]:
        unknown = extras_of(arg) - known if arg.startswith(".") else set()
        problems += [f"pyproject.toml has no extra [{e}]" for e in sorted(unknown)]
        pin = re.fullmatch(r"torch==([\w.+]+)", arg)
        if pin and pin.group(1) != ci_torch_pin():
            problems.append(f"torch=={pin.group(1)}, but .ci/run installs {ci_torch_pin()}")
    return problems


def pytest_problems(args: list[str]) -> list[str]:
    problems = []
    markers = pytest_markers()
    for i, arg in enumerate(args):
        if args[i - 1:i] == ["-m"]:
            problems += [f"no pytest marker {w}" for w in re.findall(r"\w+", arg)
                         if w not in markers | {"not", "and", "or"}]
        elif not arg.startswith("-") and ("/" in arg or arg.endswith(".py")):
            pattern = arg.split("::")[0]
            if not list(ROOT.glob(pattern)):
                problems.append(f"no test file {arg}")
    return problems


# ------------------------------------------------------------ checking a synopsis line

def subparsers_of(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def loose_problems(argv: list[str]) -> list[str]:
    """Subcommands and --flags of a synopsis line (placeholders allowed) exist."""
    target = fasdesk_target(argv)
    if target is None or target[0] == "backend":
        return []
    kind, args = target
    parsers = [build_parser() if kind == "fasdesk" else training_parser()]
    problems = []
    skip_value = False
    for token in args:
        if skip_value and not token.startswith("-"):
            skip_value = False
            continue
        skip_value = False
        if token.startswith("-"):
            flag = token.split("=")[0]
            owners = [p for p in parsers if flag in p._option_string_actions]
            if not owners:
                problems.append(f"'{' '.join(argv[:2])} ...' has no {flag}")
            elif "=" not in token and owners[0]._option_string_actions[flag].nargs != 0:
                skip_value = True  # the flag's value (a placeholder) follows
            continue
        choices = [subparsers_of(p) for p in parsers]
        names = token.split("|")
        if all(choices) and all(names):
            unknown = [n for n in names if not any(n in c for c in choices)]
            problems += [f"no subcommand '{n}'" for n in unknown]
            parsers = [c[n] for c in choices for n in names if n in c] or parsers
    return problems


def split_synopsis(text: str) -> list[list[str]]:
    cleaned = re.sub(r"[\[\]]", " ", text).replace("...", " ")
    return [shlex.split(cleaned)]


# ------------------------------------------------------------------------------ tests

def _all_commands() -> list[Command]:
    found = []
    for doc in DOCS:
        for command in readme_commands(doc.read_text(encoding="utf-8")):
            command.file = str(doc.relative_to(ROOT))
            found.append(command)
    return found


COMMANDS = _all_commands()


def test_readme_has_commands_to_check():
    strict = [c for c in COMMANDS if c.strict]
    assert len(strict) >= 10 and len(COMMANDS) - len(strict) >= 10
    # The quick start covers the three platforms, the synopsis the whole command line.
    assert any(c.windows for c in strict)
    synopsis = " ".join(c.text for c in COMMANDS if not c.strict)
    for words in ("classify", "--annotate", "models", "optimize", "bench", "--repeats", "doctor"):
        assert words in synopsis, words


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: f"{c.file}:{c.line}")
def test_readme_command(command):
    problems = []
    if command.strict:
        for argv in split_commands(command):
            problems += strict_problems(argv)
    else:
        for argv in split_synopsis(command.text):
            problems += loose_problems(argv)
    assert not problems, f"{command.file} line {command.line}: {command.text}\n" + "\n".join(problems)


def test_checker_catches_what_breaks():
    """The checks above reject the mistakes they exist for."""
    def strict(text):
        return [p for argv in split_commands(Command(text, 0, True)) for p in strict_problems(argv)]

    def loose(text):
        return [p for argv in split_synopsis(text) for p in loose_problems(argv)]

    assert strict("fasdesk classify a.jpg --jsn")
    assert strict("python -m training train data/ runs/a --init best_model.pth")
    assert strict("python -m training train data/ runs/a --epochs N")
    assert strict("fasdesk models fetch")
    assert strict('pip install -e ".[gui]"') and strict("pip install torch==1.0.0")
    assert strict("python scripts/no_such_script.py") and strict("bash .ci/nothing")
    assert strict("FASDESK_MODELS_DIR=x python -m pytest -m slower tests/cli/test_cli.py")
    assert strict("python -m training.bench --frobnicate") and strict("python -m no_such_module")
    assert not strict("python -m training.bench --threads 1 --json")
    assert loose("fasdesk bench [--json] [--frames N]") and loose("fasdesk models list|fetch")
    assert not strict("fasdesk classify a.jpg --json && fasdesk models verify")
    assert not loose("fasdesk models list|pull|verify|optimize")
    assert not loose("fasdesk --source 0|video.mp4|folder/")


def _install_line(tool: str) -> set[str]:
    lines = [c.text for c in COMMANDS if c.strict and re.search(rf"\b{tool} install\b", c.text)]
    assert lines, f"README.md and docs/ have no '{tool} install' line"
    return {word for line in lines for word in line.split()}


def test_readme_lists_the_qt_system_packages():
    # The xcb plugin's libraries (X11 desktops); Wayland sessions bring their own.
    xcb = {lib: pkgs for lib, pkgs in QT_SYSTEM_LIBRARIES.items() if not lib.startswith("libwayland")}
    debian, fedora = _install_line("apt-get"), _install_line("dnf")
    assert {d for d, _ in xcb.values()} <= debian, {d for d, _ in xcb.values()} - debian
    assert {f for _, f in xcb.values()} <= fedora, {f for _, f in xcb.values()} - fedora


def test_readme_is_short_and_starts_with_the_two_commands():
    text = README.read_text(encoding="utf-8")
    assert len(text.splitlines()) < README_MAX_LINES
    first_screen = text.split("\n## ", 1)[0]
    assert "![" in first_screen  # the screenshot
    shell = [c.text for c in readme_commands(first_screen) if c.strict]
    assert shell[:2] == ["python3 run.py", "bash .ci/run"]


@pytest.mark.parametrize("doc", DOCS, ids=lambda d: d.name)
def test_links_point_to_files_that_exist(doc):
    text = doc.read_text(encoding="utf-8")
    targets = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text)
    missing = [t for t in targets if "://" not in t and not (doc.parent / t).exists()]
    assert not missing, f"{doc.name} links to missing files: {missing}"
