"""Views subscribe to AppState's events for as long as the widget lives.

`subscribe(widget, state.threshold_changed, widget.update_view)` connects the slot and
disconnects it when the widget is destroyed, so a closed dialog is never called again.
"""
from __future__ import annotations

from typing import Callable

from PySide6.QtCore import QObject


def subscribe(owner: QObject, signal, slot: Callable) -> None:
    """Connect a psygnal `signal` to `slot` until `owner` (a QObject) is destroyed."""
    signal.connect(slot)

    def forget(*_args, signal=signal, slot=slot) -> None:
        try:
            signal.disconnect(slot)
        except (ValueError, RuntimeError):
            pass

    owner.destroyed.connect(forget)
