"""What calibration leaves on disk, and deleting it: the calibration sessions (recordings,
fine-tuning runs) and the user's models (calibrated, trained, imported), with their size,
date and the profiles that use them. No Qt.

A model or session a profile uses is only deleted with `force`, and the refusal names the
profiles (StorageInUse.profiles), so nothing a profile needs disappears silently. Only
paths inside the calibration folder and the user models folder are ever deleted.
"""
from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from fasdesk.core.calibration.profiles import Profile, list_profiles
from fasdesk.core.calibration.session import SESSION_FILE, calibration_root
from fasdesk.core.io.paths import user_models_dir

SESSION = "session"
MODEL = "model"


class StorageError(Exception):
    """Something could not be deleted; one line for the user."""


class StorageInUse(StorageError):
    """A model or session profiles still use; `profiles` names them."""

    def __init__(self, message: str, profiles: list[str]):
        super().__init__(message)
        self.profiles = profiles


@dataclass
class StoredItem:
    kind: str  # SESSION or MODEL
    id: str  # the session's folder name, or the model's registry id (file stem if none)
    name: str  # what people read
    path: Path  # the session folder, or the model's .onnx file
    size: int  # bytes, everything `delete` removes
    created: str  # "YYYY-MM-DD HH:MM"
    used_by: list[str] = field(default_factory=list)  # profile names
    files: list[Path] = field(default_factory=list)  # what `delete` removes
    registered: bool = False  # a model in the user manifest


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                pass
    return total


def _mtime(path: Path) -> str:
    try:
        return time.strftime("%Y-%m-%d %H:%M", time.localtime(path.stat().st_mtime))
    except OSError:
        return ""


def _date(text: str, fallback: Path) -> str:
    """An ISO date-time from a file ("2026-12-03T07:51:14", "...Z") as 'YYYY-MM-DD HH:MM'."""
    if isinstance(text, str) and len(text) >= 16 and text[4] == "-":
        return text[:10] + " " + text[11:16]
    return _mtime(fallback)


def _same(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    try:
        return Path(a).expanduser().resolve() == Path(b).expanduser().resolve()
    except (OSError, ValueError):
        return False


def session_title(folder_name: str, data: dict) -> str:
    """'front door: 3 recordings' from the folder's name (timestamp-slug) and session.json."""
    parts = folder_name.split("-", 2)
    label = parts[2].replace("-", " ") if len(parts) == 3 and parts[0].isdigit() else folder_name
    recordings = data.get("recordings") if isinstance(data.get("recordings"), list) else []
    return f"{label}: {len(recordings)} recording(s)" if recordings else f"{label} (no recordings)"


def sessions(profiles: list[Profile]) -> list[StoredItem]:
    """The calibration sessions, newest first, with the profiles made from them."""
    root = calibration_root()
    try:
        folders = [p for p in root.iterdir() if p.is_dir()]
    except OSError:
        return []
    items = []
    for folder in folders:
        data = {}
        try:
            data = json.loads((folder / SESSION_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            pass
        data = data if isinstance(data, dict) else {}
        items.append(StoredItem(
            SESSION, folder.name, session_title(folder.name, data), folder, _size(folder),
            _date(data.get("created", ""), folder),
            [p.name for p in profiles if p.session and _same(p.session, folder)], [folder]))
    items.sort(key=lambda i: i.created, reverse=True)
    return items


def models(profiles: list[Profile]) -> list[StoredItem]:
    """The models in the user models folder (registered or not), with the profiles that
    judge with them."""
    from fasdesk.core.models import cards
    from fasdesk.core.models.cards import ModelCard, model_card_path
    from fasdesk.core.models import registry

    folder = user_models_dir()
    entries = {e.id: e for e in registry.user_entries()}
    try:
        files = sorted(folder.glob("*.onnx"))
    except OSError:
        files = []
    items = []
    for path in files:
        entry = next((e for e in entries.values() if Path(e.file).name == path.name), None)
        model_id = entry.id if entry else path.stem
        card = model_card_path(path)
        removed = [path] + ([card] if card.is_file() else [])
        used = [p.name for p in profiles if p.model == model_id or _same(p.model, path)]
        items.append(StoredItem(
            MODEL, model_id, cards.display_name(entry, path), path,
            sum(_size(f) for f in removed), _date(ModelCard.read_or_empty(path).created or "", path),
            used, removed, entry is not None))
    items.sort(key=lambda i: i.created, reverse=True)
    return items


def overview() -> list[StoredItem]:
    """Sessions, then models, each newest first."""
    profiles, _ = list_profiles()
    return sessions(profiles) + models(profiles)


def _inside(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
        return True
    except (OSError, ValueError):
        return False


def delete(item: StoredItem, force: bool = False) -> None:
    """Delete a session folder or a model (its file, card and model-list entry).

    Raises StorageInUse when profiles use it (unless `force`), StorageError when it
    cannot be deleted."""
    what = "calibration session" if item.kind == SESSION else "model"
    profiles, _ = list_profiles()
    current = (sessions if item.kind == SESSION else models)(profiles)
    used = next((i.used_by for i in current if i.path == item.path), item.used_by)
    if used and not force:
        names = ", ".join(f"'{n}'" for n in used)
        raise StorageInUse(f"the {what} {item.name} is used by the profile(s) {names}; "
                           f"delete them first, or delete it anyway", used)
    home = calibration_root() if item.kind == SESSION else user_models_dir()
    for path in item.files:
        if not _inside(path, home) or path.resolve() == home.resolve():
            raise StorageError(f"{path} is not in {home}; it is not deleted")
    try:
        for path in item.files:
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            elif path.exists() or path.is_symlink():
                path.unlink()
        if item.kind == MODEL and item.registered:
            from fasdesk.core.models import registry

            registry.unregister_user_model(item.id)
    except OSError as exc:
        raise StorageError(f"cannot delete the {what} {item.name}: "
                           f"{exc.strerror or exc}") from None


def human_size(n: int) -> str:
    """1234567 -> '1.2 MB'."""
    for unit in ("bytes", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"
