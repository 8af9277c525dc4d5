"""The known models and where their files are found.

`models/manifest.json` lists the models fasdesk knows (id, kind, file, url, sha256,
size, license, input size). A model file is looked for, in order: an explicit path,
$FASDESK_MODELS_DIR, the project's (installed package's, packaged app's) `models/`, which
carries the defaults the manifest marks "bundled", and the user data dir's `models/`,
where downloads and trained models go.

A model chosen by its registry id is only used when its file matches the SHA-256 the
manifest records for it (`resolve` refuses it otherwise). The hash of a file is computed
once per process and reused while the file keeps its size and modification time
(`file_sha256`); the same value keys the fast copies in the cache (fasdesk.core.inference.modelcache).
"""
from __future__ import annotations

import hashlib
import json
import os
import stat
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path

from fasdesk.core.io.files import is_regular_file, not_regular_reason, safe_stat, write_atomic
from fasdesk.core.io.paths import app_root, user_models_dir

MODELS_DIR_ENV = "FASDESK_MODELS_DIR"
REQUIRE_MODELS_ENV = "FASDESK_REQUIRE_MODELS"
DEFAULT_LIVENESS = "minifasnet-v2se"
DEFAULT_DETECTOR = "yunet-2023mar"
PRETRAINED_CHECKPOINT = "minifasnet-v2se-pth"  # the default liveness model's weights


class MissingModelError(Exception):
    """A model file that is not found anywhere; the message says what to do."""


class ModelIntegrityError(MissingModelError):
    """A registry model whose file does not match its recorded SHA-256 (damaged or
    replaced): it is not used. The message is one line that says what to do."""


@dataclass(frozen=True)
class ModelEntry:
    id: str
    kind: str  # "liveness" or "detector"
    file: str
    url: str = ""
    sha256: str = ""
    size: int = 0
    license: str = ""
    input_size: int = 0
    classes: tuple[str, ...] = ()
    description: str = ""
    extra: dict = field(default_factory=dict, compare=False, hash=False)

    @classmethod
    def from_json(cls, data: dict) -> "ModelEntry":
        """An entry from its manifest object, checked field by field; raises JsonError
        naming the first bad field."""
        from fasdesk.core.io.files import JsonError, take

        if not isinstance(data, dict):
            raise JsonError(f"a model entry is not an object")
        where = f"model {data.get('id')!r}" if isinstance(data.get("id"), str) else "model"
        kwargs = {}
        for name, kind in _ENTRY_FIELDS.items():
            required = name in ("id", "kind", "file")
            value = take(data, name, kind, where=where) if required else \
                take(data, name, kind, None, where=where)
            if value is not None:
                kwargs[name] = value
        if kwargs["kind"] not in MODEL_KINDS:
            raise JsonError(f"{where}.kind: {kwargs['kind']!r} is not one of "
                            f"{', '.join(MODEL_KINDS)}")
        for name in ("id", "file"):
            if not kwargs[name].strip() or "\x00" in kwargs[name]:
                raise JsonError(f"{where}.{name}: empty or holds a NUL character")
        classes = kwargs.get("classes", [])
        if not all(isinstance(c, str) for c in classes):
            raise JsonError(f"{where}.classes: not a list of names")
        kwargs["classes"] = tuple(classes)
        for name in ("size", "input_size"):
            if kwargs.get(name, 0) < 0:
                raise JsonError(f"{where}.{name}: negative")
        return cls(**kwargs, extra={k: v for k, v in data.items() if k not in _ENTRY_FIELDS})

    def to_json(self) -> dict:
        data = {k: getattr(self, k) for k in self.__dataclass_fields__ if k != "extra"}
        data["classes"] = list(self.classes)
        data.update(self.extra)
        return data


# A checkpoint is the bundled training weights fine-tuning starts from (best_model.pth).
MODEL_KINDS = ("liveness", "detector", "checkpoint")
_ENTRY_FIELDS = {"id": str, "kind": str, "file": str, "url": str, "sha256": str, "size": int,
                 "license": str, "input_size": int, "classes": list, "description": str}


def manifest_path() -> Path:
    return app_root() / "models" / "manifest.json"


def user_manifest_path() -> Path:
    return user_models_dir() / "manifest.json"


MAX_MANIFEST_BYTES = 4 << 20
_reported: set[str] = set()


