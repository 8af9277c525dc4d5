"""The real app on the offscreen platform: Live tab, models, settings, banner, dialogs.

Live runs on a video written from the shared samples (640x480 MJPG: a live face, then two
recaptured ones) through the real models; nothing is mocked.
"""
from __future__ import annotations

import functools
import http.server
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pytestqt")

from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl  # noqa: E402
from PySide6.QtGui import QDropEvent  # noqa: E402

from fasdesk.core.io.settings import Settings, load_settings, settings_path  # noqa: E402
from fasdesk.core.live.sources import SourceSpec  # noqa: E402

from conftest import tampered_models  # noqa: E402
from gui_helpers import click  # noqa: E402
from livevideo import FRAMES_PER_SAMPLE, SEQUENCE, write_video  # noqa: E402

TIMEOUT_MS = 30000


def no_qt_warnings(test):
    """Fail `test` on any Qt warning (the offscreen platform's note on size hints aside)."""
    test = pytest.mark.qt_log_ignore("propagateSizeHints")(test)
    return pytest.mark.qt_log_level_fail("WARNING")(test)


@pytest.fixture(scope="module")
def video(tmp_path_factory, samples_dir, fp32_model, detector_model) -> Path:
    return write_video(tmp_path_factory.mktemp("video") / "samples.avi", samples_dir)


def collect_frames(qtbot, tab, count: int) -> list:
    frames = []

    def keep(frame):
        frames.append(frame)

    tab.frame_shown.connect(keep)
    try:
        qtbot.waitUntil(lambda: len(frames) >= count, timeout=TIMEOUT_MS)
    finally:
        tab.frame_shown.disconnect(keep)
    return frames


def hold_a_late_frame(tab) -> None:
    """Return once the live worker has a frame waiting that the UI has not taken, without
    letting the UI take it (the event loop does not turn here): whatever the test does
    next (stop, switch source), that frame's notice is handled after it, as a frame still
    on its way would be. Signals from the worker reach the UI in the order sent, so once
    the UI has handled a later one (`stopped`, `failed`) this frame has been handled too."""
    worker = tab.controller.worker
    deadline = time.monotonic() + TIMEOUT_MS / 1000
    while not worker.has_frame():
        assert time.monotonic() < deadline, "the live worker sent no frame"
        time.sleep(0.005)


