"""Collect mode for the Live tab: save a face on screen as a labelled training sample.

The panel follows the live view's painted frames (LiveTab.frame_shown). A class button
saves one face under that class: the face clicked in the view, or else the largest one;
the view marks that face while Collect mode is on. With auto-capture on, holding the
button keeps one frame in every k. Keys (while the live view has focus): R real, P print,
S replay (screen), M paper mask, D 3D mask. Files go into a folders-layout dataset (see
fasdesk.core.datasets.collect), which the Training tab opens directly.
"""
from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QMargins, Qt, QTimer, Signal
from PySide6.QtGui import QImage, QKeySequence, QPixmap, QShortcut
from PySide6.QtWidgets import (QCheckBox, QFileDialog, QGridLayout, QGroupBox, QHBoxLayout,
                               QLabel, QPushButton, QSizePolicy, QSpinBox, QVBoxLayout,
                               QWidget)

from fasdesk.core.datasets.dataset_info import FOLDERS
from fasdesk.core.images.display import sample_thumbnail
from fasdesk.core.io.imageio import ImageReadError
from fasdesk.core.datasets.collect import (CLASS_FOLDERS, CLASS_TITLES, AutoCapture, CollectError,
                                  SampleCollector, default_dataset_dir, face_at, pick_face)

CLASS_KEYS = {"real": "R", "print": "P", "replay": "S", "paper_mask": "M", "3d_mask": "D"}
LATEST_SIDE = 44  # the latest capture of each class, under its button
FLASH_MS = 350


