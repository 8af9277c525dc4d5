"""Training step 5, Export: `training export` to ONNX (optionally INT8), into the model list."""
from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import (QAbstractItemView, QCheckBox, QComboBox, QFormLayout, QHeaderView,
                               QLabel, QLineEdit, QMessageBox, QPushButton, QTableWidget)

from fasdesk.app.exports import export_files, register_export
from fasdesk.core.models import registry
from fasdesk.core.decision.thresholds import format_threshold
from fasdesk.core.decision.verdict import DEFAULT_THRESHOLD
from fasdesk.ui.training.widgets import PathField, StepPage
from fasdesk.ui.training.common import fixed, percent, table_item
from training import layout


# -- 5. Export -------------------------------------------------------------------------------

def model_id_from(text: str) -> str:
    """A model id (and file stem) from free text: letters, digits, - _ . only."""
    name = "".join(c if c.isalnum() or c in "-_." else "-" for c in text.strip())
    return name.strip("-.")


def replace_question(parent, model_id: str, existing: list[Path]) -> QMessageBox:
    """The question asked before an export overwrites model files (not yet shown)."""
    box = QMessageBox(QMessageBox.Question, "Replace the model?",
                      f"A model named '{model_id}' already exists:\n\n"
                      + "\n".join(str(p) for p in existing)
                      + "\n\nReplace it with this export? If the live view uses it, it "
                      "switches to the new weights at once.",
                      QMessageBox.Yes | QMessageBox.No, parent)
    box.setDefaultButton(QMessageBox.No)
    box.button(QMessageBox.Yes).setText("Replace")
    box.button(QMessageBox.No).setText("Keep it")
    return box


