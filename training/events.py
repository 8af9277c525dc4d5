"""The JSON-lines progress protocol of `python -m training ... --events`.

With `--events`, every subcommand (prep, train, eval, export) writes one JSON object per
line on stdout; human-readable progress keeps going to stderr. The GUI's Training tab runs
the backend as a separate process and parses these lines with `parse_line`. This module
imports nothing but the standard library (no torch), so the GUI can import it.

Every object has `"event"` (one of EVENT_TYPES) and `"time"` (Unix seconds, float).
The other fields, per event type (`?` = optional):

- ``start``:    command (str: "prep"|"train"|"eval"|"export"), total? (int: units of work
                the progress events count to, e.g. images for prep, steps for train),
                plus free context (e.g. out, device, epochs).
- ``progress``: done (int), total (int), eta_s (float|null, seconds left),
                plus per-command extras, e.g. train: epoch, step, loss, acc, lr, images_s;
                prep: skipped.
- ``metric``:   a set of named numbers at a point in time; scope (str: "epoch", "eval",
                "export", ...) and the values, e.g. train per epoch: epoch, train_loss,
                train_acc, val_loss, val_acc, lr, best (bool).
- ``log``:      message (str), level ("debug"|"info"|"warning"|"error").
- ``artifact``: path (str), kind (str: "checkpoint"|"best"|"manifest"|"labels"|"report"|
                "onnx"|"model_card"|...) — a file the run has written (completely).
- ``done``:     the summary of a successful run (free fields, e.g. counts or metrics).
                The process then exits 0.
- ``error``:    message (str, one line). The process then exits non-zero; the same line
                goes to stderr.

Non-JSON lines on stdout (e.g. from a library) are not events: `parse_line` returns None
for them and the reader should ignore them.
"""
from __future__ import annotations

import json
import math
import sys
import time
from typing import IO, Any

EVENT_TYPES = ("start", "progress", "metric", "log", "artifact", "done", "error")
LOG_LEVELS = ("debug", "info", "warning", "error")


def _clean(value: Any) -> Any:
    """Make a value JSON-safe: NaN/inf become null, numpy scalars become Python numbers."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if hasattr(value, "item") and callable(value.item) and getattr(value, "ndim", 1) == 0:
        return _clean(value.item())  # numpy / torch scalar
    if hasattr(value, "tolist") and callable(value.tolist):
        return _clean(value.tolist())  # numpy array
    if hasattr(value, "__fspath__"):
        return str(value)
    return value


def encode(event: str, **fields: Any) -> str:
    """Return one protocol line (without the newline) for `event` with `fields`."""
    if event not in EVENT_TYPES:
        raise ValueError(f"unknown event type {event!r}; expected one of {EVENT_TYPES}")
    record = {"event": event, "time": round(time.time(), 3)}
    record.update(_clean(fields))
    return json.dumps(record, separators=(",", ":"), allow_nan=False)


def parse_line(line: str | bytes) -> dict | None:
    """Parse one stdout line; return the event dict, or None if it is not an event."""
    if isinstance(line, bytes):
        line = line.decode("utf-8", errors="replace")
    line = line.strip()
    if not line.startswith("{"):
        return None
    try:
        record = json.loads(line)
    except ValueError:
        return None
    if not isinstance(record, dict) or record.get("event") not in EVENT_TYPES:
        return None
    return record


class Emitter:
    """Writes events; without `enabled` it only writes logs/errors as text on stderr.

    `enabled` is the subcommand's `--events` flag. Every event line is flushed at once, so
    a reader on the other end of a pipe sees it immediately.
    """

    def __init__(self, enabled: bool = False, stream: IO[str] | None = None,
                 text_stream: IO[str] | None = None):
        self.enabled = enabled
        self._stream = stream
        self._text = text_stream

    @property
    def stream(self) -> IO[str]:
        return self._stream if self._stream is not None else sys.stdout

    @property
    def text(self) -> IO[str]:
        return self._text if self._text is not None else sys.stderr

    def emit(self, event: str, **fields: Any) -> None:
        line = encode(event, **fields)
        if self.enabled:
            self.stream.write(line + "\n")
            self.stream.flush()

    def start(self, command: str, total: int | None = None, **fields: Any) -> None:
        if total is not None:
            fields["total"] = int(total)
        self.emit("start", command=command, **fields)

    def progress(self, done: int, total: int, eta_s: float | None = None, **fields: Any) -> None:
        self.emit("progress", done=int(done), total=int(total), eta_s=eta_s, **fields)

    def metric(self, **values: Any) -> None:
        self.emit("metric", **values)

    def log(self, message: str, level: str = "info") -> None:
        """A message for the person: an event with --events, and always a line on stderr."""
        if level not in LOG_LEVELS:
            level = "info"
        self.emit("log", message=message, level=level)
        if level != "debug":
            self.text.write(message + "\n")
            self.text.flush()

    def artifact(self, path: Any, kind: str) -> None:
        self.emit("artifact", path=str(path), kind=kind)

    def done(self, **summary: Any) -> None:
        self.emit("done", **summary)

    def error(self, message: str) -> None:
        """The failure line: on stderr always, as an error event with --events."""
        message = " ".join(str(message).split())  # one line
        self.emit("error", message=message)
        self.text.write(f"error: {message}\n")
        self.text.flush()


class ProgressLine:
    """A throttled human progress line on stderr (`\\r`-rewritten on a terminal)."""

    def __init__(self, label: str, stream: IO[str] | None = None, interval_s: float = 0.5):
        self.label = label
        self._stream = stream
        self.interval_s = interval_s
        self._last = 0.0
        self._shown: tuple | None = None

    def update(self, done: int, total: int, extra: str = "", force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last < self.interval_s and done < total:
            return
        if (done, total, extra) == self._shown:
            return
        self._last = now
        self._shown = (done, total, extra)
        stream = self._stream if self._stream is not None else sys.stderr
        text = f"{self.label}: {done}/{total}" + (f" {extra}" if extra else "")
        if stream.isatty():
            stream.write("\r" + text + ("\n" if done >= total else ""))
        else:
            stream.write(text + "\n")
        stream.flush()


def eta(done: int, total: int, elapsed_s: float) -> float | None:
    """Seconds left at the average rate so far, or None before any work is done."""
    if done <= 0 or elapsed_s <= 0:
        return None
    return max(0.0, elapsed_s / done * (total - done))