class ElidedLabel(QLabel):
    """One line of text that shrinks with its row, eliding the middle (a long path)."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self._full = ""
        self.setMinimumWidth(80)
        self.setSizePolicy(QSizePolicy.Ignored, QSizePolicy.Preferred)

    def set_full_text(self, text: str) -> None:
        self._full = text
        self.setToolTip(text)
        self._elide()

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self._elide()

    def _elide(self) -> None:
        self.setText(self.fontMetrics().elidedText(self._full, Qt.ElideMiddle, self.width()))


class CollectPanel(QGroupBox):
    open_in_training = Signal(str)  # the dataset folder
    status_message = Signal(str)
    # The face a class button would save now (track id, caption), or None: the view marks it.
    target_changed = Signal(object, str)

    def __init__(self, state=None, parent=None):
        """state: the AppState that remembers the dataset folder (None: not remembered)."""
        super().__init__("Collect training samples", parent)
        self.state = state
        self.setCheckable(True)
        self.setChecked(False)
        self.setToolTip("Save a face on screen as a training sample (full frame + face box): "
                        "the face you click in the view, or else the largest one")
        folder = state.settings.last_folders.get("collect") if state is not None else None
        self.collector = SampleCollector(folder or default_dataset_dir())
        self.auto = AutoCapture()
        self.last_frame = None
        self.selected: int | None = None  # track id of the face clicked in the view
        self._target: tuple | None = None  # (track id, caption) marked in the view
        self._saved_index = None  # frame index last saved by a click or key (no doubles)

        # Auto-capture and the dataset folder share one row: the panel must stay low
        # enough for the window to fit a 1366x768 screen.
        self.auto_box = QCheckBox("Auto-capture while held: one frame in every")
        self.every = QSpinBox()
        self.every.setRange(1, 120)
        self.every.setValue(5)
        self.every.valueChanged.connect(lambda k: setattr(self.auto, "every", k))
        self.folder_label = ElidedLabel()
        change = QPushButton("Change…")
        change.clicked.connect(self.choose_folder)
        train = QPushButton("Open in Training")
        train.clicked.connect(lambda: self.open_in_training.emit(str(self.collector.root)))
        options_row = QHBoxLayout()
        options_row.addWidget(self.auto_box)
        options_row.addWidget(self.every)
        options_row.addWidget(QLabel("frames"))
        options_row.addSpacing(16)
        options_row.addWidget(self.folder_label, 1)
        options_row.addWidget(change)
        options_row.addWidget(train)

        grid = self._build_class_grid()
        self.choice = QLabel("")
        self.choice.setWordWrap(True)
        self.status = QLabel("")
        self.status.setWordWrap(True)

        body = QWidget()
        layout = QVBoxLayout(body)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.choice)
        layout.addLayout(grid)
        layout.addLayout(options_row)
        layout.addWidget(self.status)
        self._outer = QGridLayout(self)
        self._outer.addWidget(body)
        self._open_margins = self._outer.contentsMargins()
        self.body = body
        self.toggled.connect(self._on_toggled)
        self._on_toggled(False)
        self._refresh()

    def _build_class_grid(self) -> QGridLayout:
        """A button and a counter per class, and under each its latest capture."""
        grid = QGridLayout()
        self._shortcuts: list[QShortcut] = []
        self.buttons: dict[str, QPushButton] = {}
        self.counters: dict[str, QLabel] = {}
        self.latest: dict[str, QLabel] = {}  # the strip: each class's latest capture
        for i, label in enumerate(CLASS_FOLDERS):
            button = QPushButton(f"{CLASS_TITLES[label]}  [{CLASS_KEYS[label]}]")
            button.setObjectName(f"collect_{label}")
            button.pressed.connect(lambda label=label: self.press(label))
            button.released.connect(self.release)
            counter = QLabel("0")
            counter.setMinimumWidth(36)
            counter.setToolTip(f"{CLASS_TITLES[label]} samples in the dataset")
            grid.addWidget(button, 0, i * 2)
            grid.addWidget(counter, 0, i * 2 + 1)
            latest = QLabel()
            latest.setObjectName("latestCapture")
            latest.setFixedSize(LATEST_SIDE + 4, LATEST_SIDE + 4)
            latest.setAlignment(Qt.AlignCenter)
            latest.setToolTip(f"The latest {CLASS_TITLES[label].lower()} capture")
            latest.hide()  # until this class has one
            grid.addWidget(latest, 1, i * 2, Qt.AlignLeft)
            self.latest[label] = latest
            self.buttons[label] = button
            self.counters[label] = counter
            shortcut = QShortcut(QKeySequence(CLASS_KEYS[label]), self)
            shortcut.setContext(Qt.WindowShortcut)
            shortcut.activated.connect(lambda label=label: self._key(label))
            self._shortcuts.append(shortcut)
        grid.setColumnStretch(2 * len(CLASS_FOLDERS), 1)  # buttons stay together on the left
        return grid

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
        self._show_target()

    def set_folder(self, folder: str | Path) -> None:
        self.collector = SampleCollector(folder)
        if self.state is not None:
            self.state.remember_folder("collect", folder)
        self._refresh()

    def choose_folder(self) -> None:
        chosen = QFileDialog.getExistingDirectory(self, "Dataset folder for collected samples",
                                                  str(self.collector.root))
        if chosen:
            self.set_folder(chosen)

    def recount(self) -> None:
        """The counts from disk again (samples were deleted in the Training tab)."""
        self.collector.recount()
        self._refresh()

    def _refresh(self) -> None:
        self.folder_label.set_full_text(f"Into: {self.collector.root}")
        for label, counter in self.counters.items():
            counter.setText(str(self.collector.counts[label]))

    # -- which face ----------------------------------------------------------------------
    def select_at(self, x: float, y: float) -> None:
        """A click on the live view (frame pixels): select that face, or none (the largest)."""
        if not self.isChecked() or self.last_frame is None:
            return
        face = face_at(self.last_frame.faces, x, y)
        self.selected = face.track_id if face is not None else None
        self._show_target()

    def clear_frame(self) -> None:
        """The live view (re)starts a source: its frames and face ids no longer apply."""
        self.last_frame = None
        self.selected = None
        self._show_target()

    def _show_target(self) -> None:
        face = problem = None
        if self.isChecked() and self.last_frame is not None:
            face, problem = pick_face(self.last_frame.faces, self.selected)
        if self.selected is not None:
            text = (f"Saving only the selected face #{self.selected}; click outside the faces "
                    "to go back to the largest one.")
        else:
            text = "Saving the largest face; click a face in the view to save that one instead."
        if problem is not None and self.last_frame is not None and self.last_frame.faces:
            text += f" Now: {problem}."
        self.choice.setText(text)
        target = None
        if face is not None:
            target = (face.track_id, "save: selected face" if self.selected is not None
                      else "save: largest face")
        if target != self._target:
            self._target = target
            self.target_changed.emit(*(target or (None, "")))

    # -- capturing ----------------------------------------------------------------------
    def on_frame(self, frame) -> None:
        """Every painted live frame: remember it; auto-capture saves it when due."""
        self.last_frame = frame
        if not self.isChecked():
            return
        self._show_target()
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

    def _show_latest(self, label: str, written: Path) -> None:
        """The capture as the face crop training will use, under its class's button,
        flashed: a person sees what was saved without looking away."""
        try:
            rgb = sample_thumbnail(written, FOLDERS, LATEST_SIDE)
        except ImageReadError:
            return
        image = QImage(rgb.data, rgb.width, rgb.height, rgb.stride, QImage.Format_RGB888)
        cell = self.latest[label]
        cell.setPixmap(QPixmap.fromImage(image.copy()))
        cell.setToolTip(f"The latest {CLASS_TITLES[label].lower()} capture: {written.name}")
        cell.show()
        self.set_flash(label, True)
        # (bound to the cell: a window closed within the flash cancels the timer)
        QTimer.singleShot(FLASH_MS, self.latest[label], lambda: self.set_flash(label, False))

    def set_flash(self, label: str, on: bool) -> None:
        cell = self.latest[label]
        cell.setProperty("flash", on)
        cell.setStyleSheet("QLabel { border: 2px solid %s; border-radius: 3px; }"
                           % ("#f0c419" if on else "transparent"))

    def save(self, label: str) -> Path | None:
        """Save the chosen face of the current frame under `label`; the image path or None."""
        frame = self.last_frame
        if frame is None:
            self.status.setText("No live frame yet: start the live view first.")
            return None
        face, problem = pick_face(frame.faces, self.selected)
        if face is None:
            self.status.setText(f"Not saved: {problem}.")
            return None
        try:
            written = self.collector.save(frame.rgb, face.result.box, label, rgb=True)
        except CollectError as exc:
            self.status.setText(f"Not saved: {exc}")
            self.auto.release()
            return None
        self._saved_index = frame.index
        self._refresh()
        self._show_latest(label, written)
        others = len(frame.faces) - 1
        self.status.setText(
            f"Saved face #{face.track_id} as {CLASS_TITLES[label].lower()} "
            f"({written.parent.relative_to(self.collector.root).as_posix()}/)"
            + (f"; {others} other face(s) in the frame not saved." if others else "."))
        return written
