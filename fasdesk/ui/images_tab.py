"""The Images tab: drop photos or folders, see each one classified, export the results.

Classification runs in a ClassifyWorker thread (fasdesk.core.images.batch underneath); the table
keeps only each image's face results and a small thumbnail, and the preview pane has the
selected file re-read and drawn by a PreviewWorker. A threshold change relabels table and
preview from the stored p_real, without new inference.
"""
from __future__ import annotations

import html
import threading
import time
from pathlib import Path
from typing import Callable

from PySide6.QtCore import (QAbstractTableModel, QCoreApplication, QEvent, QModelIndex,
                            QObject, QSize, QSortFilterProxyModel, Qt, QThread, Signal, Slot)
from PySide6.QtGui import QColor, QFont, QImage, QPainter, QPixmap
from PySide6.QtWidgets import (QAbstractItemView, QApplication, QFileDialog, QHBoxLayout,
                               QHeaderView, QLabel, QProgressBar, QPushButton, QSizePolicy,
                               QSplitter, QStackedWidget, QStyle, QTableView, QVBoxLayout,
                               QWidget)

from fasdesk.core.images import report
from fasdesk.core.images.batch import ImageResult
from fasdesk.core.images.display import THUMBNAIL_SIDE, RGBBytes
from fasdesk.core.io.imageio import IMAGE_EXTENSIONS
from fasdesk.core.inference.liveness import DEFAULT_THRESHOLD
from fasdesk.core.inference.pipeline import INVALID_OUTPUT, UNSURE, Pipeline
from fasdesk.core.decision.thresholds import format_threshold
from fasdesk.ui.images_worker import ClassifiedImage, ClassifyWorker, PreviewWorker
from fasdesk.ui.threshold_control import ThresholdControl
from fasdesk.ui.drops import accept_if_files, dropped_paths

SORT_ROLE = Qt.ItemDataRole.UserRole
SUMMARY_INTERVAL_S = 0.25
ERROR_ICON_SIDE = 24  # the warning sign in an unreadable file's thumbnail cell

VERDICT_COLOURS = {  # cell background per image verdict; text stays dark on all of them
    report.REAL: QColor("#c7ecc4"),
    report.SPOOF: QColor("#f7c4c4"),
    UNSURE: QColor("#e2e2e2"),
    report.NO_FACE: QColor("#ececec"),
    report.ERROR: QColor("#fbe3b5"),
}


def qimage_from(rgb: RGBBytes) -> QImage:
    """A QImage owning a copy of packed RGB bytes (the bytes object may then go away)."""
    return QImage(rgb.data, rgb.width, rgb.height, rgb.stride,
                  QImage.Format.Format_RGB888).copy()


class _Row:
    __slots__ = ("result", "thumb")

    def __init__(self, item: ClassifiedImage):
        self.result: ImageResult = item.result
        self.thumb = (QPixmap.fromImage(qimage_from(item.thumb))
                      if item.thumb is not None else None)


