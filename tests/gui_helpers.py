"""Driving widgets the way a person does: a mouse click on a button that is on screen."""
from __future__ import annotations

from PySide6.QtCore import Qt


def click(qtbot, button) -> None:
    """Click `button` with the mouse; it must be visible and enabled, as for a person."""
    assert button.isVisible(), f"'{button.text()}' is not on screen"
    assert button.isEnabled(), f"'{button.text()}' is disabled"
    qtbot.mouseClick(button, Qt.LeftButton)
