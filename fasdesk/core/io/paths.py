"""Where fasdesk keeps things: project/bundle folders, user config, data and cache."""
from __future__ import annotations

import sys
from pathlib import Path

import platformdirs

APP_NAME = "fasdesk"


# In an installed wheel the project's models/, resources/ and samples/ sit in this folder
# of the package (setup.py copies them there); in a clone they sit beside the package.
INSTALLED_DATA = "_data"


def app_root() -> Path:
    """The folder that holds models/, resources/ and samples/: the project root of a
    clone, the package's data folder when installed from a wheel, or the unpacked bundle
    of the packaged app."""
    bundle = getattr(sys, "_MEIPASS", None)
    if bundle:
        return Path(bundle)
    package = Path(sys.modules["fasdesk"].__file__).resolve().parent
    installed = package / INSTALLED_DATA
    return installed if installed.is_dir() else package.parent


def samples_dir() -> Path:
    """The sample photos that come with fasdesk (a first-run demo source)."""
    return app_root() / "samples"


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