class ResultsModel(QAbstractTableModel):
    """One row per image file; labels follow `threshold` (stored p_real, no inference)."""

    COLUMNS = ("", "File", "Faces", "Verdict", "p_real", "Error")
    THUMB, FILE, FACES, VERDICT, P_REAL, ERROR = range(6)

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self._rows: list[_Row] = []
        self._row_of_path: dict[str, int] = {}
        self.threshold = DEFAULT_THRESHOLD
        self._warning_pixmap: QPixmap | None = None

    # --- content -------------------------------------------------------------------
    def add(self, item: ClassifiedImage) -> None:
        """Append a result, or replace the row of a file classified before."""
        row = self._row_of_path.get(item.result.path)
        if row is not None:
            self._rows[row] = _Row(item)
            self.dataChanged.emit(self.index(row, 0), self.index(row, len(self.COLUMNS) - 1))
            return
        row = len(self._rows)
        self.beginInsertRows(QModelIndex(), row, row)
        self._rows.append(_Row(item))
        self._row_of_path[item.result.path] = row
        self.endInsertRows()

    def clear(self) -> None:
        self.beginResetModel()
        self._rows.clear()
        self._row_of_path.clear()
        self.endResetModel()

    def set_threshold(self, threshold: float) -> None:
        self.threshold = threshold
        if self._rows:
            self.dataChanged.emit(self.index(0, self.FACES),
                                  self.index(len(self._rows) - 1, self.P_REAL))

    def result(self, row: int) -> ImageResult:
        return self._rows[row].result

    def faces(self, row: int) -> list:
        """The row's faces labelled under the current threshold."""
        return report.relabelled(self._rows[row].result.faces, self.threshold)

    def verdict(self, row: int) -> str:
        result = self._rows[row].result
        return report.image_verdict((f.relabel(self.threshold) for f in result.faces),
                                    result.error)

    def records(self) -> list[dict]:
        """Every row as a `fasdesk classify --json` record, labelled under the threshold."""
        out = []
        for row, item in enumerate(self._rows):
            record = item.result.to_json()
            record["faces"] = [face.to_json() for face in self.faces(row)]
            record["threshold"] = self.threshold  # as `classify --json`: the one labels used
            out.append(record)
        return out

    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for row in range(len(self._rows)):
            verdict = self.verdict(row)
            counts[verdict] = counts.get(verdict, 0) + 1
        return counts

    # --- Qt model interface --------------------------------------------------------
    def rowCount(self, parent=QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent=QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self.COLUMNS)

    def headerData(self, section, orientation, role=Qt.ItemDataRole.DisplayRole):
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return self.COLUMNS[section]
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.ToolTipRole:
            return {self.P_REAL: "probability the face is real, per face",
                    self.VERDICT: "spoof if any face is spoof; real if every judged face is real"
                    }.get(section)
        return None

    def data(self, index, role=Qt.ItemDataRole.DisplayRole):
        if not index.isValid():
            return None
        row, col = index.row(), index.column()
        result = self._rows[row].result
        if role == Qt.ItemDataRole.DisplayRole:
            return self._display(row, col, result)
        if role == SORT_ROLE:
            return self._sort_key(row, col, result)
        if role == Qt.ItemDataRole.DecorationRole and col == self.THUMB:
            return self._error_icon() if result.error else self._rows[row].thumb
        if role == Qt.ItemDataRole.ToolTipRole:
            return self._tooltip(row, col, result)
        if role == Qt.ItemDataRole.BackgroundRole and col == self.VERDICT:
            return VERDICT_COLOURS.get(self.verdict(row))
        if role == Qt.ItemDataRole.ForegroundRole and col == self.VERDICT:
            return QColor("#1a1a1a")
        if role == Qt.ItemDataRole.FontRole and col == self.VERDICT:
            font = QFont()
            font.setBold(True)
            return font
        if role == Qt.ItemDataRole.TextAlignmentRole and col in (self.FACES, self.VERDICT):
            return int(Qt.AlignmentFlag.AlignCenter)
        return None

    def _error_icon(self) -> QPixmap:
        if self._warning_pixmap is None:  # made on first use: needs a running QApplication
            icon = QApplication.style().standardIcon(QStyle.StandardPixmap.SP_MessageBoxWarning)
            self._warning_pixmap = icon.pixmap(ERROR_ICON_SIDE, ERROR_ICON_SIDE)
        return self._warning_pixmap

    @staticmethod
    def _problem(result) -> str:
        """The Error column: the file's error, or a model error on one of its faces."""
        if result.error:
            return result.error
        return next((f.reason for f in result.faces if f.reason == INVALID_OUTPUT), "")

    def _display(self, row, col, result):
        if col == self.FILE:
            return report.display_name(Path(result.path).name)
        if col == self.FACES:
            return "" if result.error else str(len(result.faces))
        if col == self.VERDICT:
            return self.verdict(row)
        if col == self.P_REAL:
            return ", ".join("–" if f.p_real is None else f"{f.p_real:.2f}"
                             for f in result.faces)
        if col == self.ERROR:
            return self._problem(result)
        return None

    def _sort_key(self, row, col, result):
        if col == self.FACES:
            return -1 if result.error else len(result.faces)
        if col == self.VERDICT:
            return self.verdict(row)
        if col == self.P_REAL:  # the least real face decides; images without one last
            judged = [f.p_real for f in result.faces if f.p_real is not None]
            return min(judged) if judged else 2.0
        if col == self.ERROR:
            return self._problem(result)
        return result.path.lower()

    def _tooltip(self, row, col, result):
        if col in (self.THUMB, self.FILE):
            return result.path
        if col == self.ERROR:
            return self._problem(result) or None
        if col in (self.VERDICT, self.P_REAL) and result.faces:
            lines = []
            for n, face in enumerate(self.faces(row), 1):
                score = "" if face.p_real is None else f" p_real {face.p_real:.3f}"
                why = f" ({face.reason})" if face.reason else ""
                lines.append(f"face {n}: {face.label}{score}{why}")
            return "\n".join(lines)
        return None


