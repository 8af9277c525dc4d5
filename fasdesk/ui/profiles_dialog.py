"""Tools > Camera profiles: list, rename, re-run, delete and export the profiles that
calibrations saved, and re-score a profile's recordings with another model or threshold.

Profile files that are not valid are listed at the top with the reason and ignored.
"""
from __future__ import annotations

import html
from pathlib import Path

import shiboken6

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (QAbstractItemView, QCheckBox, QComboBox, QDialog,
                               QDoubleSpinBox, QFileDialog, QGroupBox, QHBoxLayout,
                               QHeaderView, QInputDialog, QLabel, QMessageBox, QPushButton,
                               QTableWidget, QVBoxLayout)

from fasdesk.app.calibration import rescore_profile
from fasdesk.core.calibration import session as C
from fasdesk.core.io.errors import one_line
from fasdesk.core.models import cards, registry
from fasdesk.core.calibration.profiles import (PACKAGE_SUFFIX, Profile, ProfileError,
                                               delete_profile, export_package, file_stem,
                                               find_profile, import_package, list_profiles,
                                               read_package, rename_profile)
from fasdesk.core.decision.thresholds import format_threshold
from fasdesk.ui.calibration.widgets import StopsWhenClosed, close_row, grown, pct, table_item
from fasdesk.ui.workers import start_worker
from fasdesk.ui.training.widgets import MessageBox

COLUMNS = ("Name", "Camera or file", "Model", "Threshold", "Fine-tuned", "Created")


