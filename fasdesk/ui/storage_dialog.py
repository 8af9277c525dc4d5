"""Manage storage: the calibration sessions and user models on disk, their size, date and
the profiles that use them, and deleting them after a confirmation that says what a
profile would lose. The listing and deleting are fasdesk.core.calibration.storage."""
from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QAbstractItemView, QDialog, QHBoxLayout, QHeaderView, QLabel,
                               QPushButton, QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget)

from fasdesk.core.calibration import storage as S
from fasdesk.ui.training.widgets import MessageBox

COLUMNS = ("What", "Name", "Size", "Created", "Used by profiles")
KIND_TITLES = {S.SESSION: "Calibration session", S.MODEL: "Model"}


def _cell(text: str, right: bool = False, tip: str = "") -> QTableWidgetItem:
    item = QTableWidgetItem(text)
    item.setFlags(Qt.ItemIsSelectable | Qt.ItemIsEnabled)
    if right:
        item.setTextAlignment(Qt.AlignRight | Qt.AlignVCenter)
    if tip:
        item.setToolTip(tip)
    return item


class StorageDialog(QDialog):
    """Tools > Manage storage…"""

    changed = Signal()  # something was deleted (the model menu and profiles may change)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setWindowTitle("Manage storage")
        self.resize(900, 480)
        self.items: list[S.StoredItem] = []
        self.summary = QLabel()
        self.summary.setWordWrap(True)
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setSelectionBehavior(QAbstractItemView.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SingleSelection)
        self.table.verticalHeader().hide()
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeToContents)
        header.setSectionResizeMode(1, QHeaderView.Stretch)
        header.setDefaultAlignment(Qt.AlignLeft | Qt.AlignVCenter)  # over left-aligned text
        self.table.itemSelectionChanged.connect(self._on_selection)
        self.message = MessageBox()
        # The confirmation, inline: what goes, and who uses it.
        self.confirm_box = QWidget()
        confirm = QHBoxLayout(self.confirm_box)
        confirm.setContentsMargins(0, 0, 0, 0)
        self.confirm_text = QLabel()
        self.confirm_text.setWordWrap(True)
        self.confirm_button = QPushButton("Delete")
        self.cancel_button = QPushButton("Cancel")
        confirm.addWidget(self.confirm_text, 1)
        confirm.addWidget(self.confirm_button)
        confirm.addWidget(self.cancel_button)
        self.confirm_box.hide()
        self.delete_button = QPushButton("Delete…")
        self.refresh_button = QPushButton("Refresh")
        self.close_button = QPushButton("Close")
        buttons = QHBoxLayout()
        buttons.addWidget(self.delete_button)
        buttons.addWidget(self.refresh_button)
        buttons.addStretch(1)
        buttons.addWidget(self.close_button)
        layout = QVBoxLayout(self)
        layout.addWidget(self.summary)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.message)
        layout.addWidget(self.confirm_box)
        layout.addLayout(buttons)
        self.delete_button.clicked.connect(self.ask_delete)
        self.confirm_button.clicked.connect(self.delete_selected)
        self.cancel_button.clicked.connect(self.confirm_box.hide)
        self.refresh_button.clicked.connect(self.refresh)
        self.close_button.clicked.connect(self.accept)
        self.refresh()

    def refresh(self) -> None:
        self.confirm_box.hide()
        self.items = S.overview()
        self.table.setRowCount(len(self.items))
        for row, item in enumerate(self.items):
            used = ", ".join(item.used_by) or "—"
            cells = [_cell(KIND_TITLES[item.kind]), _cell(item.name, tip=str(item.path)),
                     _cell(S.human_size(item.size), right=True), _cell(item.created),
                     _cell(used)]
            for col, cell in enumerate(cells):
                self.table.setItem(row, col, cell)
        n_sessions = sum(i.kind == S.SESSION for i in self.items)
        n_models = len(self.items) - n_sessions
        total = S.human_size(sum(i.size for i in self.items))
        unused = [i for i in self.items if not i.used_by]
        self.summary.setText(
            f"{n_sessions} calibration session(s) and {n_models} model(s), {total} in all; "
            f"{len(unused)} used by no profile ({S.human_size(sum(i.size for i in unused))})."
            if self.items else "No calibration sessions or models of yours are stored.")
        self._on_selection()

    def selected(self) -> S.StoredItem | None:
        rows = self.table.selectionModel().selectedRows()
        return self.items[rows[0].row()] if rows else None

    def _on_selection(self) -> None:
        self.delete_button.setEnabled(self.selected() is not None)
        self.confirm_box.hide()

    def ask_delete(self) -> None:
        item = self.selected()
        if item is None:
            return
        what = KIND_TITLES[item.kind].lower()
        text = f"Delete the {what} <b>{item.name}</b> ({S.human_size(item.size)})?"
        if item.used_by:
            names = ", ".join(f"'{n}'" for n in item.used_by)
            text += (f" It is used by the profile(s) {names}: "
                     + ("they will no longer work." if item.kind == S.MODEL
                        else "their recordings will be gone (the profiles still work)."))
            self.confirm_button.setText("Delete anyway")
        else:
            self.confirm_button.setText("Delete")
        self.confirm_text.setText(text)
        self.confirm_box.show()

    def delete_selected(self) -> None:
        item = self.selected()
        self.confirm_box.hide()
        if item is None:
            return
        try:
            S.delete(item, force=True)  # the confirmation named the profiles that use it
        except S.StorageError as exc:
            self.message.show_message("error", str(exc))
            return
        self.refresh()
        self.message.show_message("ok", f"Deleted {item.name} ({S.human_size(item.size)} freed).")
        self.changed.emit()
