"""The Images tab's table: one row per classified file, labelled under the threshold in
use (AppState's), from the stored p_real without new inference."""
from __future__ import annotations

import html
from collections import OrderedDict
from pathlib import Path
from typing import Callable

from PySide6.QtCore import (QAbstractTableModel, QModelIndex, QObject, QSortFilterProxyModel, Qt,
                            Signal)
from PySide6.QtGui import QColor, QFont, QIcon, QImage, QPixmap
from PySide6.QtWidgets import QApplication, QStyle

from fasdesk.core.decision.thresholds import format_threshold
from fasdesk.core.decision.verdict import UNSURE
from fasdesk.core.images import report
from fasdesk.core.images.batch import ImageResult
from fasdesk.core.images.display import RGBBytes
from fasdesk.core.inference.pipeline import INVALID_OUTPUT
from fasdesk.core.io.imageio import natural_key
from fasdesk.ui.images_worker import ClassifiedImage, ThumbnailQueue, make_thumbnails
from fasdesk.ui.workers import Worker, start_worker

SORT_ROLE = Qt.ItemDataRole.UserRole
ERROR_ICON_SIDE = 24  # the warning sign in an unreadable file's thumbnail cell
# Thumbnails kept at most: a few screens of the grid (a 20,000-photo folder must not hold
# 20,000 pixmaps); one scrolled away and shown again is read again.
THUMBNAIL_CACHE = 400
_UNREADABLE = QIcon()  # cached for a file that could not be read when its thumbnail was asked

# Cell background per image verdict: deep enough for white text, and neither glaring on
# the dark theme nor washed out on the light one.
VERDICT_COLOURS = {
    report.REAL: QColor("#2e7d32"),
    report.SPOOF: QColor("#c62828"),
    UNSURE: QColor("#616161"),
    report.NO_FACE: QColor("#546e7a"),
    report.ERROR: QColor("#a15c00"),
}


def qimage_from(rgb: RGBBytes) -> QImage:
    """A QImage owning a copy of packed RGB bytes (the bytes object may then go away)."""
    return QImage(rgb.data, rgb.width, rgb.height, rgb.stride,
                  QImage.Format.Format_RGB888).copy()


class Thumbnails(QObject):
    """Thumbnails of the files the views show, made by a worker only when a view asks for
    one (a view asks only for the rows it paints), and kept in a bounded LRU."""

    ready = Signal(str)  # this file's thumbnail is in (or the file could not be read)

    def __init__(self, capacity: int = THUMBNAIL_CACHE, parent: QObject | None = None):
        super().__init__(parent)
        self.capacity = capacity
        self._icons: OrderedDict[str, QIcon] = OrderedDict()
        self._pending: set[str] = set()
        self._queue = ThumbnailQueue()
        self._worker: Worker | None = None
        self.requested = 0  # files asked for so far

    def icon(self, path: str) -> QIcon | None:
        """The file's thumbnail, or None while it is being made (then `ready` follows)."""
        icon = self._icons.get(path)
        if icon is not None:
            self._icons.move_to_end(path)
            return None if icon is _UNREADABLE else icon
        if path not in self._pending:
            self._pending.add(path)
            self.requested += 1
            self._pending.difference_update(self._queue.put(path))
            self._run()
        return None

    def forget(self, path: str) -> None:
        """The file changed (classified again): its thumbnail is read anew when shown."""
        self._icons.pop(path, None)

    def idle(self) -> bool:
        """Nothing asked for is still being made."""
        return not self._pending

    def clear(self) -> None:
        self._queue.clear()
        self._pending.clear()
        self._icons.clear()

    def _run(self) -> None:
        if self._worker is None:
            self._worker = start_worker(make_thumbnails, self._queue)
            self._worker.progress.connect(self._arrived)
            self._worker.finished.connect(self._ended)

    def _arrived(self, item) -> None:
        path, rgb = item
        if path not in self._pending:
            return  # cleared meanwhile
        self._pending.discard(path)
        self._icons[path] = (QIcon(QPixmap.fromImage(qimage_from(rgb))) if rgb is not None
                             else _UNREADABLE)
        while len(self._icons) > self.capacity:
            self._icons.popitem(last=False)
        self.ready.emit(path)

    def _ended(self) -> None:
        worker, self._worker = self._worker, None
        if len(self._queue) and not (worker and worker.is_cancelled()):
            self._run()  # asked for after the worker found the queue empty


