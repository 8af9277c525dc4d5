"""The paths a person takes that no other test drives by hand: the Live tab's source combo
(the video-file entry, file dialog answered), Start/Stop, Mirror, Loop and Smooth while
live, Snapshot by button and by Ctrl+S, Model > Open ONNX..., and the Images tab's
toolbar. Every step is a mouse click, a key press or a menu action's trigger, and each
checks what the person then sees.
"""
from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest

pytest.importorskip("pytestqt")

from PySide6.QtCore import Qt  # noqa: E402
from PySide6.QtWidgets import QApplication, QFileDialog  # noqa: E402

from fasdesk.core.io.settings import Settings  # noqa: E402
from fasdesk.core.live.sources import SourceSpec  # noqa: E402

from gui_helpers import click  # noqa: E402
from livevideo import FRAMES_PER_SAMPLE, SEQUENCE, write_video  # noqa: E402

pytestmark = [pytest.mark.qt_log_level_fail("WARNING"),
              # (the offscreen platform's notes on window sizes and on opening a menu)
              pytest.mark.qt_log_ignore("propagateSizeHints", "support raise",
                                        "grabbing the keyboard")]

TIMEOUT_MS = 30_000
VIDEO_FRAMES = FRAMES_PER_SAMPLE * len(SEQUENCE)


@pytest.fixture(scope="module")
def video(tmp_path_factory, samples_dir, fp32_model, detector_model):
    return write_video(tmp_path_factory.mktemp("video") / "samples.avi", samples_dir)


def answer_file_dialogs(monkeypatch, **answers) -> None:
    """QFileDialog's static calls answer the given paths (name: getOpenFileName, ...)."""
    for name, answer in answers.items():
        monkeypatch.setattr(QFileDialog, name, staticmethod(lambda *a, _r=answer, **k: _r))


def choose_in_combo(qtbot, combo, data) -> None:
    """Open the combo's list and click the entry holding `data`, as a person does."""
    index = combo.findData(data)
    assert index >= 0, f"no entry {data!r} in the combo"
    combo.showPopup()
    view = combo.view()
    rect = view.visualRect(view.model().index(index, 0))
    qtbot.mouseClick(view.viewport(), Qt.LeftButton, pos=rect.center())
    qtbot.waitUntil(lambda: not view.isVisible(), timeout=TIMEOUT_MS)


def frames_after(qtbot, tab, count: int) -> list:
    """The next `count` frames the Live tab shows."""
    frames = []
    tab.frame_shown.connect(frames.append)
    try:
        qtbot.waitUntil(lambda: len(frames) >= count, timeout=TIMEOUT_MS)
    finally:
        tab.frame_shown.disconnect(frames.append)
    return frames


def test_live_by_hand_source_start_stop_loop_smooth_snapshot(
        make_window, qtbot, monkeypatch, video, tmp_path):
    window = make_window(settings=Settings(mirror=False, loop_playback=False, smoothing=0.0),
                         save=False)
    tab = window.live_tab
    window.loop_action.trigger()  # Live > Loop: the short video plays on past its end
    assert window.settings.loop_playback
    answer_file_dialogs(monkeypatch, getOpenFileName=(str(video), ""))
    # Source > Video file...: the chosen video runs at once, listed in the combo.
    with qtbot.waitSignal(tab.frame_shown, timeout=TIMEOUT_MS):
        choose_in_combo(qtbot, tab.source_combo, "pick-video")
    assert tab.running and tab.start_button.text() == "Stop"
    assert tab.source_combo.currentData() == SourceSpec("video", str(video))

    # Stop, then Start again on the same source, both by the button.
    click(qtbot, tab.start_button)
    qtbot.waitUntil(lambda: not tab.running, timeout=TIMEOUT_MS)
    assert tab.start_button.text() == "Start"
    with qtbot.waitSignal(tab.frame_shown, timeout=TIMEOUT_MS):
        click(qtbot, tab.start_button)
    assert tab.running and tab.start_button.text() == "Stop"

    frames = frames_after(qtbot, tab, 2 * VIDEO_FRAMES)
    assert tab.running and min(f.index for f in frames[VIDEO_FRAMES:]) < VIDEO_FRAMES

    # Mirror is for cameras (issue 23): on a video file the box is greyed and off, and the
    # frames come unmirrored.
    assert not tab.mirror_box.isEnabled() and not tab.mirror_box.isChecked()
    assert not frames[-1].mirrored

    # Live > Smooth: the setting is kept and live goes on with it.
    window.smooth_action.trigger()
    assert window.settings.smoothing > 0 and tab.options.smoothing == window.settings.smoothing
    frames_after(qtbot, tab, 2)
    assert tab.running

    # Snapshot by button and by Ctrl+S: a picture of the frame, said in the status bar.
    button_shot, key_shot = tmp_path / "button.png", tmp_path / "key.png"
    answer_file_dialogs(monkeypatch, getSaveFileName=(str(button_shot), ""))
    click(qtbot, tab.snapshot_button)
    assert button_shot.is_file() and str(button_shot) in window.statusBar().currentMessage()
    answer_file_dialogs(monkeypatch, getSaveFileName=(str(key_shot), ""))
    window.activateWindow()  # (shortcuts go to the active window)
    qtbot.waitUntil(lambda: QApplication.activeWindow() is window, timeout=TIMEOUT_MS)
    qtbot.keyClick(QApplication.focusWidget() or window, Qt.Key_S, Qt.ControlModifier)
    assert key_shot.is_file() and str(key_shot) in window.statusBar().currentMessage()

    click(qtbot, tab.start_button)
    qtbot.waitUntil(lambda: not tab.running, timeout=TIMEOUT_MS)


