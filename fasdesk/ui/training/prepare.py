"""Training step 2, Prepare: `training prep` (face crops, labels, manifest) and what it skipped."""
from __future__ import annotations

import time
from pathlib import Path

from PySide6.QtWidgets import (QAbstractItemView, QFormLayout, QHeaderView, QLabel, QLineEdit,
                               QPushButton, QSpinBox, QTableWidget)

from fasdesk.core.datasets import dataset_info as dsi
from fasdesk.ui.training.widgets import PathField, StepPage, format_seconds, read_json, work_dir
from fasdesk.ui.training.common import table_item
from training import layout


# -- 2. Prepare ------------------------------------------------------------------------------

class PrepareStep(StepPage):
    KEY = "prepare"
    TITLE = "Prepare"
    HELP = ("Crops every face to the model's input (the same crop the live view uses) and "
            "writes a labels file. Re-running only does what is missing.")

    def __init__(self, tab):
        super().__init__(tab)
        form = QFormLayout()
        self.source = PathField("dir", placeholder="raw dataset folder")
        self.out = PathField("dir", placeholder="where the prepared crops go")
        self.size = QSpinBox()
        self.size.setRange(32, 512)
        self.size.setValue(128)
        self.size.setMaximumWidth(90)
        self.types = QLineEdit()
        self.types.setPlaceholderText("all types in the dataset (CelebA-Spoof: 0 1 2 3 7 8 9)")
        form.addRow("Dataset:", self.source)
        form.addRow("Output:", self.out)
        form.addRow("Crop size:", self.size)
        form.addRow("Spoof types:", self.types)
        self.layout_.addLayout(form)
        self.next_button = QPushButton("Train on it →")
        self.next_button.clicked.connect(self.to_train)
        self.add_run_controls("Prepare", self.start, self.next_button)
        self.layout_.addWidget(self.message)
        self.summary = QLabel("")
        self.summary.setWordWrap(True)
        self.layout_.addWidget(self.summary)
        self.skipped_title = QLabel("Skipped images")
        self.layout_.addWidget(self.skipped_title)
        self.skipped = QTableWidget(0, 2)
        self.skipped.setHorizontalHeaderLabels(["Image", "Reason"])
        self.skipped.verticalHeader().hide()
        self.skipped.horizontalHeader().setSectionResizeMode(1, QHeaderView.Stretch)
        self.skipped.setEditTriggers(QAbstractItemView.NoEditTriggers)
        self.layout_.addWidget(self.skipped, 1)
        self._started = 0.0

    def memory_values(self) -> dict:
        return {"source": self.source.text(), "out": self.out.text(),
                "size": self.size.value(), "spoof_types": self.types.text()}

    def apply_memory(self, values: dict) -> None:
        self.source.set_text(values.get("source", ""))
        self.out.set_text(values.get("out", ""))
        self.size.setValue(int(values.get("size", 128)))
        self.types.setText(values.get("spoof_types", ""))
        if self.out.text():
            self.show_manifest(Path(self.out.text()))

    def set_inputs(self, source: Path, spoof_types: list[int] | None) -> None:
        if self.source.path() != Path(source) or not self.out.text():
            self.out.set_text(work_dir(source) / "prepared")
        self.source.set_text(source)
        self.types.setText(" ".join(str(t) for t in spoof_types) if spoof_types else "")
        self.remember()

    def spoof_types(self) -> list[str] | None:
        parts = self.types.text().replace(",", " ").split()
        if not parts:
            return None
        if not all(p.isdigit() for p in parts):
            raise ValueError("spoof types are numbers separated by spaces, e.g. 0 1 2 3 7 8 9")
        return parts

    def start(self) -> None:
        self.message.clear_message()
        if self.source.path() is None or not self.source.path().is_dir():
            self.message.show_message("error", "Choose the raw dataset folder first.")
            return
        if self.out.path() is None:
            self.out.set_text(work_dir(self.source.path()) / "prepared")
        try:
            types = self.spoof_types()
        except ValueError as exc:
            self.message.show_message("error", str(exc))
            return
        args = layout.prep_args(self.source.path(), self.out.path(), self.size.value(), types)
        self.remember()
        self.skipped.setRowCount(0)
        self.summary.setText("")
        if self.tab.start_backend(self, args):
            self._started = time.monotonic()
            self.progress.busy("listing images…")

    def on_event(self, event: dict) -> None:
        if event["event"] == "progress":
            skipped = event.get("skipped", 0)
            self.progress.update_progress(event.get("done", 0), event.get("total", 1),
                                          event.get("eta_s"), f"skipped {skipped}")

    def on_finished(self, ok: bool, message: str) -> None:
        self.finish_progress(ok, message,
                             f"done in {format_seconds(time.monotonic() - self._started)}")
        if ok:
            self.tab.train.set_data(self.out.path())
            self.tab.evaluate.set_data(self.out.path())
            self.tab.export.set_calibration(self.out.path())
        if self.out.path() is not None:
            self.show_manifest(self.out.path())

    def show_manifest(self, out: Path) -> None:
        manifest = read_json(layout.manifest_file(out))
        if manifest is None:
            return
        counts = manifest.get("counts", {})
        # Folders name categories (real, replay...); CelebA-Spoof has finer types.
        groups = counts.get("by_type" if manifest.get("layout") == dsi.CELEBA else "by_category", {})
        by_type = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in groups.items())
        self.summary.setText(
            f"<b>{counts.get('crops', 0)}</b> crops ({counts.get('real', 0)} real, "
            f"{counts.get('spoof', 0)} spoof: {by_type}), <b>{counts.get('skipped', 0)}</b> "
            f"skipped.<br>Output: {out}")
        skipped = manifest.get("skipped", [])
        self.skipped_title.setText(f"Skipped images ({len(skipped)})" if skipped
                                   else "Skipped images: none")
        self.skipped.setRowCount(len(skipped))
        for row, entry in enumerate(skipped):
            self.skipped.setItem(row, 0, table_item(entry.get("source", "")))
            self.skipped.setItem(row, 1, table_item(entry.get("reason", "")))
        self.skipped.resizeColumnToContents(0)

    def to_train(self) -> None:
        if self.out.path() is not None:
            self.tab.train.set_data(self.out.path())
        self.tab.go_to("train")
