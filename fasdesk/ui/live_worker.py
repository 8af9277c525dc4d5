"""The live worker: capture, detect, classify and track in a QThread.

The worker's thread runs its own event loop; each frame is one timer-driven step, so
stop/switch requests are handled between frames. Frames go to the UI through a one-slot
mailbox: the newest frame replaces any frame the UI has not taken yet, and at most one
"frame ready" notification is ever queued, so a slow UI never builds up a backlog and the
boxes it paints always come in the same object as the pixels they belong to.
"""
from __future__ import annotations

import os
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

from PySide6.QtCore import QObject, Qt, QThread, QTimer, Signal, Slot

from fasdesk.core.live.loop import LiveFrame, LiveLoop
from fasdesk.core.inference.pipeline import Pipeline
from fasdesk.core.live.sources import IMAGE_FPS, Pacer, SourceError, SourceSpec, open_source
from fasdesk.core.live.tracking import FaceTracker
from fasdesk.core.io.errors import one_line
from fasdesk.core.live.mailbox import Mailbox


@dataclass
class LiveOptions:
    loop: bool = True
    paced: bool = True  # play recorded sources at their own frame rate
    image_fps: float = IMAGE_FPS
    smoothing: float = 0.0
    recent_len: int = 10
    camera_names: dict = field(default_factory=dict)


# Nice value of the live worker thread on Linux: the UI thread keeps precedence.
WORKER_NICE = 10


class LiveWorker(QObject):
    frame_ready = Signal()  # a new LiveFrame waits in the mailbox: call take()
    # Both carry the SourceSpec they are about, so the UI can tell a late signal of a
    # source it has already switched away from.
    started = Signal(object, str)  # spec, source name
    failed = Signal(object, str)  # spec, one-line message; the worker has stopped
    ended = Signal(object, str)  # spec, source name: a finite source reached its end
    stopped = Signal()
    pipeline_ready = Signal(str, str, bool, str)  # model path, provider, optimized, why

    def __init__(self, pipeline_factory: Callable[[], Pipeline]):
        super().__init__()
        self._factory = pipeline_factory
        self._pipeline: Pipeline | None = None
        self._loop: LiveLoop | None = None
        self._spec: SourceSpec | None = None
        self._pacer: Pacer | None = None
        self._timer: QTimer | None = None
        self._mailbox = Mailbox()
        self.mirror = False  # read by the worker each frame; a bool write is atomic

    # -- mailbox (any thread) ---------------------------------------------------------
    def take(self) -> LiveFrame | None:
        """The newest frame not yet taken, or None."""
        return self._mailbox.take()

    def has_frame(self) -> bool:
        """A frame waits in the mailbox (its frame_ready is sent, take() not yet called)."""
        return self._mailbox.waiting

    def _publish(self, frame: LiveFrame) -> None:
        if self._mailbox.put(frame):
            self.frame_ready.emit()

    # -- slots (worker thread) ----------------------------------------------------------
    @Slot()
    def lower_priority(self) -> None:
        """Yield the CPU to the UI thread when both want it (run in the worker thread).

        QThread priorities are ignored on Linux, where the nice value is per thread: set
        it for this thread before the pipeline is built, so the inference threads that
        onnxruntime and OpenCV start from here inherit it.
        """
        if sys.platform.startswith("linux"):
            try:
                os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), WORKER_NICE)
            except OSError:
                pass
        else:
            QThread.currentThread().setPriority(QThread.LowPriority)

    @Slot(object)
    def set_pipeline_factory(self, factory: Callable[[], Pipeline]) -> None:
        """Use another model from the next frame on (the old pipeline is dropped)."""
        self._factory = factory
        self._pipeline = None
        if self._loop is not None:
            try:
                self._loop.pipeline = self._build_pipeline()
            except Exception as exc:
                self._fail(one_line(exc))

    def _build_pipeline(self) -> Pipeline:
        if self._pipeline is None:
            self._pipeline = self._factory()
            engine = self._pipeline.engine
            self.pipeline_ready.emit(str(engine.model_path), engine.provider,
                                     bool(engine.optimized), engine.optimization)
        return self._pipeline

    @Slot(object, object)
    def start(self, spec: SourceSpec, options: LiveOptions) -> None:
        self._close()
        self._spec = spec
        if self._timer is None:
            self._timer = QTimer(self)
            self._timer.setSingleShot(True)
            self._timer.timeout.connect(self._step)
        try:
            pipeline = self._build_pipeline()
        except Exception as exc:  # missing or broken model: say so, keep the app alive
            self.failed.emit(spec, f"Cannot start: {one_line(exc)}")
            return
        try:
            source = open_source(spec, loop=options.loop, image_fps=options.image_fps,
                                 camera_names=options.camera_names)
        except SourceError as exc:
            self.failed.emit(spec, str(exc))
            return
        tracker = FaceTracker(smoothing=options.smoothing, recent_len=options.recent_len)
        self._loop = LiveLoop(source, pipeline, tracker, mirror=self.mirror)
        self._pacer = Pacer(source.fps_hint if options.paced else None)
        self.started.emit(spec, source.name)
        self._timer.start(0)

    @Slot()
    def stop(self) -> None:
        if self._timer is not None:
            self._timer.stop()
        if self._loop is not None:
            self._close()
            self.stopped.emit()

    @Slot(object)
    def stop_and_signal(self, done: threading.Event) -> None:
        """stop(), then tell the waiting shutdown (on the UI thread) it is done."""
        try:
            self.stop()
        finally:
            done.set()

    def _close(self) -> None:
        if self._timer is not None:
            self._timer.stop()
        if self._loop is not None:
            self._loop.source.close()
            self._loop = None

    def _fail(self, message: str) -> None:
        self._close()
        self.failed.emit(self._spec, message)

    @Slot()
    def _step(self) -> None:
        loop = self._loop
        if loop is None:
            return
        wait = self._pacer.wait_time()
        if wait > 0.002:
            self._timer.start(max(1, round(wait * 1000)))
            return
        self._pacer.advance()
        loop.mirror = self.mirror
        try:
            frame = loop.step()
        except SourceError as exc:
            self._fail(str(exc))
            return
        except Exception as exc:  # a frame the pipeline chokes on must not kill the app
            self._fail(f"Live view stopped: {one_line(exc)}")
            return
        if frame is None:
            name = loop.source.name
            self._close()
            self.ended.emit(self._spec, name)
            return
        frame.spec = self._spec
        self._publish(frame)
        self._timer.start(0)


