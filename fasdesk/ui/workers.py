"""The one way the UI runs short background work: `start_worker(func, ...)`.

The shape is superqt's `create_worker`: the function runs on a thread pool and its
`Worker` reports back by Qt signals, delivered on the UI thread:

    worker = start_worker(classify, paths)
    worker.returned.connect(show)          # the function's return value
    worker.errored.connect(say)            # the exception it raised
    worker.progress.connect(advance)       # each value a generator function yields
    worker.finished.connect(done)          # always, last
    worker.cancel()                        # ask it to stop

Cancelling is cooperative: a generator function is stopped at its next `yield` (then
`cancelled` is emitted instead of `returned`); a plain function looks at
`current_worker().cancelled` (or passes `worker.is_cancelled` to core code as its
`should_stop`) and can report with `current_worker().report(value)`.

Every started worker is in one registry until it ends. The app's exit cancels them all
and waits for them with one timeout (`stop_all`); a worker stuck in a system call is not
waited for beyond it. Only the live controller (its own long-lived thread) and the
training child process (ui/backend_process.py: read on its own thread) are not workers.
"""
from __future__ import annotations

import inspect
import logging
import threading
import time
from typing import Any, Callable

from PySide6.QtCore import QObject, QRunnable, QThreadPool, QTimer, Signal, Slot

log = logging.getLogger(__name__)

# At most this many workers run at once; more wait in the pool's queue.
MAX_THREADS = 4
# How long the app's exit waits for running workers, all together.
EXIT_TIMEOUT_S = 5.0

_local = threading.local()
_lock = threading.Lock()
_running: set["Worker"] = set()  # started and not yet ended
_undelivered: set["Worker"] = set()  # ended, `finished` not yet delivered
_pool: QThreadPool | None = None


def _thread_pool() -> QThreadPool:
    global _pool
    if _pool is None:
        _pool = QThreadPool()
        _pool.setMaxThreadCount(MAX_THREADS)
        _pool.setExpiryTimeout(10_000)
    return _pool


class Cancelled(Exception):
    """Raised by `Worker.check()` in a cancelled worker; ends it as cancelled, no error."""


class _Signals(QObject):
    started = Signal()
    returned = Signal(object)
    errored = Signal(object)
    cancelled = Signal()
    progress = Signal(object)
    finished = Signal()

    def __init__(self, worker: "Worker"):
        super().__init__()
        self._worker = worker
        self.finished.connect(self._delivered)

    @Slot()
    def _delivered(self) -> None:
        # On the UI thread, after everyone connected to `finished` heard it: the worker
        # may now go (it was kept alive so its queued signals had a sender).
        with _lock:
            _undelivered.discard(self._worker)
        self._worker = None


class Worker(QRunnable):
    """One function run on the worker pool; see the module's docstring."""

    def __init__(self, func: Callable, *args: Any, **kwargs: Any):
        super().__init__()
        self.setAutoDelete(False)
        self.func, self.args, self.kwargs = func, args, kwargs
        self.name = getattr(func, "__qualname__", repr(func))
        self.signals = _Signals(self)
        self._cancel = threading.Event()
        self._done = threading.Event()
        self._queued = False  # handed to the pool

    # The signals, by the names superqt uses.
    @property
    def started(self): return self.signals.started  # noqa: E704
    @property
    def returned(self): return self.signals.returned  # noqa: E704
    @property
    def errored(self): return self.signals.errored  # noqa: E704
    @property
    def cancelled(self): return self.signals.cancelled  # noqa: E704
    @property
    def progress(self): return self.signals.progress  # noqa: E704
    @property
    def finished(self): return self.signals.finished  # noqa: E704

    def cancel(self) -> None:
        """Ask the function to stop (it ends at its next yield or check)."""
        self._cancel.set()

    def is_cancelled(self) -> bool:
        return self._cancel.is_set()

    def check(self) -> None:
        """In the function: raise Cancelled when the worker was asked to stop."""
        if self._cancel.is_set():
            raise Cancelled()

    def report(self, value: Any) -> None:
        """In the function: send a progress value (delivered on the UI thread)."""
        self.signals.progress.emit(value)

    @property
    def done(self) -> bool:
        return self._done.is_set()

    def wait(self, timeout_s: float | None = None) -> bool:
        """Block until the function has ended; False when the timeout came first."""
        return self._done.wait(timeout_s)

    def start(self) -> "Worker":
        """Hand the function to the pool now (connect the signals first: a signal
        emitted before a connection exists reaches no one)."""
        with _lock:
            if self._queued or self._done.is_set():
                return self
            self._queued = True
            _running.add(self)
            _undelivered.add(self)
        _thread_pool().start(self)
        return self

    def _start_later(self) -> "Worker":
        with _lock:
            _running.add(self)
            _undelivered.add(self)
        QTimer.singleShot(0, self.start)
        return self

    def _drop_unstarted(self) -> None:
        """At exit: a worker the event loop never got to start ends here, not run."""
        with _lock:
            if self._queued:
                return
            self._queued = True
            _running.discard(self)
            _undelivered.discard(self)
        self._done.set()

    def run(self) -> None:  # on a pool thread
        _local.worker = self
        signals = self.signals
        try:
            signals.started.emit()
            if self._cancel.is_set():
                raise Cancelled()
            result = self.func(*self.args, **self.kwargs)
            if inspect.isgenerator(result):
                result = self._drain(result)
        except Cancelled:
            signals.cancelled.emit()
        except Exception as exc:  # reported to the UI, which says it in one line
            log.debug("worker %s failed", self.name, exc_info=True)
            signals.errored.emit(exc)
        else:
            if self._cancel.is_set() and result is None:
                signals.cancelled.emit()
            else:
                signals.returned.emit(result)
        finally:
            _local.worker = None
            with _lock:
                _running.discard(self)
            self._done.set()
            signals.finished.emit()

    def _drain(self, generator) -> Any:
        try:
            while True:
                if self._cancel.is_set():
                    generator.close()
                    raise Cancelled()
                signals_value = next(generator)
                self.signals.progress.emit(signals_value)
        except StopIteration as stop:
            return stop.value


def start_worker(func: Callable, *args: Any, **kwargs: Any) -> Worker:
    """Run func(*args, **kwargs) on the worker pool. The run starts when the UI thread's
    event loop next turns, so signals connected right after this call are all heard
    (as superqt's create_worker with its connections). The signals are delivered on
    the UI thread."""
    return Worker(func, *args, **kwargs)._start_later()


def current_worker() -> Worker | None:
    """The worker running the calling code, or None outside a worker."""
    return getattr(_local, "worker", None)


def running_workers() -> list[Worker]:
    with _lock:
        return list(_running)


def stop_all(timeout_s: float = EXIT_TIMEOUT_S) -> bool:
    """Cancel every running worker and wait for them, `timeout_s` for all together.
    True when none is left running (the app's exit then needs no hard exit)."""
    workers = running_workers()
    for worker in workers:
        worker.cancel()
        worker._drop_unstarted()
    deadline = time.monotonic() + timeout_s
    for worker in workers:
        if not worker.wait(max(0.0, deadline - time.monotonic())):
            log.warning("background work %s did not stop in %.0f s", worker.name, timeout_s)
    return not running_workers()
