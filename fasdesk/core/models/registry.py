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
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path

from fasdesk.core.io.files import is_regular_file, write_atomic
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
        known = {f for f in cls.__dataclass_fields__ if f != "extra"}
        kwargs = {k: v for k, v in data.items() if k in known}
        kwargs["classes"] = tuple(kwargs.get("classes", ()))
        return cls(**kwargs, extra={k: v for k, v in data.items() if k not in known})

    def to_json(self) -> dict:
        data = {k: getattr(self, k) for k in self.__dataclass_fields__ if k != "extra"}
        data["classes"] = list(self.classes)
        data.update(self.extra)
        return data


def manifest_path() -> Path:
    return app_root() / "models" / "manifest.json"


def user_manifest_path() -> Path:
    return user_models_dir() / "manifest.json"


def _read_manifest(path: Path) -> list[ModelEntry]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return []
    except (OSError, ValueError):
        return []
    return [ModelEntry.from_json(m) for m in data.get("models", [])]


def load_manifest() -> list[ModelEntry]:
    """The shipped models followed by those the user added (trained, optimised)."""
    entries = _read_manifest(manifest_path())
    seen = {e.id for e in entries}
    entries += [e for e in _read_manifest(user_manifest_path()) if e.id not in seen]
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
    for folder in search_dirs():
        candidate = folder / file_name
        if is_regular_file(candidate):
            return candidate
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
            raise MissingModelError(f"model file not found: {path}")
        return path
    model_id = str(model) if model else (default_liveness_id() if kind == "liveness" else DEFAULT_DETECTOR)
    entry = get_entry(model_id)
    if entry is None:
        known = ", ".join(e.id for e in load_manifest())
        raise MissingModelError(f"unknown model '{model_id}' (known: {known})")
    path = find_file(entry.file)
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


# (resolved path) -> ((size, mtime_ns, inode), sha256)
_digests: dict[str, tuple[tuple[int, int, int], str]] = {}
_digests_lock = threading.Lock()


def file_sha256(path: str | os.PathLike) -> str:
    """The SHA-256 of a file, computed once per process and reused while the file keeps its
    size, modification time and inode (a file replaced or rewritten is hashed again).
    Raises OSError."""
    real = os.path.realpath(path)
    st = os.stat(real)
    stamp = (st.st_size, st.st_mtime_ns, st.st_ino)
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
    entries = [e for e in _read_manifest(path) if e.id != entry.id] + [entry]
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