def expected_label(frame) -> str:
    return SEQUENCE[frame.index // FRAMES_PER_SAMPLE][1]


def view_pixels(view, frame, x: float, y: float) -> list:
    """The colours the view shows at frame pixel (x, y) and one screen pixel either side."""
    image = view.grab().toImage()
    scale = min(view.width() / frame.width, view.height() / frame.height)
    ox = (view.width() - frame.width * scale) / 2
    oy = (view.height() - frame.height * scale) / 2
    ratio = image.width() / view.width()
    px, py = round((ox + x * scale) * ratio), round((oy + y * scale) * ratio)
    return [image.pixelColor(px + d, py) for d in (-1, 0, 1)]


def is_green(c) -> bool:
    return c.green() > 150 and c.red() < 120


def is_red(c) -> bool:
    return c.red() > 150 and c.green() < 120


def test_live_video_boxes_verdicts_plot_and_slider(make_window, qtbot, video):
    window = make_window(settings=Settings(mirror=False), save=False)
    tab = window.live_tab
    tab.start(SourceSpec.parse(str(video)))
    frames = collect_frames(qtbot, tab, 2 * FRAMES_PER_SAMPLE * len(SEQUENCE))

    for frame in frames:
        assert frame.width == 640 and frame.height == 480
        assert len(frame.faces) == 1, f"frame {frame.index}: {len(frame.faces)} faces"
        face = frame.faces[0]
        x, y, w, h = face.result.box
        assert 140 <= x and x + w <= 500 and min(w, h) >= 100  # on the face, not the bars
        assert face.label(0.5) == expected_label(frame), f"frame {frame.index}"
    # Stable ids: every frame of one sample carries the same face id.
    ids = {}
    for frame in frames:
        ids.setdefault((frame.index // FRAMES_PER_SAMPLE, frame.source_name), set()).add(
            frame.faces[0].track_id)
    assert all(len(v) == 1 for v in ids.values()), ids
    # Confirmation needs 3 consecutive real frames: the live face is confirmed once it
    # has been seen 3 times in a row, the recaptured ones never.
    real_frames = [f for f in frames if expected_label(f) == "real"]
    assert any(f.faces[0].confirmed(0.5, 3) for f in real_frames)
    assert not any(f.faces[0].confirmed(0.5, 3) for f in frames if expected_label(f) == "spoof")

    # The plot has a curve per face with the scores of the last 30 s.
    assert tab.plot.curves
    ys = np.concatenate([c.getData()[1] for c in tab.plot.curves.values()])
    assert len(ys) >= 2 and ys.min() >= 0.0 and ys.max() <= 1.0
    assert ys.max() > 0.9 and ys.min() < 0.1  # both the live and the spoof faces

    # Freeze on a live-face frame, then move the slider: the box turns red at once with
    # no new inference (the worker is stopped, the shown frame is the same object).
    tab.stop()
    qtbot.waitUntil(lambda: not tab.running, timeout=TIMEOUT_MS)
    frame = next(f for f in reversed(frames) if expected_label(f) == "real")
    tab.view.show_frame(frame)
    x, y, w, h = frame.faces[0].result.box
    edge = (x, y + h / 2)  # on the box's left edge
    assert any(is_green(c) for c in view_pixels(tab.view, frame, *edge))
    shown = tab.frames_shown
    tab.slider.setValue(100)  # threshold 1.00: nothing short of certainty is real
    assert window.state.threshold == 1.0
    assert tab.threshold_label.text() == "1.00"
    assert tab.plot.threshold_line.value() == 1.0
    if window.images_tab is not None:
        assert window.images_tab.threshold == 1.0
    assert frame.faces[0].score < 1.0
    assert any(is_red(c) for c in view_pixels(tab.view, frame, *edge))
    assert tab.frames_shown == shown and tab.view.frame is frame


def test_snapshot_and_source_switch(make_window, qtbot, video, samples_dir, tmp_path):
    from fasdesk.core.io.imageio import read_image

    window = make_window(settings=Settings(mirror=True), save=False)
    tab = window.live_tab
    tab.start(SourceSpec.parse(str(video)))
    frame = collect_frames(qtbot, tab, 2)[-1]
    # Mirror is for cameras: a video file plays as recorded even with Mirror on.
    x, y, w, h = frame.faces[0].result.box
    assert not frame.mirrored and 140 <= x and x + w <= 500

    shot = tab.last_frame  # what the snapshot saves (no events run until it is written)
    out = tab.snapshot(str(tmp_path / "snap.png"))
    assert out is not None and out.is_file()
    saved = read_image(out)
    assert saved.shape == (480, 640, 3)
    x, y, w, h = shot.faces[0].result.box
    colour = saved[int(y + h / 2), int(x)]  # BGR on the box's left edge
    label = shot.faces[0].label(0.5)
    assert (colour[1] > 150) if label == "real" else (colour[2] > 150)
    assert tab.snapshot(str(tmp_path / "missing-folder" / "snap.png")) is None
    assert tab.message.isVisible() and "Could not save" in tab.message.label.text()

    # Switch to the image folder: frames now come from it, faces get new tracks.
    tab.start(SourceSpec.parse(str(samples_dir)))
    frames = [f for f in collect_frames(qtbot, tab, 4) if f.source_name == samples_dir.name]
    assert frames, "no frame from the image folder"
    assert all(len(f.faces) == 1 for f in frames)
    assert window.settings.source == str(samples_dir)
    assert tab.source_combo.currentData() == SourceSpec("folder", str(samples_dir))


@pytest.mark.parametrize("kind", ["missing", "broken", "camera"])
def test_failing_source_shows_message_and_retry(make_window, qtbot, video, tmp_path, kind):
    window = make_window(settings=Settings(), save=False)
    tab = window.live_tab
    if kind == "camera":
        spec, expect = SourceSpec("camera", "87"), "could not be opened"
    elif kind == "missing":
        spec, expect = SourceSpec("video", str(tmp_path / "clip.avi")), "not found"
    else:
        broken = tmp_path / "clip.avi"
        broken.write_bytes(os.urandom(5000))
        spec, expect = SourceSpec("video", str(broken)), "clip.avi"
    tab.start(spec)
    qtbot.waitUntil(lambda: tab.message.isVisible(), timeout=TIMEOUT_MS)
    assert expect in tab.message.label.text()
    assert tab.message.button.isVisible() and tab.message.button.text() == "Retry"
    assert not tab.running and tab.start_button.text() == "Start"
    assert "Traceback" not in tab.message.label.text()
    if kind == "camera":
        assert tab.source_combo.currentData() == spec  # shown, though the probe did not find it
        return
    # The file appears (copied into place): Retry plays it.
    (tmp_path / "clip.avi").write_bytes(video.read_bytes())
    tab.message.button.click()
    collect_frames(qtbot, tab, 2)
    assert tab.running and not tab.message.isVisible()


def test_a_failed_source_shows_its_failure_and_never_the_previous_one(make_window, qtbot, video,
                                                                     samples_dir, tmp_path):
    """After a good video, a broken file: the view says why (not "Opening..." forever),
    Snapshot has nothing to save, and the broken file pushes no good source out of the list."""
    window = make_window(settings=Settings(), save=False)
    tab = window.live_tab
    tab.start(SourceSpec.parse(str(video)))
    collect_frames(qtbot, tab, 2)
    assert tab.snapshot_button.isEnabled()
    assert window.settings.source == str(video) and window.settings.recent_sources == [str(video)]

    broken = tmp_path / "broken.avi"
    broken.write_bytes(os.urandom(5000))
    shown = []
    tab.frame_shown.connect(shown.append)
    hold_a_late_frame(tab)
    tab.start(SourceSpec.parse(str(broken)))  # a frame of the video is still on its way
    # The worker sends `failed` after closing the video: the late frame's notice came
    # before it, so once the tab shows the failure, the late frame has been handled.
    qtbot.waitUntil(lambda: tab.message.isVisible(), timeout=TIMEOUT_MS)
    assert not tab.controller.worker.has_frame()  # taken, and not shown:
    tab.frame_shown.disconnect(shown.append)
    assert shown == []  # the late frame of the video was not shown
    assert "broken.avi" in tab.message.label.text() and tab.message.button.text() == "Retry"
    assert tab.view.frame is None and tab.last_frame is None
    assert "broken.avi" in tab.view.notice and "Retry" in tab.view.notice
    assert not tab.snapshot_button.isEnabled()
    assert tab.snapshot(str(tmp_path / "snap.png")) is None
    assert not (tmp_path / "snap.png").exists()
    # The view paints the failure on its empty background, not the old picture.
    image = tab.view.grab().toImage()
    pixels = [image.pixelColor(x, y) for x in range(0, image.width(), 7)
              for y in range(0, image.height(), 7)]
    background = sum((c.red(), c.green(), c.blue()) == (24, 26, 30) for c in pixels)
    assert background > 0.9 * len(pixels)
    if os.environ.get("FASDESK_SCREENSHOTS"):
        window.grab().save(str(Path(os.environ["FASDESK_SCREENSHOTS"]) / "live_failed_source.png"))

    # The good video stays remembered and listed; the broken file is listed only as the
    # current choice, marked, and is gone once another source runs.
    assert window.settings.source == str(video) and window.settings.recent_sources == [str(video)]
    items = {tab.source_combo.itemData(i): tab.source_combo.itemText(i)
             for i in range(tab.source_combo.count())}
    assert SourceSpec.parse(str(video)) in items
    assert items[SourceSpec.parse(str(broken))].endswith("could not be opened")
    assert tab.source_combo.currentData() == SourceSpec.parse(str(broken))
    tab.start(SourceSpec.parse(str(samples_dir)))
    collect_frames(qtbot, tab, 1)
    assert window.settings.recent_sources == [str(samples_dir), str(video)]
    specs = [tab.source_combo.itemData(i) for i in range(tab.source_combo.count())]
    assert SourceSpec.parse(str(broken)) not in specs
    assert specs.index(SourceSpec.parse(str(samples_dir))) < specs.index(SourceSpec.parse(str(video)))


def test_source_ending_mid_stream_offers_replay(make_window, qtbot, video):
    window = make_window(settings=Settings(loop_playback=False), save=False)
    tab = window.live_tab
    tab.start(SourceSpec.parse(str(video)))
    qtbot.waitUntil(lambda: tab.message.isVisible(), timeout=TIMEOUT_MS)
    assert "end of the video" in tab.message.label.text()
    assert tab.message.button.text() == "Play again" and not tab.running
    assert tab.last_frame is not None  # the last picture stays on screen


def test_close_while_running_has_no_qt_warnings(make_window, qtbot, qtlog, video):
    import gc

    from PySide6.QtCore import QEvent
    from PySide6.QtWidgets import QApplication

    window = make_window(size=None, settings=Settings(), save=False)  # deleted here
    tab = window.live_tab
    tab.start(SourceSpec.parse(str(video)))
    collect_frames(qtbot, tab, 2)
    thread = tab.controller.thread
    assert thread.isRunning()
    before = len(qtlog.records)  # (the offscreen plugin warns once on show; not ours)
    window.close()
    assert not thread.isRunning()
    window.deleteLater()
    QApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)  # deleted now
    del window, tab, thread
    gc.collect()
    QApplication.processEvents()  # whatever the deletion posted (a late frame, a timer)
    bad = [r.message for r in qtlog.records[before:] if r.type.name in ("QtWarningMsg", "QtCriticalMsg",
                                                                "QtFatalMsg")]
    assert bad == []


def test_settings_persist_and_corrupt_file(make_window, qtbot, samples_dir):
    window = make_window()
    window.live_tab.slider.setValue(73)
    window.live_tab.confirm_spin.setValue(5)
    window.resize(760, 540)  # fits the offscreen screen (800x600), which restore clamps to
    window.settings.last_folders["images"] = str(samples_dir)
    window.live_tab.start(SourceSpec.parse(str(samples_dir)))
    qtbot.waitUntil(lambda: window.live_tab.running, timeout=TIMEOUT_MS)
    window.close()

    saved, warning = load_settings()
    assert warning is None
    assert saved.threshold == 0.73 and saved.confirm_frames == 5
    assert saved.source == str(samples_dir) and saved.geometry

    again = make_window(size=None)
    assert again.state.threshold == 0.73
    assert again.live_tab.slider.value() == 73 and again.live_tab.confirm_spin.value() == 5
    assert again.size().width() == 760 and again.size().height() == 540
    assert not again.notice.isVisible()
    again.close()

    settings_path().write_text('{"threshold": 0.73, "confirm_fr', encoding="utf-8")
    broken = make_window()
    assert broken.notice.isVisible()
    assert "corrupt" in broken.notice.label.text()
    assert broken.state.threshold == 0.5  # defaults
    broken.close()
    assert load_settings()[1] is None  # replaced by a good file on close


def test_window_fits_a_1366x768_screen(make_window, qtbot):
    """The window was 1180x760 plus its title bar: taller than a laptop's 1366x768 screen."""
    from PySide6.QtCore import QSize
    from PySide6.QtWidgets import QApplication

    from fasdesk.ui.main_window import FRAME_ALLOWANCE, PREFERRED_SIZE, fitted_size, fits

    laptop = QSize(1366, 768 - 40)  # available: the screen less a 40 px taskbar
    size = fitted_size(PREFERRED_SIZE, laptop)
    assert fits(size, laptop) and size.height() + FRAME_ALLOWANCE.height() <= 728
    assert fitted_size(PREFERRED_SIZE, QSize(2560, 1400)) == PREFERRED_SIZE
    # First start on a large screen: sized to the screen, not left at 1180x760.
    from fasdesk.ui.main_window import first_start_size

    big = QSize(1920, 1080 - 40)
    first = first_start_size(big)
    assert fits(first, big) and first.width() >= 1600 and first.height() >= 880
    assert first_start_size(laptop) == size  # a laptop: the most that fits

    # On this (offscreen, 800x600) screen: sized to fit, and a saved geometry from a
    # bigger screen is not restored as it was.
    available = make_window(size=None, settings=Settings(), save=False).screen().availableGeometry()
    window = make_window(size=None, settings=Settings(), save=False)
    assert fits(window.size(), available.size())
    window.resize(1800, 1100)
    too_big = bytes(window.saveGeometry().toBase64()).decode("ascii")
    again = make_window(size=None, settings=Settings(geometry=too_big), save=False)
    assert fits(again.size(), available.size())
    assert available.contains(again.geometry().topLeft())
    window.resize(760, 520)  # (the window's minimum width is 744)
    window.move(10, 20)
    kept = bytes(window.saveGeometry().toBase64()).decode("ascii")
    assert make_window(size=None, settings=Settings(geometry=kept), save=False).size() == QSize(760, 520)

    # Nothing inside forces it taller than a laptop allows: Collect mode open and every
    # message bar showing at once.
    again.collect_panel.setChecked(True)
    again.live_tab.message.show_message("video file not found: " + "/a/long/path" * 20)
    again.notice.show_message("Settings file: ignored bad values; defaults used.", action=None)
    again.banner.show_missing([], "The liveness model could not be found.", "detail")
    QApplication.processEvents()  # the layout requests these posted
    assert fits(again.minimumSizeHint(), laptop), again.minimumSizeHint()


def test_model_switch_without_restart(make_window, qtbot, video, quantized_model, tmp_path):
    window = make_window(settings=Settings(), save=False)
    tab = window.live_tab
    tab.start(SourceSpec.parse(str(video)))
    fp32 = collect_frames(qtbot, tab, 1)[-1]
    # The id the user chose (the shipped one), running in its fast form.
    assert window.model_label.text() == "model: minifasnet-v2se (optimized)"
    assert "exact rewrite" in window.model_label.toolTip()
    assert window.provider_label.text()

    window.model_menu.menu.aboutToShow.emit()  # the menu lists the models as it opens
    dynq = next(a for a in window.model_group.actions() if a.text() == "minifasnet-v2se-dynq")
    dynq.trigger()  # Model > minifasnet-v2se-dynq
    # Named at once; whether it runs optimized once the live worker has loaded it.
    assert window.model_label.text().startswith("model: minifasnet-v2se-dynq")
    qtbot.waitUntil(lambda: window.model_label.text()
                    == "model: minifasnet-v2se-dynq (not optimized)", timeout=TIMEOUT_MS)
    assert "quantized" in window.model_label.toolTip()
    quant = collect_frames(qtbot, tab, 2)[-1]
    assert tab.running and quant.faces[0].label(0.5) == expected_label(quant)
    assert window.state.model == "minifasnet-v2se-dynq"
    checked = [a.text() for a in window.model_group.actions() if a.isChecked()]
    assert checked == ["minifasnet-v2se-dynq"]
    assert fp32.faces  # the fp32 frames were fine too

    # A bad file is refused with a message, and the running model stays.
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a model")
    assert not window.state.use_model(str(junk))
    assert window.notice.isVisible() and "junk.onnx" in window.notice.label.text()
    assert not window.state.use_model(str(tmp_path / "absent.onnx"))
    assert window.state.model == "minifasnet-v2se-dynq"

    # A model opened by path is listed in the menu and used.
    assert window.state.use_model(str(quantized_model))
    assert window.state.model == str(quantized_model)
    collect_frames(qtbot, tab, 1)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def test_missing_model_banner_download(make_window, qtbot, monkeypatch, tmp_path, models_dir,
                                       fp32_model, detector_model, video, local_server,
                                       without_bundled_models):
    from fasdesk.core.models import registry

    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("FASDESK_MODELS_DIR", str(empty))
    window = make_window(settings=Settings(), save=False)
    assert window.banner.isVisible()
    assert "No model found" in window.banner.label.text()
    assert window.banner.download_button.isVisible()
    assert window.model_label.text() == "no model"

    # The rest of the app works: the Live tab says why it cannot start.
    window.live_tab.start(SourceSpec.parse(str(video)))
    qtbot.waitUntil(lambda: window.live_tab.message.isVisible(), timeout=TIMEOUT_MS)
    assert "Cannot start" in window.live_tab.message.label.text()
    window.show_about().close()

    # Download from a local server with the real files: the banner goes away.
    url = local_server(functools.partial(_QuietHandler, directory=str(models_dir)))
    monkeypatch.setenv("FASDESK_MODELS_URL_BASE", url)
    click(qtbot, window.banner.download_button)
    qtbot.waitUntil(lambda: not window.banner.isVisible(), timeout=TIMEOUT_MS)
    assert (registry.user_models_dir() / fp32_model.name).is_file()
    window.live_tab.retry()
    collect_frames(qtbot, window.live_tab, 1)


def test_missing_model_banner_offline_names_every_file(make_window, qtbot, monkeypatch, tmp_path,
                                                       without_bundled_models):
    import socket

    from fasdesk.core.models import registry

    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("FASDESK_MODELS_DIR", str(empty))
    window = make_window(settings=Settings(), save=False)
    banner = window.banner
    offline_route = (f"copy best_model.onnx and detector.onnx (from a machine that has them) "
                     f"into {registry.user_models_dir()}, or set FASDESK_MODELS_DIR")
    assert offline_route in banner.label.text()
    with socket.socket() as sock:  # a port nothing listens on: the download cannot connect
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("FASDESK_MODELS_URL_BASE", f"http://127.0.0.1:{port}")
    banner.download_button.click()
    qtbot.waitUntil(lambda: "Download failed" in banner.label.text(), timeout=TIMEOUT_MS)
    text = banner.label.text()
    assert "offline?" in text and offline_route in text
    assert banner.download_button.isVisible() and banner.open_button.isVisible()


class _TrickleHandler(http.server.BaseHTTPRequestHandler):
    """Serves a model file slowly, so a download can be cancelled half way."""
    directory = "."

    def do_GET(self):
        data = (Path(self.directory) / Path(self.path).name).read_bytes()
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        try:
            for i in range(0, len(data), 16384):
                self.wfile.write(data[i:i + 16384])
                self.wfile.flush()
                time.sleep(0.05)
        except OSError:  # the client hung up: that is the point
            pass

    def log_message(self, *args):
        pass


def test_banner_download_can_be_cancelled(make_window, qtbot, monkeypatch, tmp_path, models_dir,
                                          fp32_model, local_server, without_bundled_models):
    from fasdesk.core.models import registry

    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("FASDESK_MODELS_DIR", str(empty))
    window = make_window(settings=Settings(), save=False)
    handler = type("Handler", (_TrickleHandler,), {"directory": str(models_dir)})
    banner = window.banner
    monkeypatch.setenv("FASDESK_MODELS_URL_BASE", local_server(handler))
    click(qtbot, banner.download_button)
    qtbot.waitUntil(lambda: banner.progress.value() > 0, timeout=TIMEOUT_MS)
    assert banner.cancel_button.isVisible() and not banner.download_button.isVisible()
    assert "MB" in banner.progress.format()
    click(qtbot, banner.cancel_button)
    qtbot.waitUntil(lambda: not banner.cancel_button.isVisible(), timeout=TIMEOUT_MS)
    assert "cancelled" in banner.label.text()
    assert banner.isVisible() and banner.download_button.isVisible()
    folder = registry.user_models_dir()
    assert not (folder.exists() and any(folder.iterdir()))  # nothing, not even a .part file


def test_tampered_registry_model_is_refused(make_window, qtbot, monkeypatch, tmp_path, video,
                                           fp32_model, detector_model):
    from fasdesk.core.models import registry

    folder = tampered_models(tmp_path / "models", fp32_model, detector_model).parent
    monkeypatch.setenv("FASDESK_MODELS_DIR", str(folder))
    window = make_window(settings=Settings(), save=False)
    assert window.notice.isVisible()
    text = window.notice.label.text()
    assert text.startswith("Model refused: ") and "does not match its SHA-256" in text
    assert "fasdesk models pull minifasnet-v2se" in text
    assert window.model_label.text() == "model refused"
    assert not window.banner.isVisible()  # the file is there: nothing to download
    # Live does not run the tampered model either, and says why.
    window.live_tab.start(SourceSpec.parse(str(video)))
    qtbot.waitUntil(lambda: window.live_tab.message.isVisible(), timeout=TIMEOUT_MS)
    assert "does not match its SHA-256" in window.live_tab.message.label.text()
    assert not window.live_tab.running
    # Another model can still be chosen, and the refusal goes away with it.
    assert window.state.use_model(str(fp32_model))
    assert not window.notice.isVisible()
    assert window.model_label.text().startswith(f"model: {fp32_model.name}")
    # Named by its path (as "Use in Live" stores it), the registry file is checked too.
    with pytest.raises(registry.ModelIntegrityError):
        registry.resolve(str(folder / fp32_model.name))


def test_dialogs_show_model_facts(make_window, qtbot, fp32_model):
    from fasdesk.core.models.registry import get_entry

    window = make_window(settings=Settings(), save=False)
    info = window.show_model_info()
    assert info.isVisible() and not info.ready  # open at once; the model loads in a worker
    qtbot.waitUntil(lambda: info.ready, timeout=TIMEOUT_MS)
    entry = get_entry("minifasnet-v2se")
    assert info.info["SHA-256"].replace("\n", "").startswith(entry.sha256)
    assert "matches the registry" in info.info["SHA-256"]
    assert info.info["Input"].startswith("128 x 128")
    assert info.info["Classes"] == "real, spoof"
    assert info.info["License"] == "Apache-2.0"
    assert float(info.info["Latency (1 face)"].split()[0]) > 0
    assert info.info["Optimized"].startswith("yes (exact rewrite")
    info.close()
    about = window.show_about()
    licenses = {about.table.item(r, 0).text(): about.table.item(r, 2).text()
                for r in range(about.table.rowCount())}
    assert licenses["minifasnet-v2se"] == "Apache-2.0" and licenses["yunet-2023mar"] == "MIT"
    about.close()


def test_drop_on_window_goes_to_images_tab(make_window, qtbot, samples_dir):
    window = make_window(settings=Settings(), save=False)
    if window.images_tab is None:
        pytest.skip("the Images tab is not in this tree yet")
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(samples_dir))])
    event = QDropEvent(QPointF(20, 20), Qt.CopyAction, mime, Qt.LeftButton, Qt.NoModifier)
    window.dropEvent(event)
    assert window.tabs.currentWidget() is window.images_tab
    qtbot.waitUntil(lambda: window.images_tab.model.rowCount() == 3 and
                    not window.images_tab.is_running(), timeout=TIMEOUT_MS)


