"""Child process of `fasdesk doctor`: can Qt's platform plugin start here?

Qt aborts the whole process when its platform plugin cannot load (exit 134 on Linux), so
doctor runs this module in a child process and reads what it printed: one JSON line with
Qt's plugin folder before the attempt, one with the platform's name after it.
"""
from __future__ import annotations

import json
import sys


def main() -> int:
    from PySide6.QtCore import QLibraryInfo

    plugins = QLibraryInfo.path(QLibraryInfo.LibraryPath.PluginsPath)
    print(json.dumps({"plugins": plugins}), flush=True)
    from PySide6.QtGui import QGuiApplication

    app = QGuiApplication(sys.argv[:1])
    print(json.dumps({"platform": app.platformName()}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
