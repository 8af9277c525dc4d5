"""The main window's menus: File, Live, Model (the models known, Open ONNX, Model info),
View (the tabs, Ctrl+1..3), Tools, Help. The Model menu is a view of AppState's model."""
from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QActionGroup, QKeySequence

from fasdesk.core.models import cards, registry


def build_menus(window) -> None:
    """Menus of a MainWindow; its actions land on the window's and the state's methods."""
    state = window.state
    bar = window.menuBar()
    file_menu = bar.addMenu("&File")
    act = file_menu.addAction("Open images...", window.open_images)
    act.setShortcut(QKeySequence.Open)
    file_menu.addAction("Open folder...", window.open_image_folder)
    file_menu.addSeparator()
    act = file_menu.addAction("Save snapshot...", lambda: window.live_tab.snapshot())
    act.setShortcut(QKeySequence("Ctrl+S"))
    window.snapshot_action = act
    file_menu.addSeparator()
    act = file_menu.addAction("Quit", window.close)
    act.setShortcut(QKeySequence.Quit)

    live_menu = bar.addMenu("&Live")
    # Space starts and stops live, but only while the Live tab shows: elsewhere Space
    # stays the key that presses the focused button.
    window.start_stop_action = live_menu.addAction("Start / Stop", window.live_tab.toggle)
    window.start_stop_action.setShortcut(QKeySequence(Qt.Key_Space))
    live_menu.addSeparator()
    window.loop_action = live_menu.addAction("Loop videos and image folders")
    window.loop_action.setCheckable(True)
    window.loop_action.setChecked(state.settings.loop_playback)
    window.loop_action.toggled.connect(lambda on: state.update(loop_playback=on))
    window.smooth_action = live_menu.addAction("Smooth scores over frames")
    window.smooth_action.setCheckable(True)
    window.smooth_action.setChecked(state.settings.smoothing > 0)
    window.smooth_action.toggled.connect(lambda on: state.update(smoothing=0.6 if on else 0.0))

    window.model_menu = ModelMenu(bar.addMenu("&Model"), window)

    view_menu = bar.addMenu("&View")
    window.tab_actions = []
    for n in range(window.tabs.count()):
        act = view_menu.addAction(window.tabs.tabText(n).replace("&", ""),
                                  lambda n=n: window.tabs.setCurrentIndex(n))
        act.setShortcut(QKeySequence(f"Ctrl+{n + 1}"))
        window.tab_actions.append(act)
        window.tabs.setTabToolTip(n, f"{act.text()} ({act.shortcut().toString(QKeySequence.NativeText)})")

    view_menu.addSeparator()
    appearance = view_menu.addMenu("Appearance")
    group = QActionGroup(appearance)
    window.appearance_actions = {}
    for value, text in (("system", "Follow the system"), ("light", "Light"), ("dark", "Dark")):
        act = appearance.addAction(text)
        act.setCheckable(True)
        act.setChecked(state.settings.appearance == value)
        act.triggered.connect(lambda _=False, v=value: (state.update(appearance=v), state.save()))
        group.addAction(act)
        window.appearance_actions[value] = act

    tools_menu = bar.addMenu("&Tools")
    window.calibrate_action = tools_menu.addAction("Calibrate this camera…",
                                                   lambda: window.open_calibration())
    window.calibrate_action.setShortcut(QKeySequence("Ctrl+K"))
    tools_menu.addAction("Camera profiles…", window.open_profiles)
    tools_menu.addAction("Manage storage…", window.open_storage)

    # The shortcuts in the Live tab's tooltips, where a person hovers first.
    live = window.live_tab
    for button, action in ((live.start_button, window.start_stop_action),
                           (live.snapshot_button, window.snapshot_action),
                           (live.calibrate_button, window.calibrate_action)):
        keys = action.shortcut().toString(QKeySequence.NativeText)
        button.setToolTip(f"{button.toolTip() or action.text()} ({keys})".lstrip())
    window.tabs.currentChanged.connect(
        lambda _i: window.start_stop_action.setEnabled(window.tabs.currentWidget() is live))

    help_menu = bar.addMenu("&Help")
    help_menu.addAction("About fasdesk", window.show_about)


class ModelMenu:
    """The liveness models of the registry (the one in use checked), a model opened from a
    file, Open ONNX and Model info. Listed anew each time it opens: models appear while
    the app runs (downloads, Training tab exports)."""

    def __init__(self, menu, window):
        self.menu, self.window, self.state = menu, window, window.state
        self.group = QActionGroup(menu)
        self.group.setExclusive(True)
        self.refresh()
        menu.aboutToShow.connect(self.refresh)

    def refresh(self) -> None:
        menu, state = self.menu, self.state
        menu.clear()
        for action in self.group.actions():
            self.group.removeAction(action)
        current = state.model or registry.default_liveness_id()
        for entry in registry.load_manifest():
            if entry.kind != "liveness":
                continue
            found = registry.find_file(entry.file)
            name = cards.display_name(entry, found) if found else entry.id
            action = QAction(name + ("" if found else "  (not downloaded)"), menu)
            action.setCheckable(True)
            action.setChecked(entry.id == current)
            action.setEnabled(found is not None)
            action.setToolTip(f"{entry.id}: {entry.description}")
            action.setStatusTip(f"{entry.id}: {entry.description}")
            action.triggered.connect(lambda _=False, mid=entry.id: state.use_model(mid))
            self.group.addAction(action)
            menu.addAction(action)
        if state.model and registry.get_entry(state.model) is None:
            action = QAction(Path(state.model).name, menu)
            action.setCheckable(True)
            action.setChecked(True)
            action.setToolTip(state.model)
            self.group.addAction(action)
            menu.addAction(action)
        menu.addSeparator()
        menu.addAction("Open ONNX...", self.window.open_model_file)
        menu.addAction("Model info...", self.window.show_model_info)
