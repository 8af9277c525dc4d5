"""The window under hostile input (issue 15, items 2 and 6): a FIFO named like a photo in
the Live view and the Images tab, a worker that does not stop, a model answering NaN.
The window never hangs, closing always saves the settings. Real models, offscreen Qt."""
from __future__ import annotations

import os
import subprocess
import sys
import threading

import pytest

pytest.importorskip("pytestqt")

from fasdesk.core.inference.pipeline import INVALID_OUTPUT, build_pipeline  # noqa: E402
from fasdesk.core.io.settings import Settings, load_settings  # noqa: E402
from fasdesk.core.live.sources import SourceSpec  # noqa: E402
from robustcases import fifos, nan_model, needs_fifo  # noqa: E402,F401 (fifos: a fixture)

TIMEOUT_MS = 30_000


@needs_fifo
def test_live_on_a_fifo_says_why_and_the_window_closes_and_saves(make_window, fifos, qtbot,
                                                                   tmp_path):
    pipe = fifos(tmp_path / "x.jpg")
    window = make_window(settings=Settings(), save=True)
    tab = window.live_tab
    tab.start(SourceSpec.parse(str(pipe)))
    qtbot.waitUntil(tab.message.isVisible, timeout=TIMEOUT_MS)
    assert "is a FIFO (named pipe), not a regular file" in tab.message.label.text()
    window.close()
    assert not window.isVisible()
    assert not window.stuck_workers  # every worker stopped (none left blocked on the FIFO)
    assert load_settings()[0].source == str(pipe)


@needs_fifo
def test_images_tab_lists_fifos_as_errors(make_window, fifos, qtbot, tmp_path, samples_dir):
    from fasdesk.ui.images_model import ResultsModel

    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "face.jpg").write_bytes((samples_dir / "real_T1.jpg").read_bytes())
    fifos(folder / "inside.jpg")
    alone = fifos(tmp_path / "alone.jpg")
    window = make_window(settings=Settings(), save=False)
    tab = window.images_tab
    tab.add_paths([str(alone), str(folder)])
    qtbot.waitUntil(lambda: not tab.is_running() and tab.model.rowCount() == 3,
                    timeout=TIMEOUT_MS)
    rows = {os.path.basename(tab.model.result(r).path): tab.model.result(r)
            for r in range(tab.model.rowCount())}
    assert "FIFO" in rows["alone.jpg"].error and "FIFO" in rows["inside.jpg"].error
    assert rows["face.jpg"].error is None
    view = tab.table.model()
    verdicts = {view.index(r, ResultsModel.FILE).data(): view.index(r, ResultsModel.VERDICT).data()
                for r in range(view.rowCount())}
    assert verdicts == {"alone.jpg": "error", "inside.jpg": "error", "face.jpg": "real"}


def test_a_worker_that_does_not_stop_cannot_hang_the_close(qtbot, fp32_model, detector_model,
                                                            samples_dir):
    """Shutdown waits a bounded time. The worker here is busy building its pipeline (a
    model load held until the test lets it go), as it would be stuck in a slow read:
    shutdown returning while it is still held is the proof that it did not wait for it."""
    from fasdesk.ui.live_worker import LiveController

    inside, release = threading.Event(), threading.Event()

    def held_factory():
        inside.set()
        release.wait(TIMEOUT_MS / 1000)
        return build_pipeline(fp32_model, detector_model, live=True)

    controller = LiveController(held_factory)
    controller.start(SourceSpec.parse(str(samples_dir)))
    qtbot.waitUntil(inside.is_set, timeout=TIMEOUT_MS)  # the worker is inside the factory
    assert controller.shutdown(timeout_ms=500) is False
    assert not release.is_set() and controller.thread.isRunning()
    # It ends by itself once the load is over; the thread must be gone before Qt frees it.
    release.set()
    assert controller.thread.wait(TIMEOUT_MS)


@pytest.mark.parametrize("how", ["close", "escape"])
def test_a_busy_calibration_task_cannot_hang_the_window_close(make_window, qtbot,
                                                             monkeypatch, how):
    """The calibration dialog's worker (scoring a session, say) gets a bounded wait when
    the dialog ends and one more when the window closes; the window then reports a stuck
    worker so the app exits without it."""
    from fasdesk.ui import calibration_dialog, workers

    monkeypatch.setattr(calibration_dialog, "SHUTDOWN_TIMEOUT_S", 0.3)
    monkeypatch.setattr(workers.stop_all, "__defaults__", (0.3,))  # the exit's one timeout
    window = make_window(settings=Settings(), save=False)
    dialog = window.open_calibration()
    ended = []
    inside, release = threading.Event(), threading.Event()

    def held_task():
        inside.set()
        release.wait(TIMEOUT_MS / 1000)

    dialog._run(held_task, ended.append)
    worker = dialog.worker
    qtbot.waitUntil(inside.is_set, timeout=TIMEOUT_MS)
    # The dialog deletes itself when it ends, by its close button or by Esc (which gives
    # no close event). Still running afterwards: the close did not wait for the task.
    dialog.close() if how == "close" else dialog.reject()
    assert not worker.done
    window.close()
    assert window.stuck_workers and not worker.done
    with qtbot.waitSignal(worker.finished, timeout=TIMEOUT_MS):  # its result delivered
        release.set()
    assert ended == []  # the dialog is gone: nothing is shown in it


