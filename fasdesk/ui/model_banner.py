"""The "no model found" banner: download the missing models (progress, cancel) or open a file."""
from __future__ import annotations

import html
import threading

from PySide6.QtCore import QObject, QThread, Signal, Slot
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QProgressBar, QPushButton

from fasdesk.core.models import registry
from fasdesk.core.models.download import (DownloadCancelled, DownloadError, download_model,
                                   manual_copy_hint)


def missing_models(model: str | None) -> list[registry.ModelEntry]:
    """Registry models the app needs (this liveness model, the detector) with no file here."""
    missing = []
    for wanted in (model or registry.DEFAULT_LIVENESS, registry.DEFAULT_DETECTOR):
        entry = registry.get_entry(wanted)  # None for a model given as a file path
        if entry is not None and registry.find_file(entry.file) is None:
            missing.append(entry)
    return missing


class DownloadWorker(QObject):
    progress = Signal(str, int, int)  # file, bytes done, bytes total
    finished = Signal(bool, str)  # ok, message

    def __init__(self):
        super().__init__()
        self.cancel_event = threading.Event()

    @Slot(list)
    def run(self, entries: list) -> None:
        self.cancel_event.clear()
        try:
            for i, entry in enumerate(entries):
                download_model(entry, progress=lambda done, total, f=entry.file:
                               self.progress.emit(f, done, total),
                               cancelled=self.cancel_event.is_set,
                               also_missing=[e.file for e in entries[i + 1:]])
        except DownloadCancelled:
            self.finished.emit(False, "Download cancelled; nothing was saved.")
            return
        except DownloadError as exc:
            self.finished.emit(False, f"Download failed: {exc}")
            return
        self.finished.emit(True, f"Downloaded {', '.join(e.file for e in entries)}.")


class ModelBanner(QFrame):
    open_file = Signal()
    downloaded = Signal()
    _run = Signal(list)

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
        self.thread = QThread()
        self.thread.setObjectName("fasdesk-download")
        self.worker = DownloadWorker()
        self.worker.moveToThread(self.thread)
        self._run.connect(self.worker.run)
        self.worker.progress.connect(self._on_progress)
        self.worker.finished.connect(self._on_finished)
        self.thread.start()
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
        self._run.emit(list(self.entries))

    def cancel(self) -> None:
        self.worker.cancel_event.set()
        self.cancel_button.setEnabled(False)

    def _on_progress(self, name: str, done: int, total: int) -> None:
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

    def shutdown(self) -> bool:
        """Cancel a download and stop the thread; False when it did not stop in time."""
        self.worker.cancel_event.set()
        self.thread.quit()
        return self.thread.wait(10000)
