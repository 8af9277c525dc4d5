"""Small widgets the Training tab's steps share: path fields, progress rows, a base page."""
from __future__ import annotations

import html
from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import (QApplication, QFileDialog, QHBoxLayout, QLabel, QLineEdit,
                               QProgressBar, QPushButton, QSizePolicy, QVBoxLayout, QWidget)

from fasdesk.core.io.paths import data_dir
from fasdesk.ui.theme import mark


def work_dir(dataset: str | Path) -> Path:
    """Where the tab puts prepared data and runs for a dataset, under the user data dir."""
    name = Path(dataset).name or "dataset"
    return data_dir() / "training" / name


def read_json_any(path: str | Path):
    """A JSON file's content, or None when it is missing or broken."""
    try:
        from fasdesk.core.io.files import read_json

        return read_json(path, 64 << 20, expect=None)
    except (OSError, ValueError):
        return None


def read_json(path: str | Path) -> dict | None:
    data = read_json_any(path)
    return data if isinstance(data, dict) else None


def format_seconds(seconds) -> str:
    if seconds is None:
        return "--:--"
    seconds = int(round(max(0.0, float(seconds))))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class PathField(QWidget):
    """A path in a line edit with a Browse button; `kind` is "dir", "file" or "save"."""
    changed = Signal(str)

    def __init__(self, kind: str = "dir", file_filter: str = "", placeholder: str = "",
                 parent=None):
        super().__init__(parent)
        self.kind = kind
        self.file_filter = file_filter
        self.edit = QLineEdit()
        self.edit.setPlaceholderText(placeholder)
        self.edit.editingFinished.connect(lambda: self.changed.emit(self.text()))
        self.browse_button = QPushButton("Browse…")
        self.browse_button.clicked.connect(self._browse)
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.edit, 1)
        row.addWidget(self.browse_button)

    def text(self) -> str:
        return self.edit.text().strip()

    def path(self) -> Path | None:
        return Path(self.text()).expanduser() if self.text() else None

    def set_text(self, text: str | Path, notify: bool = False) -> None:
        self.edit.setText(str(text) if text else "")
        if notify:
            self.changed.emit(self.text())

    def _browse(self) -> None:
        start = self.text() or str(Path.home())
        if self.kind == "dir":
            chosen = QFileDialog.getExistingDirectory(self, "Choose a folder", start)
        elif self.kind == "save":
            chosen, _ = QFileDialog.getSaveFileName(self, "Save as", start, self.file_filter)
        else:
            chosen, _ = QFileDialog.getOpenFileName(self, "Choose a file", start, self.file_filter)
        if chosen:
            self.set_text(chosen, notify=True)


