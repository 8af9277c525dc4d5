"""Reading files a person names: only regular files, never more than a size cap.

A FIFO or a device named like a photo makes open() or read() wait forever; /dev/zero or a
sparse multi-gigabyte file makes a plain read_bytes() grow memory without bound. Every
path the app reads on someone's say-so (images, `_BB.txt` boxes, the settings file) goes
through `read_regular_file`, which looks at what the path is before reading it and stops
at the cap whatever the file claims.

Writing: `write_atomic`, the one way the app replaces a file it owns (settings, profiles,
model lists, caches, reports), so a crash or a full disk never leaves half a file.

Also here: the pixel limit for decoded images, because OpenCV keeps its own copy of it,
read from the environment once when its library loads, so `fasdesk/__init__.py` sets it
before anything imports cv2 (this module must not import cv2 itself).
"""
from __future__ import annotations

import errno
import io
import os
import secrets
import stat

# 200 megapixels: bigger than any phone or DSLR photo, far below a decompression bomb.
MAX_PIXELS = 200_000_000
# The largest image file read: a MAX_PIXELS photo stored uncompressed at 8 bits per RGB
# channel, plus room for metadata. Camera photos are a small fraction of this.
MAX_IMAGE_BYTES = 3 * MAX_PIXELS + (16 << 20)
# OpenCV's own decoder limits (see modules/imgcodecs/src/loadsave.cpp).
OPENCV_PIXEL_LIMIT_ENV = "OPENCV_IO_MAX_IMAGE_PIXELS"

_CHUNK = 1 << 20


class FileRefused(OSError):
    """A path that is not read: not a regular file, or over the size cap. str() and
    .strerror are the one-line reason (without the path)."""

    def __init__(self, reason: str, code: int = errno.EINVAL):
        super().__init__(code, reason)

    def __str__(self) -> str:
        return self.strerror


def limit_opencv_decoders(max_pixels: int = MAX_PIXELS) -> None:
    """Make OpenCV's decoders refuse images over `max_pixels` themselves (whatever format
    they recognise), unless the environment asks for less. Works only before cv2 loads."""
    current = os.environ.get(OPENCV_PIXEL_LIMIT_ENV, "")
    if not (current.isdigit() and 0 < int(current) <= max_pixels):
        os.environ[OPENCV_PIXEL_LIMIT_ENV] = str(max_pixels)


def kind_of(mode: int) -> str:
    """What a stat mode is, in words, for messages."""
    if stat.S_ISREG(mode):
        return "a regular file"
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def safe_stat(path: str | os.PathLike) -> os.stat_result | None:
    """stat() that never raises: None when the path cannot be looked at (missing, name too
    long, no permission...)."""
    try:
        return os.stat(path)
    except (OSError, ValueError):  # ValueError: a NUL byte in the name
        return None


def is_dir(path: str | os.PathLike) -> bool:
    """Path.is_dir() without its exceptions (Python < 3.12 raises 'File name too long')."""
    st = safe_stat(path)
    return st is not None and stat.S_ISDIR(st.st_mode)


def is_regular_file(path: str | os.PathLike) -> bool:
    st = safe_stat(path)
    return st is not None and stat.S_ISREG(st.st_mode)


def not_regular_reason(mode: int) -> str:
    what = kind_of(mode)
    if what == "a folder":
        return "is a folder, not a file"
    return f"is {what}, not a regular file; not read"


def read_regular_file(path: str | os.PathLike, max_bytes: int) -> bytes:
    """The bytes of a regular file of at most `max_bytes`.

    Raises FileRefused for a FIFO, device, socket or folder (never opened in a way that
    blocks) and for a file over the cap (never read past it, even if it grows or its size
    is a lie, as in /proc), and the usual OSError (FileNotFoundError, ...) otherwise.
    """
    path = os.fspath(path)
    st = os.stat(path)
    if not stat.S_ISREG(st.st_mode):
        raise FileRefused(not_regular_reason(st.st_mode),
                          errno.EISDIR if stat.S_ISDIR(st.st_mode) else errno.EINVAL)
    if st.st_size > max_bytes:
        raise FileRefused(_too_large(st.st_size, max_bytes), errno.EFBIG)
    # O_NONBLOCK: if the path was swapped for a FIFO since the stat, open() still returns.
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    fd = os.open(path, flags)
    with io.open(fd, "rb", closefd=True) as fh:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise FileRefused(not_regular_reason(mode))
        data = fh.read(st.st_size) if st.st_size else b""
        extra = []
        total = len(data)
        while True:  # more than stat said: a growing file, or a /proc-style size of 0
            chunk = fh.read(min(_CHUNK, max_bytes + 1 - total))
            if not chunk:
                break
            extra.append(chunk)
            total += len(chunk)
            if total > max_bytes:
                raise FileRefused(_too_large(total, max_bytes, growing=True), errno.EFBIG)
    return data + b"".join(extra) if extra else data


