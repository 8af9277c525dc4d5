"""Model info and About dialogs."""
from __future__ import annotations

import platform
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (QDialog, QDialogButtonBox, QFormLayout, QLabel, QTableWidget,
                               QTableWidgetItem, QVBoxLayout, QWidget)

from fasdesk import __version__
from fasdesk.app.model_info import model_info
from fasdesk.core.io.errors import one_line
from fasdesk.core.models import registry
from fasdesk.ui.workers import start_worker


class ModelInfoDialog(QDialog):
    """The model's facts; loading it and timing it run in a worker, the dialog opens at
    once with "Loading..." and fills in when they are known (`ready`)."""

    def __init__(self, model_path: Path, parent=None):
        super().__init__(parent)
        self.setWindowTitle("Model info")
        self.setMinimumWidth(560)
        self.info: dict[str, str] | None = None
        self.layout_ = QVBoxLayout(self)
        self.facts = self._facts({"File": str(model_path),
                                  "": "Loading the model and measuring its latency..."})
        self.layout_.addWidget(self.facts)
        buttons = QDialogButtonBox(QDialogButtonBox.Close)
        buttons.rejected.connect(self.reject)
        self.layout_.addWidget(buttons)
        self.worker = start_worker(model_info, Path(model_path))
        self.worker.returned.connect(self._show)
        self.worker.errored.connect(lambda exc: self._show({"Error": one_line(exc)}))

    @property
    def ready(self) -> bool:
        return self.info is not None

    @staticmethod
    def _facts(info: dict[str, str]) -> QWidget:
        box = QWidget()
        form = QFormLayout(box)
        form.setContentsMargins(0, 0, 0, 0)
        for key, value in info.items():
            label = QLabel(value)
            label.setTextInteractionFlags(Qt.TextSelectableByMouse)
            label.setWordWrap(True)
            form.addRow(f"{key}:" if key else "", label)
        return box

    def _show(self, info: dict[str, str]) -> None:
        self.info = info
        facts = self._facts(info)
        self.layout_.replaceWidget(self.facts, facts)
        self.facts.deleteLater()
        self.facts = facts
        facts.show()
        # Grown to the facts, now that they are known (wrapped lines need the height for
        # the dialog's width, which adjustSize alone does not ask for).
        self.layout_.activate()
        self.resize(self.width(), max(self.height(), self.layout_.totalHeightForWidth(self.width())))


def versions() -> dict[str, str]:
    """What the About box lists: the packages `fasdesk doctor` reports, plus Qt's runtime."""
    import onnxruntime
    from PySide6.QtCore import qVersion

    from fasdesk.core.diagnostics.doctor import versions as package_versions

    shown = {name: version for name, version in package_versions().items() if version}
    shown["Qt runtime"] = qVersion()
    shown["execution providers"] = ", ".join(onnxruntime.get_available_providers())
    shown["system"] = f"{platform.system()} {platform.release()} ({platform.machine()})"
    return shown


class AboutDialog(QDialog):
    def __init__(self, parent=None):
        super().__init__(parent)
        self.setWindowTitle("About fasdesk")
        self.setMinimumWidth(620)
        layout = QVBoxLayout(self)
        title = QLabel(f"<h2>fasdesk {__version__}</h2>"
                       "<p>Face liveness (anti-spoofing) checking on the desktop: live camera "
                       "view, image classification and MiniFAS training.<br>"
                       "Licensed under Apache-2.0.</p>")
        title.setWordWrap(True)
        layout.addWidget(title)
        form = QFormLayout()
        for key, value in versions().items():
            form.addRow(f"{key}:", QLabel(value))
        layout.addLayout(form)
        layout.addWidget(QLabel("<b>Models</b>"))
        entries = registry.load_manifest()
        table = QTableWidget(len(entries), 4)
        table.setHorizontalHeaderLabels(["Model", "Kind", "License", "Source"])
        for row, entry in enumerate(entries):
            found = registry.find_file(entry.file)
            cells = [entry.id, entry.kind, entry.license or "unknown", entry.url or "(local)"]
            for col, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setToolTip(f"{entry.description}\n{found or 'not downloaded'}")
                table.setItem(row, col, item)
        table.verticalHeader().hide()
        table.horizontalHeader().setStretchLastSection(True)
        table.resizeColumnsToContents()
        table.setEditTriggers(QTableWidget.NoEditTriggers)
        table.setMaximumHeight(40 + 30 * max(1, len(entries)))
        layout.addWidget(table)
        buttons = QDialogButtonBox(QDialogButtonBox.Close)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)
        self.table = table
