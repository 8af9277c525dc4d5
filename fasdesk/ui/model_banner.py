"""The "no model found" banner: download the missing models (progress, cancel) or open a file."""
from __future__ import annotations

import html

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QProgressBar, QPushButton

from fasdesk.core.io.errors import one_line
from fasdesk.core.models import registry
from fasdesk.core.models.download import (DownloadCancelled, DownloadError, download_model,
                                          manual_copy_hint)
from fasdesk.ui.workers import current_worker, start_worker


def download_all(entries: list) -> str:
    """In a worker: download `entries` in turn (progress reported as (file, done, total),
    stopped when the worker is cancelled); returns what to say."""
    worker = current_worker()
    for i, entry in enumerate(entries):
        download_model(entry, progress=lambda done, total, f=entry.file: worker.report((f, done, total)),
                       cancelled=worker.is_cancelled,
                       also_missing=[e.file for e in entries[i + 1:]])
    return f"Downloaded {', '.join(e.file for e in entries)}."


class ModelBanner(QFrame):
    open_file = Signal()
    downloaded = Signal()

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("modelBanner")
        self.entries: list[registry.ModelEntry] = []
        layout = QHBoxLayout(self)
        layout.setContentsMargins(12, 8, 8, 8)
        self.label = QLabel()
        self.label.setWordWrap(True)
        self.progress = QProgressBar()
        self.progress.setMaximumWidth(220)
        self.progress.hide()
        self.download_button = QPushButton("Download")
        self.download_button.setObjectName("primary")
        self.download_button.clicked.connect(self.start_download)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.cancel)
        self.cancel_button.hide()
        self.open_button = QPushButton("Open file...")
        self.open_button.clicked.connect(self.open_file)
        layout.addWidget(self.label, 1)
        layout.addWidget(self.progress)
        layout.addWidget(self.download_button)
        layout.addWidget(self.cancel_button)
        layout.addWidget(self.open_button)
        self.worker = None
        self.hide()

    @property
    def downloading(self) -> bool:
        return self.cancel_button.isVisible()

    def show_missing(self, entries: list, summary: str, details: str = "") -> None:
        """summary: one sentence; details (where it looked) go in the tooltip."""
        self.entries = entries
        what = " and ".join(f"{e.id} ({e.size / 1e6:.1f} MB)" for e in entries)
        text = f"<b>No model found.</b> {summary}"
        if entries:
            text += (f"<br>Download {what}, or open an ONNX model you have. Offline: "
                     + html.escape(manual_copy_hint([e.file for e in entries])) + ".")
        else:
            text += "<br>Open an ONNX liveness model you have."
        self.label.setText(text)
        self.label.setToolTip(details)
        self.download_button.setVisible(bool(entries) and not self.downloading)
        self.show()

    def start_download(self) -> None:
        if not self.entries:
            return
        self.download_button.hide()
        self.cancel_button.show()
        self.cancel_button.setEnabled(True)
        self.progress.setRange(0, 0)
        self.progress.show()
        self.worker = start_worker(download_all, list(self.entries))
        self.worker.progress.connect(self._on_progress)
        self.worker.returned.connect(lambda message: self._on_finished(True, message))
        self.worker.errored.connect(self._on_failed)

    def cancel(self) -> None:
        if self.worker is not None:
            self.worker.cancel()
        self.cancel_button.setEnabled(False)

    def _on_failed(self, exc: Exception) -> None:
        if isinstance(exc, DownloadCancelled):
            self._on_finished(False, "Download cancelled; nothing was saved.")
        elif isinstance(exc, DownloadError):
            self._on_finished(False, f"Download failed: {exc}")
        else:  # a bug or a disk problem: said, not a traceback
            self._on_finished(False, f"Download failed: {one_line(exc, with_type=True)}")

    def _on_progress(self, report: tuple) -> None:
        name, done, total = report
        if total:
            self.progress.setRange(0, total)
            self.progress.setValue(done)
        self.progress.setFormat(f"{name}: {done / 1e6:.1f} / {total / 1e6:.1f} MB" if total
                                else f"{name}: {done / 1e6:.1f} MB")

    def _on_finished(self, ok: bool, message: str) -> None:
        self.cancel_button.hide()
        self.progress.hide()
        self.download_button.show()
        if ok:
            self.downloaded.emit()
        else:
            self.label.setText(f"<b>No model found.</b> {html.escape(message)}")
