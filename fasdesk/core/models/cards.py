"""The model card beside a model file, and the one way a model file joins the model list.

`training export` writes `<stem>.card.json` beside `<stem>.onnx` (format, file, sha256,
precision, input, output, classes, suggested_threshold, threshold, metrics, split,
source_checkpoint, created, ...; see training/export.py). `ModelCard` reads and writes
that file: the fields fasdesk uses are typed and checked (a card with a field of the
wrong type is refused with a message that names the field, never a TypeError later),
and every other field is kept as it was, so a card written by an older or newer version
comes back unchanged.

`register_model_file` adds a model file to the user's model list (fasdesk.core.models.
registry), storing a picked threshold in its card and entry and giving the file (and its
card) the name the model list shows. Training exports and camera calibration both call it.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, replace
from pathlib import Path

from fasdesk.core.io.files import parse_json, read_regular_file, write_atomic

CARD_FORMAT = 1
CARD_SUFFIX = ".card.json"
# A model card is a few kB; anything far bigger is not one.
MAX_CARD_BYTES = 1 << 20
DEFAULT_CLASSES = ("real", "spoof")
DEFAULT_INPUT_SIZE = 128


class CardError(ValueError):
    """A model card that cannot be used; the message names the file and the field."""


def model_card_path(model_path: str | os.PathLike) -> Path:
    """The card `training export` writes beside a model: `name.onnx` -> `name.card.json`."""
    p = Path(model_path)
    return p.with_name(p.stem + CARD_SUFFIX)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


# field -> (check, what it must be): None is allowed for every field but `classes`.
_CHECKS = {
    "format": (lambda v: isinstance(v, int) and not isinstance(v, bool), "a whole number"),
    "file": (lambda v: isinstance(v, str), "a file name"),
    "sha256": (lambda v: isinstance(v, str), "a SHA-256 in hex"),
    "precision": (lambda v: isinstance(v, str), "text"),
    "input": (lambda v: isinstance(v, dict) and (v.get("size") is None or (
        isinstance(v["size"], int) and not isinstance(v["size"], bool) and v["size"] > 0)),
              "an object whose size is a positive whole number"),
    "classes": (lambda v: isinstance(v, list) and len(v) >= 2
                and all(isinstance(c, str) for c in v), "a list of at least two class names"),
    "suggested_threshold": (lambda v: _is_number(v) and 0 <= v <= 1, "a number from 0 to 1"),
    "threshold": (lambda v: isinstance(v, dict) and _is_number(v.get("value"))
                  and 0 <= v["value"] <= 1, "an object whose value is a number from 0 to 1"),
    "metrics": (lambda v: isinstance(v, dict), "an object"),
    "created": (lambda v: isinstance(v, str), "a date as text"),
}


@dataclass(frozen=True)
class ModelCard:
    """What is known about one model file. `other` holds the fields fasdesk does not use."""
    file: str | None = None
    sha256: str | None = None
    format: int = CARD_FORMAT
    precision: str | None = None
    input: dict = field(default_factory=dict)
    classes: tuple[str, ...] = DEFAULT_CLASSES
    suggested_threshold: float | None = None
    threshold: dict | None = None  # {"value": p, ...where it came from}
    metrics: dict = field(default_factory=dict)
    created: str | None = None
    other: dict = field(default_factory=dict)

    @property
    def input_size(self) -> int:
        return int(self.input.get("size") or DEFAULT_INPUT_SIZE)

    @property
    def threshold_value(self) -> float | None:
        return float(self.threshold["value"]) if self.threshold else None

    def with_threshold(self, value: float, **note) -> "ModelCard":
        """This card with `value` as the model's threshold (and `note`: where it came from)."""
        value = float(value)
        if not 0.0 <= value <= 1.0:
            raise CardError(f"a threshold is a number from 0 to 1, got {value}")
        return replace(self, threshold={"value": value, **note}, suggested_threshold=value)

    @classmethod
    def from_json(cls, data, source: str = "the model card") -> "ModelCard":
        if not isinstance(data, dict):
            raise CardError(f"{source} is not a JSON object")
        for key, (ok, what) in _CHECKS.items():
            value = data.get(key)
            if (value is not None or key == "classes" and key in data) and not ok(value):
                raise CardError(f"{source}: '{key}' must be {what}, not {_shown(value)}")
        known = {k: data[k] for k in cls.__dataclass_fields__ if k != "other" and
                 data.get(k) is not None}
        if "classes" in known:
            known["classes"] = tuple(known["classes"])
        if "suggested_threshold" in known:
            known["suggested_threshold"] = float(known["suggested_threshold"])
        other = {k: v for k, v in data.items() if k not in cls.__dataclass_fields__}
        return cls(**known, other=other)

    def to_json(self) -> dict:
        data = {"format": self.format, "file": self.file, "sha256": self.sha256}
        if self.precision is not None:
            data["precision"] = self.precision
        data["input"] = dict(self.input)
        data["classes"] = list(self.classes)
        data["suggested_threshold"] = self.suggested_threshold
        data["threshold"] = self.threshold
        data["metrics"] = dict(self.metrics)
        data.update(self.other)
        if self.created is not None:
            data["created"] = self.created
        return data

    @classmethod
    def read(cls, model_path: str | os.PathLike) -> "ModelCard | None":
        """The card beside a model file; None when there is none. Raises CardError when it
        is not a card (not JSON, too large, not a regular file, a field of the wrong type)."""
        path = model_card_path(model_path)
        try:
            raw = read_regular_file(path, MAX_CARD_BYTES)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise CardError(f"the model card {path} cannot be read: "
                            f"{exc.strerror or exc}") from None
        try:  # depth-capped: a deeply nested card is refused before the parser recurses
            data = parse_json(raw)
        except ValueError as exc:
            raise CardError(f"the model card {path} is not valid JSON ({exc})") from None
        return cls.from_json(data, f"the model card {path}")

    @classmethod
    def read_or_empty(cls, model_path: str | os.PathLike) -> "ModelCard":
        """The card beside a model file; an empty card when there is none or it is not one
        (for what is only shown: a name, a date)."""
        try:
            return cls.read(model_path) or cls()
        except CardError:
            return cls()

    @property
    def display_name(self) -> str:
        """The name people see for the model ("Front door, calibrated 3 Dec"); "" if none."""
        name = self.other.get("display_name")
        return name.strip() if isinstance(name, str) else ""

    def write(self, model_path: str | os.PathLike) -> Path:
        path = model_card_path(model_path)
        write_atomic(path, json.dumps(self.to_json(), indent=1))
        return path