class ImageView(QWidget):
    """Shows one image scaled to fit (aspect kept), or a line of text when there is none."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self._pixmap: QPixmap | None = None
        self._text = ""
        self.setMinimumSize(240, 200)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)

    def set_image(self, image: QImage | None) -> None:
        self._pixmap = QPixmap.fromImage(image) if image is not None else None
        self._text = ""
        self.update()

    def set_text(self, text: str) -> None:
        self._pixmap, self._text = None, text
        self.update()

    def has_image(self) -> bool:
        return self._pixmap is not None

    def pixmap(self) -> QPixmap | None:
        return self._pixmap

    def text(self) -> str:
        return self._text

    def paintEvent(self, event) -> None:
        painter = QPainter(self)
        painter.fillRect(self.rect(), QColor("#2b2b2b"))
        if self._pixmap is None:
            painter.setPen(QColor("#bbbbbb"))
            painter.drawText(self.rect().adjusted(12, 12, -12, -12),
                             Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap, self._text)
            return
        size = self._pixmap.size().scaled(self.size(), Qt.AspectRatioMode.KeepAspectRatio)
        x = (self.width() - size.width()) // 2
        y = (self.height() - size.height()) // 2
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
        painter.drawPixmap(x, y, size.width(), size.height(), self._pixmap)


def _format_seconds(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 60}:{seconds % 60:02d}"


class ImagesTab(QWidget):
    """Batch classification of image files and folders (see the module docstring)."""

    status_message = Signal(str)
    threshold_changed = Signal(float)  # the user moved this tab's slider
    _run_requested = Signal(object, object, int)  # paths, pipeline factory, generation
    _preview_requested = Signal(int, str, object, float)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setAcceptDrops(True)
        self.last_folder = str(Path.home())  # where the file dialogs open; settings may set it
        self._threshold = DEFAULT_THRESHOLD
        self._factory: Callable[[], Pipeline] | None = None
        self._generation = 0
        self._pending: list[str] = []
        self._running = False
        self._done = 0
        self._total = 0
        self._batch_started = 0.0
        self._preview_request = 0
        self._preview_path: str | None = None
        self._summary_updated = 0.0
        self._watched_window: QWidget | None = None

        self.model = ResultsModel(self)
        self._build_ui()
        self._start_threads()
        self._update_buttons()

    # --- public interface ----------------------------------------------------------
    def add_paths(self, paths: list[str]) -> None:
        """Classify these files and folders (recursively); queued behind a running batch."""
        paths = [str(p) for p in paths if str(p)]
        if not paths:
            return
        if self._running:
            self._pending.extend(paths)
            self.status_message.emit(f"Queued {len(paths)} more item(s) after this batch")
            return
        self._start(paths)

    def set_pipeline_factory(self, factory: Callable[[], Pipeline]) -> None:
        """Use pipelines from `factory` from the next batch on (e.g. after a model switch)."""
        self._factory = factory
        self._generation += 1

    def set_threshold(self, value: float) -> None:
        """Relabel under a threshold chosen elsewhere (the window's); does not re-emit."""
        self.threshold_control.set_value(value)
        if float(value) != self._threshold:  # (the window echoes this tab's own change)
            self._apply_threshold(value)

    def _apply_threshold(self, value: float) -> None:
        self._threshold = float(value)
        self.model.set_threshold(self._threshold)
        self._update_summary()
        self._show_selected()

    @property
    def threshold(self) -> float:
        return self._threshold

    def is_running(self) -> bool:
        return self._running

    def cancel(self) -> None:
        if self._running:
            self._pending.clear()
            self._cancel.set()
            self.cancel_button.setEnabled(False)
            self.cancel_button.setText("Cancelling...")

    def clear(self) -> None:
        if self._running:
            return
        self.model.clear()
        self._preview_path = None
        self.preview.set_text("Select a row to see its faces")
        self.details.setText("")
        self._update_summary()
        self._update_buttons()

    def export_csv(self, path: str) -> bool:
        return self._export(path, report.write_csv, "CSV")

    def export_json(self, path: str) -> bool:
        return self._export(path, report.write_json, "JSON")

    def shutdown(self, timeout_ms: int = 5000) -> bool:
        """Cancel any batch and stop the worker threads; waits for the image in progress,
        at most `timeout_ms` in all. True when both threads ended (False: one is stuck,
        the window closes anyway; see app.run). Called when the tab's window closes and
        when the app quits; safe to call again, and the tab restarts its threads when
        used afterwards."""
        self._cancel.set()
        deadline = time.monotonic() + timeout_ms / 1000
        stopped = True
        for thread in (self._classify_thread, self._preview_thread):
            if thread.isRunning():
                thread.quit()
                left_ms = max(0, round((deadline - time.monotonic()) * 1000))
                stopped = thread.wait(left_ms) and stopped
        return stopped

    # --- window lifetime -------------------------------------------------------------
    def showEvent(self, event) -> None:
        super().showEvent(event)
        window = self.window()
        if window is not self and window is not self._watched_window:
            # The tab gets no close event of its own inside a window; the window's tells
            # it to stop its threads before Qt destroys them.
            window.installEventFilter(self)
            self._watched_window = window

    def eventFilter(self, watched, event) -> bool:
        if watched is self._watched_window and event.type() == QEvent.Type.Close:
            self.shutdown()
        return False

    def closeEvent(self, event) -> None:  # the tab shown on its own (scripts, tests)
        self.shutdown()
        super().closeEvent(event)

    # --- drops -----------------------------------------------------------------------
    def dragEnterEvent(self, event) -> None:
        accept_if_files(event)

    def dragMoveEvent(self, event) -> None:
        accept_if_files(event)

    def dropEvent(self, event) -> None:
        paths = dropped_paths(event)
        if paths:
            event.acceptProposedAction()
            self.add_paths(paths)

    # --- construction ----------------------------------------------------------------
    def _build_ui(self) -> None:
        self.add_files_button = QPushButton("Add images...")
        self.add_folder_button = QPushButton("Add folder...")
        self.export_csv_button = QPushButton("Export CSV...")
        self.export_json_button = QPushButton("Export JSON...")
        self.clear_button = QPushButton("Clear")
        self.add_files_button.clicked.connect(self._choose_files)
        self.add_folder_button.clicked.connect(self._choose_folder)
        self.export_csv_button.clicked.connect(lambda: self._choose_export("csv"))
        self.export_json_button.clicked.connect(lambda: self._choose_export("json"))
        self.clear_button.clicked.connect(self.clear)
        self.summary = QLabel()
        self.summary.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        # A long summary must not stop the window from shrinking (a narrow table pane
        # cuts it; the tooltip has it whole).
        self.summary.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.threshold_control = ThresholdControl(self._threshold)
        # Shrinks first when the window is narrow; never wider than a compact toolbar slider.
        control = self.threshold_control
        control.slider.setMinimumWidth(40)
        control.setMaximumWidth(control.sizeHint().width() - control.slider.sizeHint().width()
                                + 160)
        self.threshold_control.changed.connect(self._on_threshold_picked)

        toolbar = QHBoxLayout()
        for button in (self.add_files_button, self.add_folder_button):
            toolbar.addWidget(button)
        toolbar.addSpacing(10)
        for button in (self.export_csv_button, self.export_json_button, self.clear_button):
            toolbar.addWidget(button)
        toolbar.addSpacing(10)
        toolbar.addWidget(self.threshold_control, 1)
        toolbar.addStretch(1)

        self.error_banner = QLabel()
        self.error_banner.setWordWrap(True)
        self.error_banner.setStyleSheet(
            "QLabel { background: #f8d7da; color: #58151c; border: 1px solid #f1aeb5;"
            " border-radius: 4px; padding: 6px; }")
        self.error_banner.hide()

        self.progress = QProgressBar()
        self.progress.setTextVisible(True)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.cancel)
        self.progress_row = QWidget()
        progress_layout = QHBoxLayout(self.progress_row)
        progress_layout.setContentsMargins(0, 0, 0, 0)
        progress_layout.addWidget(self.progress, 1)
        progress_layout.addWidget(self.cancel_button)
        self.progress_row.hide()

        self.proxy = QSortFilterProxyModel(self)
        self.proxy.setSourceModel(self.model)
        self.proxy.setSortRole(SORT_ROLE)
        self.table = QTableView()
        self.table.setModel(self.proxy)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setAlternatingRowColors(True)
        self.table.setWordWrap(False)
        self.table.setIconSize(QSize(THUMBNAIL_SIDE, THUMBNAIL_SIDE))
        self.table.verticalHeader().hide()
        self.table.verticalHeader().setDefaultSectionSize(THUMBNAIL_SIDE + 6)
        header = self.table.horizontalHeader()
        header.setSortIndicator(-1, Qt.SortOrder.AscendingOrder)  # arrival order at first
        self.table.setSortingEnabled(True)
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        header.setStretchLastSection(True)
        for col, width in ((ResultsModel.THUMB, THUMBNAIL_SIDE + 12), (ResultsModel.FILE, 170),
                           (ResultsModel.FACES, 50), (ResultsModel.VERDICT, 76),
                           (ResultsModel.P_REAL, 76)):
            self.table.setColumnWidth(col, width)
        self.table.selectionModel().currentRowChanged.connect(lambda *_: self._show_selected())

        self.preview = ImageView()
        self.preview.set_text("Select a row to see its faces")
        self.details = QLabel()
        self.details.setWordWrap(True)
        self.details.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        preview_pane = QWidget()
        preview_layout = QVBoxLayout(preview_pane)
        preview_layout.setContentsMargins(0, 0, 0, 0)
        preview_layout.addWidget(self.preview, 1)
        preview_layout.addWidget(self.details)

        table_pane = QWidget()  # the table with its summary line under it
        table_layout = QVBoxLayout(table_pane)
        table_layout.setContentsMargins(0, 0, 0, 0)
        table_layout.addWidget(self.table, 1)
        table_layout.addWidget(self.summary)

        splitter = QSplitter(Qt.Orientation.Horizontal)
        splitter.addWidget(table_pane)
        splitter.addWidget(preview_pane)
        splitter.setStretchFactor(0, 3)
        splitter.setStretchFactor(1, 2)
        splitter.setSizes([620, 420])

        hint = QLabel("Drop images or folders here\n\nor use Add images... / Add folder...")
        hint.setAlignment(Qt.AlignmentFlag.AlignCenter)
        hint.setStyleSheet("QLabel { color: #808080; font-size: 15pt;"
                           " border: 2px dashed #a0a0a0; border-radius: 10px; }")
        self.pages = QStackedWidget()
        self.pages.addWidget(hint)
        self.pages.addWidget(splitter)

        layout = QVBoxLayout(self)
        layout.addLayout(toolbar)
        layout.addWidget(self.error_banner)
        layout.addWidget(self.progress_row)
        layout.addWidget(self.pages, 1)

    def _ensure_threads(self) -> None:
        """(Re)start the worker threads; they stop on shutdown, e.g. when the window
        closes, and a window that refused to close keeps working."""
        for thread in (self._classify_thread, self._preview_thread):
            if not thread.isRunning():
                thread.start()

    def _start_threads(self) -> None:
        self._cancel = threading.Event()
        self._classify_thread = QThread(self)
        self._classify_thread.setObjectName("fasdesk-images-classify")
        self._worker = ClassifyWorker(self._cancel)
        self._worker.moveToThread(self._classify_thread)
        # Every link crosses threads: queued explicitly, so each slot runs in its
        # object's own thread whatever PySide infers from the callable.
        queued = Qt.ConnectionType.QueuedConnection
        self._run_requested.connect(self._worker.run, queued)
        self._worker.started.connect(self._on_started, queued)
        self._worker.image_done.connect(self._on_image_done, queued)
        self._worker.finished.connect(self._on_finished, queued)
        self._worker.failed.connect(self._on_failed, queued)

        self._preview_thread = QThread(self)
        self._preview_thread.setObjectName("fasdesk-images-preview")
        self._preview_worker = PreviewWorker()
        self._preview_worker.moveToThread(self._preview_thread)
        self._preview_requested.connect(self._preview_worker.render, queued)
        self._preview_worker.ready.connect(self._on_preview_ready, queued)
        self._preview_worker.failed.connect(self._on_preview_failed, queued)

        self._ensure_threads()
        app = QCoreApplication.instance()
        if app is not None:
            app.aboutToQuit.connect(self.shutdown)

    # --- batch -----------------------------------------------------------------------
    def _start(self, paths: list[str]) -> None:
        self._running = True
        self._cancel.clear()
        self._done = self._total = 0
        self.error_banner.hide()
        self.progress.setRange(0, 0)  # busy until the files are counted
        self.progress.setFormat("Looking for images...")
        self.cancel_button.setEnabled(True)
        self.cancel_button.setText("Cancel")
        self.progress_row.show()
        self._update_buttons()
        self._ensure_threads()
        factory = self._factory or self._default_factory
        self._run_requested.emit(paths, factory, self._generation)

    def _default_factory(self) -> Pipeline:
        from fasdesk.core.inference.pipeline import build_pipeline

        return build_pipeline(threshold=self._threshold)

    @Slot(int)
    def _on_started(self, total: int) -> None:
        self._total = total
        self._batch_started = time.monotonic()
        self.progress.setRange(0, max(total, 1))
        self.progress.setValue(0)
        self.progress.setFormat(f"0 / {total}")
        self.status_message.emit(f"Classifying {total} image(s)...")

    @Slot(object)
    def _on_image_done(self, item: ClassifiedImage) -> None:
        self.model.add(item)
        self.pages.setCurrentIndex(1)
        self._done += 1
        elapsed = time.monotonic() - self._batch_started
        left = elapsed / self._done * (self._total - self._done)
        self.progress.setValue(self._done)
        self.progress.setFormat(f"{self._done} / {self._total}  ·  {_format_seconds(left)} left")
        # Counting verdicts walks every row: a few times a second is plenty mid-batch.
        now = time.monotonic()
        if now - self._summary_updated >= SUMMARY_INTERVAL_S:
            self._update_summary()
        if item.result.path == self._preview_path:
            self._show_selected()

    @Slot(int, int, bool)
    def _on_finished(self, done: int, total: int, cancelled: bool) -> None:
        elapsed = time.monotonic() - self._batch_started
        self._running = False
        self.progress_row.hide()
        self._update_summary()
        if total == 0:
            self.status_message.emit("No image files found there")
        elif cancelled:
            self.status_message.emit(f"Cancelled after {done} of {total} image(s)")
        else:
            errors = sum(1 for r in range(self.model.rowCount())
                         if self.model.result(r).error)
            self.status_message.emit(
                f"Classified {total} image(s) in {elapsed:.1f} s"
                + (f"; {errors} could not be read" if errors else ""))
        self._update_buttons()
        if self._pending:
            paths, self._pending = self._pending, []
            self._start(paths)

    @Slot(str)
    def _on_failed(self, message: str) -> None:
        self._running = False
        self._pending.clear()
        self.progress_row.hide()
        self._show_error(f"Cannot classify: {message}")
        self._update_buttons()

    # --- preview ---------------------------------------------------------------------
    def _selected_row(self) -> int | None:
        index = self.table.selectionModel().currentIndex()
        if not index.isValid():
            return None
        return self.proxy.mapToSource(index).row()

    def _show_selected(self) -> None:
        row = self._selected_row()
        if row is None:
            return
        result = self.model.result(row)
        self._preview_path = result.path
        self.details.setText(self._details_text(row))
        if result.error:
            self.preview.set_text(f"{report.display_name(Path(result.path).name)}\n\n"
                                  f"{result.error}")
            return
        self._preview_request += 1
        self._preview_worker.latest_request = self._preview_request
        self._ensure_threads()
        self._preview_requested.emit(self._preview_request, result.path, result.faces,
                                     self._threshold)

    def _details_text(self, row: int) -> str:
        result = self.model.result(row)
        lines = [f"<b>{html.escape(report.display_name(Path(result.path).name))}</b>"]
        if result.error:
            return lines[0] + f"<br>{result.error}"
        lines.append(f"{result.width} x {result.height} px, verdict "
                     f"<b>{self.model.verdict(row)}</b> at threshold {format_threshold(self._threshold)}")
        for n, face in enumerate(self.model.faces(row), 1):
            x, y, w, h = face.box
            score = "" if face.p_real is None else f" (p_real {face.p_real:.3f})"
            why = f" — {face.reason}" if face.reason else ""
            lines.append(f"face {n}: {face.label}{score}, box {x},{y} {w}x{h}{why}")
        if not result.faces:
            lines.append("no face found")
        return "<br>".join(lines)

    @Slot(int, object)
    def _on_preview_ready(self, request: int, rgb: RGBBytes) -> None:
        if request == self._preview_request:
            self.preview.set_image(qimage_from(rgb))

    @Slot(int, str)
    def _on_preview_failed(self, request: int, message: str) -> None:
        if request == self._preview_request:
            self.preview.set_text(message)

    # --- helpers ---------------------------------------------------------------------
    def _update_summary(self) -> None:
        self._summary_updated = time.monotonic()
        counts = self.model.counts()
        total = self.model.rowCount()
        if not total:
            self.summary.setText("")
            self.summary.setToolTip("")
            return
        order = (report.REAL, report.SPOOF, UNSURE, report.NO_FACE, report.ERROR)
        parts = [f"{counts[k]} {k}" for k in order if counts.get(k)]
        self.summary.setText(f"{total} image(s) at threshold {format_threshold(self._threshold)}: "
                             + ", ".join(parts))
        self.summary.setToolTip(self.summary.text())

    def _on_threshold_picked(self, value: float) -> None:
        self._apply_threshold(value)
        self.threshold_changed.emit(value)

    def _update_buttons(self) -> None:
        # Exports and Clear wait for the batch to finish: an export is then complete.
        ready = self.model.rowCount() > 0 and not self._running
        for button in (self.export_csv_button, self.export_json_button, self.clear_button):
            button.setEnabled(ready)
        if self.model.rowCount() == 0:
            self.pages.setCurrentIndex(0)

    def _show_error(self, message: str) -> None:
        self.error_banner.setText(message)
        self.error_banner.show()
        self.status_message.emit(message)

    def _export(self, path: str, write, kind: str) -> bool:
        records = self.model.records()
        try:
            write(path, records)
        except OSError as exc:
            self._show_error(f"Could not write {kind} file {path}: {exc.strerror or exc}")
            return False
        self.error_banner.hide()
        self.status_message.emit(f"Exported {len(records)} image(s) to {path}")
        return True

    def _choose_files(self) -> None:
        patterns = " ".join(f"*{ext}" for ext in sorted(IMAGE_EXTENSIONS))
        files, _ = QFileDialog.getOpenFileNames(
            self, "Add images", self.last_folder, f"Images ({patterns});;All files (*)")
        if files:
            self.last_folder = str(Path(files[0]).parent)
            self.add_paths(files)

    def _choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Add folder", self.last_folder)
        if folder:
            self.last_folder = folder
            self.add_paths([folder])

    def _choose_export(self, kind: str) -> None:
        filters = {"csv": "CSV, one row per face (*.csv)",
                   "json": "JSON array (*.json);;JSON lines, like classify --json (*.jsonl)"}
        path, _ = QFileDialog.getSaveFileName(
            self, f"Export {kind.upper()}", str(Path(self.last_folder) / f"fasdesk-results.{kind}"),
            filters[kind])
        if path:
            (self.export_csv if kind == "csv" else self.export_json)(path)