def test_add_tab_and_cli_does_not_load_qt(make_window):
    from PySide6.QtWidgets import QLabel

    window = make_window(settings=Settings(), save=False)
    index = window.add_tab(QLabel("training"), "Training")
    assert window.tabs.tabText(index) == "Training"
    code = ("import sys, fasdesk.cli as c; a = c.build_parser().parse_args(['--source', '0']); "
            "print(a.source, a.func.__name__, any(m.startswith('PySide6') for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["0", "run_gui", "False"]


@no_qt_warnings
def test_images_tab_threshold_is_the_window_threshold(make_window, qtbot, samples_dir):
    window = make_window()
    images = window.images_tab
    window.classify_paths([str(samples_dir)])
    qtbot.waitUntil(lambda: images.model.rowCount() == 3 and not images.is_running(),
                    timeout=TIMEOUT_MS)
    assert images.threshold_control.isVisible()  # on screen with the table, not only in Live
    p_real = {Path(images.model.result(r).path).name: images.model.result(r).faces[0].p_real
              for r in range(3)}
    assert p_real["real_T1.jpg"] < 1.0  # so 1.00 turns the live photo into a spoof

    # The Images slider moves the one threshold: table, Live slider, plot line, settings.
    images.threshold_control.slider.setValue(100)
    assert window.state.threshold == 1.0
    assert images.threshold == 1.0 and images.threshold_control.label.text() == "1.00"
    assert window.live_tab.slider.value() == 100
    assert window.live_tab.threshold_label.text() == "1.00"
    assert window.live_tab.plot.threshold_line.value() == 1.0
    assert images.model.counts() == {"spoof": 3}
    assert "at threshold 1.00" in images.summary.text()

    # And the Live slider moves the Images one back.
    window.live_tab.slider.setValue(20)
    assert images.threshold_control.slider.value() == 20
    assert images.threshold_control.label.text() == "0.20"
    assert images.model.counts() == {"real": 1, "spoof": 2}
    window.close()
    assert load_settings()[0].threshold == 0.2


@no_qt_warnings
def test_status_bar_shows_live_stats_only_while_live_runs(make_window, qtbot, video):
    window = make_window(settings=Settings(loop_playback=True), save=False)
    stats, model, provider = window.stats_label, window.model_label, window.provider_label
    # Nothing runs yet: no fps line, but the model and the provider it will use.
    assert not stats.isVisible()
    assert model.isVisible() and model.text().startswith("model: minifasnet-v2se")
    assert provider.isVisible() and provider.text()

    tab = window.live_tab
    tab.start(SourceSpec.parse(str(video)))
    qtbot.waitUntil(lambda: stats.text().startswith("live ") and " fps | detect " in stats.text(),
                    timeout=TIMEOUT_MS)
    assert stats.isVisible()
    window.tabs.setCurrentWidget(window.images_tab)  # live goes on: still shown, as live
    assert stats.isVisible() and stats.text().startswith("live ")

    shown = tab.frames_shown
    hold_a_late_frame(tab)
    tab.stop()  # with a frame on its way, painted after the stop
    qtbot.waitUntil(lambda: not tab.running, timeout=TIMEOUT_MS)  # the worker's `stopped`
    assert tab.frames_shown > shown and not tab.controller.worker.has_frame()  # it came
    assert not stats.isVisible() and stats.text() == ""
    assert model.isVisible() and provider.isVisible() and provider.text()
    window.tabs.setCurrentWidget(window.training_tab or window.live_tab)
    assert not stats.isVisible()


class _BrokenModule:
    """An import hook under which importing one module raises `error_type(message)`, as a
    module with a bug at import time (or a missing dependency of it) would. A fresh
    exception each time: one kept across tests would keep its traceback's window alive."""

    def __init__(self, name: str, error_type: type, message: str):
        self.name, self.error_type, self.message = name, error_type, message

    def find_spec(self, name, path=None, target=None):
        if name == self.name:
            raise self.error_type(self.message)
        return None


@no_qt_warnings
@pytest.mark.parametrize("error_type, message",
                         [(ImportError, "No module named 'pyqtgraph.exporters'"),
                          (RuntimeError, "a bug at import time")],
                         ids=["ImportError", "RuntimeError"])
def test_window_starts_when_the_training_tab_cannot_load(make_window, qtbot, monkeypatch,
                                                         samples_dir, error_type, message):
    name = "fasdesk.ui.training.tab"
    monkeypatch.delitem(sys.modules, name, raising=False)
    monkeypatch.setattr(sys, "meta_path",
                        [_BrokenModule(name, error_type, message)] + sys.meta_path)
    window = make_window(settings=Settings(), save=False)

    titles = [window.tabs.tabText(i) for i in range(window.tabs.count())]
    assert titles == ["Live", "Images", "Training"]
    assert window.training_tab is None and window.collect_panel is None
    window.tabs.setCurrentIndex(2)
    shown = window.tabs.currentWidget()
    assert shown.isVisible() and "could not be loaded" in shown.text()
    assert f"{error_type.__name__}: {message}".replace("'", "&#x27;") in shown.text()

    # Live and Images work as usual, and the window closes normally.
    window.live_tab.start(SourceSpec.parse(str(samples_dir)))
    qtbot.waitUntil(lambda: window.live_tab.frames_shown >= 1, timeout=TIMEOUT_MS)
    window.classify_paths([str(samples_dir)])
    qtbot.waitUntil(lambda: window.images_tab.model.rowCount() == 3
                    and not window.images_tab.is_running(), timeout=TIMEOUT_MS)
    assert window.close()


@pytest.mark.parametrize("cameras", [[], ["a camera"]])
def test_started_without_a_source_and_no_camera_runs_on_the_sample_photos(
        make_window, qtbot, monkeypatch, fp32_model, detector_model, cameras):
    from fasdesk.core.io.paths import samples_dir
    from fasdesk.core.live.sources import CameraInfo
    from fasdesk.ui import live_tab

    found = [CameraInfo(0, "Test camera")] if cameras else []
    monkeypatch.setattr(live_tab, "probe_cameras", lambda: found)
    window = make_window(settings=Settings(), save=False, demo_if_no_camera=True)
    qtbot.waitUntil(lambda: window.live_tab.cameras == found and (
        window.live_tab.running or bool(found)), timeout=TIMEOUT_MS)
    if found:  # a camera: nothing starts by itself, the user picks
        # (The window decides when the probe's answer comes, in the same call that set
        # `cameras`: that decision has been made.)
        assert window.live_tab.spec is None and not window.notice.isVisible()
        return
    assert window.live_tab.spec == SourceSpec.parse(str(samples_dir()))
    assert "No camera found: running on the sample photos" in window.notice.label.text()
    frames = collect_frames(qtbot, window.live_tab, 3)
    assert all(len(f.faces) == 1 for f in frames)
    window.grab().save("/tmp/fasdesk-demo.png")


def test_quit_after_closes_the_window_even_with_a_modal_dialog_open(make_window, qtbot):
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication, QFileDialog

    from fasdesk.ui.app import quit_after

    window = make_window(settings=Settings(), save=False)
    quitted = []
    seen = []
    quit_after(window, 0.5, then=lambda: quitted.append(True))
    QTimer.singleShot(300, lambda: seen.append(QApplication.activeModalWidget()))
    action = next(a for a in window.menuBar().actions()[0].menu().actions()
                  if a.text() == "Open folder...")
    action.trigger()  # a modal folder dialog: returns once the quit timer dismissed it
    assert isinstance(seen[0], QFileDialog)
    qtbot.waitUntil(lambda: quitted == [True], timeout=TIMEOUT_MS)
    assert not window.isVisible()
def test_the_threshold_is_held_once_and_every_view_follows_it(make_window, qtbot):
    """AppState holds the threshold and N; the sliders, labels, plot line and spin box show
    them and write back only what the user changes (no echo of a value shown)."""
    window = make_window(settings=Settings(), save=False)
    state, live, images = window.state, window.live_tab, window.images_tab
    seen = []
    state.threshold_changed.connect(seen.append)
    state.set_threshold(4.4e-4)  # e.g. a calibrated profile's threshold
    assert seen == [4.4e-4]  # the sliders moving to position 0 did not write 0.00 back
    assert live.slider.value() == 0 and images.threshold_control.slider.value() == 0
    assert live.threshold_label.text() == images.threshold_control.label.text() == "0.00044"
    assert live.plot.threshold_line.value() == 4.4e-4 and live.view.threshold == 4.4e-4

    live.slider.setFocus()
    qtbot.keyClick(live.slider, Qt.Key.Key_Right)  # one step up, by the user
    assert state.threshold == 0.01 and seen == [4.4e-4, 0.01]
    assert images.threshold_control.label.text() == "0.01" and images.model.threshold == 0.01

    live.confirm_spin.setFocus()
    qtbot.keyClick(live.confirm_spin, Qt.Key.Key_Up)
    assert state.confirm_frames == 4 and live.view.confirm_n == 4
    state.set_confirm_frames(2)
    assert live.confirm_spin.value() == 2


# -- everyday polish (issue 23) -------------------------------------------------------------
SHOTS = Path(os.environ.get("FASDESK_SHOTS", "/tmp/fasdesk-shots"))


def _shot(widget, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    widget.grab().save(str(SHOTS / f"{name}.png"))


def test_live_says_what_it_sees_counts_down_and_names_faces_on_screen(make_window, qtbot, video,
                                                                       tmp_path):
    from fasdesk.ui.frame_view import face_text, faces_caption

    import cv2

    window = make_window(size=(1366, 768), settings=Settings(mirror=True), save=False)
    tab = window.live_tab
    stats = []
    tab.stats_changed.connect(stats.append)
    # A video file: mirror is for cameras, so it is off (and greyed) for it.
    tab.start(SourceSpec.parse(str(video)))
    frames = collect_frames(qtbot, tab, 2 * FRAMES_PER_SAMPLE)
    assert not tab.mirror_box.isEnabled() and not any(f.mirrored for f in frames)
    assert faces_caption(frames[-1]) == "1 face"
    # The live face counts down to its confirmation: "1/3", "2/3", then confirmed.
    captions = [face_text(f.faces[0], 0.5, 3)[1] for f in frames if expected_label(f) == "real"]
    assert any(c.endswith("1/3") for c in captions) and any(c.endswith("2/3") for c in captions)
    assert any(c.startswith("\u2713") for c in captions)
    qtbot.waitUntil(lambda: bool(stats), timeout=TIMEOUT_MS)
    assert not any(" 0.0 fps" in s for s in stats), stats  # shown once measured only
    # The plot's legend names the faces on screen only, never every past track.
    qtbot.waitUntil(lambda: len(tab.plot.curves) >= 2, timeout=TIMEOUT_MS)
    frame = tab.last_frame
    tab.plot.update_histories(frame.histories, frame.time, {f.track_id for f in frame.faces})
    assert tab.plot.legend_names() == [f"face #{f.track_id}" for f in frame.faces]
    _shot(window, "live_1366x768")

    # A video without a face: the view says detection runs and finds none.
    empty = tmp_path / "empty.avi"
    writer = cv2.VideoWriter(str(empty), cv2.VideoWriter_fourcc(*"MJPG"), 30, (640, 480))
    for _ in range(20):
        writer.write(np.full((480, 640, 3), 90, np.uint8))
    writer.release()
    tab.start(SourceSpec.parse(str(empty)))
    frames = collect_frames(qtbot, tab, 3)
    assert faces_caption(frames[-1]) == "No face found"
    _shot(tab.view, "live_no_face")
    tab.stop()
    qtbot.waitUntil(lambda: not tab.running, timeout=TIMEOUT_MS)


def test_start_without_a_source_opens_the_source_picker(make_window, qtbot):
    from gui_helpers import click

    window = make_window(size=(1366, 768), settings=Settings(), save=False)
    tab = window.live_tab
    qtbot.waitUntil(lambda: not tab._probe.is_running(), timeout=TIMEOUT_MS)
    if tab.cameras:
        pytest.skip("this machine has a camera: a source is selected")
    combo = tab.source_combo
    # The greyed "No camera found" is never the selected source: a placeholder is.
    assert combo.currentIndex() == -1 and combo.currentData() is None
    click(qtbot, tab.start_button)
    qtbot.waitUntil(lambda: combo.view().isVisible(), timeout=5000)
    texts = [combo.itemText(i) for i in range(combo.count())]
    assert "Video file..." in texts and "Image folder..." in texts
    combo.hidePopup()
    assert not tab.running


def test_the_active_profile_shows_by_the_threshold_and_can_be_left(make_window, qtbot, video):
    from PySide6.QtWidgets import QApplication
    from gui_helpers import click

    from fasdesk.core.calibration.profiles import Profile
    from fasdesk.core.models import registry

    window = make_window(size=(1366, 768), settings=Settings(), save=False)
    tab = window.live_tab
    assert not tab.profile_row.isVisible()
    model = registry.default_liveness_id()
    profile = Profile(name="desk cam", source={"kind": "file", "target": str(video)},
                      model=model, model_sha256=registry.file_sha256(registry.resolve(model)),
                      threshold=0.8, confirm_frames=4)
    assert window.state.apply_profile(profile)
    assert tab.profile_row.isVisible() and tab.profile_label.text() == "profile: desk cam"
    assert "0.8" in tab.profile_threshold.text() and tab.threshold_label.text() == "0.80"
    QApplication.processEvents()  # the row's layout request, posted as it was shown
    assert tab.profile_label.width() >= tab.profile_label.sizeHint().width()
    _shot(window, "live_profile")
    click(qtbot, tab.leave_profile_button)
    assert window.state.profile is None and not tab.profile_row.isVisible()
    assert window.state.threshold == 0.5


def test_keyboard_shortcuts_drive_live_and_tabs(make_window, qtbot, video):
    from PySide6.QtGui import QKeySequence
    from PySide6.QtTest import QTest

    window = make_window(size=(1366, 768), save=False,
                         settings=Settings(source=str(video), recent_sources=[str(video)]))
    window.activateWindow()
    qtbot.waitUntil(lambda: window.isActiveWindow(), timeout=5000)
    tab = window.live_tab
    qtbot.waitUntil(lambda: not tab._probe.is_running(), timeout=TIMEOUT_MS)
    # Shown where a person looks: the menus and the buttons' tooltips.
    assert window.start_stop_action.shortcut() == QKeySequence("Space")
    assert "(Space)" in tab.start_button.toolTip()
    assert "Ctrl+S" in tab.snapshot_button.toolTip() and "Ctrl+K" in tab.calibrate_button.toolTip()
    assert [a.shortcut().toString() for a in window.tab_actions][:3] == ["Ctrl+1", "Ctrl+2",
                                                                         "Ctrl+3"]
    # The plot takes no keys: Tab never stops on it.
    assert tab.plot.focusPolicy() == Qt.NoFocus
    if isinstance(tab.source_combo.currentData(), SourceSpec):
        QTest.keyClick(window, Qt.Key_Space)
        qtbot.waitUntil(lambda: tab.running, timeout=TIMEOUT_MS)
        QTest.keyClick(window, Qt.Key_Space)
        qtbot.waitUntil(lambda: not tab.running, timeout=TIMEOUT_MS)
    QTest.keyClick(window, Qt.Key_2, Qt.ControlModifier)
    assert window.tabs.currentWidget() is window.images_tab
    assert not window.start_stop_action.isEnabled()  # Space presses buttons there
    QTest.keyClick(window, Qt.Key_1, Qt.ControlModifier)
    assert window.tabs.currentWidget() is tab and window.start_stop_action.isEnabled()


def test_appearance_follows_the_system_or_the_users_choice(make_window, qtbot, tmp_path):
    from PySide6.QtGui import QPalette
    from PySide6.QtWidgets import QApplication

    from fasdesk.ui.theme import resolved_appearance

    window = make_window(size=(1366, 768), settings=Settings(), save=False)
    app = QApplication.instance()
    assert window.appearance_actions["system"].isChecked()
    assert window.theme == resolved_appearance("system")  # what the desktop says
    window.appearance_actions["light"].trigger()
    assert window.state.settings.appearance == "light" and window.theme == "light"
    assert app.palette().color(QPalette.Window).lightness() > 200
    _shot(window, "live_light")
    window.tabs.setCurrentWidget(window.training_tab)
    _shot(window, "training_light")
    window.appearance_actions["dark"].trigger()
    assert window.theme == "dark" and app.palette().color(QPalette.Window).lightness() < 60
    window.appearance_actions["system"].trigger()
    assert window.state.settings.appearance == "system"