def _shown(value) -> str:
    text = json.dumps(value) if not isinstance(value, (dict, list)) else type(value).__name__
    return text if len(text) <= 40 else text[:37] + "..."


def card_problem(model_path: str | os.PathLike) -> str | None:
    """What to tell the user when the card beside a model cannot be used, or None (it can,
    or there is none). Nothing fails over a bad card, but a threshold stored in it is then
    not applied, and the CLI and the GUI say so in these words."""
    try:
        ModelCard.read(model_path)
    except CardError as exc:
        return f"{exc}; it is ignored, with any threshold stored in it"
    return None


def _valid_threshold(value) -> float | None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value <= 1
    return float(value) if ok else None


def stored_threshold(model_path: str | os.PathLike, entry=None) -> float | None:
    """The threshold stored with a model file, or None.

    From the model card beside the file (`threshold.value`, written by `training export
    --threshold`), else from the model's registry entry (`entry.extra["threshold"]`). Either
    counts only when it names this very file by its SHA-256, so a threshold never applies
    to a model that replaced the one it was picked for."""
    from fasdesk.core.models.registry import file_sha256

    try:
        sha256 = file_sha256(model_path)
    except OSError:
        return None
    card = ModelCard.read_or_empty(model_path)
    if card.sha256 == sha256 and card.threshold_value is not None:
        return card.threshold_value
    if entry is not None and getattr(entry, "sha256", None) == sha256:
        return _valid_threshold((getattr(entry, "extra", None) or {}).get("threshold"))
    return None


def register_model_file(path: str | os.PathLike, model_id: str, *, source: str,
                        description: str, name: str | None = None,
                        threshold: float | None = None, threshold_note: dict | None = None,
                        extra: dict | None = None, card: ModelCard | None = None):
    """Add the model file `path` to the user's model list under `model_id`.

    `name`: the file name it gets (the file and its card are renamed; the card's `file`
    follows). `threshold`: stored in the card (with `threshold_note`: where it came from)
    and in the entry. The entry records the input size and classes from the card, and
    `source` and `extra` (e.g. the checkpoint) as the entry's own fields. `card`: what
    describes a file that has no card of its own (an INT8 export's fp32 twin).
    Returns (entry, the file's final path). Raises CardError for a bad card, OSError
    when a file cannot be moved or written."""
    from fasdesk.core.io.paths import user_models_dir
    from fasdesk.core.models import registry

    path = Path(path)
    if not path.is_file():
        raise OSError(f"the model file was not written ({path})")
    described_by = card
    card = ModelCard.read(path)
    old_card = model_card_path(path)
    if name is not None and name != path.name:
        target = path.with_name(name)
        os.replace(path, target)
        path = target
        if card is not None:
            card = replace(card, file=target.name)
    if threshold is not None:
        card = (card or ModelCard(file=path.name, sha256=registry.sha256_of(path))
                ).with_threshold(threshold, **(threshold_note or {}))
    if card is not None and (model_card_path(path) != old_card or threshold is not None):
        card.write(path)
        if model_card_path(path) != old_card:
            old_card.unlink(missing_ok=True)
    card = card or described_by or ModelCard()
    entry = registry.ModelEntry(
        id=model_id, kind="liveness",
        file=path.name if path.parent == user_models_dir() else str(path),
        sha256=registry.sha256_of(path), size=path.stat().st_size,
        input_size=card.input_size, classes=tuple(card.classes), description=description,
        extra={"source": source, **(extra or {}),
               "suggested_threshold": card.suggested_threshold,
               "threshold": card.threshold_value})
    registry.register_user_model(entry)
    return entry, path


def display_name_of(model: str | os.PathLike) -> str:
    """display_name for a model given as a registry id or a file path (a profile's model)."""
    from fasdesk.core.models.registry import find_file, get_entry

    entry = get_entry(str(model))
    if entry is None:
        return display_name(None, model)
    path = find_file(entry.file)
    return display_name(entry, path) if path is not None else entry.id


def display_name(entry, path: str | os.PathLike | None = None) -> str:
    """The name to show for a model (the model menu, profiles): the `display_name` its
    registry entry (a registry.ModelEntry) or its card carries ("Front door, calibrated
    3 Dec"), else its id, else the file's name. File names and ids stay safe slugs; people see this."""
    from fasdesk.core.models.registry import find_file

    name = (entry.extra.get("display_name") if entry is not None else None)
    if not (isinstance(name, str) and name.strip()):
        if path is None and entry is not None:
            path = find_file(entry.file)
        name = ModelCard.read_or_empty(path).display_name if path is not None else None
    if isinstance(name, str) and name.strip():
        return name.strip()
    if entry is not None:
        return entry.id
    return Path(path).name if path is not None else ""
