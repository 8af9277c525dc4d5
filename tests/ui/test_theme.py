"""Text stays readable in both themes: every text colour the style sheets and the theme
set reads at 4.5:1 or more against what it is drawn on (WCAG AA), computed from the
colour values themselves."""
from __future__ import annotations

import re

import pytest

pytest.importorskip("pytestqt")

from PySide6.QtGui import QColor, QPalette  # noqa: E402
from PySide6.QtWidgets import QApplication, QLabel  # noqa: E402

from fasdesk.core.io.paths import resources_dir  # noqa: E402
from fasdesk.ui.theme import (LIGHT_STYLE_FILE, STYLE_FILE, TEXT_COLOURS,  # noqa: E402
                              apply_appearance, mark)

AA = 4.5


@pytest.fixture(autouse=True)
def dark_afterwards(qapp):
    """The app's first theme (create_app's) again for the tests that follow."""
    yield
    apply_appearance(QApplication.instance(), "dark")


def luminance(colour: QColor) -> float:
    def linear(c: float) -> float:
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4
    return (0.2126 * linear(colour.redF()) + 0.7152 * linear(colour.greenF())
            + 0.0722 * linear(colour.blueF()))


def over(colour: QColor, background: QColor) -> QColor:
    """A translucent colour as it shows on `background`."""
    a = colour.alphaF()
    return QColor.fromRgbF(*(a * getattr(colour, c)() + (1 - a) * getattr(background, c)()
                             for c in ("redF", "greenF", "blueF")))


def contrast(text: QColor, background: QColor) -> float:
    lighter, darker = sorted((luminance(over(text, background)), luminance(background)),
                             reverse=True)
    return (lighter + 0.05) / (darker + 0.05)


def rules(sheet: str) -> list[tuple[str, dict[str, str]]]:
    """(selector, {property: value}) for each selector of each rule."""
    sheet = re.sub(r"/\*.*?\*/", "", sheet, flags=re.S)
    out = []
    for selectors, body in re.findall(r"([^{}]+)\{([^}]*)\}", sheet):
        declarations = dict((k.strip(), v.strip()) for k, v in
                            (d.split(":", 1) for d in body.split(";") if ":" in d))
        out.extend((s.strip(), declarations) for s in selectors.split(","))
    return out


def opaque(value: str | None) -> QColor | None:
    colour = QColor(value) if value else QColor()
    return colour if colour.isValid() and colour.alpha() == 255 else None


def family(selector: str) -> str:
    """The widget a rule is about, without states: 'QTabBar::tab:hover' -> 'QTabBar::tab',
    'QFrame#messageBar[level="info"] QLabel' -> 'QFrame#messageBar'."""
    first = selector.split()[0]
    return re.sub(r"\[.*?\]|:(?!:)[\w-]+$", "", first)


@pytest.mark.parametrize("theme, sheet_file", [("light", LIGHT_STYLE_FILE), ("dark", STYLE_FILE)])
def test_every_text_colour_reads_at_4_5_to_1(qapp, theme, sheet_file):
    apply_appearance(qapp, theme)
    palette = qapp.palette()
    window, base = palette.color(QPalette.Window), palette.color(QPalette.Base)
    # Text the palettes and the theme's own rules colour: help lines, notes, warnings,
    # placeholders, on the window and in input fields.
    for kind, value in TEXT_COLOURS[theme].items():
        for background in (window, base):
            assert contrast(QColor(value), background) >= AA, (theme, kind, value)
    for role in (QPalette.WindowText, QPalette.Text, QPalette.PlaceholderText):
        assert contrast(palette.color(role), base) >= AA, (theme, role)
    # Every coloured text in the style sheet, on its own background, or else on the
    # backgrounds its widget has in the sheet, or else on the window and the fields.
    sheet = rules((resources_dir() / sheet_file).read_text(encoding="utf-8"))
    backgrounds: dict[str, list[QColor]] = {}
    for selector, declarations in sheet:
        colour = opaque(declarations.get("background") or declarations.get("background-color"))
        if colour is not None and ":disabled" not in selector:
            backgrounds.setdefault(family(selector), []).append(colour)
    checked = 0
    for selector, declarations in sheet:
        text = declarations.get("color")
        if not text or ":disabled" in selector:  # (disabled text is exempt, and dim on purpose)
            continue
        own = opaque(declarations.get("background") or declarations.get("background-color"))
        under = [own] if own else backgrounds.get(family(selector)) or [window, base]
        for background in under:
            assert contrast(QColor(text), background) >= AA, (theme, selector, text,
                                                               background.name())
        checked += 1
    assert checked >= 8  # the tabs, group titles, status bar, banners, the drop hint...


def test_marked_labels_take_the_themes_colours(qapp, qtbot):
    for theme in ("light", "dark"):
        apply_appearance(qapp, theme)
        for kind in ("secondary", "warning"):
            label = mark(QLabel("a help line"), kind)
            qtbot.addWidget(label)
            label.ensurePolished()
            shown = label.palette().color(label.foregroundRole())
            assert shown.name() == TEXT_COLOURS[theme][kind], (theme, kind)
