"""Training step 1, Dataset: scan a raw dataset folder, show its counts and samples,
delete bad samples, pick the spoof types to prepare."""
from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QIcon, QKeySequence, QShortcut
from PySide6.QtWidgets import (QAbstractItemView, QComboBox, QHBoxLayout, QHeaderView, QLabel, QListView,
                               QListWidget, QListWidgetItem, QMessageBox, QPushButton,
                               QTableWidget, QTableWidgetItem)

from fasdesk.core.datasets import dataset_info as dsi
from fasdesk.core.datasets.collect import (CLASS_FOLDERS, CLASS_TITLES, CollectError,
                                          default_dataset_dir, delete_sample, move_sample)
from fasdesk.core.images.display import sample_thumbnail
from fasdesk.core.io.errors import one_line
from fasdesk.core.io.imageio import ImageReadError
from fasdesk.ui.training.widgets import MessageBox, PathField, StepPage, button_row
from fasdesk.ui.training.common import table_item, to_pixmap
from fasdesk.ui.workers import Worker, start_worker


THUMB_SIDE = 96
# Samples shown per type in the Dataset step: enough to review a Collect session.
SHOWN_PER_TYPE = {dsi.FOLDERS: 48, dsi.CELEBA: 4}

# -- 1. Dataset ------------------------------------------------------------------------------

def scan_folder(path: Path) -> tuple[dsi.DatasetInfo, list]:
    """dataset_info.scan and the examples' face crops (run as a worker, off the UI thread):
    the DatasetInfo and [(spoof type, path, RGBBytes)]."""
    found = dsi.detect_layout(path)
    info = dsi.scan(path, examples_per_type=SHOWN_PER_TYPE.get(found, 4))
    thumbs = []
    for spoof_type, paths in info.examples.items():
        for sample in reversed(paths):  # newest first
            try:
                thumbs.append((spoof_type, sample, sample_thumbnail(sample, info.layout,
                                                                    THUMB_SIDE)))
            except ImageReadError:
                continue  # prep lists it as unreadable; no picture to show here
    return info, thumbs


