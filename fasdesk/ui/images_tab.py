"""The Images tab: drop photos or folders, see each one classified, export the results.

Classification runs as a worker (images_worker.classify_batch over core.images.batch); the
table keeps each image's face results and a small thumbnail; a preview worker re-reads and
draws the selected file. Labels follow AppState's threshold: a change relabels table and
preview from the stored p_real, without new inference.
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Callable

import shiboken6
from PySide6.QtCore import QEvent, Qt, QTimer, Signal
from PySide6.QtWidgets import (QCheckBox, QFileDialog, QHBoxLayout, QLabel, QProgressBar,
                               QPushButton, QSizePolicy, QSplitter, QStackedWidget, QVBoxLayout,
                               QWidget)

from fasdesk.app.state import AppState
from fasdesk.core.decision.thresholds import format_threshold
from fasdesk.core.decision.verdict import UNSURE
from fasdesk.core.images import report
from fasdesk.core.images.display import RGBBytes
from fasdesk.core.inference.pipeline import Pipeline
from fasdesk.core.io.errors import one_line
from fasdesk.core.io.imageio import IMAGE_EXTENSIONS, ImageReadError
from fasdesk.core.io.settings import Settings
from fasdesk.ui.drops import accept_if_files, dropped_paths
from fasdesk.ui.image_view import ImageView
from fasdesk.ui.images_model import VerdictFilter, format_seconds, ResultsModel, qimage_from
from fasdesk.ui.images_views import (GRID, LIST, ResultsGrid, ViewSwitch, column, drop_hint,
                                     results_table, set_compact_rows, verdict_combo)
from fasdesk.ui.images_worker import (BatchStarted, ClassifiedImage, PipelineCache, PreviewCache,
                                      classify_batch, render_preview)
from fasdesk.ui.subscribe import subscribe
from fasdesk.ui.threshold_control import ThresholdControl
from fasdesk.ui.workers import Worker, start_worker

SUMMARY_INTERVAL_S = 0.25
# Finished files reach the model in batches this often: the views, the filter and the sort
# then update once per batch, not once per file (a 20,000-photo folder stays responsive).
ARRIVAL_BATCH_MS = 200


class ImagesTab(QWidget):
    """Batch classification of image files and folders (see the module docstring)."""

    status_message = Signal(str)
    batch_started = Signal(int)  # a batch found this many files

    def __init__(self, state: AppState | None = None, parent: QWidget | None = None):
        """state: the app's (the tab alone, in scripts and tests: its own, not saved)."""
        super().__init__(parent)
        self.setAcceptDrops(True)
        self.state = state or AppState(Settings(), save=False)
        self._factory: Callable[[], Pipeline] | None = None  # None: the state's model
        self._pipelines = PipelineCache()
        self._previews = PreviewCache()
        self.worker: Worker | None = None  # the running batch
        self._pending: list[str] = []
        self._running = False
        self._done = self._total = 0
        self._batch_started = 0.0
        self._preview_request = 0
        self._preview_path: str | None = None
        self._roots: list[str] = []  # the batch's folders: rows show paths relative to them
        self._batch_errors = 0
        self._summary_updated = 0.0
        self._watched_window: QWidget | None = None
        self._arrived: list[ClassifiedImage] = []  # finished, not yet in the model
        self._arrival_timer = QTimer(self, singleShot=True, interval=ARRIVAL_BATCH_MS,
                                     timeout=self._add_arrived)

        self.model = ResultsModel(self.state, self)
        self._build_ui()
        self._update_buttons()
        subscribe(self, self.state.threshold_changed, self._relabel)
        subscribe(self, self.state.model_changed, lambda _m: self._use_state_model())
        subscribe(self, self.state.model_reloaded, self._use_state_model)

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
        """Use pipelines from `factory` from the next batch on, instead of the state's
        model (benchmarks, tests)."""
        self._factory = factory

    def _use_state_model(self) -> None:
        """The model in use changed, or its file did: the next batch builds it anew."""
        self._factory = None
        self._pipelines = PipelineCache()

    def _relabel(self, _threshold: float) -> None:
        self.proxy.refilter(self.model.relabel)
        self._update_summary()
        self._show_selected()

    @property
    def threshold(self) -> float:
        return self.state.threshold

    @property
    def last_folder(self) -> str:
        """Where the file dialogs open (the app's remembered Images folder)."""
        return self.state.last_folder("images")

    def is_running(self) -> bool:
        return self._running

    def cancel(self) -> None:
        if self._running:
            self._pending.clear()
            self.worker.cancel()
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

    # --- window lifetime -------------------------------------------------------------
    def showEvent(self, event) -> None:
        super().showEvent(event)
        window = self.window()
        if window is not self and window is not self._watched_window:
            # The tab gets no close event of its own inside a window; the window's tells
            # it to cancel its batch.
            window.installEventFilter(self)
            self._watched_window = window

    def eventFilter(self, watched, event) -> bool:
        if watched is self._watched_window and event.type() == QEvent.Type.Close:
            self.cancel()
        return False

    def closeEvent(self, event) -> None:  # the tab shown on its own (scripts, tests)
        self.cancel()
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
        toolbar = self._build_toolbar()
        self.error_banner = QLabel()
        self.error_banner.setObjectName("errorBanner")
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

        self.pages = QStackedWidget()
        self.pages.addWidget(drop_hint())
        self.pages.addWidget(self._build_panes())

        layout = QVBoxLayout(self)
        layout.addLayout(toolbar)
        layout.addWidget(self.error_banner)
        layout.addWidget(self.progress_row)
        layout.addWidget(self.pages, 1)

    def _build_toolbar(self) -> QHBoxLayout:
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
        self.threshold_control = ThresholdControl(self.state)
        # Shrinks first when the window is narrow; never wider than a compact toolbar slider.
        control = self.threshold_control
        control.slider.setMinimumWidth(40)
        control.setMaximumWidth(control.sizeHint().width() - control.slider.sizeHint().width()
                                + 160)

        toolbar = QHBoxLayout()
        for button in (self.add_files_button, self.add_folder_button):
            toolbar.addWidget(button)
        toolbar.addSpacing(10)
        for button in (self.export_csv_button, self.export_json_button, self.clear_button):
            toolbar.addWidget(button)
        toolbar.addSpacing(10)
        toolbar.addWidget(self.threshold_control, 1)
        toolbar.addStretch(1)
        return toolbar

    def _build_panes(self) -> QSplitter:
        """The table (with its summary line) beside the preview of the selected file."""
        self.proxy = VerdictFilter(self.model, self)
        self.table = results_table(self.proxy)
        self.grid = ResultsGrid(self.table)  # same rows, same selection
        self.table.selectionModel().currentRowChanged.connect(lambda *_: self._show_selected())

        self.preview = ImageView()
        self.preview.set_text("Select a row to see its faces")
        self.details = QLabel()
        self.details.setWordWrap(True)
        self.details.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        preview_pane = column(self.preview, self.details, stretch=self.preview)

        self.verdict_filter = verdict_combo()
        self.verdict_filter.currentIndexChanged.connect(
            lambda _i: self.proxy.set_verdict(self.verdict_filter.currentData()))
        self.compact_box = QCheckBox("Compact list")
        self.compact_box.setToolTip("Smaller rows: many more images on screen")
        self.compact_box.toggled.connect(self.set_compact)
        self.view_switch = ViewSwitch()
        self.views = QStackedWidget()
        self.views.addWidget(self.table)
        self.views.addWidget(self.grid)
        self.view_switch.changed.connect(self.set_view)
        filters = QHBoxLayout()
        filters.addWidget(QLabel("Show:"))
        filters.addWidget(self.verdict_filter)
        filters.addWidget(self.compact_box)
        filters.addStretch(1)
        filters.addWidget(self.view_switch)

        # The results with their summary line under them.
        table_pane = column(filters, self.views, self.summary, stretch=self.views)
        self.set_view(self.state.settings.images_view)

        splitter = QSplitter(Qt.Orientation.Horizontal)
        splitter.addWidget(table_pane)
        splitter.addWidget(preview_pane)
        splitter.setStretchFactor(0, 3)
        splitter.setStretchFactor(1, 2)
        splitter.setSizes([620, 420])
        return splitter

    def set_view(self, name: str) -> None:
        """Show the results as the list (LIST) or the thumbnail grid (GRID); remembered."""
        grid = name == GRID
        self.views.setCurrentWidget(self.grid if grid else self.table)
        self.compact_box.setVisible(not grid)  # a list option
        self.view_switch.set_current(name)
        self.state.update(images_view=GRID if grid else LIST)
        current = self.table.selectionModel().currentIndex()
        if current.isValid():
            self.views.currentWidget().scrollTo(current)

    def set_compact(self, on: bool) -> None:
        set_compact_rows(self.table, on)
        if self.compact_box.isChecked() != on:
            self.compact_box.setChecked(on)

    # --- batch -----------------------------------------------------------------------
    def _start(self, paths: list[str]) -> None:
        self._running = True
        self._done = self._total = self._batch_errors = 0
        self._roots = [p for p in paths if os.path.isdir(p)]
        self.error_banner.hide()
        self.progress.setRange(0, 0)  # busy until the files are counted
        self.progress.setFormat("Looking for images...")
        self.cancel_button.setEnabled(True)
        self.cancel_button.setText("Cancel")
        self.progress_row.show()
        self._update_buttons()
        if self._factory is None:
            self._factory = self.state.pipeline_factory()
        self.worker = start_worker(classify_batch, paths, self._factory, self._pipelines)
        self.worker.progress.connect(self._on_progress)
        self.worker.returned.connect(lambda _: self._on_finished(False))
        self.worker.cancelled.connect(lambda: self._on_finished(True))
        self.worker.errored.connect(self._on_failed)

    def _on_progress(self, item) -> None:
        if isinstance(item, BatchStarted):
            self._on_started(item.total)
        else:
            self._on_image_done(item)

    def _on_started(self, total: int) -> None:
        self._total = total
        self._batch_started = time.monotonic()
        self.progress.setRange(0, max(total, 1))
        self.progress.setValue(0)
        self.progress.setFormat(f"0 / {total}")
        self.status_message.emit(f"Classifying {total} image(s)...")
        self.batch_started.emit(total)

    def _on_image_done(self, item: ClassifiedImage) -> None:
        self._arrived.append(item)
        if not self._arrival_timer.isActive():
            self._arrival_timer.start()

    def _add_arrived(self) -> None:
        """The files finished since the last call go into the model, in one insert."""
        self._arrival_timer.stop()
        items, self._arrived = self._arrived, []
        if not items:
            return
        self.model.add_many([(item, report.relative_name(item.result.path, self._roots))
                             for item in items])
        self.pages.setCurrentIndex(1)
        self._done += len(items)
        self._batch_errors += sum(bool(item.result.error) for item in items)
        elapsed = time.monotonic() - self._batch_started
        left = elapsed / self._done * (self._total - self._done)
        self.progress.setValue(self._done)
        self.progress.setFormat(f"{self._done} / {self._total}  ·  {format_seconds(left)} left")
        # Counting verdicts walks every row: a few times a second is plenty mid-batch.
        now = time.monotonic()
        if now - self._summary_updated >= SUMMARY_INTERVAL_S:
            self._update_summary()
        if any(item.result.path == self._preview_path for item in items):
            self._show_selected()

    def _on_finished(self, cancelled: bool) -> None:
        self._add_arrived()
        done, total = self._done, self._total
        elapsed = time.monotonic() - self._batch_started
        self._running = False
        self.progress_row.hide()
        self._update_summary()
        if total == 0:
            self.status_message.emit("No image files found there")
        elif cancelled:
            self.status_message.emit(f"Cancelled after {done} of {total} image(s)")
        else:
            errors = self._batch_errors  # this batch's, not the table's
            self.status_message.emit(
                f"Classified {total} image(s) in {elapsed:.1f} s"
                + (f"; {errors} could not be read" if errors else ""))
        self._update_buttons()
        if not self.table.selectionModel().currentIndex().isValid() and self.proxy.rowCount():
            self.table.selectRow(0)  # something to look at straight away
        if self._pending:
            paths, self._pending = self._pending, []
            self._start(paths)

    def _on_failed(self, exc: Exception) -> None:
        """The pipeline could not be built (nothing classified), or the batch stopped (not
        a bad file: those are rows); the rows so far stay."""
        self._add_arrived()
        self._running = False
        self._pending.clear()
        self.progress_row.hide()
        if self._total:
            message = (f"classification stopped after {self._done} of {self._total} "
                       f"image(s): {one_line(exc)}")
        else:
            message = one_line(exc)
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
        self.details.setText(self.model.details_html(row))
        if result.error:
            self.preview.set_text(f"{report.display_name(Path(result.path).name)}\n\n"
                                  f"{result.error}")
            return
        self._preview_request += 1
        request = self._preview_request
        worker = start_worker(render_preview, result.path, result.faces, self.threshold,
                              self._previews)
        worker.returned.connect(lambda rgb: self._on_preview_ready(request, rgb))
        worker.errored.connect(lambda exc: self._on_preview_failed(request, exc))

    def _on_preview_ready(self, request: int, rgb: RGBBytes) -> None:
        # (an older request, overtaken, is dropped; so is one for a tab closed meanwhile)
        if request == self._preview_request and shiboken6.isValid(self.preview):
            self.preview.set_image(qimage_from(rgb))

    def _on_preview_failed(self, request: int, exc: Exception) -> None:
        if request == self._preview_request and shiboken6.isValid(self.preview):
            self.preview.set_text(str(exc) if isinstance(exc, ImageReadError)
                                  else f"cannot show this image: {one_line(exc)}")

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
        self.summary.setText(f"{total} image(s) at threshold {format_threshold(self.threshold)}: "
                             + ", ".join(parts))
        self.summary.setToolTip(self.summary.text())

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
        records = report.with_run(self.model.records(), self.threshold,
                                  self.state.model_name(), self.state.model_sha256())
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
            self.state.remember_folder("images", Path(files[0]).parent)
            self.add_paths(files)

    def _choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Add folder", self.last_folder)
        if folder:
            self.state.remember_folder("images", folder)
            self.add_paths([folder])

    def _choose_export(self, kind: str) -> None:
        filters = {"csv": "CSV, one row per face (*.csv)",
                   "json": "JSON array (*.json);;JSON lines, like classify --json (*.jsonl)"}
        path, _ = QFileDialog.getSaveFileName(
            self, f"Export {kind.upper()}", str(Path(self.last_folder) / f"fasdesk-results.{kind}"),
            filters[kind])
        if path:
            (self.export_csv if kind == "csv" else self.export_json)(path)
