"""Calibration step 1: the camera for the real faces, the attacks, recording time, target."""
from __future__ import annotations

from PySide6.QtWidgets import (QCheckBox, QDoubleSpinBox, QFormLayout, QGridLayout, QGroupBox,
                               QHBoxLayout, QLabel, QLineEdit, QPushButton, QSpinBox,
                               QVBoxLayout, QWidget)

from fasdesk.app.calibration import FlowSettings, attack_source_problem
from fasdesk.core.calibration import defaults
from fasdesk.core.calibration import session as C
from fasdesk.core.live.sources import SourceSpec
from fasdesk.ui.calibration.widgets import SourcePicker, grown
from fasdesk.ui.training.widgets import MessageBox

INTRO = ("This measures the model on <b>your</b> camera, light and attacks, then picks the "
         "threshold. You record real faces for a few seconds, then each attack you want to "
         "stop (a phone showing a face, a printed photo...). Each stage can also be a video "
         "file or an image folder.")


class SetupPage(QWidget):
    def __init__(self, cameras, spec: SourceSpec | None, model_label: str, parent=None):
        super().__init__(parent)
        self.cameras = cameras
        layout = QVBoxLayout(self)
        intro = QLabel(INTRO)
        intro.setWordWrap(True)
        layout.addWidget(intro)
        layout.addLayout(self._form(spec, model_label))
        layout.addWidget(self._attacks())
        self.setup_message = grown(MessageBox())
        layout.addWidget(self.setup_message)
        layout.addStretch(1)
        self.start_button = QPushButton("Start with the real faces →")
        self.start_button.setObjectName("primary")
        row = QHBoxLayout()
        row.addStretch(1)
        row.addWidget(self.start_button)
        layout.addLayout(row)

    def _form(self, spec, model_label: str) -> QFormLayout:
        form = QFormLayout()
        self.real_source = SourcePicker(self.cameras, spec)
        form.addRow("Camera (real faces):", self.real_source)
        self.seconds = QDoubleSpinBox()
        self.seconds.setRange(2, 120)
        self.seconds.setValue(defaults.SECONDS)
        self.seconds.setSuffix(" s per stage (camera)")
        self.every = QSpinBox()
        self.every.setRange(1, 30)
        self.every.setValue(defaults.EVERY)
        self.every.setPrefix("keep one frame in ")
        timing = QHBoxLayout()
        timing.addWidget(self.seconds)
        timing.addWidget(self.every)
        timing.addStretch(1)
        form.addRow("Recording:", timing)
        self.target = QDoubleSpinBox()
        self.target.setRange(0.5, 50)
        self.target.setDecimals(1)
        self.target.setValue(100 * defaults.TARGET_BPCER)
        self.target.setSuffix(" % of real faces rejected at most (BPCER)")
        self.target.setMaximumWidth(360)
        form.addRow("Target:", self.target)
        form.addRow("Model:", QLabel(model_label))
        return form

    def _attacks(self) -> QGroupBox:
        attacks = QGroupBox("Attacks to record (one stage each)")
        self.attack_grid = QGridLayout(attacks)
        self.attack_rows: dict[str, tuple[QCheckBox, SourcePicker]] = {}
        for name in C.ATTACK_TITLES:
            self.add_attack_row(name, checked=name == "replay")
        self.custom_attack = QLineEdit()
        self.custom_attack.setPlaceholderText("another attack, e.g. paper mask")
        self.add_button = QPushButton("Add")
        self.add_button.clicked.connect(self.add_custom_attack)
        self.custom_attack.returnPressed.connect(self.add_custom_attack)
        custom = QHBoxLayout()
        custom.addWidget(self.custom_attack, 1)
        custom.addWidget(self.add_button)
        self.attack_grid.addLayout(custom, 99, 0, 1, 2)
        self.attack_grid.setColumnStretch(1, 1)
        return attacks

    def add_attack_row(self, name: str, checked: bool = True) -> None:
        if name in self.attack_rows:
            self.attack_rows[name][0].setChecked(True)
            return
        check = QCheckBox(C.attack_title(name))
        check.setChecked(checked)
        picker = SourcePicker(self.cameras, None, optional=True)
        row = len(self.attack_rows)
        self.attack_grid.addWidget(check, row, 0)
        self.attack_grid.addWidget(picker, row, 1)
        self.attack_rows[name] = (check, picker)

    def add_custom_attack(self) -> None:
        text = self.custom_attack.text().strip()
        if not text:
            return
        try:
            name = C.attack_name(text)
        except C.CalibrationError as exc:
            self.setup_message.show_message("error", str(exc))
            return
        self.setup_message.clear_message()
        self.add_attack_row(name)
        self.custom_attack.clear()

    def set_attack(self, name: str, spec: SourceSpec | None = None, checked: bool = True) -> None:
        """Choose an attack stage and its source (None: none chosen yet)."""
        self.add_attack_row(name, checked)
        check, picker = self.attack_rows[name]
        check.setChecked(checked)
        picker.set_spec(spec)

    def chosen_stages(self) -> list[tuple[str, SourceSpec | None]]:
        real = self.real_source.spec()
        stages = [(C.REAL, real)]
        for name, (check, picker) in self.attack_rows.items():
            if check.isChecked():
                stages.append((name, picker.spec()))
        return stages

    def problem(self) -> str | None:
        """Why the chosen stages cannot be recorded, or None."""
        stages = self.chosen_stages()
        if stages[0][1] is None:
            return "Choose the camera (or a video file or an image folder) for the real faces."
        if len(stages) < 2:
            return "Choose at least one attack to record."
        missing = [C.attack_title(name) for name, spec in stages[1:] if spec is None]
        if missing:
            return (f"Choose where to record {', '.join(missing)} from: the camera, a video "
                    f"file or an image folder of that attack.")
        return None

    def same_source_problem(self) -> str | None:
        """One line when an attack would re-read the real faces' file or folder."""
        stages = self.chosen_stages()
        return attack_source_problem(stages[0][1], stages[1:])

    def flow_settings(self, max_apcer: float) -> FlowSettings:
        return FlowSettings(self.seconds.value(), self.every.value(), self.target.value() / 100,
                            max_apcer)

    def preset(self, profile) -> None:
        """Fill the setup from a profile (Re-run): its camera, attacks and target."""
        self.real_source.set_spec(profile.spec)
        for check, _ in self.attack_rows.values():
            check.setChecked(False)
        for rec in profile.recordings:
            stage = rec.get("stage")
            if stage and stage != C.REAL:
                source = rec.get("source")
                self.set_attack(stage, SourceSpec.parse(source) if source else None)
        self.target.setValue(100 * profile.target_bpcer)