class ExportStep(StepPage):
    KEY = "export"
    TITLE = "Export"
    HELP = ("Writes the checkpoint as an ONNX model for the live view (checked against the "
            "torch model), optionally an INT8 copy with an agreement report, and adds it to "
            "the model list. Each export gets a new name; replacing a model asks first.")

    def __init__(self, tab):
        super().__init__(tab)
        form = QFormLayout()
        self.checkpoint = PathField("file", "Checkpoints (*.pth)", placeholder="best.pth")
        self.name = QLineEdit()
        self.name.setPlaceholderText("model name, e.g. office-camera-v1")
        # The name the next free name counts up from (name, name-2, name-3...).
        self._name_base = ""
        self.name.textEdited.connect(lambda text: setattr(self, "_name_base", model_id_from(text)))
        self.int8 = QCheckBox("Also write an INT8 model (calibrated on prepared crops)")
        self.calibration = PathField("dir", placeholder="prepared folder for calibration")
        self.threshold_label = QLabel(f"{DEFAULT_THRESHOLD:g} (the default; pick one in Evaluate)")
        self.threshold_label.setToolTip("Stored with the model; applied whenever it is the "
                                        "live model, and only then")
        self.threshold_value: float | None = None
        self.threshold_for: Path | None = None  # the checkpoint it was picked for
        self.checkpoint.changed.connect(lambda _: self._show_threshold())
        form.addRow("Checkpoint:", self.checkpoint)
        form.addRow("Model name:", self.name)
        form.addRow("Threshold:", self.threshold_label)
        form.addRow("", self.int8)
        form.addRow("Calibration data:", self.calibration)
        self.int8.toggled.connect(self.calibration.setEnabled)
        self.calibration.setEnabled(False)
        self.layout_.addLayout(form)
        self.use_button = QPushButton("Use this model in Live")
        self.use_button.setEnabled(False)
        self.use_button.clicked.connect(self.use_in_live)
        self.use_choice = QComboBox()
        self.use_choice.setSizeAdjustPolicy(QComboBox.AdjustToContents)
        self.add_run_controls("Export", self.start, self.use_choice, self.use_button)
        self.layout_.addWidget(self.message)
        self.report = QTableWidget(0, 2)
        self.report.setHorizontalHeaderLabels(["", ""])
        self.report.horizontalHeader().hide()
        self.report.verticalHeader().hide()
        self.report.horizontalHeader().setSectionResizeMode(1, QHeaderView.Stretch)
        self.report.setEditTriggers(QAbstractItemView.NoEditTriggers)
        self.layout_.addWidget(self.report, 1)
        self.outputs: list[tuple[str, Path]] = []  # (artifact kind, path) as written
        self.summary: dict = {}

    def memory_values(self) -> dict:
        return {"checkpoint": self.checkpoint.text(), "name": self.name.text(),
                "name_base": self._name_base, "int8": self.int8.isChecked(),
                "calibration": self.calibration.text()}

    def apply_memory(self, values: dict) -> None:
        self.checkpoint.set_text(values.get("checkpoint", ""))
        self.name.setText(values.get("name", ""))
        self._name_base = model_id_from(str(values.get("name_base") or self.name.text()))
        self.int8.setChecked(bool(values.get("int8", False)))
        self.calibration.set_text(values.get("calibration", ""))

    def set_checkpoint(self, checkpoint: Path) -> None:
        """A new run's checkpoint: a new model name from its dataset and run folder."""
        self.checkpoint.set_text(checkpoint)
        run = checkpoint.parent.name
        dataset = checkpoint.parent.parent.parent.name
        self._name_base = model_id_from(f"{dataset}-{run}")
        self.name.setText(self.free_name(self._name_base))
        self.remember()

    @staticmethod
    def model_files(model_id: str, int8: bool) -> list[Path]:
        """The model files an export under this name writes (see register)."""
        return export_files(model_id, int8)

    @classmethod
    def free_name(cls, base: str) -> str:
        """`base`, or `base-2`, `base-3`... : the first name no model has yet."""
        def taken(name: str) -> bool:
            return (any(p.exists() for p in cls.model_files(name, int8=True))
                    or any(registry.get_entry(i) is not None for i in (name, f"{name}-int8")))

        name, n = base, 1
        while taken(name):
            n += 1
            name = f"{base}-{n}"
        return name

    def set_calibration(self, prepared: Path) -> None:
        self.calibration.set_text(prepared)
        self.remember()

    def set_threshold(self, value: float, checkpoint: Path) -> None:
        """The threshold Evaluate picked for `checkpoint`, stored with its export."""
        self.threshold_value, self.threshold_for = float(value), Path(checkpoint)
        if self.checkpoint.path() is None:
            self.checkpoint.set_text(checkpoint)
        self._show_threshold()

    def threshold(self) -> float | None:
        """The threshold to store, when it was picked for the checkpoint being exported."""
        ckpt = self.checkpoint.path()
        if self.threshold_value is None or ckpt is None or self.threshold_for is None:
            return None
        same = ckpt.expanduser().resolve() == self.threshold_for.expanduser().resolve()
        return self.threshold_value if same else None

    def _show_threshold(self) -> None:
        value = self.threshold()
        self.threshold_label.setText(
            f"{DEFAULT_THRESHOLD:g} (the default; pick one in Evaluate)" if value is None else
            f"{format_threshold(value)} (picked in Evaluate for this checkpoint)")

    def model_id(self) -> str:
        return model_id_from(self.name.text())

    def start(self) -> None:
        self.message.clear_message()
        checkpoint = self.checkpoint.path()
        if checkpoint is None or not checkpoint.is_file():
            self.message.show_message("error", f"Choose the checkpoint to export ({layout.BEST} of a run).")
            return
        model_id = self.model_id()
        if not model_id:
            self.message.show_message("error", "Give the model a name.")
            return
        entry = registry.get_entry(model_id)
        if entry is not None and entry.extra.get("source") != "training":
            # Only models trained here may be replaced by a new export of the same name.
            self.message.show_message("error", f"'{model_id}' is already the name of another "
                                      "model; choose another name.")
            return
        # With INT8 the OUT file is the INT8 model (fp32 beside it): name it so.
        out = self.model_files(model_id, self.int8.isChecked())[0]
        calibration = None
        if self.int8.isChecked():
            calibration = self.calibration.path()
            if calibration is None or not layout.is_prepared(calibration):
                self.message.show_message("error", "INT8 needs calibration data: a prepared "
                                          f"folder (with {layout.LABELS}).")
                return
        args = layout.export_args(checkpoint, out, self.threshold(), calibration)
        existing = [p for p in self.model_files(model_id, self.int8.isChecked()) if p.exists()]
        if existing and replace_question(self, model_id, existing).exec() != QMessageBox.Yes:
            self.message.show_message("info", f"Nothing exported: '{model_id}' is kept.",
                                      [f"Choose another name, e.g. '{self.free_name(model_id)}'."])
            return
        self.remember()
        out.parent.mkdir(parents=True, exist_ok=True)
        self.outputs = []
        self.summary = {}
        self.report.setRowCount(0)
        self.use_button.setEnabled(False)
        self.use_choice.clear()
        if self.tab.start_backend(self, args):
            self.progress.busy("exporting (loading torch)…")

    def on_event(self, event: dict) -> None:
        super().on_event(event)
        kind = event["event"]
        if kind == "artifact":
            self.outputs.append((event.get("kind", "file"), Path(event.get("path", ""))))
        elif kind in ("metric", "done"):
            self.summary.update({k: v for k, v in event.items() if k not in ("event", "time")})

    def on_finished(self, ok: bool, message: str) -> None:
        self.finish_progress(ok, message)
        if not ok:
            return
        try:
            registered = self.register()
        except (OSError, ValueError) as exc:  # CardError is a ValueError
            self.message.show_message("error", f"Exported, but the model could not be added "
                                      f"to the model list: {exc}")
            return
        self._show_summary(registered)
        for model_id, path in registered:
            self.use_choice.addItem(f"{model_id}  ({path.name})", model_id)
        self.use_button.setEnabled(bool(registered))
        # A replaced file the live view runs must not keep running on the old weights.
        self.tab.model_files_written.emit([str(path) for _, path in registered])
        details = ["'Use this model in Live' switches the live view to it now; "
                   "it is also in the model list from now on."]
        if self.summary.get("int8_reason"):  # whether INT8 was kept, and why (not)
            details.insert(0, self.summary["int8_reason"])
        self.message.show_message("ok", f"Model '{registered[0][0]}' is ready.", details)
        # The next export gets a name of its own, never this one's files by accident.
        self.name.setText(self.free_name(self._name_base or self.model_id()))
        self.remember()

    def register(self) -> list[tuple[str, Path]]:
        """Add the exported model(s) to the model list (fasdesk.app.exports); returns the
        (id, path) pairs."""
        onnx = [path for kind, path in self.outputs if kind == "onnx"]
        registered, moved = register_export(onnx, self.model_id(), self.checkpoint.text())
        self.outputs = [(kind, moved.get(path, path)) for kind, path in self.outputs]
        return registered

    def _show_summary(self, registered) -> None:
        """The models written, the check against torch, and the INT8 agreement report."""
        rows = [(f"model '{model_id}'", str(path)) for model_id, path in registered]
        rows += [(kind.replace("_", " "), str(path)) for kind, path in self.outputs
                 if kind != "onnx"]
        diff = self.summary.get("max_abs_diff")
        if diff is not None:
            rows.append(("max |logit diff| ONNX vs torch", f"{diff:.2e}"))
        if self.summary.get("int8_reason"):
            rows.append(("INT8", self.summary["int8_reason"]))
        agreement = self.summary.get("agreement")
        if isinstance(agreement, dict):
            rows += [
                ("INT8 vs fp32: same verdict", percent(agreement.get("agreement"))
                 + f" of {agreement.get('images', '?')} held-out crops at threshold "
                 f"{agreement.get('threshold', DEFAULT_THRESHOLD):g}"),
                ("INT8 vs fp32: median |Δ p_real|", fixed(agreement.get("median_abs_delta_p_real"))),
                ("INT8 vs fp32: max |Δ p_real|", fixed(agreement.get("max_abs_delta_p_real"))),
                ("calibration crops", str(agreement.get("calibration_images", "?"))),
            ]
        self.report.setRowCount(len(rows))
        for row, (name, value) in enumerate(rows):
            self.report.setItem(row, 0, table_item(name))
            self.report.setItem(row, 1, table_item(value))
        self.report.resizeColumnToContents(0)

    def use_in_live(self) -> None:
        model_id = self.use_choice.currentData()
        if model_id:
            self.tab.use_model_requested.emit(model_id)
            self.tab.log(f"live view switched to model '{model_id}'")