def _read_manifest(path: Path, set_aside_bad: bool = False) -> list[ModelEntry]:
    """The entries of a manifest file. A file that is not a manifest (not JSON, nested too
    deep, a bad entry) gives no entries and is reported once on stderr; with
    `set_aside_bad` (the user's manifest) it is also renamed to `manifest.json.bad` so it
    cannot stop the next start, and the app goes on with the shipped models."""
    from fasdesk.core.io.files import FileRefused, JsonError, read_json, set_aside, take

    try:
        data = read_json(path, MAX_MANIFEST_BYTES)
        models = take(data, "models", list, [])
        return [ModelEntry.from_json(m) for m in models]
    except (FileNotFoundError, NotADirectoryError):
        return []
    except (FileRefused, JsonError) as exc:
        why = getattr(exc, "strerror", None) or str(exc)
        moved = set_aside(path) if set_aside_bad and isinstance(exc, JsonError) else None
        key = f"{path}:{why}"
        if key not in _reported:
            _reported.add(key)
            note = f"; moved to {moved}" if moved else ""
            print(f"fasdesk: warning: model list {path} is not usable ({why}); its models "
                  f"are ignored{note}", file=sys.stderr)
        return []
    except OSError:  # unreadable for now (permissions...): no models from it this time
        return []


def load_manifest() -> list[ModelEntry]:
    """The shipped models followed by those the user added (trained, optimised)."""
    entries = _read_manifest(manifest_path())
    seen = {e.id for e in entries}
    entries += [e for e in _read_manifest(user_manifest_path(), set_aside_bad=True)
                if e.id not in seen]
    return entries


def get_entry(model_id: str) -> ModelEntry | None:
    return next((e for e in load_manifest() if e.id == model_id), None)


def models_dir_problem() -> str | None:
    """Why $FASDESK_MODELS_DIR is ignored (it names no folder), or None."""
    env = os.environ.get(MODELS_DIR_ENV)
    if env and not Path(env).expanduser().is_dir():
        return (f"{MODELS_DIR_ENV}={env} is not a folder, so it is ignored; set it to the "
                f"folder that holds the model files ('export {MODELS_DIR_ENV}=/path/to/models') "
                f"or remove it ('unset {MODELS_DIR_ENV}')")
    return None


_warned_models_dirs: set[str] = set()


def search_dirs() -> list[Path]:
    dirs = []
    env = os.environ.get(MODELS_DIR_ENV)
    problem = models_dir_problem()
    if problem:
        if env not in _warned_models_dirs:  # once per process and value, not per lookup
            _warned_models_dirs.add(env)
            print(f"fasdesk: warning: {problem}", file=sys.stderr)
    elif env:
        dirs.append(Path(env).expanduser())
    dirs += [app_root() / "models", user_models_dir()]
    return dirs


def find_file(file_name: str) -> Path | None:
    """The file in the first searched folder that has something of that name; None when
    that something is not a regular file (find_problem says what it is: a FIFO in the
    folder searched first is reported, not passed over for a later folder's copy)."""
    for folder in search_dirs():
        candidate = folder / file_name
        if is_regular_file(candidate):
            return candidate
        if safe_stat(candidate) is not None:
            return None
    return None


def find_problem(file_name: str) -> str | None:
    """Why `file_name` is not found although something has that name in a searched folder
    (a FIFO, a folder...), e.g. '/m/best_model.onnx is a FIFO (named pipe), not a regular
    file; not read', or None."""
    for folder in search_dirs():
        st = safe_stat(folder / file_name)
        if st is not None and not stat.S_ISREG(st.st_mode):
            return f"{folder / file_name} {not_regular_reason(st.st_mode)}"
    return None


def default_liveness_id() -> str:
    """The liveness model used when none is chosen (it runs optimized: see
    fasdesk.core.inference.optimize.runtime_model)."""
    return DEFAULT_LIVENESS


def resolve(model: str | os.PathLike | None, kind: str = "liveness", verify: bool = True) -> Path:
    """A usable model file from an explicit path, a registry id, or the default for kind.

    A registry model's file must match the manifest's SHA-256 (verify=False skips that,
    for code that reports the mismatch itself). An explicit file is used as it is.
    Raises MissingModelError with a message that says how to get the model, and its
    subclass ModelIntegrityError for a file that fails the hash check.
    """
    if model is not None and (os.sep in str(model) or str(model).endswith(".onnx")
                              or is_regular_file(model)):
        path = Path(model).expanduser()
        if not is_regular_file(path):  # (no exception for a name too long, never a FIFO)
            st = safe_stat(path)  # there but not a file (a FIFO, a folder): say so
            raise MissingModelError(f"model file {path} {not_regular_reason(st.st_mode)}"
                                    if st is not None else f"model file not found: {path}")
        entry = registry_entry_for(path)
        if verify and entry is not None and entry.sha256:
            check_integrity(entry, path)  # a registry file named by its path is checked too
        return path
    model_id = str(model) if model else (default_liveness_id() if kind == "liveness" else DEFAULT_DETECTOR)
    entry = get_entry(model_id)
    if entry is None:
        known = ", ".join(e.id for e in load_manifest())
        raise MissingModelError(f"unknown model '{model_id}' (known: {known})")
    path = find_file(entry.file)
    if path is None and find_problem(entry.file):
        raise MissingModelError(f"{entry.kind} model '{entry.id}': {find_problem(entry.file)}; "
                                f"replace it with the model file")
    if path is None:
        raise MissingModelError(
            f"{entry.kind} model '{entry.id}' ({entry.file}) not found in "
            f"{', '.join(str(d) for d in search_dirs())}; run 'fasdesk models pull' to download it, "
            f"or set {MODELS_DIR_ENV} to a folder that has it")
    if verify and entry.sha256:
        check_integrity(entry, path)
    return path


