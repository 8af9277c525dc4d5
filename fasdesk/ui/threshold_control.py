"""The threshold slider with its value, as the Live and Images tabs show it.

The control holds no threshold of its own: it shows the value it is given (set_value,
which does not re-emit) and reports what the user picks (`changed`). The main window owns
the one threshold and pushes it to every control.
"""
from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QSlider, QWidget

STEPS = 100  # slider positions per 1.0: two decimals, as the value is shown
TOOLTIP = "A face is real when p_real reaches this value"


class ThresholdControl(QWidget):
    changed = Signal(float)

    def __init__(self, value: float, title: str | None = "Threshold", parent=None):
        super().__init__(parent)
        self.slider = QSlider(Qt.Horizontal)
        self.slider.setRange(0, STEPS)
        self.slider.setValue(round(value * STEPS))
        self.slider.setToolTip(TOOLTIP)
        self.slider.valueChanged.connect(self._on_slider)
        self.label = QLabel(f"{value:.2f}")
        self.label.setObjectName("thresholdValue")
        # Room for "0.00" in the bold value font, so the slider never shifts as it moves.
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
        return self.slider.value() / STEPS

    def set_value(self, value: float) -> None:
        """Show a threshold chosen elsewhere; does not emit `changed`."""
        self.slider.blockSignals(True)
        self.slider.setValue(round(value * STEPS))
        self.slider.blockSignals(False)
        self.label.setText(f"{value:.2f}")

    def _on_slider(self, position: int) -> None:
        value = position / STEPS
        self.label.setText(f"{value:.2f}")
        self.changed.emit(value)
