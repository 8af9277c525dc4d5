"""The newest-item mailbox between a producer thread and the UI: one slot.

The producer `put`s each new frame; it replaces any frame not taken yet, so a slow screen
skips frames and never queues them. `put` says when the slot was empty, i.e. when the
consumer must be told (told once, however many frames arrive before it takes one).
Used by the live view and by calibration recordings. No Qt.
"""
from __future__ import annotations

import threading
from typing import Any


class Mailbox:
    def __init__(self):
        self._lock = threading.Lock()
        self._item: Any = None
        self._told = False

    def put(self, item: Any) -> bool:
        """Keep `item` (replacing an untaken one); True when the consumer must be told."""
        with self._lock:
            self._item = item
            tell, self._told = not self._told, True
        return tell

    @property
    def waiting(self) -> bool:
        """An item was put and not taken yet (so the consumer has been told)."""
        with self._lock:
            return self._told

    def take(self) -> Any:
        """The newest item not yet taken, or None."""
        with self._lock:
            item, self._item = self._item, None
            self._told = False
        return item
