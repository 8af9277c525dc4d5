"""Where fasdesk keeps things: project/bundle folders, user config, data and cache."""
from __future__ import annotations

import sys
from pathlib import Path

import platformdirs

APP_NAME = "fasdesk"


def app_root() -> Path:
    """The project root, or the unpacked bundle of the packaged app."""
    bundle = getattr(sys, "_MEIPASS", None)
    if bundle:
        return Path(bundle)
    return Path(__file__).resolve().parents[3]  # fasdesk/core/io/paths.py -> project root


def is_frozen() -> bool:
    return bool(getattr(sys, "frozen", False))


# `fasdesk --backend training ARGS` runs the training backend inside the packaged app,
# which has no separate Python to run `-m training` with (handled in fasdesk.cli.main).
BACKEND_FLAG = "--backend"


def backend_command() -> list[str]:
    """The command line that starts the training backend as a child process.

    Append the subcommand and its arguments, e.g. backend_command() + ["prep", src, out].
    """
    if is_frozen():
        return [sys.executable, BACKEND_FLAG, "training"]
    return [sys.executable, "-m", "training"]


def resources_dir() -> Path:
    return app_root() / "resources"


def config_dir() -> Path:
    return Path(platformdirs.user_config_dir(APP_NAME))


def data_dir() -> Path:
    return Path(platformdirs.user_data_dir(APP_NAME))


def user_models_dir() -> Path:
    return data_dir() / "models"


def cache_dir() -> Path:
    """Things fasdesk can rebuild at any time (e.g. the fast copies of models)."""
    return Path(platformdirs.user_cache_dir(APP_NAME))