class ProfilesDialog(StopsWhenClosed, QDialog):
    def __init__(self, window, parent=None):
        super().__init__(parent or window)
        self.window_ = window
        self.setWindowTitle("Camera profiles")
        self.resize(980, 620)
        self.profiles: list[Profile] = []
        self.worker = None  # a re-score running
        self.rescored: dict | None = None

        self.problems = grown(MessageBox())
        self.table = self._profile_table()
        self.details = QLabel()
        self.details.setWordWrap(True)
        self.details.setTextFormat(Qt.RichText)
        self.details.setTextInteractionFlags(Qt.TextSelectableByMouse)
        row = self._profile_buttons()
        rescore = self._rescore_box()
        self.message = grown(MessageBox())
        self.close_button, bottom = close_row(self)
        layout = QVBoxLayout(self)
        layout.addWidget(self.problems)
        layout.addWidget(self.table, 2)
        layout.addLayout(row)
        layout.addWidget(self.message)
        layout.addWidget(self.details)
        layout.addWidget(rescore, 2)
        layout.addLayout(bottom)
        self._fill_models()
        self.reload()

    def _profile_table(self) -> QTableWidget:
        table = QTableWidget(0, len(COLUMNS))
        table.setHorizontalHeaderLabels(COLUMNS)
        table.verticalHeader().hide()
        table.setSelectionBehavior(QAbstractItemView.SelectRows)
        table.setSelectionMode(QAbstractItemView.SingleSelection)
        table.setEditTriggers(QAbstractItemView.NoEditTriggers)
        table.horizontalHeader().setSectionResizeMode(1, QHeaderView.Stretch)
        table.itemSelectionChanged.connect(self._on_selected)
        return table

    def _profile_buttons(self) -> QHBoxLayout:
        self.buttons = {}
        row = QHBoxLayout()
        for key, text, slot in (("rename", "Rename…", self.ask_rename),
                                ("rerun", "Re-run calibration…", self.rerun),
                                ("delete", "Delete", self.ask_delete),
                                ("export", "Export…", self.ask_export),
                                ("import", "Import…", self.ask_import),
                                ("train", "Open recordings in Training", self.open_in_training)):
            button = QPushButton(text)
            # clicked(bool) must not land in a slot's first parameter.
            button.clicked.connect(lambda _checked=False, slot=slot: slot())
            row.addWidget(button)
            self.buttons[key] = button
        row.addStretch(1)
        return row

    def _rescore_box(self) -> QGroupBox:
        rescore = QGroupBox("Re-score this profile's recordings")
        box = QVBoxLayout(rescore)
        line = QHBoxLayout()
        self.model_combo = QComboBox()
        self.model_combo.setMinimumWidth(260)
        self.open_model_button = QPushButton("Open ONNX…")
        self.open_model_button.clicked.connect(self.ask_model_file)
        self.fixed = QCheckBox("at threshold")
        self.threshold = QDoubleSpinBox()
        self.threshold.setDecimals(5)
        self.threshold.setRange(0, 1)
        self.threshold.setSingleStep(0.01)
        self.threshold.setEnabled(False)
        self.fixed.toggled.connect(self.threshold.setEnabled)
        self.rescore_button = QPushButton("Re-score")
        # Not clicked.connect(self.rescore): clicked(bool) would land in `model`.
        self.rescore_button.clicked.connect(lambda: self.rescore())
        for widget, stretch in ((QLabel("Model:"), 0), (self.model_combo, 1),
                                (self.open_model_button, 0), (self.fixed, 0),
                                (self.threshold, 0), (self.rescore_button, 0)):
            line.addWidget(widget, stretch)
        box.addLayout(line)
        self.rescore_result = QTableWidget(0, 2)
        self.rescore_result.horizontalHeader().hide()
        self.rescore_result.verticalHeader().hide()
        self.rescore_result.setEditTriggers(QAbstractItemView.NoEditTriggers)
        self.rescore_result.horizontalHeader().setSectionResizeMode(0, QHeaderView.Stretch)
        self.rescore_result.verticalHeader().setDefaultSectionSize(22)
        self.rescore_message = grown(MessageBox())
        box.addWidget(self.rescore_message)
        box.addWidget(self.rescore_result, 1)
        return rescore

    # -- listing -------------------------------------------------------------------------
    def reload(self, select: str | None = None) -> None:
        current = select or (self.selected().name if self.selected() else None)
        self.profiles, problems = list_profiles()
        if problems:
            self.problems.show_message("warning", "Some profile files are not valid and are "
                                       "ignored:", problems)
        else:
            self.problems.clear_message()
        self.table.setRowCount(len(self.profiles))
        active = self.window_.state.profile.name if self.window_.state.profile else None
        for row, p in enumerate(self.profiles):
            values = (p.name + ("  (in use)" if p.name == active else ""), p.source_label,
                      cards.display_name_of(p.model),
                      format_threshold(p.threshold), "yes" if p.fine_tuned else "no", p.created)
            for col, value in enumerate(values):
                self.table.setItem(row, col, table_item(str(value), right=col == 3))
        self.table.resizeColumnsToContents()
        self.table.horizontalHeader().setSectionResizeMode(1, QHeaderView.Stretch)
        index = next((i for i, p in enumerate(self.profiles) if p.name == current), 0)
        if self.profiles:
            self.table.selectRow(index)
        self._on_selected()

    def selected(self) -> Profile | None:
        rows = self.table.selectionModel().selectedRows() if self.table.selectionModel() else []
        if not rows or rows[0].row() >= len(self.profiles):
            return None
        return self.profiles[rows[0].row()]

    def select(self, name: str) -> None:
        for i, p in enumerate(self.profiles):
            if p.name == name:
                self.table.selectRow(i)

    def _on_selected(self) -> None:
        profile = self.selected()
        for button in self.buttons.values():
            button.setEnabled(profile is not None)
        self.buttons["train"].setEnabled(profile is not None
                                         and self.window_.training_tab is not None)
        self.rescore_button.setEnabled(profile is not None and self.worker is None)
        self.rescore_result.setRowCount(0)
        self.rescore_message.clear_message()
        if profile is None:
            self.details.setText("No profiles yet: Tools > Calibrate this camera makes one."
                                 if not self.profiles else "")
            return
        self.threshold.setValue(profile.threshold)
        self._select_model(profile.model)
        lines = [f"<b>{html.escape(profile.name)}</b>: {html.escape(profile.source_label)}, "
                 f"model {html.escape(cards.display_name_of(profile.model))}, threshold "
                 f"{format_threshold(profile.threshold)} (for BPCER ≤ "
                 f"{100 * profile.target_bpcer:g}%), confirmed after {profile.confirm_frames} "
                 f"frames, {html.escape(profile.created)}."]
        for key, title in (("before", "current model"), ("after", "fine-tuned")):
            m = profile.metrics.get(key) if isinstance(profile.metrics, dict) else None
            if isinstance(m, dict):
                per_type = ", ".join(f"{C.attack_title(k)} {pct(v)}"
                                     for k, v in (m.get("apcer_per_type") or {}).items())
                lines.append(f"Held-out frames, {title}: BPCER {pct(m.get('bpcer'))}, APCER "
                             f"{html.escape(per_type)}, ACER {pct(m.get('acer'))}, EER "
                             f"{pct(m.get('eer'))} ({m.get('n_real')} real, "
                             f"{m.get('n_attack')} attack faces).")
        recordings = ", ".join(f"{C.attack_title(r.get('stage', '?')) if r.get('stage') != C.REAL else 'real faces'}"
                               f" ({r.get('samples', '?')})" for r in profile.recordings
                               if isinstance(r, dict))
        lines.append(f"Recordings: {html.escape(recordings)} in {html.escape(profile.session)}")
        self.details.setText("<br>".join(lines))

    # -- actions -------------------------------------------------------------------------
    def ask_rename(self) -> None:
        profile = self.selected()
        if profile is None:
            return
        name, ok = QInputDialog.getText(self, "Rename profile", "New name:", text=profile.name)
        if ok:
            self.rename(name)

    def rename(self, new_name: str) -> Profile | None:
        profile = self.selected()
        if profile is None:
            return None
        try:
            renamed = rename_profile(profile, new_name)
        except ProfileError as exc:
            self.message.show_message("error", str(exc))
            return None
        self.message.clear_message()
        self.window_.state.profile_renamed(profile.name, renamed)
        self.reload(select=renamed.name)
        return renamed

    def ask_delete(self) -> None:
        profile = self.selected()
        if profile is None:
            return
        answer = QMessageBox.question(self, "Delete profile",
                                      f"Delete the profile '{profile.name}'? Its recordings are "
                                      f"kept in {profile.session}.")
        if answer == QMessageBox.Yes:
            self.delete()

    def delete(self) -> None:
        profile = self.selected()
        if profile is None:
            return
        try:
            delete_profile(profile)
        except ProfileError as exc:
            self.message.show_message("error", str(exc))
            return
        state = self.window_.state
        if state.profile is not None and state.profile.name == profile.name:
            state.leave_profile()
        self.message.show_message("ok", f"Profile '{profile.name}' deleted.")
        self.reload()

    def ask_export(self) -> None:
        profile = self.selected()
        if profile is None:
            return
        path, _ = QFileDialog.getSaveFileName(
            self, "Export profile with its model",
            str(Path.home() / f"{file_stem(profile.name)}{PACKAGE_SUFFIX}"),
            f"fasdesk profile (*{PACKAGE_SUFFIX})")
        if path:
            self.export_package(path)

    def export_package(self, path) -> Path | None:
        """The selected profile, its model and the model's card as one file."""
        profile = self.selected()
        if profile is None:
            return None
        try:
            written = export_package(profile, path)
        except ProfileError as exc:
            self.message.show_message("error", str(exc))
            return None
        self.message.show_message("ok", f"Profile '{profile.name}' and its model written to "
                                  f"{written}.", ["Import it on another machine with "
                                                  "Tools > Camera profiles > Import…"])
        return written

    def ask_import(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Import a profile file",
                                              str(Path.home()),
                                              f"fasdesk profile (*{PACKAGE_SUFFIX});;All files (*)")
        if path:
            self.import_package(path)

    def import_package(self, path) -> Profile | None:
        """Install a profile file; a name already taken is replaced only when the person
        says so."""
        try:
            name = read_package(path)[0].name
            replace = False
            if find_profile(name) is not None:
                answer = QMessageBox.question(
                    self, "Replace profile?", f"There is already a profile named '{name}'. "
                    f"Replace it with the one in {Path(path).name}?",
                    QMessageBox.Yes | QMessageBox.No, QMessageBox.No)
                if answer != QMessageBox.Yes:
                    self.message.show_message("warning", f"Nothing imported: '{name}' kept as it was.")
                    return None
                replace = True
            profile = import_package(path, replace=replace)
        except ProfileError as exc:
            self.message.show_message("error", str(exc))
            return None
        self.message.show_message("ok", f"Profile '{profile.name}' imported: model "
                                  f"{profile.model}, threshold {format_threshold(profile.threshold)}.")
        self.reload(select=profile.name)
        self._fill_models()
        return profile

    def open_in_training(self) -> None:
        """The recordings are a folders-layout dataset: the Dataset step reads them as is."""
        profile = self.selected()
        tab = self.window_.training_tab
        if profile is None or tab is None:
            return
        tab.offer_dataset(Path(profile.session) / "dataset")
        self.window_.tabs.setCurrentWidget(tab)
        self.close()

    def rerun(self):
        profile = self.selected()
        if profile is None:
            return None
        self.close()
        return self.window_.open_calibration(profile)

    # -- re-scoring ----------------------------------------------------------------------
    def _fill_models(self) -> None:
        self.model_combo.clear()
        for entry in registry.load_manifest():
            if entry.kind == "liveness" and registry.find_file(entry.file) is not None:
                self.model_combo.addItem(cards.display_name_of(entry.id), entry.id)

    def _select_model(self, model: str) -> None:
        index = self.model_combo.findData(model)
        if index < 0:
            self.model_combo.addItem(Path(model).name, model)
            index = self.model_combo.count() - 1
        self.model_combo.setCurrentIndex(index)

    def ask_model_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "A liveness model", str(Path.home()),
                                              "ONNX models (*.onnx)")
        if path:
            self._select_model(path)

    def rescore(self, model: str | None = None, threshold: float | None = None) -> None:
        """Score the selected profile's recordings with `model` (default: the chosen one)
        at `threshold` (default: the fixed one if ticked, else picked for the target)."""
        profile = self.selected()
        if profile is None or self.worker is not None:
            return
        if model is not None:
            self._select_model(model)
        model = self.model_combo.currentData()
        if threshold is not None:
            self.fixed.setChecked(True)
            self.threshold.setValue(threshold)
        if threshold is None and self.fixed.isChecked():
            threshold = self.threshold.value()
        self.rescore_button.setEnabled(False)
        self.rescore_message.show_message("info", f"Scoring with {Path(str(model)).name}…")
        worker = start_worker(rescore_profile, profile, model, threshold)
        self.worker = worker
        worker.returned.connect(lambda report: self._on_rescored(worker, model, report))
        worker.errored.connect(lambda exc: self._on_rescored(worker, model, None, one_line(exc)))

    def _on_rescored(self, worker, model: str, report: dict | None, error: str = "") -> None:
        if not shiboken6.isValid(self) or self.worker is not worker:
            return  # closed meanwhile
        self.worker = None
        self.rescore_button.setEnabled(self.selected() is not None)
        if report is None:
            self.rescore_message.show_message("error", f"Not re-scored: {error}")
            return
        self.rescored = report
        held = report["held_out"]
        rows = [("model", str(model)), ("threshold", format_threshold(report["threshold"])),
                ("held out (real / attack faces)", f"{held['n_real']} / {held['n_attack']}"),
                ("BPCER", pct(held["bpcer"]))]
        rows += [(f"APCER: {C.attack_title(k)}", pct(v)) for k, v in held["apcer_per_type"].items()]
        rows += [("ACER", pct(held["acer"])), ("EER", pct(held["eer"]))]
        self.rescore_result.setRowCount(len(rows))
        for i, (name, value) in enumerate(rows):
            self.rescore_result.setItem(i, 0, table_item(name))
            self.rescore_result.setItem(i, 1, table_item(value, right=True))
        self.rescore_result.resizeColumnToContents(1)
        notes = report["warnings"]
        self.rescore_message.show_message("warning" if notes else "ok",
                                          "Re-scored on the held-out frames." if not notes else
                                          "Re-scored on the held-out frames; note:", notes)

    def shutdown(self) -> None:
        """A re-score still running is asked to stop; the app's exit waits for it (workers)."""
        worker, self.worker = self.worker, None
        if worker is not None:
            worker.cancel()
