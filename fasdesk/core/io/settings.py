"""The app's settings: one JSON file under the user config folder.

Loading never fails: a missing file gives the defaults; a file that cannot be read or
parsed (not UTF-8, not JSON, nested too deep, too large) gives the defaults plus a
warning for the UI to show; a field with a wrong type or value resets only that field,
and is named in the warning. What each field may hold is written once, in FIELDS: adding
a setting is one line there plus its default in `Settings`.
Saving writes a temporary file and renames it over the old one, so a crash mid-save never
leaves a half-written file.
"""
from __future__ import annotations

import json
import logging
import math
import os
import re
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Callable

from fasdesk.core.io.files import JsonError, parse_json, read_regular_file, set_aside, write_atomic
from fasdesk.core.decision.verdict import DEFAULT_CONFIRM_FRAMES, DEFAULT_THRESHOLD, MAX_CONFIRM_FRAMES
from fasdesk.core.io.paths import config_dir

SETTINGS_FILE = "settings.json"
# A settings file is a few kB; anything near this is not one.
MAX_SETTINGS_BYTES = 1 << 20
MAX_PATH_CHARS = 4096  # PATH_MAX on Linux; longer text is no path on any system

log = logging.getLogger(__name__)


@dataclass
class Settings:
    source: str = "0"  # the last source that opened: camera index, video file or folder
    recent_sources: list = field(default_factory=list)  # files/folders that opened, newest first
    threshold: float = DEFAULT_THRESHOLD
    confirm_frames: int = DEFAULT_CONFIRM_FRAMES
    smoothing: float = 0.0  # EMA weight of the previous score; 0 = raw scores
    model: str = ""  # registry id or .onnx path; "" = the default model
    mirror: bool = True
    loop_playback: bool = True  # a video or image folder starts again at its end
    geometry: str = ""  # QMainWindow.saveGeometry(), base64
    last_folders: dict = field(default_factory=dict)  # purpose -> folder
    training: dict = field(default_factory=dict)  # Training tab: last inputs per step
    appearance: str = "system"  # "system" (follow the desktop's light/dark), "light", "dark"
    images_view: str = "list"  # the Images tab's results: "list" (table) or "grid" (thumbnails)

    def validate(self) -> list[str]:
        """Reset every field whose value FIELDS does not allow; returns what was reset
        (one entry per bad field or entry)."""
        problems: list[str] = []
        defaults = Settings()
        for name, check in FIELDS.items():
            value = getattr(self, name)
            try:
                setattr(self, name, check(value, name, problems))
            except ValueError as exc:
                problems.append(f"{name}: {exc}")
                setattr(self, name, getattr(defaults, name))
        return problems


# -- what a field may hold ----------------------------------------------------------------
# A check takes (value, field name, problems) and returns the value to keep, raises
# ValueError("why") to reset the whole field to its default, or, for containers, drops
# bad entries and appends "field.key: why" to problems.

Check = Callable[[Any, str, list], Any]


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def boolean() -> Check:
    def check(value, name, problems):
        if not isinstance(value, bool):
            raise ValueError(f"{_short(value)} is not true/false")
        return value
    return check


def number(lo: float, hi: float, *, below_hi: bool = False) -> Check:
    """A finite number in [lo, hi] (or [lo, hi) with below_hi); ints are accepted."""
    def check(value, name, problems):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{_short(value)} is not a number")
        value = float(value)
        if not (math.isfinite(value) and lo <= value and (value < hi if below_hi else value <= hi)):
            raise ValueError(f"{_short(value)} out of {lo:g}..{hi:g}")
        return value
    return check


def integer(lo: int, hi: int) -> Check:
    def check(value, name, problems):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{_short(value)} is not a whole number")
        if not lo <= value <= hi:
            raise ValueError(f"{value} out of {lo}..{hi}")
        return value
    return check


def text(max_chars: int = MAX_PATH_CHARS, pattern: str | None = None,
         blank: bool = True) -> Check:
    """A string of at most max_chars, without NUL (no path holds one), matching pattern;
    blank=False refuses an empty or all-space one."""
    regex = re.compile(pattern) if pattern else None

    def check(value, name, problems):
        if not isinstance(value, str):
            raise ValueError(f"{_short(value)} is not text")
        if not blank and not value.strip():
            raise ValueError("empty text")
        if len(value) > max_chars:
            raise ValueError(f"text of {len(value)} characters, over {max_chars}")
        if "\x00" in value:
            raise ValueError("text holds a NUL character")
        if regex is not None and not regex.fullmatch(value):
            raise ValueError(f"{_short(value)} is not in the expected form")
        return value
    return check


def json_value(max_depth: int = 2, max_items: int = 64) -> Check:
    """Plain JSON data (what the Training tab's steps store): finite numbers, text, true,
    false, null, and lists/objects of those nested at most max_depth levels."""
    def ok(v, depth: int) -> bool:
        if isinstance(v, float):
            return math.isfinite(v)
        if isinstance(v, str):
            return len(v) <= MAX_PATH_CHARS
        if v is None or isinstance(v, (bool, int)):
            return True
        if isinstance(v, (list, dict)) and depth < max_depth and len(v) <= max_items:
            items = v.values() if isinstance(v, dict) else v
            return all(ok(item, depth + 1) for item in items)
        return False

    def check(value, name, problems):
        if not ok(value, 0):
            raise ValueError(f"{_short(value)} is not plain data")
        return value
    return check