@needs_fifo
@pytest.mark.e2e
def test_the_app_on_a_fifo_source_quits_and_keeps_its_settings(fifos, tmp_path):
    """`fasdesk --source x.jpg` where x.jpg is a FIFO: before, the window hung on close and
    the settings were lost."""
    pipe = fifos(tmp_path / "x.jpg")
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    # 10 s: the live view must have opened on the FIFO (a loaded machine needs more than
    # 3 s to load the models) for the close to be the one that hung before.
    proc = subprocess.run([sys.executable, "-m", "fasdesk", "--source", str(pipe),
                           "--quit-after", "10"], capture_output=True, text=True, timeout=120,
                          env=env)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    assert load_settings()[0].source == str(pipe)


def test_nan_logits_in_the_images_tab_and_the_live_view(make_window, qtbot, tmp_path,
                                                        samples_dir):
    model = nan_model(tmp_path / "nan.onnx")
    window = make_window(settings=Settings(), save=False)
    assert window.state.use_model(model)

    tab = window.images_tab
    tab.add_paths([str(samples_dir / "real_T1.jpg")])
    qtbot.waitUntil(lambda: not tab.is_running() and tab.model.rowCount() == 1,
                    timeout=TIMEOUT_MS)
    face = tab.model.result(0).faces[0]
    assert face.p_real is None and face.label == "unsure" and face.reason == INVALID_OUTPUT
    from fasdesk.ui.images_model import ResultsModel

    cells = [tab.table.model().index(0, c).data() for c in range(ResultsModel.ERROR + 1)]
    assert cells[ResultsModel.VERDICT] == "unsure" and cells[ResultsModel.P_REAL] == "–"
    assert cells[ResultsModel.ERROR] == INVALID_OUTPUT
    tab.table.selectRow(0)
    qtbot.waitUntil(lambda: "model error" in tab.details.text(), timeout=TIMEOUT_MS)

    live = window.live_tab
    frames = []
    live.frame_shown.connect(frames.append)
    live.start(SourceSpec.parse(str(samples_dir)))
    qtbot.waitUntil(lambda: len(frames) >= 3, timeout=TIMEOUT_MS)
    faces = [f for frame in frames for f in frame.faces]
    assert faces and all(f.score is None and f.result.reason == INVALID_OUTPUT for f in faces)
    assert all(f.label(window.state.threshold) == "unsure" for f in faces)
    assert not live.message.isVisible()  # faces without a verdict, the view goes on


def test_a_profile_holds_while_its_source_runs_and_is_not_saved_as_the_settings(
        make_window, qtbot, samples_dir, tmp_path):
    """A camera profile's threshold and N apply to its source; the saved settings keep the
    user's own, and a source whose profile cannot apply leaves the previous profile."""
    from fasdesk.core.models import registry
    from fasdesk.core.calibration.profiles import Profile, save_profile

    window = make_window(settings=Settings(threshold=0.6, confirm_frames=4), save=True)
    model = registry.resolve(None, kind="liveness")
    desk = Profile(name="desk", source={"kind": "images", "target": str(samples_dir), "name": ""},
                   model=registry.DEFAULT_LIVENESS, model_sha256=registry.file_sha256(model),
                   threshold=0.42, confirm_frames=2)
    assert window.state.apply_profile(desk)
    assert window.state.threshold == 0.42 and window.state.profile is desk
    window.state.save()
    saved = load_settings()[0]
    assert (saved.threshold, saved.confirm_frames) == (0.6, 4)

    # Another source's profile whose model has changed since: not applied, and the desk
    # profile does not stay on for that source either.
    stale = Profile(name="hall", source={"kind": "video", "target": str(tmp_path / "v.avi"),
                                         "name": ""},
                    model=registry.DEFAULT_LIVENESS, model_sha256="0" * 64, threshold=0.9)
    save_profile(stale)
    window.state.select_source(SourceSpec.parse(str(tmp_path / "v.avi")))
    assert window.state.profile is None and window.state.threshold == 0.6
    assert "not applied" in window.notice.label.text()
