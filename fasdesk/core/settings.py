"""The app's settings: one JSON file under the user config folder.

Loading never fails: a missing file gives the defaults, a corrupt one gives the defaults
plus a warning for the UI to show, and a wrong value for one field resets only that field.
Saving writes a temporary file and renames it over the old one, so a crash mid-save never
leaves a half-written file.
"""
from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from fasdesk.core.liveness import DEFAULT_THRESHOLD
from fasdesk.core.paths import config_dir
from fasdesk.core.tracking import DEFAULT_CONFIRM_FRAMES

SETTINGS_FILE = "settings.json"


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

    def validate(self) -> list[str]:
        """Clamp or reset values out of range; returns what was fixed."""
        fixed = []
        if not 0.0 <= self.threshold <= 1.0:
            fixed.append(f"threshold {self.threshold} out of 0..1")
            self.threshold = DEFAULT_THRESHOLD
        if not 1 <= self.confirm_frames <= 30:
            fixed.append(f"confirm_frames {self.confirm_frames} out of 1..30")
            self.confirm_frames = DEFAULT_CONFIRM_FRAMES
        if not 0.0 <= self.smoothing < 1.0:
            fixed.append(f"smoothing {self.smoothing} out of 0..1")
            self.smoothing = 0.0
        good = [t for t in self.recent_sources if isinstance(t, str) and t.strip()]
        if len(good) != len(self.recent_sources):
            fixed.append("recent_sources: entries that are not file or folder names")
            self.recent_sources = good
        return fixed


def settings_path() -> Path:
    return config_dir() / SETTINGS_FILE


def load_settings(path: str | os.PathLike | None = None) -> tuple[Settings, str | None]:
    """(settings, warning or None). Never raises for a bad file."""
    path = Path(path) if path else settings_path()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return Settings(), None
    except OSError as exc:
        return Settings(), f"Settings file {path} cannot be read ({exc.strerror}); using defaults."
    try:
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
    except ValueError as exc:
        return Settings(), (f"Settings file {path} is corrupt ({str(exc).splitlines()[0]}); "
                            f"using defaults. It will be replaced when settings are saved.")
    settings = Settings()
    problems = []
    for f in fields(Settings):
        if f.name not in data:
            continue
        value = data[f.name]
        default = getattr(settings, f.name)
        if isinstance(default, bool):
            ok = isinstance(value, bool)
        elif isinstance(default, float):
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
            value = float(value) if ok else value
        elif isinstance(default, int):
            ok = isinstance(value, int) and not isinstance(value, bool)
        else:
            ok = isinstance(value, type(default))
        if ok:
            setattr(settings, f.name, value)
        else:
            problems.append(f"{f.name}={value!r}")
    problems += settings.validate()
    warning = None
    if problems:
        warning = f"Settings file {path}: ignored bad values ({'; '.join(problems)}); defaults used for them."
    return settings, warning


def save_settings(settings: Settings, path: str | os.PathLike | None = None) -> Path:
    """Write the settings atomically; returns the path. Raises OSError if it cannot."""
    path = Path(path) if path else settings_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".settings-", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(asdict(settings), fh, indent=2, sort_keys=True)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return path
