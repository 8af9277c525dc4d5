"""Names people read: the default name of a camera profile and of a calibrated model.

Files and registry ids stay safe slugs (session.slug); these are what the dialogs, the
model menu and the profiles list show. No Qt.
"""
from __future__ import annotations

import re
import time
from pathlib import Path

from fasdesk.core.live.sources import SourceSpec


def slug(text: str) -> str:
    """A file-name-safe lower-case name: letters, digits and single dashes."""
    return re.sub(r"[^a-z0-9]+", "-", str(text).lower()).strip("-")[:60]


def default_profile_name(spec: SourceSpec, camera_name: str | None = None) -> str:
    """A camera's OS name ("Integrated Webcam"; "Camera 0" when it has none), a video's or
    image's base name without its extension ("front door" for front door.avi), or a
    folder's name."""
    if spec.kind == "camera":
        return (camera_name or "").strip() or f"Camera {spec.target}"
    path = Path(str(spec.target).rstrip("/\\") or str(spec.target))
    name = path.name if spec.kind == "folder" else path.stem
    return name.strip() or str(spec.target)


def model_display_name(profile_name: str, when: float | time.struct_time | None = None) -> str:
    """'Front door, calibrated 3 Dec': a calibrated model named after its profile and day
    (`when`: seconds since the epoch or a struct_time; default now)."""
    if when is None or isinstance(when, (int, float)):
        when = time.localtime(when)
    day = f"{when.tm_mday} {time.strftime('%b', when)}"
    return f"{profile_name.strip() or 'Camera'}, calibrated {day}"