def _too_large(size: int, max_bytes: int, growing: bool = False) -> str:
    more = "more than " if growing else ""
    return (f"file too large ({more}{_size(size)}, the limit is {_size(max_bytes)}); "
            f"not read")


def _size(n: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} bytes"


def describe_path_problem(path: str | os.PathLike) -> str | None:
    """Why `path` cannot be read as a file, in words, or None when it is a regular file."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return "not found"
    except (OSError, ValueError) as exc:
        return getattr(exc, "strerror", None) or str(exc)
    if stat.S_ISREG(st.st_mode):
        return None
    return not_regular_reason(st.st_mode)


def write_atomic(path: str | os.PathLike, data: bytes | str, durable: bool = False) -> None:
    """Replace `path` with `data` (str is written as UTF-8) through a temporary file of its
    own in the same folder: readers see the old file or the new one, never a part, and a
    failed write leaves neither a half file nor the temporary one. `durable`: flush to
    disk before the rename (for files a power cut must not lose).

    Only a regular file (or nothing) is replaced: a device, FIFO, socket or folder at
    `path` raises FileRefused, whoever runs it (root could otherwise rename over
    /dev/something)."""
    path = os.fspath(path)
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        st = None
    if st is not None and stat.S_ISLNK(st.st_mode):
        st = safe_stat(path)  # a link to a regular file is replaced like before
    if st is not None and not stat.S_ISREG(st.st_mode) and not stat.S_ISLNK(st.st_mode):
        raise FileRefused(f"{path} {not_regular_reason(st.st_mode)}; not replaced")
    folder, name = os.path.split(path)
    # A hidden, uniquely named file beside the target (same file system, so the rename is
    # atomic), opened like open() does so it gets the usual umask permissions, not
    # mkstemp's owner-only ones.
    tmp = os.path.join(folder, f".{name}.{secrets.token_hex(4)}.tmp")
    try:
        with open(tmp, "xb") as handle:
            handle.write(data.encode("utf-8") if isinstance(data, str) else data)
            if durable:
                handle.flush()
                os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


# -- JSON from disk ------------------------------------------------------------------------
# Every JSON file the app reads (settings, profiles, manifests, model cards, sessions,
# reports, dataset label files) goes through `read_json`: regular files only, a size cap,
# a nesting cap checked before parsing (so 50,000 '[' is a one-line error, never a
# RecursionError), and `take` for typed field access (a wrong type is a JsonError that
# names the field, never a TypeError later).

MAX_JSON_BYTES = 1 << 20
MAX_JSON_DEPTH = 64

_JSON_STRING = None  # compiled on first use (keeps this module's import light)


class JsonError(ValueError):
    """JSON that is not read: not UTF-8, not JSON, nested too deep, or a field of the wrong
    type. str() is the one-line reason."""


def json_depth(text: str) -> int:
    """How deeply arrays and objects nest in JSON text (strings are skipped)."""
    global _JSON_STRING
    import re

    if _JSON_STRING is None:
        _JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.S)
    brackets = re.sub(r"[^\[\]{}]", "", _JSON_STRING.sub("", text))
    depth = deepest = 0
    for ch in brackets:
        if ch in "[{":
            depth += 1
            if depth > deepest:
                deepest = depth
        else:
            depth -= 1
    return deepest


def parse_json(data: bytes | str, max_depth: int = MAX_JSON_DEPTH, expect: type | None = None):
    """Parsed JSON text; raises JsonError (one line) for anything that is not plain JSON
    within the nesting cap, or not of type `expect` at the top."""
    import json

    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise JsonError("not UTF-8 text") from None
    if json_depth(data) > max_depth:
        raise JsonError(f"nested too deeply (more than {max_depth} levels)")
    try:
        value = json.loads(data)  # NaN/Infinity parse; take() refuses them in number fields
    except RecursionError:
        raise JsonError(f"nested too deeply") from None
    except ValueError as exc:
        raise JsonError(f"not valid JSON ({str(exc).splitlines()[0]})") from None
    if expect is not None and not isinstance(value, expect):
        raise JsonError(f"not a JSON {_TYPE_WORDS.get(expect, expect.__name__)} "
                        f"(found {_type_word(value)})")
    return value


def read_json(path: str | os.PathLike, max_bytes: int = MAX_JSON_BYTES,
              max_depth: int = MAX_JSON_DEPTH, expect: type | None = dict):
    """A JSON file's value (by default it must be an object). Raises FileNotFoundError,
    FileRefused / OSError for a file that cannot be read, JsonError for bad content."""
    return parse_json(read_regular_file(path, max_bytes), max_depth, expect)


_TYPE_WORDS = {dict: "object", list: "array", str: "text", float: "number", int: "whole number",
               bool: "true/false"}


def _type_word(value) -> str:
    if value is None:
        return "null"
    for kind, word in (((bool,), "true/false"), ((int, float), "number"), ((str,), "text"),
                       ((list,), "array"), ((dict,), "object")):
        if isinstance(value, kind):
            return word
    return type(value).__name__


_MISSING = object()


def take(data: dict, key: str, kind: type, default=_MISSING, where: str = ""):
    """data[key] checked to be of `kind` (float: any finite number, returned as float; int:
    a whole number, not true/false). A missing key or null gives `default` (JsonError when
    there is none); a wrong type is a JsonError naming the field."""
    import math

    name = f"{where}.{key}" if where else key
    if not isinstance(data, dict):
        raise JsonError(f"{where or 'value'}: expected an object, found {_type_word(data)}")
    value = data.get(key)
    if value is None:
        if default is _MISSING:
            raise JsonError(f"{name}: missing")
        return default
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) \
                or not math.isfinite(value):
            raise JsonError(f"{name}: expected a number, found {_type_word(value)}")
        return float(value)
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise JsonError(f"{name}: expected a whole number, found {_type_word(value)}")
        return value
    if not isinstance(value, kind):
        raise JsonError(f"{name}: expected {_TYPE_WORDS.get(kind, kind.__name__)}, "
                        f"found {_type_word(value)}")
    return value


def set_aside(path: str | os.PathLike) -> str | None:
    """Rename a bad file to `name.bad` (replacing an older .bad) so the next start does not
    trip on it again; returns the new path, or None when it could not be moved."""
    path = os.fspath(path)
    target = path + ".bad"
    try:
        os.replace(path, target)
    except OSError:
        return None
    return target


# -- work folders a killed process leaves ---------------------------------------------------
# A long job that writes several files (training export) works in a hidden folder beside
# its output, named `.<prefix>-<pid>-<random>`; a killed job leaves it behind. The next
# job (or the next start) removes those whose process is gone.

def work_dir_prefix(prefix: str) -> str:
    """The name prefix of this process's work folders: `.export-<pid>-`."""
    return f".{prefix}-{os.getpid()}-"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # someone else's process: leave its folder alone
    return True


def clean_stale_work_dirs(folder: str | os.PathLike, prefix: str) -> list[str]:
    """Remove `.<prefix>-*` folders in `folder` whose process is no longer running (older
    ones without a pid in the name: when over a day old). Returns what was removed; never
    raises."""
    import shutil
    import time

    removed = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        if not entry.name.startswith(f".{prefix}-"):
            continue
        try:
            if not entry.is_dir(follow_symlinks=False):
                continue
            pid_text = entry.name[len(prefix) + 2:].split("-", 1)[0]
            if pid_text.isdigit() and "-" in entry.name[len(prefix) + 2:]:
                stale = not _alive(int(pid_text))
            else:
                stale = time.time() - entry.stat(follow_symlinks=False).st_mtime > 86400
            if stale:
                shutil.rmtree(entry.path, ignore_errors=True)
                removed.append(entry.path)
        except OSError:
            continue
    return removed
