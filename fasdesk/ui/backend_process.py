"""One run of the training backend as a child process (QProcess), read as events.

The backend (`python -m training SUB ... --events`, or the packaged app in backend mode:
fasdesk.core.io.paths.backend_command) writes JSON-lines events on stdout and readable
progress on stderr. This object turns them into Qt signals and keeps the last stderr lines
so a crash can be shown with its cause. Stopping asks the child to end (SIGTERM, so the
trainer can write its checkpoint) and only kills it when it does not.
"""
from __future__ import annotations

import shlex
from collections import deque

from PySide6.QtCore import QObject, QProcess, QProcessEnvironment, QTimer, Signal

from fasdesk.core.io.paths import backend_command
from training.events import parse_line

# How long a stopping child gets to save its checkpoint before it is killed.
STOP_GRACE_MS = 15000
TAIL_LINES = 40


class BackendRun(QObject):
    event = Signal(dict)  # one parsed protocol event
    log_line = Signal(str)  # one stderr line (and stdout lines that are not events)
    finished = Signal(bool, str)  # ok, message (the error line or how it ended)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.process: QProcess | None = None
        self.tail: deque[str] = deque(maxlen=TAIL_LINES)
        self.error_message: str | None = None
        self.stopping = False
        self._out = b""
        self._err = b""

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.state() != QProcess.NotRunning

    def command_line(self, args: list[str]) -> list[str]:
        return backend_command() + [str(a) for a in args] + ["--events"]

    def start(self, args: list[str]) -> str:
        """Start `backend SUB ARGS --events`; returns the command line for the log."""
        if self.running:
            raise RuntimeError("a backend run is already going")
        command = self.command_line(args)
        self.tail.clear()
        self.error_message = None
        self.stopping = False
        self._out = self._err = b""
        process = QProcess(self)
        env = QProcessEnvironment.systemEnvironment()
        env.insert("PYTHONUNBUFFERED", "1")
        env.insert("PYTHONIOENCODING", "utf-8")
        process.setProcessEnvironment(env)
        process.readyReadStandardOutput.connect(self._read_stdout)
        process.readyReadStandardError.connect(self._read_stderr)
        process.finished.connect(self._finished)
        process.errorOccurred.connect(self._error)
        self.process = process
        process.start(command[0], command[1:])
        return " ".join(shlex.quote(c) for c in command)

    def stop(self) -> None:
        """Ask the child to end (it saves what it needs), kill it if it does not in time."""
        if not self.running:
            return
        self.stopping = True
        self.process.terminate()
        QTimer.singleShot(STOP_GRACE_MS, self._kill_if_running)

    def stop_and_wait(self, timeout_ms: int = STOP_GRACE_MS) -> bool:
        """Stop synchronously (used when the app closes); True if it ended by itself."""
        if not self.running:
            return True
        self.stopping = True
        self.process.terminate()
        if self.process.waitForFinished(timeout_ms):
            return True
        self.process.kill()
        self.process.waitForFinished(3000)
        return False

    def _kill_if_running(self) -> None:
        if self.running and self.stopping:
            self.process.kill()

    def _lines(self, buffer: bytes, data: bytes) -> tuple[list[str], bytes]:
        buffer += data
        *lines, rest = buffer.split(b"\n")
        return [line.decode("utf-8", errors="replace").rstrip("\r") for line in lines], rest

    def _read_stdout(self) -> None:
        lines, self._out = self._lines(self._out, bytes(self.process.readAllStandardOutput()))
        for line in lines:
            self._handle_stdout(line)

    def _handle_stdout(self, line: str) -> None:
        event = parse_line(line)
        if event is None:
            if line.strip():
                self._log(line)
            return
        if event["event"] == "error":
            self.error_message = str(event.get("message", ""))
        self.event.emit(event)

    def _read_stderr(self) -> None:
        lines, self._err = self._lines(self._err, bytes(self.process.readAllStandardError()))
        for line in lines:
            # A terminal-style progress line rewrites itself with \r: keep its last state.
            line = line.split("\r")[-1]
            if line.strip():
                self._log(line)

    def _log(self, line: str) -> None:
        self.tail.append(line)
        self.log_line.emit(line)

    def _flush(self) -> None:
        if self.process is None:
            return
        self._read_stdout()
        self._read_stderr()
        if self._out.strip():
            self._handle_stdout(self._out.decode("utf-8", errors="replace"))
        if self._err.strip():
            self._log(self._err.decode("utf-8", errors="replace"))
        self._out = self._err = b""

    def _finished(self, code: int, status) -> None:
        self._flush()
        if code == 0 and status == QProcess.NormalExit and not self.stopping:
            self.finished.emit(True, "finished")
        elif self.stopping:
            self.finished.emit(False, "cancelled")
        elif self.error_message:
            self.finished.emit(False, self.error_message)
        else:
            how = "crashed" if status == QProcess.CrashExit else f"exited with status {code}"
            last = next((line for line in reversed(self.tail) if line.strip()), "")
            message = f"the backend {how}" + (f": {last}" if last else "")
            if "No module named" in last:
                message += " (training needs fasdesk's [train] extra: pip install 'fasdesk[train]')"
            self.finished.emit(False, message)

    def _error(self, error) -> None:
        if error == QProcess.FailedToStart:
            program = self.process.program()
            self.finished.emit(False, f"the training backend could not be started ({program}); "
                               f"check that fasdesk is installed with its [train] extra "
                               f"(pip install 'fasdesk[train]')")