def sequence(items: Check, max_items: int = 64) -> Check:
    """A JSON array; a bad entry is dropped (and reported), the rest kept in order."""
    def check(value, name, problems):
        if not isinstance(value, list):
            raise ValueError(f"{_short(value)} is not a list")
        if len(value) > max_items:
            raise ValueError(f"{len(value)} entries, over {max_items}")
        kept = []
        for index, item in enumerate(value):
            try:
                kept.append(items(item, f"{name}[{index}]", problems))
            except ValueError as exc:
                problems.append(f"{name}[{index}]: {exc}")
        return kept
    return check


def mapping(values: Check, max_items: int = 64) -> Check:
    """A JSON object with text keys; a bad entry is dropped (and reported), the rest kept."""
    def check(value, name, problems):
        if not isinstance(value, dict):
            raise ValueError(f"{_short(value)} is not an object")
        if len(value) > max_items:
            raise ValueError(f"{len(value)} entries, over {max_items}")
        kept = {}
        for key, item in value.items():
            where = f"{name}.{key}"
            try:
                kept[key] = values(item, where, problems)
            except ValueError as exc:
                problems.append(f"{where}: {exc}")
        return kept
    return check


# One line per setting. A field missing here is not validated: add it.
FIELDS: dict[str, Check] = {
    "source": text(),
    "recent_sources": sequence(text(blank=False)),
    "threshold": number(0.0, 1.0),
    "confirm_frames": integer(1, MAX_CONFIRM_FRAMES),
    "smoothing": number(0.0, 1.0, below_hi=True),
    "model": text(),
    "mirror": boolean(),
    "loop_playback": boolean(),
    "geometry": text(64 * 1024, pattern=r"[A-Za-z0-9+/=]*"),
    "last_folders": mapping(text()),
    "training": mapping(mapping(json_value())),
    "appearance": text(10, pattern=r"system|light|dark"),
    "images_view": text(10, pattern=r"list|grid"),
}


def settings_path() -> Path:
    return config_dir() / SETTINGS_FILE


def load_settings(path: str | os.PathLike | None = None) -> tuple[Settings, str | None]:
    """(settings, warning or None). Never raises for a bad file."""
    path = Path(path) if path else settings_path()
    settings, warning = _load(path)
    if warning and "is corrupt" in warning:
        # Kept as settings.json.bad (for the curious), so it is reported once.
        moved = set_aside(path)
        if moved:
            warning += f" The file was moved to {moved}."
    _remember_loaded(settings)
    if warning:
        log.warning("%s", warning)
    return settings, warning


def _load(path: Path) -> tuple[Settings, str | None]:
    try:
        raw = read_regular_file(path, MAX_SETTINGS_BYTES)
    except FileNotFoundError:
        return Settings(), None
    except OSError as exc:
        return Settings(), (f"Settings file {path} cannot be read ({exc.strerror or exc}); "
                            f"using defaults.")
    try:
        data = parse_json(raw, expect=dict)
    except JsonError as exc:
        return Settings(), _corrupt(path, str(exc))
    settings = Settings()
    problems = []
    for f in fields(Settings):
        if f.name in data:
            setattr(settings, f.name, data[f.name])
    problems += settings.validate()
    if not problems:
        return settings, None
    return settings, (f"Settings file {path}: ignored bad values ({'; '.join(problems)}); "
                      f"defaults used for them.")


def _corrupt(path: Path, why: str) -> str:
    return (f"Settings file {path} is corrupt ({why}); using defaults. It will be replaced "
            f"when settings are saved.")


def _remember_loaded(settings: Settings) -> None:
    # What the values were when this instance loaded them: save_settings writes only the
    # fields changed since, so two app instances do not undo each other's changes.
    object.__setattr__(settings, "_loaded_values", asdict(settings))


def replace_settings(settings: Settings, **changes) -> Settings:
    """dataclasses.replace for settings: a copy with `changes` that still knows what was
    loaded, so saving it merges like saving the original would."""
    from dataclasses import replace

    copy = replace(settings, **changes)
    loaded = getattr(settings, "_loaded_values", None)
    if loaded is not None:
        object.__setattr__(copy, "_loaded_values", loaded)
    return copy


def save_settings(settings: Settings, path: str | os.PathLike | None = None) -> Path:
    """Write the settings atomically; returns the path. Raises OSError if it cannot.

    Settings that came from load_settings are merged with the file as it is now: only the
    fields this instance changed since it loaded are written, the others keep what is on
    disk (another instance may have saved them meanwhile). A Settings made in code is
    written whole."""
    path = Path(path) if path else settings_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    values = asdict(settings)
    loaded = getattr(settings, "_loaded_values", None)
    if loaded is not None:
        on_disk, _ = _load(path)  # (a bad file counts as the defaults, as at load)
        disk_values = asdict(on_disk)
        values = {name: value if value != loaded.get(name) else disk_values[name]
                  for name, value in values.items()}
    write_atomic(path, json.dumps(values, indent=2, sort_keys=True), durable=True)
    _remember_loaded(settings)
    return path
