"""Downloading model files named in the manifest, verified and written atomically.

The bytes go to a temporary file in the destination folder while their SHA-256 is
computed; only a complete file whose size and hash match the manifest is renamed into
place (os.replace, atomic on one file system). The manifest's size is enforced while the
bytes arrive: a server that announces or sends more stops the download at once, so a
wrong URL cannot fill the disk. A failed, interrupted (Ctrl+C, SIGTERM), cancelled or
corrupt download leaves nothing behind; the leftover of a process killed outright
(SIGKILL) is removed by the next download of that file. Used by `fasdesk models pull`
and by the GUI (from a worker thread: pass `progress` and `cancelled` callbacks).
"""
from __future__ import annotations

import contextlib
import hashlib
import http.client
import os
import secrets
import signal
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Callable, Sequence

from fasdesk import __version__
from fasdesk.core.io.paths import user_models_dir
from fasdesk.core.models.registry import MODELS_DIR_ENV, ModelEntry

# Overrides the folder part of every manifest URL (a mirror, or a local server in tests).
URL_BASE_ENV = "FASDESK_MODELS_URL_BASE"
CHUNK = 64 * 1024
TIMEOUT_S = 30.0
# The most a download may bring when the manifest gives no size.
MAX_UNSIZED_BYTES = 1 << 30
# A .part file untouched this long belongs to no running download (reads time out sooner).
STALE_PART_S = 600


class DownloadError(Exception):
    """A download that did not produce a verified file; the message is one line."""


class DownloadCancelled(DownloadError):
    """The caller's `cancelled()` returned True; nothing was saved."""


def model_url(entry: ModelEntry, url_base: str | None = None) -> str:
    """Where to fetch an entry: the manifest URL, or `url_base` + file name."""
    base = url_base or os.environ.get(URL_BASE_ENV)
    if base:
        return base.rstrip("/") + "/" + urllib.parse.quote(entry.file)
    return entry.url


def _reason(exc: BaseException) -> str:
    """A short human reason from a socket/urllib error."""
    inner = getattr(exc, "reason", exc)
    if isinstance(inner, socket.gaierror):
        return "host name not resolved"
    if isinstance(inner, ConnectionRefusedError):
        return "connection refused"
    if isinstance(inner, (socket.timeout, TimeoutError)):
        return "timed out"
    text = getattr(inner, "strerror", None) or str(inner) or type(inner).__name__
    return text.strip().splitlines()[0] if text.strip() else type(inner).__name__


def manual_copy_hint(files: Sequence[str], dest_dir: str | os.PathLike | None = None) -> str:
    """How to install model files without the network, as a clause for a message."""
    folder = dest_dir if dest_dir is not None else user_models_dir()
    names = " and ".join(files) if len(files) <= 2 else ", ".join(files[:-1]) + " and " + files[-1]
    return (f"copy {names} (from a machine that has {'it' if len(files) == 1 else 'them'}) "
            f"into {folder}, or set {MODELS_DIR_ENV} to a folder that holds "
            f"{'it' if len(files) == 1 else 'them'}")


