"""Starting the GUI: the QApplication, icon, style sheet and the main window."""
from __future__ import annotations

import argparse
import logging
import os
import signal
import sys

from PySide6.QtCore import QTimer
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QApplication, QDialog

from fasdesk import __version__
from fasdesk.core.io.paths import resources_dir
from fasdesk.core.io.proctime import seconds_since_start
from fasdesk.core.io.settings import load_settings
from fasdesk.ui.theme import apply_appearance

# With FASDESK_REPORT_FIRST_FRAME=1 the app reports how long after its start the first
# live frame showed.
FIRST_FRAME_ENV = "FASDESK_REPORT_FIRST_FRAME"
ICON_FILE = "icon.png"


def create_app(argv: list[str] | None = None) -> QApplication:
    """The QApplication with fasdesk's name, icon and style (reuses an existing one)."""
    import pyqtgraph as pg

    app = QApplication.instance() or QApplication(argv if argv is not None else sys.argv[:1])
    app.setApplicationName("fasdesk")
    app.setApplicationVersion(__version__)
    app.setOrganizationName("fasdesk")
    if app.style().name().lower() != "fusion":
        # (setStyle re-polishes every widget there is: once, not per call)
        app.setStyle("Fusion")
    icon = resources_dir() / ICON_FILE
    if icon.is_file() and app.windowIcon().isNull():
        app.setWindowIcon(QIcon(str(icon)))
    apply_appearance(app, "dark")  # until the window applies the user's choice
    pg.setConfigOptions(antialias=True)
    return app


def run(args: argparse.Namespace) -> int:
    """`fasdesk [--source INDEX|FILE]`: show the main window; returns the exit status."""
    app = create_app()
    from fasdesk.ui.main_window import MainWindow

    from fasdesk.core.io.files import clean_stale_work_dirs
    from fasdesk.core.io.paths import user_models_dir

    clean_stale_work_dirs(user_models_dir(), "export")  # a killed export's leftovers
    settings, warning = load_settings()
    source = getattr(args, "source", None)
    window = MainWindow(settings, warning, source=source, demo_if_no_camera=source is None)
    if os.environ.get(FIRST_FRAME_ENV) == "1":
        _report_first_frame(window.live_tab)
    if getattr(args, "quit_after", None) is not None:
        quit_after(window, args.quit_after, then=app.quit)
    close_on_terminate(window, then=app.quit)
    window.show()
    status = app.exec()
    if window.stuck_workers:
        # A worker stuck in a system call cannot be stopped, and Qt aborts the process
        # when a running thread is destroyed: settings are saved, so leave without it.
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)
    return status


def quit_after(window, seconds: float, then=None) -> None:
    """Close `window` after `seconds`, whatever is open then: a modal question or file
    dialog is dismissed (as with Cancel or Esc), and each one it leads to, until the window
    can close; a running step is stopped without asking (MainWindow.close_now). `then` runs
    once the window is closed (the app's quit, so a dialog left open keeps nothing alive)."""
    def attempt() -> None:
        modal = QApplication.activeModalWidget()
        if modal is not None:
            modal.reject() if isinstance(modal, QDialog) else modal.close()
            # Again once that dialog's own event loop has returned to its caller.
            QTimer.singleShot(50, attempt)
            return
        window.close_now()
        if window.isVisible():
            QTimer.singleShot(100, attempt)
        elif then is not None:
            then()

    QTimer.singleShot(round(seconds * 1000), attempt)


def close_on_terminate(window, then=None) -> None:
    """SIGTERM (a session logging out, a service manager, `kill`) closes the window as
    --quit-after does: settings saved, a running step stopped, exit status 0; Qt's default
    would end the process where it stands."""
    if sys.platform == "win32":  # no SIGTERM is sent to a Windows app
        return

    def terminate(_signum, _frame) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second SIGTERM ends it at once
        quit_after(window, 0, then)

    signal.signal(signal.SIGTERM, terminate)
    # Python runs a signal handler only between bytecodes; while Qt's loop waits in C that
    # could be never. A no-op timer lets the interpreter in a few times a second.
    wake = QTimer(window)
    wake.timeout.connect(lambda: None)
    wake.start(200)


def _report_first_frame(live_tab) -> None:
    """Print once, on stderr, how long after the process started the first live frame was
    painted: 'fasdesk: first live frame 0.88 s after process start'."""
    def report(_frame) -> None:
        live_tab.frame_shown.disconnect(report)
        seconds, since = seconds_since_start()
        print(f"fasdesk: first live frame {seconds:.2f} s after {since}", file=sys.stderr,
              flush=True)
    live_tab.frame_shown.connect(report)