def test_model_menu_open_onnx(make_window, qtbot, monkeypatch, fp32_model, tmp_path):
    window = make_window(settings=Settings(), save=False)
    mine = shutil.copy(fp32_model, tmp_path / "my-model.onnx")
    answer_file_dialogs(monkeypatch, getOpenFileName=(str(mine), ""))
    menu = window.model_menu.menu
    action = next(a for a in menu.actions() if a.text() == "Open ONNX...")
    action.trigger()
    assert window.state.model == str(mine)
    menu.popup(window.mapToGlobal(window.rect().center()))  # listed anew as it opens
    checked = [a.text() for a in menu.actions() if a.isChecked()]
    menu.hide()
    assert checked == ["my-model.onnx"]


def test_open_onnx_with_an_unreadable_card_says_so_in_the_window(make_window, qtbot,
                                                                  monkeypatch, fp32_model,
                                                                  tmp_path):
    window = make_window(settings=Settings(), save=False)
    mine = shutil.copy(fp32_model, tmp_path / "strict.onnx")
    # Its card would hold a strict threshold, but 'classes' has the wrong type.
    (tmp_path / "strict.card.json").write_text(json.dumps(
        {"classes": 5, "threshold": {"value": 0.99999}}))
    answer_file_dialogs(monkeypatch, getOpenFileName=(str(mine), ""))
    action = next(a for a in window.model_menu.menu.actions() if a.text() == "Open ONNX...")
    action.trigger()
    assert window.state.model == str(mine) and window.state.threshold == 0.5
    assert window.notice.isVisible()
    text = window.notice.label.text()
    assert "strict.card.json" in text and "'classes'" in text
    assert "judging at 0.50 (default)" in text
    click(qtbot, window.notice.close_button)
    assert not window.notice.isVisible()


@pytest.fixture
def images(make_window, qtbot, pipeline):
    window = make_window(settings=Settings(), save=False)
    tab = window.images_tab
    window.tabs.setCurrentWidget(tab)
    return window, tab


def wait_done(qtbot, tab) -> None:
    qtbot.waitUntil(lambda: not tab.is_running(), timeout=TIMEOUT_MS * 4)


def test_images_tab_toolbar_by_hand(images, qtbot, monkeypatch, samples_dir, tmp_path):
    window, tab = images
    names = sorted(p.name for p in samples_dir.glob("*.jpg"))
    answer_file_dialogs(monkeypatch,
                        getOpenFileNames=([str(samples_dir / names[0])], ""),
                        getExistingDirectory=str(samples_dir))
    click(qtbot, tab.add_files_button)
    wait_done(qtbot, tab)
    assert tab.model.rowCount() == 1
    click(qtbot, tab.add_folder_button)
    wait_done(qtbot, tab)
    images_in_samples = [p for p in samples_dir.iterdir()
                         if p.suffix.lower() in (".jpg", ".jpeg", ".png")]
    assert tab.model.rowCount() == len(images_in_samples)  # the first one not twice

    out_csv, out_json = tmp_path / "out.csv", tmp_path / "out.json"
    answer_file_dialogs(monkeypatch, getSaveFileName=(str(out_csv), ""))
    click(qtbot, tab.export_csv_button)
    with open(out_csv, newline="") as f:
        rows = list(csv.DictReader(f))
    assert {r["path"] for r in rows} >= {str(samples_dir / n) for n in names}
    answer_file_dialogs(monkeypatch, getSaveFileName=(str(out_json), ""))
    click(qtbot, tab.export_json_button)
    assert str(out_json) in window.statusBar().currentMessage()
    exported = json.loads(out_json.read_text(encoding="utf-8"))
    assert sorted(r["path"] for r in exported) == sorted(r["path"] for r in rows)
    verdicts = {Path(r["path"]).name: [f["label"] for f in r["faces"]] for r in exported}
    assert verdicts == {"real_T1.jpg": ["real"], "spoof_F1.jpg": ["spoof"],
                        "spoof_F2.jpg": ["spoof"]}

    click(qtbot, tab.clear_button)
    assert tab.model.rowCount() == 0 and not tab.export_csv_button.isEnabled()


def test_images_tab_cancel_by_hand(images, qtbot, monkeypatch, samples_dir, tmp_path):
    window, tab = images
    folder = tmp_path / "many"
    folder.mkdir()
    for i in range(60):
        name = ("real_T1.jpg", "spoof_F1.jpg", "spoof_F2.jpg")[i % 3]
        shutil.copy(samples_dir / name, folder / f"{i:02d}_{name}")
    answer_file_dialogs(monkeypatch, getExistingDirectory=str(folder))
    click(qtbot, tab.add_folder_button)
    qtbot.waitUntil(lambda: tab.model.rowCount() >= 1, timeout=TIMEOUT_MS)
    click(qtbot, tab.cancel_button)
    wait_done(qtbot, tab)
    done = tab.model.rowCount()
    assert 1 <= done < 60
    assert f"Cancelled after {done} of 60" in window.statusBar().currentMessage()
    assert not tab.progress_row.isVisible() and tab.clear_button.isEnabled()