def download_model(entry: ModelEntry, dest_dir: str | os.PathLike | None = None, *,
                   url_base: str | None = None,
                   progress: Callable[[int, int], None] | None = None,
                   cancelled: Callable[[], bool] | None = None,
                   timeout: float = TIMEOUT_S, also_missing: Sequence[str] = ()) -> Path:
    """Download `entry` into `dest_dir` (default: the user models folder); return the path.

    progress(done_bytes, total_bytes) is called as bytes arrive (total is 0 when the
    server does not say); cancelled() is polled between chunks. Raises DownloadError
    (DownloadCancelled when cancelled) with a one-line message; on any failure the
    destination folder is left as it was. `also_missing`: the other files the caller
    still has to fetch, named with this one when the server cannot be reached.
    """
    url = model_url(entry, url_base)
    if not url:
        raise DownloadError(f"model '{entry.id}' has no download URL in the manifest")
    dest_dir = Path(dest_dir) if dest_dir is not None else user_models_dir()
    try:
        dest_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DownloadError(f"cannot create {dest_dir}: {exc.strerror or exc}") from None
    target = dest_dir / entry.file
    host = urllib.parse.urlsplit(url).netloc or url

    request = urllib.request.Request(url, headers={"User-Agent": f"fasdesk/{__version__}"})
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        raise DownloadError(f"{entry.file}: server answered HTTP {exc.code} {exc.reason} "
                            f"for {url}") from None
    except (urllib.error.URLError, OSError) as exc:
        files = [entry.file, *(f for f in also_missing if f != entry.file)]
        raise DownloadError(f"cannot reach {host} ({_reason(exc)}): offline? Connect and run "
                            f"'fasdesk models pull' again, or "
                            f"{manual_copy_hint(files, dest_dir)}") from None

    limit = entry.size or MAX_UNSIZED_BYTES
    try:
        total = int(response.headers.get("Content-Length") or 0)
    except ValueError:
        total = 0
    if total > limit or (entry.size and total and total != entry.size):
        response.close()
        raise DownloadError(f"{entry.file}: the server offers {total} bytes, the manifest says "
                            f"{entry.size or f'at most {limit}'}; wrong file, nothing downloaded")

    _remove_stale_parts(dest_dir, entry.file)
    # A hidden, uniquely named file beside the target (same file system, so os.replace is
    # atomic); open() rather than mkstemp so the file gets the usual umask permissions.
    tmp = dest_dir / f".{entry.file}.{secrets.token_hex(4)}.part"
    try:
        out = open(tmp, "xb")
    except OSError as exc:
        response.close()
        raise DownloadError(f"cannot write in {dest_dir}: {exc.strerror or exc}") from None
    try:
        with response, out, _sigterm_stops(entry.file):
            digest = hashlib.sha256()
            done = 0
            if progress:
                progress(0, total)
            while True:
                if cancelled is not None and cancelled():
                    raise DownloadCancelled(f"{entry.file}: download cancelled; nothing saved")
                try:
                    block = response.read(CHUNK)
                except http.client.IncompleteRead as exc:
                    done += len(exc.partial)
                    raise DownloadError(f"{entry.file}: connection dropped after {done} of "
                                        f"{total} bytes; nothing saved, try again") from None
                except (OSError, http.client.HTTPException) as exc:
                    raise DownloadError(f"{entry.file}: download failed after {done} bytes "
                                        f"({_reason(exc)}); nothing saved, try again") from None
                if not block:
                    break
                if done + len(block) > limit:
                    raise DownloadError(f"{entry.file}: the server sent more than the "
                                        f"{limit} bytes the manifest allows; wrong file, "
                                        f"nothing saved")
                out.write(block)
                digest.update(block)
                done += len(block)
                if progress:
                    progress(done, total)
            if total and done != total:
                raise DownloadError(f"{entry.file}: connection dropped after {done} of "
                                    f"{total} bytes; nothing saved, try again")
            if entry.size and done != entry.size:
                raise DownloadError(f"{entry.file}: got {done} bytes, the manifest says "
                                    f"{entry.size}; wrong or corrupt file, nothing saved")
            actual = digest.hexdigest()
            if entry.sha256 and actual != entry.sha256.lower():
                raise DownloadError(f"{entry.file}: SHA-256 {actual[:16]}... does not match "
                                    f"the manifest's {entry.sha256[:16]}...; corrupt or "
                                    f"tampered download, nothing saved")
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, target)
    except BaseException:
        # Whatever stopped us (error, cancel, Ctrl+C), no partial file stays behind.
        tmp.unlink(missing_ok=True)
        raise
    return target


class DownloadTerminated(DownloadCancelled):
    """The process got SIGTERM during the download; nothing was saved."""


@contextlib.contextmanager
def _sigterm_stops(name: str):
    """While the bytes stream, SIGTERM raises DownloadTerminated (so the .part file is
    removed) instead of killing the process on the spot. Python runs signal handlers on
    the main thread only, so elsewhere (the GUI's worker) this does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum, frame):
        raise DownloadTerminated(f"{name}: download stopped (terminated); nothing saved")

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _remove_stale_parts(folder: Path, file_name: str) -> None:
    """Remove what killed downloads of `file_name` left in `folder` (see STALE_PART_S)."""
    now = time.time()
    for part in folder.glob(f".{file_name}.*.part"):
        try:
            if now - part.stat().st_mtime > STALE_PART_S:
                part.unlink()
        except OSError:
            pass


class ProgressLine:
    """A `progress` callback that keeps one status line (bytes, %, rate) on a stream."""

    def __init__(self, name: str, stream, interval: float = 0.2):
        self.name = name
        self.stream = stream
        self.interval = interval
        self.live = bool(getattr(stream, "isatty", lambda: False)())
        self.start = time.monotonic()
        self._last = 0.0
        self._width = 0

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if self.live and (now - self._last >= self.interval or (total and done >= total)):
            self._last = now
            self._write(self.text(done, total, now))

    def text(self, done: int, total: int, now: float | None = None) -> str:
        elapsed = max((now or time.monotonic()) - self.start, 1e-6)
        rate = done / elapsed
        pct = f" {100.0 * done / total:5.1f}%" if total else ""
        size = f"{done / 1e6:.1f}/{_mb(total)}" if total else _mb(done)
        return f"{self.name}: {size}{pct} {_mb(rate)}/s"

    def _write(self, text: str) -> None:
        pad = max(self._width - len(text), 0)
        self._width = len(text)
        self.stream.write("\r" + text + " " * pad)
        self.stream.flush()

    def finish(self) -> None:
        """End the live line so the next message starts on a fresh line (idempotent)."""
        if self.live and self._width:
            self.stream.write("\n")
            self.stream.flush()
            self._width = 0


def _mb(n: float) -> str:
    return f"{n / 1e6:.1f} MB"