class ProgressRow(QWidget):
    """A progress bar with `done / total`, ETA and extra text beside it."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.bar = QProgressBar()
        self.bar.setRange(0, 1)
        self.bar.setValue(0)
        self.bar.setTextVisible(True)
        self.label = QLabel("")
        self.label.setMinimumWidth(90)
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.bar, 1)
        row.addWidget(self.label)

    def reset(self, text: str = "") -> None:
        self.bar.setRange(0, 1)
        self.bar.setValue(0)
        self.bar.setFormat("%p%")
        self.label.setText(text)

    def busy(self, text: str) -> None:
        self.bar.setRange(0, 0)  # indeterminate until the first progress event
        self.label.setText(text)

    def update_progress(self, done: int, total: int, eta_s, extra: str = "") -> None:
        total = max(1, int(total))
        self.bar.setRange(0, total)
        self.bar.setValue(min(int(done), total))
        self.bar.setFormat(f"{int(done)} / {total}  (%p%)")
        text = f"ETA {format_seconds(eta_s)}"
        self.label.setText(f"{text}   {extra}" if extra else text)

    def finish(self, text: str, complete: bool = True) -> None:
        """Stop the bar: full when the run completed, where it stopped otherwise."""
        if self.bar.maximum() == 0:  # still indeterminate: no progress was reported
            self.bar.setRange(0, 1)
            self.bar.setValue(0)
        if complete:
            self.bar.setValue(self.bar.maximum())
        self.label.setText(text)


def dark_theme() -> bool:
    """Whether the application palette is dark (the app's own theme) or light."""
    return QApplication.palette().color(QPalette.Window).lightness() < 128


def theme_colours() -> tuple[QColor, QColor]:
    """(background, foreground) for plots, from the application palette."""
    palette = QApplication.palette()
    return palette.color(QPalette.Base), palette.color(QPalette.Text)


class MessageBox(QLabel):
    """An inline message: problems in red, warnings in amber, success in green."""
    # kind -> (background, text, border), for a light and for a dark palette.
    LIGHT = {"error": ("#fdecea", "#b3261e", "#b3261e"), "warning": ("#fff4e0", "#8a5300", "#8a5300"),
             "ok": ("#e8f5e9", "#1b5e20", "#1b5e20"), "info": ("#eef3fb", "#1f3b66", "#1f3b66")}
    DARK = {"error": ("#5b2326", "#f2f2f2", "#a8393f"), "warning": ("#574516", "#f2f2f2", "#b38a1d"),
            "ok": ("#1e4a2a", "#f2f2f2", "#3d8b54"), "info": ("#1f3a5c", "#f2f2f2", "#2f6fdb")}

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setWordWrap(True)
        self.setTextInteractionFlags(self.textInteractionFlags())
        self.setSizePolicy(QSizePolicy.Preferred, QSizePolicy.Maximum)
        self.hide()

    def show_message(self, kind: str, title: str, lines: list[str] | None = None,
                     pre: str = "") -> None:
        styles = self.DARK if dark_theme() else self.LIGHT
        background, colour, border = styles.get(kind, styles["info"])
        self.setStyleSheet(f"QLabel {{ background: {background}; color: {colour}; "
                           f"border: 1px solid {border}; border-radius: 4px; padding: 6px; }}")
        body = f"<b>{html.escape(title)}</b>"
        if lines:
            body += "<ul style='margin:0'>" + "".join(
                f"<li>{html.escape(line)}</li>" for line in lines) + "</ul>"
        if pre:  # the backend's last lines, wrapped so long paths stay readable
            body += ("<p style='white-space: pre-wrap; font-family: monospace; "
                     f"margin: 4px 0 0 0'>{html.escape(pre)}</p>")
        self.setText(body)
        self.show()

    def clear_message(self) -> None:
        self.setText("")
        self.hide()


def button_row(*widgets: QWidget) -> QWidget:
    box = QWidget()
    row = QHBoxLayout(box)
    row.setContentsMargins(0, 0, 0, 0)
    for widget in widgets:
        row.addWidget(widget)
    row.addStretch(1)
    return box


class StepPage(QWidget):
    """One step of the flow: remembers its inputs, runs the backend, shows the result."""
    KEY = ""
    TITLE = ""
    HELP = ""

    def __init__(self, tab):
        super().__init__()
        self.tab = tab
        self.layout_ = QVBoxLayout(self)
        self.layout_.setContentsMargins(8, 4, 8, 4)  # every line counts on a laptop screen
        self.layout_.setSpacing(5)
        # The title with its help beside it: one line where the width allows.
        heading = QLabel(f"<h2 style='margin:0'>{self.TITLE}</h2>")
        header = QHBoxLayout()
        header.addWidget(heading, 0, Qt.AlignTop)
        if self.HELP:
            help_label = QLabel(self.HELP)
            help_label.setWordWrap(True)
            mark(help_label, "secondary")
            header.addSpacing(10)
            header.addWidget(help_label, 1, Qt.AlignVCenter)
        else:
            header.addStretch(1)
        self.layout_.addLayout(header)
        self.message = MessageBox()

    # Inputs kept between sessions.
    def memory_values(self) -> dict:
        return {}

    def apply_memory(self, values: dict) -> None:
        pass

    def restore(self) -> None:
        self.apply_memory(self.tab.memory.get(self.KEY))

    def remember(self) -> None:
        self.tab.memory.put(self.KEY, self.memory_values())

    # The backend run this page started.
    def add_run_controls(self, start_text: str, start, *extra: QWidget) -> None:
        """The start and Cancel buttons (plus `extra` widgets) and the progress row."""
        self.start_button = QPushButton(start_text)
        self.start_button.setObjectName("primary")  # each step's main action
        self.start_button.clicked.connect(lambda: start())
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.tab.cancel_backend)
        self.cancel_button.setEnabled(False)
        # One line: the buttons, then the progress of the run they start.
        self.progress = ProgressRow()
        row = button_row(self.start_button, self.cancel_button, *extra)
        row.layout().takeAt(row.layout().count() - 1)  # (its stretch: the bar takes the room)
        row.layout().addSpacing(8)
        row.layout().addWidget(self.progress, 1)
        self.layout_.addWidget(row)

    def set_running(self, mine: bool) -> None:
        """One run at a time: starting is off while any step runs; Cancel is the owner's."""
        self.start_button.setEnabled(not self.tab.busy)
        self.cancel_button.setEnabled(mine)

    def on_event(self, event: dict) -> None:
        if event["event"] == "progress":
            self.progress.update_progress(event.get("done", 0), event.get("total", 1),
                                          event.get("eta_s"))

    def on_finished(self, ok: bool, message: str) -> None:
        self.finish_progress(ok, message)

    def finish_progress(self, ok: bool, message: str, done_text: str = "finished") -> None:
        self.progress.finish(done_text if ok else
                             "cancelled" if message == "cancelled" else "failed", complete=ok)

    def show_failure(self, message: str, tail: str) -> None:
        self.message.show_message(
            "error", f"{self.TITLE} failed: {message}",
            ["Fix what the message says and press the button again; finished work is kept "
             "(prep skips done crops, training resumes from its last checkpoint).",
             "The full backend output is in the log below."],
            pre=tail)
