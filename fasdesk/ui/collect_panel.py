"""Collect mode for the Live tab: save the faces on screen as labelled training samples.

The panel follows the live view's painted frames (LiveTab.frame_shown). A class button
saves the current faces under that class; with auto-capture on, holding the button keeps
one frame in every k. Keys (while the live view has focus): R real, P print, S replay
(screen), M paper mask, D 3D mask. Files go into a folders-layout dataset (see
fasdesk.core.collect), which the Training tab opens directly.
"""
from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QMargins, Qt, Signal
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import (QCheckBox, QFileDialog, QGridLayout, QGroupBox, QHBoxLayout,
                               QLabel, QPushButton, QSpinBox, QVBoxLayout, QWidget)

from fasdesk.core.collect import (CLASS_FOLDERS, CLASS_TITLES, AutoCapture, CollectError,
                                  SampleCollector, collectable_boxes, default_dataset_dir)

CLASS_KEYS = {"real": "R", "print": "P", "replay": "S", "paper_mask": "M", "3d_mask": "D"}


class CollectPanel(QGroupBox):
    open_in_training = Signal(str)  # the dataset folder
    status_message = Signal(str)

    def __init__(self, settings=None, parent=None):
        super().__init__("Collect training samples", parent)
        self.settings = settings
        self.setCheckable(True)
        self.setChecked(False)
        self.setToolTip("Save the faces on screen as training samples (full frame + face box)")
        folder = None
        if settings is not None:
            folder = settings.last_folders.get("collect")
        self.collector = SampleCollector(folder or default_dataset_dir())
        self.auto = AutoCapture()
        self.last_frame = None
        self._saved_index = None  # frame index last saved by a click or key (no doubles)

        self.folder_label = QLabel()
        self.folder_label.setTextInteractionFlags(Qt.TextSelectableByMouse)
        change = QPushButton("Change…")
        change.clicked.connect(self.choose_folder)
        train = QPushButton("Open in Training")
        train.clicked.connect(lambda: self.open_in_training.emit(str(self.collector.root)))
        folder_row = QHBoxLayout()
        folder_row.addWidget(self.folder_label, 1)
        folder_row.addWidget(change)
        folder_row.addWidget(train)

        self.auto_box = QCheckBox("Auto-capture while held: one frame in every")
        self.every = QSpinBox()
        self.every.setRange(1, 120)
        self.every.setValue(5)
        self.every.valueChanged.connect(lambda k: setattr(self.auto, "every", k))
        auto_row = QHBoxLayout()
        auto_row.addWidget(self.auto_box)
        auto_row.addWidget(self.every)
        auto_row.addWidget(QLabel("frames"))
        auto_row.addStretch(1)

        grid = QGridLayout()
        self._shortcuts: list[QShortcut] = []
        self.buttons: dict[str, QPushButton] = {}
        self.counters: dict[str, QLabel] = {}
        for i, label in enumerate(CLASS_FOLDERS):
            button = QPushButton(f"{CLASS_TITLES[label]}  [{CLASS_KEYS[label]}]")
            button.setObjectName(f"collect_{label}")
            button.pressed.connect(lambda label=label: self.press(label))
            button.released.connect(self.release)
            counter = QLabel("0")
            counter.setMinimumWidth(36)
            counter.setToolTip(f"{CLASS_TITLES[label]} samples in the dataset")
            grid.addWidget(button, i // 3, (i % 3) * 2)
            grid.addWidget(counter, i // 3, (i % 3) * 2 + 1)
            self.buttons[label] = button
            self.counters[label] = counter
            shortcut = QShortcut(QKeySequence(CLASS_KEYS[label]), self)
            shortcut.setContext(Qt.WindowShortcut)
            shortcut.activated.connect(lambda label=label: self._key(label))
            self._shortcuts.append(shortcut)
        grid.setColumnStretch(6, 1)  # buttons and counts stay together on the left
        self.status = QLabel("")
        self.status.setWordWrap(True)

        body = QWidget()
        layout = QVBoxLayout(body)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(grid)
        layout.addLayout(auto_row)
        layout.addLayout(folder_row)
        layout.addWidget(self.status)
        self._outer = QGridLayout(self)
        self._outer.addWidget(body)
        self._open_margins = self._outer.contentsMargins()
        self.body = body
        self.toggled.connect(self._on_toggled)
        self._on_toggled(False)
        self._refresh()

    # -- mode and folder ----------------------------------------------------------------
    def _on_toggled(self, on: bool) -> None:
        self.body.setVisible(on)
        # Collapsed, only the checkbox line shows: no frame, no room kept around the body.
        self.setFlat(not on)
        self.style().unpolish(self)  # the style sheet picks up [flat="true"]
        self.style().polish(self)
        self._outer.setContentsMargins(self._open_margins if on else QMargins(0, 0, 0, 0))
        for shortcut in self._shortcuts:
            shortcut.setEnabled(on)
        if not on:
            self.auto.release()

    def set_folder(self, folder: str | Path) -> None:
        self.collector = SampleCollector(folder)
        if self.settings is not None:
            self.settings.last_folders["collect"] = str(folder)
        self._refresh()

    def choose_folder(self) -> None:
        chosen = QFileDialog.getExistingDirectory(self, "Dataset folder for collected samples",
                                                  str(self.collector.root))
        if chosen:
            self.set_folder(chosen)

    def _refresh(self) -> None:
        self.folder_label.setText(f"Into: {self.collector.root}")
        self.folder_label.setToolTip(str(self.collector.root))
        for label, counter in self.counters.items():
            counter.setText(str(self.collector.counts[label]))

    # -- capturing ----------------------------------------------------------------------
    def on_frame(self, frame) -> None:
        """Every painted live frame: remember it; auto-capture saves it when due."""
        self.last_frame = frame
        if not self.isChecked():
            return
        label = self.auto.tick()
        if label is not None:
            self.save(label)

    def press(self, label: str) -> None:
        if self.auto_box.isChecked():
            self.auto.press(label)  # the next frames save while the button is held
        else:
            self.save(label)

    def release(self) -> None:
        self.auto.release()

    def _key(self, label: str) -> None:
        # Only while the live view is on screen; a held key repeats: each frame once.
        if not self.isVisible():
            return
        if self.last_frame is not None and self.last_frame.index != self._saved_index:
            self.save(label)

    def save(self, label: str) -> list[Path]:
        frame = self.last_frame
        if frame is None:
            self.status.setText("No live frame yet: start the live view first.")
            return []
        boxes = collectable_boxes([face.result for face in frame.faces])
        if not boxes:
            self.status.setText("Not saved: no face in this frame that the model can judge "
                                "(too small, cut by the border, or none).")
            return []
        try:
            written = self.collector.save(frame.rgb, boxes, label, rgb=True)
        except CollectError as exc:
            self.status.setText(f"Not saved: {exc}")
            self.auto.release()
            return []
        self._saved_index = frame.index
        self._refresh()
        self.status.setText(f"Saved {len(written)} face(s) as {CLASS_TITLES[label].lower()} "
                            f"({written[-1].parent.relative_to(self.collector.root).as_posix()}/).")
        return written
