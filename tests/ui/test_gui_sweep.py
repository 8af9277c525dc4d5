"""No dead controls: every enabled button and menu action of the main window and of the
dialogs it opens is clicked (triggered) in their main states, and nothing may raise.

A slot that raises in a Qt callback does not crash the app: PySide prints the traceback
and the button simply does nothing, so a person sees a dead control (the profiles
dialog's Re-score once did, `clicked(bool)` landing in its `model` parameter). Here each
press runs under qtbot.captureExceptions(), which hooks sys.excepthook, where PySide
reports such exceptions, and a failure names the control. File, input and message
dialogs answer "cancel", so a press never blocks on a modal dialog.
"""
from __future__ import annotations

import traceback

import pytest

pytest.importorskip("pytestqt")

import shiboken6  # noqa: E402
from PySide6.QtCore import QPoint, Qt  # noqa: E402
from PySide6.QtGui import QAction  # noqa: E402
from PySide6.QtWidgets import (QAbstractButton, QApplication, QFileDialog,  # noqa: E402
                               QInputDialog, QMessageBox)

from fasdesk.core.calibration.profiles import Profile, find_profile, save_profile  # noqa: E402
from fasdesk.core.models import registry  # noqa: E402
from fasdesk.core.io.settings import Settings  # noqa: E402
from fasdesk.core.live.sources import SourceSpec  # noqa: E402

from calibration_media import write_recording  # noqa: E402
from gui_helpers import click_point  # noqa: E402
from livevideo import write_video  # noqa: E402

pytestmark = [pytest.mark.qt_log_level_fail("WARNING"),
              # (the offscreen platform's notes on window sizes and on opening a menu)
              pytest.mark.qt_log_ignore("propagateSizeHints", "support raise",
                                        "grabbing the keyboard")]

TIMEOUT_MS = 30_000
TUNE_TIMEOUT_MS = 120_000  # a cancelled fine-tune: its backend process ends
RECORDED_FRAMES = 40  # per calibration stage: enough for a report
# Pressed after the others: they end the state being swept (close it, stop live).
ENDERS = ("Stop", "Close", "Quit", "Re-run calibration…", "Open recordings in Training")


@pytest.fixture(autouse=True)
def dialogs_answer_cancel(monkeypatch):
    """Every static file/input/message dialog (and a message box's exec) says "cancel"."""
    for name in ("getOpenFileName", "getOpenFileNames", "getSaveFileName"):
        monkeypatch.setattr(QFileDialog, name, staticmethod(lambda *a, **k: ("", "")))
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", staticmethod(lambda *a, **k: ""))
    monkeypatch.setattr(QInputDialog, "getText", staticmethod(lambda *a, **k: ("", False)))
    monkeypatch.setattr(QInputDialog, "getItem", staticmethod(lambda *a, **k: ("", False)))
    monkeypatch.setattr(QInputDialog, "getInt", staticmethod(lambda *a, **k: (0, False)))
    monkeypatch.setattr(QInputDialog, "getDouble", staticmethod(lambda *a, **k: (0.0, False)))
    for name in ("question", "warning", "information", "critical"):
        monkeypatch.setattr(QMessageBox, name,
                            staticmethod(lambda *a, **k: QMessageBox.StandardButton.Cancel))
    monkeypatch.setattr(QMessageBox, "exec", lambda self: QMessageBox.StandardButton.Cancel)


@pytest.fixture(scope="module")
def video(tmp_path_factory, samples_dir, fp32_model, detector_model):
    return write_video(tmp_path_factory.mktemp("video") / "samples.avi", samples_dir)


def describe(control) -> str:
    return (f"'{control.text()}' (objectName {control.objectName()!r}, "
            f"{type(control).__name__})")


def press(qtbot, control) -> None:
    """Click a button / trigger an action as a person would; fail on anything raised."""
    with qtbot.captureExceptions() as raised:
        if isinstance(control, QAction):
            control.trigger()
        else:
            qtbot.mouseClick(control, Qt.LeftButton, pos=click_point(control))
        QApplication.processEvents()
    if raised:
        details = "".join(traceback.format_exception(*raised[0]))
        pytest.fail(f"pressing {describe(control)} raised:\n{details}")


def close_new_windows(before: set) -> None:
    """Close the windows a press opened (each dialog is swept in its own test)."""
    for widget in QApplication.topLevelWidgets():
        if widget.isVisible() and widget not in before and widget.isWindow():
            widget.close()
    QApplication.processEvents()


