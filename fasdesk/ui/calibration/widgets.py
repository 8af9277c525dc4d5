"""What the calibration and profiles dialogs share: source pickers, table
items, percentages, and stopping work however a dialog ends."""
from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QComboBox, QFileDialog, QHBoxLayout, QPushButton, QSizePolicy,
                               QTableWidgetItem, QWidget)

from fasdesk.core.live.sources import SourceSpec
from fasdesk.ui.training.widgets import MessageBox

# An attack's picker starts here: never on the real faces' source (issue 20, item 1).
NOT_CHOSEN = "not-chosen"


def pct(value) -> str:
    return "n/a" if value is None else f"{100.0 * value:.1f}%"


def grown(box: MessageBox) -> MessageBox:
    """A message box that takes the height its wrapped text needs."""
    box.setSizePolicy(QSizePolicy.Preferred, QSizePolicy.Minimum)
    return box


def set_primary(chosen: QPushButton, *others: QPushButton) -> None:
    """Make `chosen` the button that stands out (the style sheet's #primary) and that
    Enter presses; `others` plain."""
    for button in (chosen, *others):
        button.setObjectName("primary" if button is chosen else "")
        button.setDefault(button is chosen)
        button.style().unpolish(button)
        button.style().polish(button)
        button.updateGeometry()  # the primary style is bolder: room for its text
    parent = chosen.parentWidget()
    if parent is not None and parent.layout() is not None:
        parent.layout().activate()  # now, not at the next event: never drawn cut


def table_item(text: str, right: bool = False) -> QTableWidgetItem:
    item = QTableWidgetItem(text)
    item.setFlags(item.flags() & ~Qt.ItemIsEditable)
    if right:
        item.setTextAlignment(Qt.AlignRight | Qt.AlignVCenter)
    return item


def operating_point(report: dict) -> str:
    """Where the attack rate was measured: at the target BPCER when the held-out frames
    meet it, else at the threshold picked for it, with the real-face rate it really gave."""
    target = 100 * report["target_bpcer"]
    bpcer = report["held_out"]["bpcer"]
    if report["meets_target"] or bpcer is None:
        return f"at BPCER ≤ {target:g}%"
    return (f"at the threshold picked for BPCER ≤ {target:g}% (on the held-out frames it "
            f"rejects {100 * bpcer:.1f}% of real faces)")


def close_row(dialog) -> tuple[QPushButton, QHBoxLayout]:
    """The dialog's Close button, at the right of a row of its own."""
    button = QPushButton("Close")
    button.clicked.connect(dialog.close)
    row = QHBoxLayout()
    row.addStretch(1)
    row.addWidget(button)
    return button, row


class StopsWhenClosed:
    """For a dialog with a `shutdown()`: it runs however the dialog ends, by its close
    button or by Esc and Close, which end a dialog without a close event (and a dialog
    deleted on close would otherwise free its threads while they run)."""

    def closeEvent(self, event) -> None:
        self.shutdown()
        super().closeEvent(event)

    def done(self, result: int) -> None:
        self.shutdown()
        super().done(result)



class SourcePicker(QWidget):
    """A camera, a video file or an image folder; optionally nothing chosen yet (`optional`:
    an attack's picker, which must never default to the real faces' source)."""
    changed = Signal()

    def __init__(self, cameras, current: SourceSpec | None, optional: bool = False, parent=None):
        super().__init__(parent)
        self.combo = QComboBox()
        self.combo.setMinimumWidth(220)
        if optional:
            self.combo.addItem("Choose a source…", NOT_CHOSEN)
        for index, name in cameras:
            self.combo.addItem(f"{name} (camera {index})" if name else f"Camera {index}",
                               SourceSpec("camera", str(index)))
        self.combo.addItem("Video file…", "pick-video")
        self.combo.addItem("Image folder…", "pick-folder")
        self.combo.activated.connect(self._on_activated)
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.combo, 1)
        self._last = 0
        if current is not None:
            self.set_spec(current)

    def spec(self) -> SourceSpec | None:
        """The chosen source; None when none is chosen yet."""
        data = self.combo.currentData()
        return data if isinstance(data, SourceSpec) else None

    def set_spec(self, spec: SourceSpec | None) -> None:
        if spec is None:
            self.combo.setCurrentIndex(max(0, self.combo.findData(NOT_CHOSEN)))
        else:
            index = next((i for i in range(self.combo.count()) if self.combo.itemData(i) == spec), -1)
            if index < 0:
                label = spec.label if spec.kind == "camera" else f"{spec.label}  ({spec.kind})"
                self.combo.insertItem(self.combo.count() - 2, label, spec)
                index = self.combo.count() - 3
                self.combo.setItemData(index, spec.target, Qt.ToolTipRole)
            self.combo.setCurrentIndex(index)
        self._last = self.combo.currentIndex()
        self.changed.emit()

    def _on_activated(self, index: int) -> None:
        data = self.combo.itemData(index)
        if data == "pick-video":
            path, _ = QFileDialog.getOpenFileName(self, "A recording (video file)")
        elif data == "pick-folder":
            path = QFileDialog.getExistingDirectory(self, "A recording (image folder)")
        else:
            self._last = index
            self.changed.emit()
            return
        if path:
            self.set_spec(SourceSpec.parse(path))
        else:
            self.combo.setCurrentIndex(self._last)
