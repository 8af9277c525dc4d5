"""One run of the training backend as a child process, read as events. No Qt.

The backend (`python -m training SUB ... --events`, or the packaged app in backend mode:
fasdesk.core.io.paths.backend_command) writes JSON-lines events on stdout (parsed by
training.events.parse_line, the protocol's one parser) and readable progress on stderr.
`BackendProcess.run()` blocks until the child ends, hands every event and log line to the
callbacks, and raises `BackendError` with one line that says why when the run fails.
Stopping asks the child to end (SIGTERM, so the trainer can write its checkpoint) and
only kills it when it does not end within the grace time.

`fasdesk calibrate` runs it in its own thread, the calibration dialog in a worker and the
Training tab through fasdesk.ui.backend_process (which turns the callbacks into signals).
"""
from __future__ import annotations

import os
import shlex
import subprocess
import threading
from collections import deque
from typing import Callable

from fasdesk.core.io.paths import backend_command
from training.events import parse_line

# How long a stopping child gets to save its checkpoint before it is killed (seconds).
STOP_GRACE_S = 15.0
TAIL_LINES = 40
TRAIN_EXTRA_HINT = "pip install 'fasdesk[train]'"
CANCELLED = "cancelled"


class BackendError(Exception):
    """A backend run that failed or was stopped; the message is one line."""

    def __init__(self, message: str, cancelled: bool = False):
        super().__init__(message)
        self.cancelled = cancelled


class BackendProcess:
    """`backend ARGS --events` as a child process; see the module's docstring."""

    def __init__(self, args: list, on_event: Callable[[dict], None] | None = None,
                 on_log: Callable[[str], None] | None = None):
        self.command = backend_command() + [str(a) for a in args] + ["--events"]
        self.on_event = on_event or (lambda event: None)
        self.on_log = on_log or (lambda line: None)
        self.tail: deque[str] = deque(maxlen=TAIL_LINES)
        self.error_message: str | None = None
        self.stopping = False
        self.process: subprocess.Popen | None = None
        self._lock = threading.Lock()

    @property
    def command_text(self) -> str:
        return " ".join(shlex.quote(c) for c in self.command)

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def run(self) -> None:
        """Start the child and read it to its end; raises BackendError unless it succeeded."""
        env = dict(os.environ, PYTHONUNBUFFERED="1", PYTHONIOENCODING="utf-8")
        with self._lock:
            if self.stopping:
                raise BackendError(CANCELLED, cancelled=True)
            try:
                self.process = subprocess.Popen(
                    self.command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                    stdin=subprocess.DEVNULL, text=True, encoding="utf-8", errors="replace")
            except OSError as exc:
                raise BackendError(
                    f"the training backend could not be started ({self.command[0]}: "
                    f"{exc.strerror or exc}); check that fasdesk is installed with its "
                    f"[train] extra ({TRAIN_EXTRA_HINT})") from None
        # stderr in its own thread: a pipe nobody reads while stdout is read could fill up.
        reader = threading.Thread(target=self._read_stderr, name="backend-stderr", daemon=True)
        reader.start()
        for line in self.process.stdout:
            self._stdout_line(line.rstrip("\r\n"))
        code = self.process.wait()
        reader.join()
        message = self.failure(code)
        if message is not None:
            raise BackendError(message, cancelled=message == CANCELLED)

    def _stdout_line(self, line: str) -> None:
        event = parse_line(line)
        if event is None:
            if line.strip():
                self._log(line)
            return
        if event["event"] == "error":
            self.error_message = str(event.get("message", ""))
        self.on_event(event)

    def _read_stderr(self) -> None:
        for line in self.process.stderr:
            # A terminal-style progress line rewrites itself with \r: keep its last state.
            line = line.rstrip("\r\n").split("\r")[-1]
            if line.strip():
                self._log(line)

    def _log(self, line: str) -> None:
        self.tail.append(line)
        self.on_log(line)

    def failure(self, code: int) -> str | None:
        """Why a run that ended with exit status `code` failed (None: it did not)."""
        if self.stopping:
            return CANCELLED
        if code == 0:
            return None
        if self.error_message:
            return self.error_message
        how = f"exited with status {code}" if code > 0 else f"crashed (signal {-code})"
        last = next((line for line in reversed(self.tail) if line.strip()), "")
        message = f"the backend {how}" + (f": {last}" if last else "")
        if "No module named" in last:
            message += f" (training needs fasdesk's [train] extra: {TRAIN_EXTRA_HINT})"
        return message

    def stop(self, grace_s: float = STOP_GRACE_S) -> None:
        """Ask the child to end; kill it when it has not after `grace_s`. Any thread."""
        with self._lock:
            self.stopping = True
            process = self.process
        if process is None or process.poll() is not None:
            return
        process.terminate()
        timer = threading.Timer(grace_s, self._kill_if_running)
        timer.daemon = True
        timer.start()

    def stop_and_wait(self, timeout_s: float = STOP_GRACE_S) -> bool:
        """Stop and wait for the child (the app is closing); True if it ended by itself."""
        with self._lock:
            self.stopping = True
            process = self.process
        if process is None or process.poll() is not None:
            return True
        process.terminate()
        try:
            process.wait(timeout_s)
            return True
        except subprocess.TimeoutExpired:
            self.kill()
            process.wait(3)
            return False

    def kill(self) -> None:
        """End the child at once (it has no chance to save anything)."""
        if self.running:
            self.process.kill()

    def _kill_if_running(self) -> None:
        self.kill()


def run_steps(steps: list[tuple[str, list]], on_step: Callable[[int, str], None] | None = None,
              on_event: Callable[[dict], None] | None = None,
              started: Callable[[BackendProcess], None] | None = None) -> None:
    """Run backend steps (title, args) one after another; `started` hears each process (to
    stop it). Raises BackendError naming the step that failed."""
    for i, (title, args) in enumerate(steps):
        if on_step is not None:
            on_step(i, title)
        process = BackendProcess(args, on_event)
        if started is not None:
            started(process)
        try:
            process.run()
        except BackendError as exc:
            if exc.cancelled:
                raise
            raise BackendError(f"{title.lower()} failed: {exc}") from None