def sweep(qtbot, root, enders: bool = True, done=()) -> list[str]:
    """Press every enabled, visible button under `root` once, looking again after each
    press (a press enables others: Record enables Stop), enders last (or not at all),
    those in `done` not at all; returns the texts pressed."""
    before = {w for w in QApplication.topLevelWidgets() if w.isVisible()}
    done, pressed = {id(b) for b in done}, []
    while shiboken6.isValid(root):
        buttons = [b for b in root.findChildren(QAbstractButton)
                   if b.isVisible() and b.isEnabled() and id(b) not in done
                   and (enders or b.text() not in ENDERS)]
        if not buttons:
            break
        button = min(buttons, key=lambda b: b.text() in ENDERS)  # layout order otherwise
        done.add(id(button))
        text = button.text()
        press(qtbot, button)  # (may delete it: dialogs are deleted on close)
        pressed.append(text)
        close_new_windows(before)
    return pressed


def closed(window) -> bool:
    return not shiboken6.isValid(window) or not window.isVisible()


def menu_actions(menu) -> list[QAction]:
    """The enabled actions of `menu`, opened first as a person would (the Model menu lists
    the models anew when it opens)."""
    menu.popup(QPoint(0, 0))
    menu.hide()
    return [a for a in menu.actions()
            if not a.isSeparator() and a.isEnabled() and a.menu() is None]


def sweep_menus(qtbot, window, keep_open: bool = True) -> list[str]:
    """Trigger every menu action (Quit last, and only unless `keep_open`). Each one is
    looked up again in its menu, opened anew: choosing a model lists the models again."""
    before = {w for w in QApplication.topLevelWidgets() if w.isVisible()}
    menus = [top.menu() for top in window.menuBar().actions()]
    pressed = []
    for menu in menus:
        for text in [a.text() for a in menu_actions(menu)]:
            if text == "Quit":
                continue
            action = next((a for a in menu_actions(menu) if a.text() == text), None)
            if action is None:
                continue  # disabled now (a model chosen by the previous one, say)
            # (read before the press: choosing a model rebuilds its menu's actions)
            stops_live = action is window.start_stop_action and window.live_tab.running
            toggle = action.isCheckable() and action.actionGroup() is None
            press(qtbot, action)
            if stops_live:  # and starts again: the state swept is kept
                qtbot.waitUntil(lambda: not window.live_tab.running, timeout=TIMEOUT_MS)
                press(qtbot, action)
                qtbot.waitUntil(lambda: window.live_tab.running, timeout=TIMEOUT_MS)
            elif toggle:
                press(qtbot, action)  # a setting toggled: and back
            pressed.append(text)
            close_new_windows(before)
    if not keep_open:
        quit_action = next(a for m in menus for a in menu_actions(m) if a.text() == "Quit")
        press(qtbot, quit_action)
        assert not window.isVisible()
    return pressed


def test_main_window_idle_every_tab_and_menu(make_window, qtbot):
    window = make_window(settings=Settings(), save=False)
    pressed = []
    for index in range(window.tabs.count()):
        window.tabs.setCurrentIndex(index)
        pressed += sweep(qtbot, window)
    assert {"Start", "Calibrate…", "Add images...", "Add folder..."} <= set(pressed)
    actions = sweep_menus(qtbot, window, keep_open=False)
    assert {"Open images...", "Save snapshot...", "Camera profiles…", "About fasdesk",
            "Open ONNX...", "Model info...", "Calibrate this camera…"} <= set(actions)


def test_main_window_live_on_a_video(make_window, qtbot, video):
    window = make_window(settings=Settings(loop_playback=True), save=False)
    tab = window.live_tab
    tab.start(SourceSpec.parse(str(video)))
    qtbot.waitUntil(lambda: tab.running and tab.snapshot_button.isEnabled(), timeout=TIMEOUT_MS)
    actions = sweep_menus(qtbot, window)  # while live: model switch, loop, smooth, snapshot
    assert tab.running
    window.tabs.setCurrentWidget(tab)  # (View > Ctrl+1..3 switched tabs)
    pressed = sweep(qtbot, tab)
    # (Mirror is greyed on a video: it is for cameras)
    assert pressed[-1] == "Stop" and {"Snapshot", "Calibrate…"} <= set(pressed)
    assert "Save snapshot..." in actions
    qtbot.waitUntil(lambda: not tab.running, timeout=TIMEOUT_MS)


def test_model_info_and_about(make_window, qtbot):
    window = make_window(settings=Settings(), save=False)
    info = window.show_model_info()
    qtbot.waitUntil(lambda: info.ready, timeout=TIMEOUT_MS)
    assert "Close" in sweep(qtbot, info) and closed(info)
    about = window.show_about()
    assert sweep(qtbot, about) and closed(about)


