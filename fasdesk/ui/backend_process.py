"""The training backend's child process for the Training tab, as Qt signals.

The run itself is fasdesk.app.backend.BackendProcess (the one runner: it starts
`python -m training SUB ... --events`, parses the events with training.events and says
why a run failed); here it runs on its own reader thread, and its events, log lines and
end arrive as signals on the UI thread. Stopping asks the child to end (SIGTERM, so the
trainer can write its checkpoint) and only kills it when it does not.
"""
from __future__ import annotations

import threading
from collections import deque

from PySide6.QtCore import QObject, Qt, Signal

from fasdesk.app.backend import (CANCELLED, STOP_GRACE_S, TAIL_LINES, BackendError,
                                 BackendProcess)


class BackendRun(QObject):
    event = Signal(dict)  # one parsed protocol event
    log_line = Signal(str)  # one stderr line (and stdout lines that are not events)
    finished = Signal(bool, str)  # ok, message (the error line, or "cancelled")
    _ended = Signal(bool, str)  # from the reader thread

    def __init__(self, parent=None):
        super().__init__(parent)
        self.process: BackendProcess | None = None
        self._thread: threading.Thread | None = None
        self._running = False
        self._ended.connect(self._on_ended, Qt.QueuedConnection)

    @property
    def running(self) -> bool:
        """From start() until `finished` is emitted."""
        return self._running

    @property
    def stopping(self) -> bool:
        """Whether the run was asked to stop (and ends as "cancelled")."""
        return self.process is not None and self.process.stopping

    @property
    def tail(self) -> deque[str]:
        return self.process.tail if self.process is not None else deque(maxlen=TAIL_LINES)

    def start(self, args: list[str]) -> str:
        """Start `backend SUB ARGS --events`; returns the command line for the log."""
        if self._running:
            raise RuntimeError("a backend run is already going")
        self.process = BackendProcess(args, lambda event: self._emit(self.event, event),
                                      lambda line: self._emit(self.log_line, line))
        self._running = True
        self._thread = threading.Thread(target=self._run, args=(self.process,),
                                        name="training-backend", daemon=True)
        self._thread.start()
        return self.process.command_text

    @staticmethod
    def _emit(signal, *values) -> None:
        """From the reader thread; the object may be gone (the app closed meanwhile)."""
        try:
            signal.emit(*values)
        except RuntimeError:
            pass

    def _run(self, process: BackendProcess) -> None:
        try:
            process.run()
        except BackendError as exc:
            self._emit(self._ended, False, str(exc))
        else:
            self._emit(self._ended, True, "finished")

    def _on_ended(self, ok: bool, message: str) -> None:
        if self._running:  # not yet told by stop_and_wait
            self._running = False
            self.finished.emit(ok, message)

    def stop(self) -> None:
        """Ask the child to end (it saves what it needs), kill it if it does not in time."""
        if self._running and self.process is not None:
            self.process.stop()

    def stop_and_wait(self, timeout_ms: int = int(STOP_GRACE_S * 1000)) -> bool:
        """Stop synchronously (used when the app closes); True if it ended by itself."""
        if not self._running or self.process is None:
            return True
        ended = self.process.stop_and_wait(timeout_ms / 1000)
        self._thread.join(5)
        if not self._thread.is_alive():  # over: say so now, the app may close next
            self._on_ended(False, CANCELLED)
        return ended
