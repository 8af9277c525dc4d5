"""The threshold slider with its value, as the Live and Images tabs show it.

The control is a view of the one threshold in AppState: moving the slider sets it there,
and every change of it (from any tab, a profile, a model's stored threshold) moves the
slider. It keeps no value of its own. The slider moves in steps of 0.01, but a threshold
set elsewhere (a calibration profile, a model's stored threshold) is kept and shown
exactly, e.g. 0.00044, never rounded to the slider's 0.00: a slider position that already
shows the threshold in use changes nothing.
"""
from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QHBoxLayout, QLabel, QSlider, QWidget

from fasdesk.core.decision.thresholds import format_threshold
from fasdesk.ui.subscribe import subscribe

STEPS = 100  # slider positions per 1.0
TOOLTIP = "A face is real when p_real reaches this value"


class ThresholdControl(QWidget):
    def __init__(self, state, title: str | None = "Threshold", parent=None):
        """state: the AppState whose threshold this control shows and sets."""
        super().__init__(parent)
        self.state = state
        self.slider = QSlider(Qt.Horizontal)
        self.slider.setRange(0, STEPS)
        self.slider.setToolTip(TOOLTIP)
        self.label = QLabel()
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
        self._show(state.threshold)
        self.slider.valueChanged.connect(self._on_slider)
        subscribe(self, state.threshold_changed, self._show)

    def value(self) -> float:
        return self.state.threshold

    def _show(self, value: float) -> None:
        self.slider.setValue(round(value * STEPS))
        self.label.setText(format_threshold(value))
        exact = round(value * STEPS) != value * STEPS
        self.label.setToolTip(repr(float(value)) if exact else "")

    def _on_slider(self, position: int) -> None:
        if position != round(self.state.threshold * STEPS):  # a move, not the value shown
            self.state.set_threshold(position / STEPS)
