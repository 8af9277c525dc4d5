"""Starting the GUI: the QApplication, icon, style sheet and the main window."""
from __future__ import annotations

import argparse
import sys

from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QApplication

from fasdesk import __version__
from fasdesk.core.paths import resources_dir
from fasdesk.core.settings import load_settings

ICON_FILE = "icon.png"
STYLE_FILE = "style.qss"


def create_app(argv: list[str] | None = None) -> QApplication:
    """The QApplication with fasdesk's name, icon and style (reuses an existing one)."""
    import pyqtgraph as pg

    app = QApplication.instance() or QApplication(argv if argv is not None else sys.argv[:1])
    app.setApplicationName("fasdesk")
    app.setApplicationVersion(__version__)
    app.setOrganizationName("fasdesk")
    icon = resources_dir() / ICON_FILE
    if icon.is_file():
        app.setWindowIcon(QIcon(str(icon)))
    style = resources_dir() / STYLE_FILE
    if style.is_file():
        app.setStyleSheet(style.read_text(encoding="utf-8"))
    pg.setConfigOptions(antialias=True)
    return app


def run(args: argparse.Namespace) -> int:
    """`fasdesk [--source INDEX|FILE]`: show the main window; returns the exit status."""
    app = create_app()
    from fasdesk.ui.main_window import MainWindow

    settings, warning = load_settings()
    window = MainWindow(settings, warning, source=getattr(args, "source", None))
    window.show()
    return app.exec()