class DatasetStep(StepPage):
    scanned = Signal()  # a scan's result is on screen
    samples_deleted = Signal()  # sample files were removed (Collect mode recounts)
    KEY = "dataset"
    TITLE = "Dataset"
    HELP = ("Pick a raw dataset: a CelebA-Spoof folder (metas/labels/train_label.json), or "
            "folders real/ and spoof/ (optionally spoof/print, spoof/replay, ...), e.g. the "
            "samples Collect mode saved in the Live tab.")

    def __init__(self, tab):
        super().__init__(tab)
        self.info: dsi.DatasetInfo | None = None
        self._generation = 0
        self._scans: set[Worker] = set()
        self.folder = PathField("dir", placeholder="dataset folder")
        self.folder.changed.connect(lambda _: self.scan())
        self.collected_button = collected = QPushButton("Collected samples")
        collected.setToolTip("The dataset the Live tab's Collect mode fills")
        collected.clicked.connect(lambda: self.set_folder(str(self.collected_dir())))
        self.rescan_button = rescan = QPushButton("Scan again")
        rescan.clicked.connect(lambda: self.scan())
        top = QHBoxLayout()
        top.addWidget(QLabel("Folder:"))
        top.addWidget(self.folder, 1)
        top.addWidget(collected)
        top.addWidget(rescan)
        self.layout_.addLayout(top)

        self.summary = QLabel("")
        self.summary.setWordWrap(True)
        self.layout_.addWidget(self.summary)
        self.layout_.addWidget(self.message)
        self.warnings = MessageBox()
        self.layout_.addWidget(self.warnings)

        self.table = QTableWidget(0, 4)
        self.table.setHorizontalHeaderLabels(["Use", "Type", "Category", "Images"])
        self.table.verticalHeader().hide()
        self.table.horizontalHeader().setSectionResizeMode(1, QHeaderView.Stretch)
        self.table.setSelectionMode(QAbstractItemView.NoSelection)
        # Empty: the header and a line's room, so "Prepare this dataset" stays on screen.
        self.table.setFixedHeight(self.table.horizontalHeader().sizeHint().height() + 30)
        self.layout_.addWidget(self.table)

        self.thumbs_title = QLabel("Samples")
        self.thumbs_title.setWordWrap(True)  # wraps beside the buttons: never scrolls sideways
        self.thumbs_title.setMinimumWidth(120)
        self.delete_button = QPushButton("Delete selected…")
        self.delete_button.setToolTip("Remove the selected samples (image and _BB.txt) from "
                                      "the dataset folder, e.g. a face saved under the wrong class")
        self.delete_button.setEnabled(False)
        self.delete_button.clicked.connect(self.delete_selected)
        # A face saved under the wrong class goes to the right one (not only deleted).
        self.move_class = QComboBox()
        for label, title in CLASS_TITLES.items():
            self.move_class.addItem(title, label)
        self.move_class.setToolTip("The class the selected samples belong to")
        self.move_button = QPushButton("Move selected to")
        self.move_button.setToolTip("Move the selected samples (image and _BB.txt) into "
                                    "this class's folder")
        self.move_button.setEnabled(False)
        self.move_button.clicked.connect(self.move_selected)
        title_row = QHBoxLayout()
        title_row.addWidget(self.thumbs_title, 1)
        title_row.addWidget(self.move_button)
        title_row.addWidget(self.move_class)
        title_row.addWidget(self.delete_button)
        self.layout_.addLayout(title_row)
        self.thumbs = QListWidget()
        self.thumbs.setViewMode(QListView.IconMode)
        self.thumbs.setIconSize(QSize(THUMB_SIDE, THUMB_SIDE))
        self.thumbs.setGridSize(QSize(THUMB_SIDE + 28, THUMB_SIDE + 34))
        self.thumbs.setMovement(QListView.Static)
        self.thumbs.setResizeMode(QListView.Adjust)
        self.thumbs.setMinimumHeight(THUMB_SIDE + 44)
        self.thumbs.setSelectionMode(QAbstractItemView.ExtendedSelection)
        self.thumbs.itemSelectionChanged.connect(self._update_delete)
        delete_key = QShortcut(QKeySequence.Delete, self.thumbs)
        delete_key.setContext(Qt.WidgetShortcut)
        delete_key.activated.connect(self.delete_selected)
        self.layout_.addWidget(self.thumbs, 1)

        self.next_button = QPushButton("Prepare this dataset →")
        self.next_button.setObjectName("primary")  # the step's main action
        self.next_button.clicked.connect(self.to_prepare)
        self.layout_.addWidget(button_row(self.next_button))

    def set_running(self, mine: bool) -> None:
        pass  # this step reads the folder itself; it starts no backend run

    def collected_dir(self) -> Path:
        """The folder the Live tab's Collect mode saves into."""
        chosen = self.tab.memory.settings.last_folders.get("collect")
        return Path(chosen) if chosen else default_dataset_dir()

    def memory_values(self) -> dict:
        return {"folder": self.folder.text(), "spoof_types": self.selected_spoof_types()}

    def apply_memory(self, values: dict) -> None:
        self._remembered_types = values.get("spoof_types")
        if values.get("folder"):
            self.set_folder(values["folder"])

    def set_folder(self, folder: str) -> None:
        self.folder.set_text(folder)
        self.scan()

    def scan(self) -> None:
        """Read the folder in a thread (a CelebA-Spoof label file has ~600k entries)."""
        path = self.folder.path()
        self.table.setRowCount(0)
        self.thumbs.clear()
        self.thumbs_title.setText("Samples")
        self.warnings.clear_message()
        self.message.clear_message()
        self.info = None
        self.next_button.setEnabled(False)
        self._generation += 1
        if path is None:
            self.summary.setText("")
            return
        self.summary.setText(f"Reading {path}…")
        generation = self._generation
        worker = start_worker(scan_folder, path)
        worker.returned.connect(lambda result: self._on_scanned(generation, *result))
        worker.errored.connect(lambda exc: self._on_scan_failed(generation, path, exc))
        worker.finished.connect(lambda: self._scans.discard(worker))
        self._scans.add(worker)

    @property
    def scanning(self) -> bool:
        return any(not worker.done for worker in self._scans)

    def wait_for_scans(self, timeout_ms: int = 5000) -> bool:
        """Wait for folder scans to end, at most `timeout_ms` each; False if one did not."""
        return all([worker.wait(timeout_ms / 1000) for worker in list(self._scans)])

    def _on_scan_failed(self, generation: int, path: Path, exc: BaseException) -> None:
        if generation == self._generation:
            self.summary.setText("")
            self.message.show_message("error", f"{path} could not be read: {one_line(exc)}")

    def _on_scanned(self, generation: int, info: dsi.DatasetInfo, thumbs: list) -> None:
        if generation != self._generation:
            return  # the folder changed meanwhile; a newer scan is coming
        self.info = info
        if info.layout is None:
            self.summary.setText("")
        else:
            layout = "CelebA-Spoof" if info.layout == dsi.CELEBA else "folders (real/, spoof/)"
            splits = ", ".join(f"{n} {s}" for s, n in info.split_counts.items())
            self.summary.setText(
                f"<b>Layout:</b> {layout} &nbsp; <b>Images:</b> {info.total} "
                f"({info.live} real, {info.spoof} spoof)" + (f" &nbsp; <b>Splits:</b> {splits}"
                                                            if info.layout == dsi.CELEBA else ""))
        if info.problems:
            self.message.show_message("error", "This dataset cannot be prepared yet:",
                                      info.problems)
        if info.warnings:
            self.warnings.show_message("warning", "Worth knowing:", info.warnings)
        self._fill_table(info)
        self._fill_thumbs(info, thumbs)
        self.next_button.setEnabled(info.ok)
        self.remember()
        self.scanned.emit()

    @staticmethod
    def _type_label(info: dsi.DatasetInfo, spoof_type: int) -> str:
        """CelebA-Spoof's own type names; for folders, what the folder said."""
        if info.layout == dsi.CELEBA:
            return f"{spoof_type}  {dsi.type_name(spoof_type)}"
        if spoof_type == dsi.LIVE:
            return "real"
        return dsi.category_of(spoof_type).replace("_", " ")

    def _fill_table(self, info: dsi.DatasetInfo) -> None:
        remembered = getattr(self, "_remembered_types", None)
        default = (set(dsi.DEFAULT_SPOOF_TYPES) if info.layout == dsi.CELEBA
                   else set(info.counts))
        use = set(remembered) if remembered else default
        self._remembered_types = None
        self.table.setRowCount(len(info.counts))
        for row, (spoof_type, count) in enumerate(info.counts.items()):
            check = QTableWidgetItem()
            check.setFlags(Qt.ItemIsUserCheckable | Qt.ItemIsEnabled)
            check.setCheckState(Qt.Checked if spoof_type in use else Qt.Unchecked)
            check.setData(Qt.UserRole, spoof_type)
            self.table.setItem(row, 0, check)
            self.table.setItem(row, 1, table_item(self._type_label(info, spoof_type)))
            self.table.setItem(row, 2, table_item(dsi.category_of(spoof_type)))
            self.table.setItem(row, 3, table_item(count, align_right=True))
        self.table.resizeColumnToContents(0)
        # Folder types are the categories themselves; CelebA-Spoof types group into them.
        self.table.setColumnHidden(2, info.layout != dsi.CELEBA)
        self.table.resizeRowsToContents()
        rows = sum(self.table.rowHeight(r) for r in range(self.table.rowCount()))
        self.table.setFixedHeight(min(240, self.table.horizontalHeader().height() + rows + 4))

    def _fill_thumbs(self, info: dsi.DatasetInfo, thumbs: list) -> None:
        """Each sample as the face crop the model will see, labelled with its class."""
        for spoof_type, path, rgb in thumbs:
            item = QListWidgetItem(QIcon(to_pixmap(rgb)), self._type_label(info, spoof_type))
            item.setToolTip(str(path))
            item.setData(Qt.UserRole, str(path))
            self.thumbs.addItem(item)
        shown = len(thumbs)
        if info.layout == dsi.FOLDERS and shown:
            self.thumbs_title.setText(
                f"Samples: {shown} of {info.total} shown, newest first, as the face crops "
                "training uses. Select the wrong ones: Move them to their class, or Delete.")
        else:
            self.thumbs_title.setText("Examples" if shown else "")
        self._update_delete()

    def _update_delete(self) -> None:
        # Deleting files from a CelebA-Spoof tree would leave its label files pointing
        # at nothing: only folder datasets (Collect mode's) can be edited here.
        editable = (self.info is not None and self.info.layout == dsi.FOLDERS
                    and bool(self.thumbs.selectedItems()))
        self.delete_button.setEnabled(editable)
        self.move_button.setEnabled(editable)

    def move_selected(self) -> int:
        """Move the selected samples into the class chosen beside the button; returns how
        many moved."""
        if not self.move_button.isEnabled():
            return 0
        label = self.move_class.currentData()
        moved = 0
        for item in self.thumbs.selectedItems():
            try:
                move_sample(item.data(Qt.UserRole), self.info.root, label)
                moved += 1
            except CollectError as exc:
                QMessageBox.warning(self, "Not all samples were moved", str(exc))
                break
        self.tab.log(f"moved {moved} sample(s) to {CLASS_FOLDERS[label].as_posix()}/ "
                     f"in {self.info.root}")
        self.samples_deleted.emit()  # (the collect counts change the same way)
        self.scan()
        return moved

    def delete_selected(self) -> int:
        """Delete the selected samples from disk after asking; returns how many went."""
        if not self.delete_button.isEnabled():
            return 0
        paths = [Path(item.data(Qt.UserRole)) for item in self.thumbs.selectedItems()]
        answer = QMessageBox.question(
            self, "Delete samples?",
            f"Delete {len(paths)} sample(s) from {self.info.root}?\n\nThe image files and "
            "their _BB.txt face boxes are removed from disk.",
            QMessageBox.Yes | QMessageBox.No, QMessageBox.No)
        if answer != QMessageBox.Yes:
            return 0
        deleted = 0
        for path in paths:
            try:
                delete_sample(path)
                deleted += 1
            except CollectError as exc:
                QMessageBox.warning(self, "Not all samples were deleted", str(exc))
                break
        self.tab.log(f"deleted {deleted} sample(s) from {self.info.root}")
        self.samples_deleted.emit()
        self.scan()
        return deleted

    def selected_spoof_types(self) -> list[int]:
        types = []
        for row in range(self.table.rowCount()):
            item = self.table.item(row, 0)
            if item is not None and item.checkState() == Qt.Checked:
                types.append(int(item.data(Qt.UserRole)))
        return types

    def to_prepare(self) -> None:
        if self.info is None or not self.info.ok:
            return
        self.remember()
        all_types = set(self.info.counts)
        chosen = self.selected_spoof_types()
        self.tab.prepare.set_inputs(self.info.root, chosen if set(chosen) != all_types
                                    or self.info.layout == dsi.CELEBA else None)
        self.tab.go_to("prepare")