def _profile(tmp_path, samples_dir) -> Profile:
    session = tmp_path / "session"
    session.mkdir()
    model = registry.DEFAULT_LIVENESS
    return Profile(name="desk", source={"kind": "folder", "target": str(samples_dir), "name": ""},
                   model=model, model_sha256=registry.file_sha256(registry.resolve(model)),
                   threshold=0.5, session=str(session))


def test_profiles_dialog_empty_and_with_a_profile_selected(make_window, qtbot, tmp_path,
                                                           samples_dir):
    window = make_window(settings=Settings(), save=False)
    empty = window.open_profiles()
    assert "Close" in sweep(qtbot, empty) and closed(empty)

    save_profile(_profile(tmp_path, samples_dir))
    dialog = window.open_profiles()
    assert dialog.selected() is not None
    pressed = sweep(qtbot, dialog, enders=False)
    # Re-score on a session without recordings: a message, not an exception.
    assert {"Rename…", "Delete", "Export…", "Re-score", "Open ONNX…"} <= set(pressed)
    qtbot.waitUntil(lambda: dialog.worker is None, timeout=TIMEOUT_MS)
    assert "Not re-scored" in dialog.rescore_message.text()
    assert find_profile("desk") is not None  # Delete and Rename were answered "cancel"
    press(qtbot, dialog.close_button)
    assert closed(dialog)
    # The enders close the dialog: each in a dialog of its own.
    for key in ("rerun", "train"):
        again = window.open_profiles()
        before = {w for w in QApplication.topLevelWidgets() if w.isVisible()}
        press(qtbot, again.buttons[key])
        assert closed(again)
        close_new_windows(before)


@pytest.fixture(scope="module")
def recordings(tmp_path_factory, samples_dir):
    folder = tmp_path_factory.mktemp("recordings")
    return (write_recording(folder / "door.avi", samples_dir, RECORDED_FRAMES),
            write_recording(folder / "phone.avi", samples_dir, RECORDED_FRAMES, attack=True))


def record(qtbot, dialog) -> None:
    press(qtbot, dialog.recorder.record_button)
    qtbot.waitUntil(lambda: dialog.worker is None, timeout=TIMEOUT_MS)
    assert dialog.recorder.next_button.isEnabled(), dialog.recorder.record_message.text()


def test_calibration_dialog_setup_record_and_report_pages(make_window, qtbot, recordings,
                                                          checkpoint, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # fine-tuning starts (and is cancelled)
    real, phone = recordings
    window = make_window(settings=Settings(), save=False)
    press(qtbot, window.live_tab.calibrate_button)
    dialog = window.calibration_dialog
    setup = dialog.setup
    setup.real_source.set_spec(SourceSpec.parse(str(real)))
    setup.set_attack("replay", SourceSpec.parse(str(phone)))
    setup.every.setValue(1)
    # A target the short recordings can support: the fine-tune starts (then is cancelled)
    # rather than stopping at once on "too few real faces".
    setup.target.setValue(25)
    # Every setup control but Start (it leaves the page) and Close.
    for button in setup.findChildren(QAbstractButton):
        if button.isVisible() and button.isEnabled() and button is not setup.start_button:
            press(qtbot, button)
    for name, (check, _) in setup.attack_rows.items():
        check.setChecked(name == "replay")
    press(qtbot, setup.start_button)
    recorder = dialog.recorder
    assert recorder.isVisible(), setup.setup_message.text()
    pressed = sweep(qtbot, recorder, enders=False)  # Record (and Next if it ended at once)
    assert pressed[0] == "Record"
    if recorder.stop_button.isEnabled():
        press(qtbot, recorder.stop_button)
    qtbot.waitUntil(lambda: dialog.worker is None, timeout=TIMEOUT_MS)
    if dialog.stage_index == 0:
        record(qtbot, dialog)
        press(qtbot, recorder.next_button)
    record(qtbot, dialog)
    press(qtbot, recorder.next_button)
    qtbot.waitUntil(lambda: dialog.before is not None, timeout=TIMEOUT_MS)
    report = dialog.report
    assert report.isVisible()
    press(qtbot, report.tune_button)  # a real fine-tune starts, and is cancelled
    assert report.tune_cancel.isEnabled(), report.tune_status.text()
    press(qtbot, report.tune_cancel)
    qtbot.waitUntil(lambda: not dialog.tuning, timeout=TUNE_TIMEOUT_MS)
    assert "cancelled" in report.tune_status.text(), report.tune_status.text()
    pressed = sweep(qtbot, report, enders=False, done=[report.tune_button])  # the rest
    assert "Save profile" in pressed
    assert find_profile(report.profile_name.text()) is not None
    press(qtbot, dialog.close_button)
    assert closed(dialog)
