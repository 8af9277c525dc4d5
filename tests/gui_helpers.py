"""Driving widgets the way a person does: a mouse click on a button that is on screen."""
from __future__ import annotations

from PySide6.QtCore import QPoint, Qt
from PySide6.QtWidgets import QCheckBox, QRadioButton


def click_point(button) -> QPoint:
    """Where a person clicks `button`: its middle, or a check box's box (a box stretched
    across a form row only reacts on its box and text, not in the middle of the row)."""
    if isinstance(button, (QCheckBox, QRadioButton)):
        return QPoint(min(8, button.width() // 2), button.height() // 2)
    return button.rect().center()


def click(qtbot, button) -> None:
    """Click `button` with the mouse; it must be visible and enabled, as for a person."""
    assert button.isVisible(), f"'{button.text()}' is not on screen"
    assert button.isEnabled(), f"'{button.text()}' is disabled"
    qtbot.mouseClick(button, Qt.LeftButton, pos=click_point(button))
