"""What the Training steps share: plots, table items, number formats."""
from __future__ import annotations


import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtGui import QImage, QPixmap
from PySide6.QtWidgets import QSizePolicy, QTableWidgetItem, QVBoxLayout, QWidget

from fasdesk.ui.training.widgets import theme_colours


TRAIN_COLOURS = {"train": "#3b8ee8", "val": "#e5534b"}  # readable on light and dark


def stacked(*widgets, stretch_first: bool = False) -> QWidget:
    box = QWidget()
    column = QVBoxLayout(box)
    column.setContentsMargins(0, 0, 0, 0)
    for i, widget in enumerate(widgets):
        column.addWidget(widget, 1 if stretch_first and i == 0 else 0)
    return box


def new_plot(title: str) -> pg.PlotWidget:
    """A plot that takes the room left over: its large size hint must not make the page
    scroll (the pages sit in scroll areas, which size them by preferred height)."""
    background, foreground = theme_colours()
    plot = pg.PlotWidget()
    plot.setTitle(title, color=foreground.name())
    plot.setBackground(background)
    for side in ("left", "bottom"):
        axis = plot.getAxis(side)
        axis.setPen(foreground)
        axis.setTextPen(foreground)
    plot.showGrid(x=True, y=True, alpha=0.25)
    plot.setSizePolicy(QSizePolicy.Expanding, QSizePolicy.Ignored)
    plot.setMinimumHeight(170)
    return plot


def add_legend(plot: pg.PlotWidget, offset) -> None:
    background, foreground = theme_colours()
    background.setAlpha(215)
    plot.addLegend(offset=offset, brush=pg.mkBrush(background), labelTextColor=foreground)


def table_item(text, align_right=False) -> QTableWidgetItem:
    item = QTableWidgetItem(str(text))
    item.setFlags(item.flags() & ~Qt.ItemIsEditable)
    if align_right:
        item.setTextAlignment(Qt.AlignRight | Qt.AlignVCenter)
    return item


def percent(value) -> str:
    return "n/a" if value is None else f"{100.0 * float(value):.2f}%"


def short_percent(value) -> str:
    """An accuracy as a percentage with one decimal (one image in 60 is 1.7%)."""
    return "n/a" if value is None else f"{100.0 * float(value):.1f}%"


def fixed(value) -> str:
    return "n/a" if value is None else f"{float(value):.4f}"


def to_pixmap(rgb) -> QPixmap:
    image = QImage(rgb.data, rgb.width, rgb.height, rgb.stride, QImage.Format_RGB888)
    return QPixmap.fromImage(image.copy())