def pretrained_checkpoint() -> Path | None:
    """The training checkpoint of the default liveness model (fine-tuning starts from it),
    checked against its SHA-256; None when it is missing or damaged."""
    try:
        return resolve(PRETRAINED_CHECKPOINT, kind="checkpoint")
    except MissingModelError:
        return None
def registry_entry_for(path: str | os.PathLike) -> ModelEntry | None:
    """The registry entry whose file `path` is (by its real path, through any link or
    '..'), or None for a file the registry does not know."""
    real = os.path.realpath(path)
    dirs = search_dirs()
    for entry in load_manifest():
        for folder in dirs:
            if os.path.realpath(folder / entry.file) == real:
                return entry
    return None


def check_integrity(entry: ModelEntry, path: Path) -> None:
    """Raise ModelIntegrityError unless `path` matches the SHA-256 recorded for `entry`."""
    try:
        actual = file_sha256(path)
    except OSError as exc:
        raise ModelIntegrityError(f"{entry.kind} model '{entry.id}' at {path} cannot be read "
                                  f"({exc.strerror or exc})") from None
    if actual != entry.sha256.lower():
        raise ModelIntegrityError(
            f"{entry.kind} model '{entry.id}' at {path} does not match its SHA-256 in the "
            f"manifest (damaged or replaced), so it was not loaded; remove the file and run "
            f"'fasdesk models pull {entry.id}' ('fasdesk models verify' checks every model)")


def sha256_of(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """The SHA-256 of a file, read now (see file_sha256 for the remembered one)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


# (resolved path) -> ((size, mtime_ns, ctime_ns, device, inode), sha256)
_digests: dict[str, tuple[tuple[int, ...], str]] = {}
_digests_lock = threading.Lock()


def file_sha256(path: str | os.PathLike) -> str:
    """The SHA-256 of a file, computed once per process and reused while the file keeps its
    size, modification time, change time, device and inode (a file replaced or rewritten
    is hashed again, even when its mtime was set back: the ctime cannot be). Raises
    OSError."""
    real = os.path.realpath(path)
    st = os.stat(real)
    stamp = (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_dev, st.st_ino)
    with _digests_lock:
        known = _digests.get(real)
    if known is not None and known[0] == stamp:
        return known[1]
    digest = sha256_of(real)
    with _digests_lock:
        _digests[real] = (stamp, digest)
    return digest


def register_user_model(entry: ModelEntry) -> Path:
    """Add a model (trained, optimised) to the user manifest, replacing one with its id.

    The one writer of the user manifest. `entry.file` is a file name looked up in
    search_dirs() (normally the model sits in user_models_dir()) or an absolute path.
    Shipped ids cannot be replaced. Written atomically; returns the manifest path.
    Raises ValueError for a shipped id, OSError when the folder is not writable.
    """
    if any(e.id == entry.id for e in _read_manifest(manifest_path())):
        raise ValueError(f"'{entry.id}' is a built-in model id; choose another name")
    path = user_manifest_path()
    entries = [e for e in _read_manifest(path, set_aside_bad=True) if e.id != entry.id] + [entry]
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, json.dumps({"format": 1, "models": [e.to_json() for e in entries]},
                                  indent=2))
    return path


def unregister_user_model(model_id: str) -> bool:
    """Remove a model from the user manifest (its files are the caller's); True when it
    was there. Raises OSError when the manifest cannot be written."""
    path = user_manifest_path()
    entries = _read_manifest(path)
    kept = [e for e in entries if e.id != model_id]
    if len(kept) == len(entries):
        return False
    write_atomic(path, json.dumps({"format": 1, "models": [e.to_json() for e in kept]}, indent=2))
    return True


def user_entries() -> list[ModelEntry]:
    """The models the user added (the user manifest alone)."""
    return _read_manifest(user_manifest_path())
