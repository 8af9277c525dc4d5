"""Where fasdesk keeps things: project/bundle folders, user config and user data."""
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
    return Path(__file__).resolve().parents[2]


def is_frozen() -> bool:
    return bool(getattr(sys, "frozen", False))


def resources_dir() -> Path:
    return app_root() / "resources"


def config_dir() -> Path:
    return Path(platformdirs.user_config_dir(APP_NAME))


def data_dir() -> Path:
    return Path(platformdirs.user_data_dir(APP_NAME))


def user_models_dir() -> Path:
    return data_dir() / "models"
