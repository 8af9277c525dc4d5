"""Models derived from a model file, built once and kept in the user cache folder.

Two derived models exist: the fast rewrite of a liveness model (fasdesk.core.inference.optimize) and
YuNet with a free input size (fasdesk.core.inference.detector). Building one needs the `onnx`
package and some work; loading the result later only reads its metadata. Each is stored as

    <user cache>/models/<source SHA-256>.<recipe>.onnx    the derived model, if any
    <user cache>/models/<source SHA-256>.<recipe>.json    {"sha256" of that file, "info"}

keyed by the source file's SHA-256 (registry.file_sha256, the value that also checks a
registry model) and by the recipe name, which carries a version. Files are written to a
temporary name and renamed into place, model first, so a reader sees either nothing or a
complete pair; a pair that does not check out (missing file, unreadable record, hash
mismatch, a model not stamped with this source's SHA-256 in its own metadata, a
control-flow operator) is built again. `check` (run by `fasdesk models verify`) rebuilds
a recipe and compares, which also catches a cached file replaced with its record edited.
A recipe may also record that nothing was derived (info says why), so that check is not
repeated either. When the cache folder cannot be written the
model is built in memory and kept for this process only.
"""
from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from fasdesk.core.models import registry
from fasdesk.core.io.files import write_atomic
from fasdesk.core.io.paths import cache_dir

FORMAT = 2  # 2: cached models carry their source's SHA-256 in their metadata


@dataclass(frozen=True)
class Derived:
    """What to load for a source model: a cached file, bytes kept in memory, or (both
    None) the source itself. `info` is what the recipe recorded (e.g. why not derived)."""
    path: Path | None = None
    data: bytes | None = None
    info: dict = field(default_factory=dict)
    built_now: bool = False  # built by this call (not read from the cache or memory)

    @property
    def derived(self) -> bool:
        return self.path is not None or self.data is not None


# A recipe: source path -> (derived model bytes or None, info). It may raise; nothing is
# cached then. info["cache"] = False keeps a result out of the disk cache (e.g. a missing
# package, which may be installed later).
Recipe = Callable[[Path], "tuple[bytes | None, dict]"]

_memory: dict[tuple[str, str], Derived] = {}
_locks: dict[tuple[str, str], threading.Lock] = {}
_locks_guard = threading.Lock()


def folder() -> Path:
    return cache_dir() / "models"


def _key_lock(key: tuple[str, str]) -> threading.Lock:
    with _locks_guard:
        return _locks.setdefault(key, threading.Lock())


def derive(source: str | os.PathLike, recipe: str, build: Recipe) -> Derived:
    """The `recipe` model derived from `source`: from this process's memory, the cache
    folder, or built now (and cached). Raises what `build` raises, and OSError when
    `source` cannot be read."""
    source = Path(source)
    digest = registry.file_sha256(source)
    key = (digest, recipe)
    with _key_lock(key):  # one build per model, even when two threads ask at once
        known = _memory.get(key)
        if known is not None:
            return known
        result = _read(digest, recipe)
        if result is None:
            data, info = build(source)
            result = _write(digest, recipe, data, info)
        _memory[key] = result
        return result


def _names(digest: str, recipe: str) -> tuple[Path, Path]:
    base = folder() / f"{digest}.{recipe}"
    return base.with_name(base.name + ".onnx"), base.with_name(base.name + ".json")


def _read(digest: str, recipe: str) -> Derived | None:
    model_path, record_path = _names(digest, recipe)
    try:
        from fasdesk.core.io.files import read_json

        record = read_json(record_path, 1 << 20)
        if record.get("format") != FORMAT or record.get("source_sha256") != digest:
            return None
        info = dict(record.get("info") or {})
        if record.get("sha256") is None:
            return Derived(info=info)
        if registry.file_sha256(model_path) != record["sha256"]:
            return None  # damaged: build it again
        from fasdesk.core.inference.runtime import control_flow_problem

        if control_flow_problem(model_path):
            return None  # never a graph that can loop, whatever its record says
        if _stamp_of(model_path) != (digest, recipe):
            return None  # not derived from this source (swapped in): build it again
        return Derived(path=model_path, info=info)
    except (OSError, ValueError, TypeError, AttributeError):
        return None


SOURCE_KEY, RECIPE_KEY = "fasdesk.source_sha256", "fasdesk.recipe"


def _stamped(data: bytes, digest: str, recipe: str) -> bytes:
    """The derived model with its source's SHA-256 and the recipe in its own metadata, so
    a cached file is tied to the source it was made from (checked on load)."""
    import onnx

    model = onnx.load_from_string(data)
    for key in (SOURCE_KEY, RECIPE_KEY):
        for prop in [p for p in model.metadata_props if p.key == key]:
            model.metadata_props.remove(prop)
    onnx.helper.set_model_props(model, {**{p.key: p.value for p in model.metadata_props},
                                        SOURCE_KEY: digest, RECIPE_KEY: recipe})
    return model.SerializeToString()


def _stamp_of(path: Path) -> tuple[str, str] | None:
    """(source SHA-256, recipe) a cached model was stamped with, or None."""
    try:
        import onnx

        model = onnx.load(str(path), load_external_data=False)
    except Exception:  # no onnx package, or not a model: not a usable cached copy
        return None
    props = {p.key: p.value for p in model.metadata_props}
    return props.get(SOURCE_KEY), props.get(RECIPE_KEY)


def _write(digest: str, recipe: str, data: bytes | None, info: dict) -> Derived:
    info = dict(info)
    keep_on_disk = info.pop("cache", True)
    if not keep_on_disk:
        return Derived(data=data, info=info, built_now=True)
    model_path, record_path = _names(digest, recipe)
    record = {"format": FORMAT, "recipe": recipe, "source_sha256": digest,
              "sha256": None, "info": info}
    try:
        model_path.parent.mkdir(parents=True, exist_ok=True)
        if data is not None:
            data = _stamped(data, digest, recipe)
            write_atomic(model_path, data)
            record["sha256"] = registry.file_sha256(model_path)
        write_atomic(record_path, json.dumps(record, indent=1).encode("utf-8"))
    except OSError:
        return Derived(data=data, info=info, built_now=True)  # read-only cache: memory only
    return Derived(path=model_path if data is not None else None, info=info, built_now=True)


def check(source: str | os.PathLike, recipe: str, build: Recipe) -> str | None:
    """Whether the cached `recipe` copy of `source` is what `build` makes from it today
    (recipes are deterministic): None when it is, or nothing is cached; else why not, in
    words. A cached file replaced with its record edited to match passes the load check
    (which only sees the pair agree), not this one. Raises OSError for an unreadable
    source and what `build` raises."""
    digest = registry.file_sha256(Path(source))
    model_path, record_path = _names(digest, recipe)
    if not model_path.exists():
        return None
    expected, _ = build(Path(source))
    if expected is None:
        return f"cached copy {model_path} exists but nothing is derived from the source"
    expected = _stamped(expected, digest, recipe)
    import hashlib

    actual = registry.sha256_of(model_path)
    if actual != hashlib.sha256(expected).hexdigest():
        return (f"cached copy {model_path} is not the {recipe} rewrite of its source "
                f"(tampered or damaged); delete it and it is rebuilt on next use")
    return None


def forget_memory() -> None:
    """Drop what this process remembers (tests; the disk cache stays)."""
    with _locks_guard:
        _memory.clear()