class LiveController(QObject):
    """Owns the worker and its thread; the UI talks to the worker only through here."""

    _start = Signal(object, object)
    _stop = Signal()
    _stop_and_signal = Signal(object)
    _factory = Signal(object)

    def __init__(self, pipeline_factory: Callable[[], Pipeline], parent=None):
        super().__init__(parent)
        self.thread = QThread()
        self.thread.setObjectName("fasdesk-live")
        self.worker = LiveWorker(pipeline_factory)
        self.worker.moveToThread(self.thread)
        self._start.connect(self.worker.start)
        self._stop.connect(self.worker.stop)
        # Shutdown must know the source is closed and the timer stopped before the thread
        # quits (a queued call could be dropped with the event loop's pending events), but
        # must not wait forever for a worker stuck in a read: an Event with a timeout.
        self._stop_and_signal.connect(self.worker.stop_and_signal, Qt.QueuedConnection)
        self._factory.connect(self.worker.set_pipeline_factory)
        self.thread.started.connect(self.worker.lower_priority, Qt.DirectConnection)
        self.thread.start()

    def start(self, spec: SourceSpec, options: LiveOptions | None = None) -> None:
        self._start.emit(spec, options or LiveOptions())

    def stop(self) -> None:
        self._stop.emit()

    def set_pipeline_factory(self, factory: Callable[[], Pipeline]) -> None:
        self._factory.emit(factory)

    def set_mirror(self, on: bool) -> None:
        self.worker.mirror = bool(on)

    def shutdown(self, timeout_ms: int = 5000) -> bool:
        """Stop the source and the thread within about `timeout_ms`; True when the thread
        has finished, False when it is stuck (the window closes anyway; see app.run)."""
        if not self.thread.isRunning():
            return True
        deadline = time.monotonic() + timeout_ms / 1000
        done = threading.Event()
        self._stop_and_signal.emit(done)
        done.wait(timeout_ms / 1000)
        self.thread.quit()
        left_ms = max(0, round((deadline - time.monotonic()) * 1000))
        return self.thread.wait(left_ms)
