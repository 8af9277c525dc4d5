"""The threshold slider with its value, as the Live and Images tabs show it.

The control shows the value it is given (set_value, which does not re-emit) and reports
what the user picks (`changed`); the main window owns the one threshold and pushes it to
every control. The slider moves in steps of 0.01, but a threshold set elsewhere (a
calibration profile, a model's stored threshold) is kept and shown exactly, e.g. 0.00044,
never rounded to the slider's 0.00.
"""
from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QSlider, QWidget

from fasdesk.core.decision.thresholds import format_threshold

STEPS = 100  # slider positions per 1.0
TOOLTIP = "A face is real when p_real reaches this value"


class ThresholdControl(QWidget):
    changed = Signal(float)

    def __init__(self, value: float, title: str | None = "Threshold", parent=None):
        super().__init__(parent)
        self._value = float(value)
        self.slider = QSlider(Qt.Horizontal)
        self.slider.setRange(0, STEPS)
        self.slider.setValue(round(value * STEPS))
        self.slider.setToolTip(TOOLTIP)
        self.slider.valueChanged.connect(self._on_slider)
        self.label = QLabel(format_threshold(value))
        self.label.setObjectName("thresholdValue")
        # Room for "0.00" in the bold value font, so the slider never shifts as it moves;
        # a longer exact value (0.00044) widens it while it is shown.
        self.label.ensurePolished()
        self.label.setMinimumWidth(self.label.fontMetrics().horizontalAdvance("0.00") + 8)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        if title:
            caption = QLabel(title)
            caption.setToolTip(TOOLTIP)
            layout.addWidget(caption)
        layout.addWidget(self.slider, 1)
        layout.addWidget(self.label)

    def value(self) -> float:
        return self._value

    def set_value(self, value: float) -> None:
        """Show a threshold chosen elsewhere; does not emit `changed`."""
        self._value = float(value)
        self.slider.blockSignals(True)
        self.slider.setValue(round(value * STEPS))
        self.slider.blockSignals(False)
        self.label.setText(format_threshold(value))
        self.label.setToolTip(repr(float(value)))

    def _on_slider(self, position: int) -> None:
        self._value = position / STEPS
        self.label.setText(format_threshold(self._value))
        self.label.setToolTip("")
        self.changed.emit(self._value)
