"""The app's look: the dark palette and style sheet, or the light ones; "system" follows
the desktop's light/dark scheme (the user's choice is the `appearance` setting)."""
from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QGuiApplication, QPalette
from PySide6.QtWidgets import QApplication

from fasdesk.core.io.paths import resources_dir

STYLE_FILE = "style.qss"
LIGHT_STYLE_FILE = "style-light.qss"


# Text colours the palettes do not hold, per theme: secondary text (help lines, notes,
# steps done), warnings written in text, and placeholders. Each reads at 4.5:1 or more
# against the window and the input fields (WCAG AA; tests/ui/test_theme.py computes it).
TEXT_COLOURS = {
    "dark": {"secondary": "#aab0b8", "warning": "#e0a030", "placeholder": "#8a9099"},
    "light": {"secondary": "#545b66", "warning": "#8a5300", "placeholder": "#5b616b"},
}

# Dark UI colours: the live picture and the verdict colours should be what stands out.
PALETTE = {
    QPalette.Window: "#1f2227", QPalette.WindowText: "#e3e6ea", QPalette.Base: "#1b1d21",
    QPalette.AlternateBase: "#22252a", QPalette.Text: "#e3e6ea", QPalette.Button: "#2c3038",
    QPalette.ButtonText: "#e3e6ea", QPalette.BrightText: "#ffffff", QPalette.Highlight: "#2f6fdb",
    QPalette.HighlightedText: "#ffffff", QPalette.ToolTipBase: "#2c3038",
    QPalette.ToolTipText: "#e3e6ea", QPalette.PlaceholderText: TEXT_COLOURS["dark"]["placeholder"],
    QPalette.Link: "#6ea8ff",
}
DISABLED_TEXT = "#6d737c"


def dark_palette() -> QPalette:
    palette = QPalette()
    for role, colour in PALETTE.items():
        palette.setColor(role, QColor(colour))
    for role in (QPalette.WindowText, QPalette.Text, QPalette.ButtonText):
        palette.setColor(QPalette.Disabled, role, QColor(DISABLED_TEXT))
    return palette


def resolved_appearance(appearance: str) -> str:
    """"light" or "dark": the user's choice, or the desktop's for "system" (dark when the
    desktop does not say: the live picture stands out best on it)."""
    if appearance in ("light", "dark"):
        return appearance
    scheme = QGuiApplication.styleHints().colorScheme()
    return "light" if scheme == Qt.ColorScheme.Light else "dark"


def apply_appearance(app: QApplication, appearance: str) -> str:
    """Palette and style sheet for `appearance` ("system", "light", "dark"); returns the
    one applied ("light" or "dark")."""
    theme = resolved_appearance(appearance)
    if app.property("fasdesk_theme") == theme:
        # Already on: a new style sheet re-polishes every widget of the application, which a
        # second window (or each test's) would pay for nothing.
        return theme
    if theme == "dark":
        app.setPalette(dark_palette())
        style = resources_dir() / STYLE_FILE
    else:
        palette = app.style().standardPalette()
        palette.setColor(QPalette.PlaceholderText, QColor(TEXT_COLOURS["light"]["placeholder"]))
        app.setPalette(palette)
        style = resources_dir() / LIGHT_STYLE_FILE
    sheet = style.read_text(encoding="utf-8") if style.is_file() else ""
    colours = TEXT_COLOURS[theme]
    sheet += (f'\nQLabel[secondary="true"] {{ color: {colours["secondary"]}; }}'
              f'\nQLabel[warning="true"] {{ color: {colours["warning"]}; font-weight: bold; }}\n')
    app.setStyleSheet(sheet)
    app.setProperty("fasdesk_theme", theme)
    return theme


def text_colour(kind: str) -> str:
    """The current theme's "secondary", "warning" or "placeholder" text colour (for rich
    text; a label shows the first two by `mark(label, kind)`)."""
    app = QApplication.instance()
    theme = app.property("fasdesk_theme") if app is not None else None
    return TEXT_COLOURS[theme if theme in TEXT_COLOURS else "dark"][kind]


def mark(label, kind: str):
    """Show `label` as "secondary" text or as a "warning" in either theme; returns it."""
    label.setProperty(kind, True)
    return label
