"""File drops: which local files and folders a drag carries."""
from __future__ import annotations


def dropped_paths(event) -> list[str]:
    """Local file/folder paths in a drag or drop event's data (empty when none)."""
    return [url.toLocalFile() for url in event.mimeData().urls() if url.isLocalFile()]


def accept_if_files(event) -> None:
    """Accept a drag-enter/move event when it carries at least one local path."""
    if dropped_paths(event):
        event.acceptProposedAction()
