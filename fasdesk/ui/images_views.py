"""The Images tab's two views of one results proxy: the table and the thumbnail grid.

Both show the same filtered, sorted proxy and share one selection model, so the details
pane follows whichever is shown. Neither holds thumbnails: each cell asks the model's
`Thumbnails` when it is painted, so only the rows on screen are ever read.
"""
from __future__ import annotations

from PySide6.QtCore import QModelIndex, QRect, QSize, Qt, Signal
from PySide6.QtGui import QColor, QFont, QPainter, QPalette
from PySide6.QtWidgets import (QAbstractItemView, QButtonGroup, QComboBox, QHBoxLayout,
                               QHeaderView, QLabel, QListView, QStyle, QStyledItemDelegate, QStyleOptionViewItem,
                               QTableView, QToolButton, QVBoxLayout, QWidget)

from fasdesk.core.images import report
from fasdesk.core.images.display import GRID_THUMBNAIL_SIDE, THUMBNAIL_SIDE
from fasdesk.ui.images_model import VERDICT_COLOURS, ResultsModel

LIST, GRID = "list", "grid"  # the `images_view` setting's values
COMPACT_ROW = 24  # row height of the compact list (thumbnails shrink to fit)
CELL_PAD = 6
CHIP_HEIGHT = 20  # the verdict chip under each grid thumbnail
CELL = QSize(GRID_THUMBNAIL_SIDE + 2 * CELL_PAD + 16,
             GRID_THUMBNAIL_SIDE + 2 * CELL_PAD + CHIP_HEIGHT + 20)


def column(*parts, stretch: QWidget) -> QWidget:
    """Widgets and layouts one under the other, without margins; `stretch` takes the
    height left."""
    widget = QWidget()
    layout = QVBoxLayout(widget)
    layout.setContentsMargins(0, 0, 0, 0)
    for part in parts:
        if isinstance(part, QWidget):
            layout.addWidget(part, 1 if part is stretch else 0)
        else:
            layout.addLayout(part)
    return widget


def drop_hint() -> QLabel:
    """What the tab shows before any results."""
    hint = QLabel("Drop images or folders here\n\nor use Add images... / Add folder...")
    hint.setObjectName("dropHint")  # (its colours are the style sheet's)
    hint.setAlignment(Qt.AlignmentFlag.AlignCenter)
    return hint


def results_table(proxy) -> QTableView:
    """The list: one row per file, a small thumbnail first."""
    table = QTableView()
    table.setModel(proxy)
    table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
    table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    table.setAlternatingRowColors(True)
    table.setWordWrap(False)
    table.setIconSize(QSize(THUMBNAIL_SIDE, THUMBNAIL_SIDE))
    table.verticalHeader().hide()
    table.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
    table.verticalHeader().setDefaultSectionSize(THUMBNAIL_SIDE + 6)
    header = table.horizontalHeader()
    header.setSortIndicator(-1, Qt.SortOrder.AscendingOrder)  # arrival order at first
    table.setSortingEnabled(True)
    header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
    header.setStretchLastSection(True)
    for col, width in ((ResultsModel.THUMB, THUMBNAIL_SIDE + 12), (ResultsModel.FILE, 170),
                       (ResultsModel.FACES, 50), (ResultsModel.VERDICT, 76),
                       (ResultsModel.P_REAL, 76)):
        table.setColumnWidth(col, width)
    return table


def set_compact_rows(table: QTableView, on: bool) -> None:
    """The compact list: small rows, many more images on screen."""
    side = COMPACT_ROW - 4 if on else THUMBNAIL_SIDE
    table.setIconSize(QSize(side, side))
    table.verticalHeader().setDefaultSectionSize(side + 6)
    table.setColumnWidth(ResultsModel.THUMB, side + 12)


def verdict_combo() -> QComboBox:
    """The verdict filter: all, or one verdict (its item data; None for all)."""
    combo = QComboBox()
    combo.addItem("All verdicts", None)
    for verdict in report.VERDICTS:
        combo.addItem(verdict.capitalize(), verdict)
    combo.setToolTip("Show only the images with this verdict")
    return combo