class _Row:
    __slots__ = ("result", "name", "sort_name", "verdict", "verdict_at")

    def __init__(self, item: ClassifiedImage, name: str):
        self.result: ImageResult = item.result
        self.name = name  # as seen from the folder it was dropped with
        self.sort_name = natural_key(name)
        self.verdict: str | None = None  # the image verdict at threshold verdict_at
        self.verdict_at: float | None = None


class ResultsModel(QAbstractTableModel):
    """One row per image file; labels follow the state's threshold (stored p_real, no
    inference)."""

    COLUMNS = ("", "File", "Faces", "Verdict", "p_real", "Error")
    THUMB, FILE, FACES, VERDICT, P_REAL, ERROR = range(6)

    def __init__(self, state, parent: QObject | None = None):
        """state: the AppState whose threshold labels the rows (read when asked)."""
        super().__init__(parent)
        self.state = state
        self._rows: list[_Row] = []
        self._row_of_path: dict[str, int] = {}
        self._warning_pixmap: QPixmap | None = None
        self._counts: dict[str, int] = {}  # verdicts of the first _counted_rows rows
        self._counted_rows = 0
        self._counted_at: float | None = None  # the threshold they were counted at
        self.thumbnails = Thumbnails(parent=self)
        self.thumbnails.ready.connect(self._thumbnail_ready)

    @property
    def threshold(self) -> float:
        return self.state.threshold

    # --- content -------------------------------------------------------------------
    def add(self, item: ClassifiedImage, name: str | None = None) -> None:
        """Append a result, or replace the row of a file classified before. name: what
        the File column shows (default: the file name)."""
        self.add_many([(item, name)])

    def add_many(self, items: list[tuple[ClassifiedImage, str | None]]) -> None:
        """add() for many results, new rows announced once (views and the filter then
        update once per batch of files, not once per file)."""
        new: list[_Row] = []
        last = len(self.COLUMNS) - 1
        for item, name in items:
            path = item.result.path
            row = _Row(item, name or Path(path).name)
            known = self._row_of_path.get(path)
            if known is not None and known < len(self._rows):  # classified before
                self._rows[known] = row
                self._counted_at = None  # its old verdict is in the counts
                self.thumbnails.forget(path)
                self.dataChanged.emit(self.index(known, 0), self.index(known, last))
            elif known is not None:  # twice in this call: the later result counts
                new[known - len(self._rows)] = row
            else:
                self._row_of_path[path] = len(self._rows) + len(new)
                new.append(row)
        if new:
            first = len(self._rows)
            self.beginInsertRows(QModelIndex(), first, first + len(new) - 1)
            self._rows.extend(new)
            self.endInsertRows()

    def clear(self) -> None:
        self.beginResetModel()
        self._rows.clear()
        self._row_of_path.clear()
        self._counted_at = None
        self.thumbnails.clear()
        self.endResetModel()

    def _thumbnail_ready(self, path: str) -> None:
        row = self._row_of_path.get(path)
        if row is not None:  # THUMB to FILE: the grid shows the FILE column
            self.dataChanged.emit(self.index(row, self.THUMB), self.index(row, self.FILE),
                                  [Qt.ItemDataRole.DecorationRole])

    def relabel(self) -> None:
        """The threshold changed: the label columns are asked again."""
        if self._rows:
            self.dataChanged.emit(self.index(0, self.FACES),
                                  self.index(len(self._rows) - 1, self.P_REAL))

    def result(self, row: int) -> ImageResult:
        return self._rows[row].result

    def faces(self, row: int) -> list:
        """The row's faces labelled under the current threshold."""
        return report.relabelled(self._rows[row].result.faces, self.threshold)

    def verdict(self, row: int) -> str:
        item, threshold = self._rows[row], self.threshold
        if item.verdict_at != threshold:  # (the filter and the counts ask for every row)
            item.verdict = report.image_verdict(
                (f.relabel(threshold) for f in item.result.faces), item.result.error)
            item.verdict_at = threshold
        return item.verdict

    def records(self) -> list[dict]:
        """Every row as a `fasdesk classify --json` record, labelled under the threshold."""
        out = []
        for row, item in enumerate(self._rows):
            record = item.result.to_json()
            record["faces"] = [face.to_json() for face in self.faces(row)]
            record["threshold"] = self.threshold  # as `classify --json`: the one labels used
            out.append(record)
        return out

    def details_html(self, row: int) -> str:
        """The details pane's text for a row, labelled under the current threshold."""
        result = self.result(row)
        lines = [f"<b>{html.escape(report.display_name(Path(result.path).name))}</b>"]
        if result.error:
            return lines[0] + f"<br>{result.error}"
        lines.append(f"{result.width} x {result.height} px, verdict "
                     f"<b>{self.verdict(row)}</b> at threshold {format_threshold(self.threshold)}")
        for n, face in enumerate(self.faces(row), 1):
            x, y, w, h = face.box
            score = "" if face.p_real is None else f" (p_real {face.p_real:.3f})"
            why = f" — {face.reason}" if face.reason else ""
            lines.append(f"face {n}: {face.label}{score}, box {x},{y} {w}x{h}{why}")
        if not result.faces:
            lines.append("no face found")
        return "<br>".join(lines)

    def counts(self) -> dict[str, int]:
        """Images per verdict under the current threshold. Mid-batch it is asked a few
        times a second: only rows appended since the last call are counted then."""
        threshold = self.threshold
        if self._counted_at != threshold:
            self._counts, self._counted_rows, self._counted_at = {}, 0, threshold
        counts = self._counts
        for row in range(self._counted_rows, len(self._rows)):
            verdict = self.verdict(row)
            counts[verdict] = counts.get(verdict, 0) + 1
        self._counted_rows = len(self._rows)
        return dict(counts)

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
            return self._error_icon() if result.error else self.thumbnails.icon(result.path)
        if role == Qt.ItemDataRole.ToolTipRole:
            return self._tooltip(row, col, result)
        if role == Qt.ItemDataRole.BackgroundRole and col == self.VERDICT:
            return VERDICT_COLOURS.get(self.verdict(row))
        if role == Qt.ItemDataRole.ForegroundRole and col == self.VERDICT:
            return QColor("#ffffff")
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
            return report.display_name(self._rows[row].name)
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
        return self._rows[row].sort_name

    def _tooltip(self, row, col, result):
        if result.error:  # the whole message, wherever the pointer rests on the row
            return f"{result.path}\n\n{result.error}"
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


class VerdictFilter(QSortFilterProxyModel):
    """Shows the rows of one verdict (None: all), as labelled under the threshold now."""

    def __init__(self, model: ResultsModel, parent: QObject | None = None):
        super().__init__(parent)
        self.verdict: str | None = None
        self.setSourceModel(model)
        self.setSortRole(SORT_ROLE)

    def set_verdict(self, verdict: str | None) -> None:
        self.refilter(lambda: setattr(self, "verdict", verdict))

    def refilter(self, change: Callable[[], None]) -> None:
        """Apply `change` (to the filter or to the labels it reads), then filter again.
        Qt 6.9+ wants the change announced first (invalidateRowsFilter is deprecated)."""
        if hasattr(self, "beginFilterChange"):
            self.beginFilterChange()
            change()
            self.endFilterChange(QSortFilterProxyModel.Direction.Rows)
        else:
            change()
            self.invalidateRowsFilter()

    def filterAcceptsRow(self, source_row, source_parent) -> bool:
        return self.verdict is None or self.sourceModel().verdict(source_row) == self.verdict


def format_seconds(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 60}:{seconds % 60:02d}"
