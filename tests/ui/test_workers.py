"""The one worker idiom (fasdesk.ui.workers): results, errors, progress, cancelling, and the
registry the app's exit waits on."""
from __future__ import annotations

import threading
import time

import pytest

pytest.importorskip("PySide6")

from fasdesk.ui import workers  # noqa: E402
from fasdesk.ui.workers import current_worker, start_worker  # noqa: E402


def heard(worker) -> list:
    """Everything the worker says, in order, as the UI thread hears it."""
    seen = []
    worker.started.connect(lambda: seen.append("started"))
    worker.progress.connect(lambda v: seen.append(("progress", v)))
    worker.returned.connect(lambda v: seen.append(("returned", v)))
    worker.errored.connect(lambda e: seen.append(("errored", type(e).__name__, str(e))))
    worker.cancelled.connect(lambda: seen.append("cancelled"))
    worker.finished.connect(lambda: seen.append("finished"))
    return seen


def test_a_function_returns_on_a_pool_thread_and_is_heard_on_the_ui_thread(qtbot):
    threads = []

    def work(a, b):
        threads.append(threading.current_thread())
        return a + b

    worker = start_worker(work, 2, b=3)
    seen = heard(worker)  # connected after the start: still heard (it starts on the next turn)
    ui_thread = []
    worker.finished.connect(lambda: ui_thread.append(threading.current_thread()))
    qtbot.waitUntil(lambda: "finished" in seen)
    assert seen == ["started", ("returned", 5), "finished"]
    assert threads[0] is not threading.main_thread() and ui_thread == [threading.main_thread()]
    assert worker.done and workers.running_workers() == []


def test_a_generator_reports_progress_and_returns_its_value(qtbot):
    def count(n):
        for i in range(n):
            yield i
        return "counted"

    seen = heard(start_worker(count, 3))
    qtbot.waitUntil(lambda: "finished" in seen)
    assert seen == ["started", ("progress", 0), ("progress", 1), ("progress", 2),
                    ("returned", "counted"), "finished"]


def test_an_exception_is_handed_over_not_raised(qtbot):
    def fail():
        raise ValueError("bad input\nmore detail")

    seen = heard(start_worker(fail))
    qtbot.waitUntil(lambda: "finished" in seen)
    assert seen == ["started", ("errored", "ValueError", "bad input\nmore detail"), "finished"]


def test_cancelling_stops_a_generator_and_a_function_that_looks(qtbot):
    release = threading.Event()

    def endless():
        while True:
            release.wait(0.01)
            yield 1

    def polling():
        worker = current_worker()
        while not worker.is_cancelled():
            time.sleep(0.01)
        worker.check()  # raises Cancelled: ends as cancelled, not as an error

    generator, function = start_worker(endless), start_worker(polling)
    seen_g, seen_f = heard(generator), heard(function)
    qtbot.waitUntil(lambda: ("progress", 1) in seen_g and "started" in seen_f)
    generator.cancel()
    function.cancel()
    qtbot.waitUntil(lambda: "finished" in seen_g and "finished" in seen_f)
    assert seen_g[-2:] == ["cancelled", "finished"] and seen_f[-2:] == ["cancelled", "finished"]
    assert not any(e[0] in ("returned", "errored") for e in seen_g + seen_f if isinstance(e, tuple))


def test_stop_all_cancels_every_worker_and_waits_with_one_timeout(qtbot):
    stuck = threading.Event()

    def cooperative():
        while not current_worker().is_cancelled():
            time.sleep(0.01)

    def deaf():  # a worker blocked where it cannot look (a driver call, say)
        stuck.wait(30)

    polite = [start_worker(cooperative) for _ in range(2)]
    qtbot.waitUntil(lambda: all(not w._cancel.is_set() and w._queued for w in polite))
    assert workers.stop_all(timeout_s=5)
    assert all(w.done for w in polite) and workers.running_workers() == []

    blocked = start_worker(deaf)
    qtbot.waitUntil(lambda: blocked._queued)
    assert workers.stop_all(timeout_s=0.3) is False  # does not wait beyond its timeout
    assert blocked in workers.running_workers()
    stuck.set()
    assert blocked.wait(5) and workers.running_workers() == []


def test_a_worker_the_event_loop_never_started_does_not_hold_up_the_exit(qapp):
    worker = start_worker(lambda: None)  # no event-loop turn: not handed to the pool yet
    assert worker in workers.running_workers()
    assert workers.stop_all(timeout_s=1)
    assert worker.done and workers.running_workers() == []