class GridDelegate(QStyledItemDelegate):
    """A grid cell: the thumbnail, then a chip in the verdict's colour with the score,
    then the file name. Every cell has the same size (the grid lays out 20,000 cells
    without asking each one)."""

    def sizeHint(self, option, index) -> QSize:
        return CELL

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: QModelIndex) -> None:
        painter.save()
        rect = option.rect.adjusted(2, 2, -2, -2)
        palette = option.palette
        selected = bool(option.state & QStyle.StateFlag.State_Selected)
        if selected:
            painter.fillRect(rect, palette.color(QPalette.ColorRole.Highlight))
        verdict = index.siblingAtColumn(ResultsModel.VERDICT).data() or ""
        colour = VERDICT_COLOURS.get(verdict, QColor("#616161"))
        side = GRID_THUMBNAIL_SIDE
        box = QRect(rect.center().x() - side // 2, rect.top() + CELL_PAD, side, side)
        thumb = index.siblingAtColumn(ResultsModel.THUMB).data(Qt.ItemDataRole.DecorationRole)
        if thumb is not None:
            pixmap = thumb.pixmap(side, side) if hasattr(thumb, "pixmap") else thumb
            size = pixmap.size().scaled(box.size(), Qt.AspectRatioMode.KeepAspectRatio)
            if pixmap.width() <= side // 2:  # the warning sign: not blown up
                size = pixmap.size()
            target = QRect(0, 0, size.width(), size.height())
            target.moveCenter(box.center())
            painter.drawPixmap(target, pixmap)
            frame = target.adjusted(-1, -1, 0, 0)
        else:  # being read: a quiet placeholder
            painter.fillRect(box.adjusted(8, 8, -8, -8), palette.color(QPalette.ColorRole.Mid))
            frame = box
        painter.setPen(colour)
        painter.drawRect(frame)  # the verdict's colour around the photo too
        chip = QRect(rect.left() + 4, box.bottom() + 4, rect.width() - 8, CHIP_HEIGHT)
        painter.fillRect(chip, colour)
        score = index.siblingAtColumn(ResultsModel.P_REAL).data() or ""
        font = QFont(option.font)
        font.setBold(True)
        painter.setFont(font)
        painter.setPen(QColor("#ffffff"))
        chip_text = f"{verdict} {score}".strip()
        painter.drawText(chip, Qt.AlignmentFlag.AlignCenter,
                         painter.fontMetrics().elidedText(chip_text, Qt.TextElideMode.ElideRight,
                                                          chip.width() - 4))
        painter.setFont(option.font)
        painter.setPen(palette.color(QPalette.ColorRole.HighlightedText if selected
                                     else QPalette.ColorRole.Text))
        name_rect = QRect(rect.left() + 2, chip.bottom() + 2, rect.width() - 4,
                          rect.bottom() - chip.bottom() - 2)
        name = option.fontMetrics.elidedText(index.data() or "", Qt.TextElideMode.ElideMiddle,
                                             name_rect.width())
        painter.drawText(name_rect, Qt.AlignmentFlag.AlignCenter, name)
        painter.restore()


class ResultsGrid(QListView):
    """The grid: one cell per file (see GridDelegate), showing the proxy's FILE column."""

    def __init__(self, table: QTableView, parent: QWidget | None = None):
        """table: the list view whose model and selection the grid shares."""
        super().__init__(parent)
        self.setViewMode(QListView.ViewMode.IconMode)
        self.setMovement(QListView.Movement.Static)
        self.setResizeMode(QListView.ResizeMode.Adjust)
        self.setUniformItemSizes(True)  # the layout never asks 20,000 cells their size
        self.setGridSize(CELL)
        self.setSpacing(0)
        self.setWrapping(True)
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setItemDelegate(GridDelegate(self))
        self.setModel(table.model())
        self.setModelColumn(ResultsModel.FILE)
        old = self.selectionModel()
        self.setSelectionModel(table.selectionModel())  # one selection for both views
        old.deleteLater()


class ViewSwitch(QWidget):
    """Two buttons, List and Grid; `changed` says which is chosen (LIST or GRID)."""

    changed = Signal(str)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("viewSwitch")  # (the style sheets mark the chosen view)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        self.group = QButtonGroup(self)
        self.buttons: dict[str, QToolButton] = {}
        for name, text, tip in ((LIST, "List", "One row per image, with its details"),
                                (GRID, "Grid", "Thumbnails, with each verdict's colour")):
            button = QToolButton()
            button.setText(text)
            button.setToolTip(tip)
            button.setCheckable(True)
            button.setAutoRaise(False)
            self.group.addButton(button)
            self.buttons[name] = button
            layout.addWidget(button)
            button.toggled.connect(lambda on, n=name: on and self.changed.emit(n))
        self.group.setExclusive(True)
        self.buttons[LIST].setChecked(True)

    def current(self) -> str:
        return GRID if self.buttons[GRID].isChecked() else LIST

    def set_current(self, name: str) -> None:
        self.buttons[GRID if name == GRID else LIST].setChecked(True)
