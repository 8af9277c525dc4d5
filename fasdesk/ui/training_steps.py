"""The five pages of the Training tab. Each builds backend arguments from its form, follows
the run's events, and hands its result to the next step."""
from __future__ import annotations

import hashlib
import html
import json
import os
import shutil
import time
from pathlib import Path

import pyqtgraph as pg
from PySide6.QtCore import QSize, Qt, QThread, Signal
from PySide6.QtGui import QColor, QIcon, QImage, QKeySequence, QPixmap, QShortcut
from PySide6.QtWidgets import (QAbstractItemView, QCheckBox, QComboBox, QDoubleSpinBox,
                               QFormLayout, QGridLayout, QGroupBox, QHBoxLayout,
                               QHeaderView, QLabel, QLineEdit, QListView, QListWidget,
                               QListWidgetItem, QMessageBox, QPushButton, QSizePolicy, QSpinBox,
                               QSplitter, QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget)

from fasdesk.core.datasets import dataset_info as dsi
from fasdesk.core.decision import eval_report
from fasdesk.core.models import registry
from fasdesk.core.datasets.collect import CollectError, default_dataset_dir, delete_sample
from fasdesk.core.images.display import sample_thumbnail
from fasdesk.core.io.files import write_atomic
from fasdesk.core.io.imageio import ImageReadError
from fasdesk.core.io.paths import data_dir, user_models_dir
from fasdesk.core.decision.thresholds import format_threshold, model_card_path, read_model_card
from fasdesk.ui.training_widgets import (MessageBox, PathField, StepPage, button_row,
                                         format_seconds, read_json, read_json_any,
                                         theme_colours, work_dir)
from training import recipe

THUMB_SIDE = 96
# Samples shown per type in the Dataset step: enough to review a Collect session.
SHOWN_PER_TYPE = {dsi.FOLDERS: 48, dsi.CELEBA: 4}
LATEST_CHECKPOINT = "latest.pth"  # what `train --resume auto` continues from
TRAIN_COLOURS = {"train": "#3b8ee8", "val": "#e5534b"}  # readable on light and dark


def _column(*widgets, stretch_first: bool = False) -> QWidget:
    box = QWidget()
    column = QVBoxLayout(box)
    column.setContentsMargins(0, 0, 0, 0)
    for i, widget in enumerate(widgets):
        column.addWidget(widget, 1 if stretch_first and i == 0 else 0)
    return box


def _plot(title: str) -> pg.PlotWidget:
    """A plot that takes the room left over: its large size hint must not make the page
    scroll (the pages sit in scroll areas, which size them by preferred height)."""
    background, foreground = theme_colours()
    plot = pg.PlotWidget()
    plot.setTitle(title, color=foreground.name())
    plot.setBackground(background)
    for side in ("left", "bottom"):
        axis = plot.getAxis(side)
        axis.setPen(foreground)
        axis.setTextPen(foreground)
    plot.showGrid(x=True, y=True, alpha=0.25)
    plot.setSizePolicy(QSizePolicy.Expanding, QSizePolicy.Ignored)
    plot.setMinimumHeight(170)
    return plot


def _legend(plot: pg.PlotWidget, offset) -> None:
    background, foreground = theme_colours()
    background.setAlpha(215)
    plot.addLegend(offset=offset, brush=pg.mkBrush(background), labelTextColor=foreground)


def _item(text, align_right=False) -> QTableWidgetItem:
    item = QTableWidgetItem(str(text))
    item.setFlags(item.flags() & ~Qt.ItemIsEditable)
    if align_right:
        item.setTextAlignment(Qt.AlignRight | Qt.AlignVCenter)
    return item


def _rename_exported(model: Path, name: str, card: dict) -> tuple[dict[Path, Path], dict]:
    """Rename an exported model and its card; returns ({old path: new path}, new card).
    (INT8 asked for but not kept leaves the fp32 model at the name meant for INT8.)"""
    target = model.with_name(name)
    os.replace(model, target)
    moved = {model: target}
    if card:
        card = {**card, "file": target.name}
        old_card, new_card = model_card_path(model), model_card_path(target)
        write_atomic(new_card, json.dumps(card, indent=1))
        old_card.unlink(missing_ok=True)
        moved[old_card] = new_card
    return moved, card


def _percent(value) -> str:
    return "n/a" if value is None else f"{100.0 * float(value):.2f}%"


def _short_percent(value) -> str:
    """An accuracy as a percentage with one decimal (one image in 60 is 1.7%)."""
    return "n/a" if value is None else f"{100.0 * float(value):.1f}%"


def _fixed(value) -> str:
    return "n/a" if value is None else f"{float(value):.4f}"


def _pixmap(rgb) -> QPixmap:
    image = QImage(rgb.data, rgb.width, rgb.height, rgb.stride, QImage.Format_RGB888)
    return QPixmap.fromImage(image.copy())


# -- 1. Dataset ------------------------------------------------------------------------------

_SCANS: set = set()  # scan threads still running


class _ScanThread(QThread):
    """dataset_info.scan and the examples' face crops off the UI thread; `result` carries
    the request's generation, the DatasetInfo and [(spoof type, path, RGBBytes)]."""
    result = Signal(int, object, object)

    def __init__(self, generation: int, path: Path, parent=None):
        super().__init__(parent)
        self.generation = generation
        self.path = path

    def run(self) -> None:
        layout = dsi.detect_layout(self.path)
        info = dsi.scan(self.path, examples_per_type=SHOWN_PER_TYPE.get(layout, 4))
        thumbs = []
        for spoof_type, paths in info.examples.items():
            for path in reversed(paths):  # newest first
                try:
                    thumbs.append((spoof_type, path, sample_thumbnail(path, info.layout,
                                                                      THUMB_SIDE)))
                except ImageReadError:
                    continue  # prep lists it as unreadable; no picture to show here
        self.result.emit(self.generation, info, thumbs)


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
        self._threads: set[_ScanThread] = set()
        self.folder = PathField("dir", placeholder="dataset folder")
        self.folder.changed.connect(lambda _: self.scan())
        collected = QPushButton("Collected samples")
        collected.setToolTip("The dataset the Live tab's Collect mode fills")
        collected.clicked.connect(lambda: self.set_folder(str(self.collected_dir())))
        rescan = QPushButton("Scan again")
        rescan.clicked.connect(self.scan)
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
        self.layout_.addWidget(self.table)

        self.thumbs_title = QLabel("Samples")
        self.delete_button = QPushButton("Delete selected…")
        self.delete_button.setToolTip("Remove the selected samples (image and _BB.txt) from "
                                      "the dataset folder, e.g. a face saved under the wrong class")
        self.delete_button.setEnabled(False)
        self.delete_button.clicked.connect(self.delete_selected)
        title_row = QHBoxLayout()
        title_row.addWidget(self.thumbs_title, 1)
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
        # No Qt parent, and held in _SCANS until it ends: a page closed mid-scan must not
        # delete a running thread.
        thread = _ScanThread(self._generation, path)
        thread.result.connect(self._on_scanned)
        thread.finished.connect(lambda: (self._threads.discard(thread), _SCANS.discard(thread)))
        self._threads.add(thread)
        _SCANS.add(thread)
        thread.start()

    @property
    def scanning(self) -> bool:
        return any(t.isRunning() for t in self._threads)

    def wait_for_scans(self, timeout_ms: int = 5000) -> bool:
        """Wait for folder scans to end, at most `timeout_ms` each; False if one did not."""
        return all([thread.wait(timeout_ms) for thread in list(self._threads)])

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
            self.table.setItem(row, 1, _item(self._type_label(info, spoof_type)))
            self.table.setItem(row, 2, _item(dsi.category_of(spoof_type)))
            self.table.setItem(row, 3, _item(count, align_right=True))
        self.table.resizeColumnToContents(0)
        # Folder types are the categories themselves; CelebA-Spoof types group into them.
        self.table.setColumnHidden(2, info.layout != dsi.CELEBA)
        self.table.resizeRowsToContents()
        rows = sum(self.table.rowHeight(r) for r in range(self.table.rowCount()))
        self.table.setFixedHeight(min(240, self.table.horizontalHeader().height() + rows + 4))

    def _fill_thumbs(self, info: dsi.DatasetInfo, thumbs: list) -> None:
        """Each sample as the face crop the model will see, labelled with its class."""
        for spoof_type, path, rgb in thumbs:
            item = QListWidgetItem(QIcon(_pixmap(rgb)), self._type_label(info, spoof_type))
            item.setToolTip(str(path))
            item.setData(Qt.UserRole, str(path))
            self.thumbs.addItem(item)
        shown = len(thumbs)
        if info.layout == dsi.FOLDERS and shown:
            self.thumbs_title.setText(
                f"Samples: {shown} of {info.total} shown, newest first, as the face crops "
                "training uses. Select the wrong ones and press Delete.")
        else:
            self.thumbs_title.setText("Examples" if shown else "")
        self._update_delete()

    def _update_delete(self) -> None:
        # Deleting files from a CelebA-Spoof tree would leave its label files pointing
        # at nothing: only folder datasets (Collect mode's) can be edited here.
        self.delete_button.setEnabled(self.info is not None and self.info.layout == dsi.FOLDERS
                                      and bool(self.thumbs.selectedItems()))

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
        args = ["prep", str(self.source.path()), str(self.out.path()),
                "--size", str(self.size.value())]
        if types:
            args += ["--spoof-types", *types]
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
        manifest = read_json(out / "manifest.json")
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
            self.skipped.setItem(row, 0, _item(entry.get("source", "")))
            self.skipped.setItem(row, 1, _item(entry.get("reason", "")))
        self.skipped.resizeColumnToContents(0)

    def to_train(self) -> None:
        if self.out.path() is not None:
            self.tab.train.set_data(self.out.path())
        self.tab.go_to("train")


# -- 3. Train --------------------------------------------------------------------------------

def cuda_present() -> bool:
    """Whether an NVIDIA GPU driver is visible (without importing torch in the GUI)."""
    return Path("/proc/driver/nvidia/version").exists() or shutil.which("nvidia-smi") is not None


def pretrained_checkpoint() -> Path | None:
    """The shipped model's training checkpoint (best_model.pth) if it is on this machine."""
    return registry.find_file("best_model.pth")


def run_checkpoints(run_dir: Path | None) -> list[Path]:
    """Checkpoints a run folder holds that `--resume auto` can continue from."""
    if run_dir is None or not run_dir.is_dir():
        return []
    latest = run_dir / LATEST_CHECKPOINT
    return [latest] if latest.is_file() else []


class TrainStep(StepPage):
    KEY = "train"
    TITLE = "Train"
    HELP = ("Fine-tunes MiniFASNetV2-SE on the prepared crops (20% held out for validation: "
            "whole recordings, or the last part of each when there are few). "
            "Epochs, batch size and learning rate start from a preset for the dataset size. "
            "The pretrained model's validation score is the one to beat: best.pth is never "
            "worse than it. Checkpoints are written every epoch: a cancelled, crashed or "
            "closed run resumes.")

    def __init__(self, tab):
        super().__init__(tab)
        self.finished_run = ""  # the run folder of the last run that reached its end
        grid = QGridLayout()
        self.data = PathField("dir", placeholder="prepared folder (output of Prepare)")
        self.data.changed.connect(lambda _: self.apply_preset())
        self.run_dir = PathField("dir", placeholder="run folder (checkpoints go here)")
        self.run_dir.changed.connect(lambda _: self._update_resume())
        self.epochs = QSpinBox()
        self.epochs.setRange(1, 500)
        self.epochs.setValue(10)
        self.batch = QSpinBox()
        self.batch.setRange(2, 4096)
        self.batch.setValue(32)
        self.lr = QDoubleSpinBox()
        self.lr.setDecimals(5)
        self.lr.setRange(0.00001, 1.0)
        self.lr.setSingleStep(0.001)
        self.lr.setValue(0.01)
        self.classes = QComboBox()
        self.classes.addItem("2: real / spoof", 2)
        self.classes.addItem("3: real / print / replay", 3)
        self.device = QComboBox()
        self.device.addItem("Auto", "auto")
        self.device.addItem("CPU", "cpu")
        if cuda_present():
            self.device.addItem("CUDA (GPU)", "cuda")
        self.pretrained = QCheckBox("Start from the pretrained model")
        self.pretrained.setChecked(True)
        checkpoint = pretrained_checkpoint()
        self.pretrained.setToolTip(str(checkpoint) if checkpoint else
                                   "best_model.pth not found; set FASDESK_MODELS_DIR to its folder")
        self.pretrained.toggled.connect(lambda _: self.apply_preset())
        self.freeze = QCheckBox("Keep the early layers (faster)")
        self.freeze.setToolTip("Fine-tuning only: every layer before the last, 8x8 stage "
                               "keeps the pretrained weights, which makes each step about 3x "
                               "faster on a CPU. The preset turns it on for datasets under "
                               f"{recipe.FREEZE_BELOW:,} images.")
        self.preset_note = QLabel("")
        self.preset_note.setWordWrap(True)
        self.preset_button = QPushButton("Use preset")
        self.preset_button.setToolTip("Epochs, batch size, learning rate and layer freezing "
                                      "for the size of the prepared data")
        self.preset_button.clicked.connect(self.apply_preset)
        grid.addWidget(QLabel("Prepared data:"), 0, 0)
        grid.addWidget(self.data, 0, 1, 1, 3)
        grid.addWidget(QLabel("Run folder:"), 1, 0)
        grid.addWidget(self.run_dir, 1, 1, 1, 3)
        for i, (label, widget) in enumerate((("Epochs:", self.epochs), ("Batch size:", self.batch),
                                             ("Learning rate:", self.lr), ("Classes:", self.classes),
                                             ("Device:", self.device))):
            grid.addWidget(QLabel(label), 2 + i // 2, (i % 2) * 2)
            grid.addWidget(widget, 2 + i // 2, (i % 2) * 2 + 1)
        grid.addWidget(self.pretrained, 4, 2, 1, 2)
        preset_row = QHBoxLayout()
        preset_row.addWidget(self.freeze)
        preset_row.addWidget(self.preset_note, 1)
        preset_row.addWidget(self.preset_button)
        grid.addLayout(preset_row, 5, 0, 1, 4)
        grid.setColumnStretch(1, 1)
        grid.setColumnStretch(3, 1)
        self.layout_.addLayout(grid)

        self.resume_button = QPushButton("Resume")
        self.resume_button.setToolTip("Continue the run in the run folder from its last checkpoint")
        self.resume_button.clicked.connect(lambda: self.start(resume=True))
        self.next_button = QPushButton("Evaluate →")
        self.next_button.clicked.connect(lambda: self.tab.go_to("evaluate"))
        self.add_run_controls("Start training", lambda: self.start(resume=False),
                              self.resume_button, self.next_button)
        self.stats = QLabel("")
        self.layout_.addWidget(self.stats)
        self.layout_.addWidget(self.message)
        # How far to trust the validation accuracy (the backend's "split" metric event).
        self.split_note = MessageBox()
        self.layout_.addWidget(self.split_note)

        self.loss_plot = _plot("Loss")
        self.acc_plot = _plot("Accuracy")
        self.curves = {}
        for plot, metric in ((self.loss_plot, "loss"), (self.acc_plot, "acc")):
            plot.setLabel("bottom", "epoch")
            # Loss falls and accuracy rises: keep each legend where its curves are not
            # (accuracy's in the bottom corner, under the late, high points).
            _legend(plot, (-10, 10) if metric == "loss" else (-10, -5))
            step_colour = QColor(TRAIN_COLOURS["train"])
            step_colour.setAlpha(120)
            self.curves[f"step_{metric}"] = plot.plot(pen=pg.mkPen(step_colour, width=1),
                                                      name="train (per step)")
            for split, colour in TRAIN_COLOURS.items():
                self.curves[f"{split}_{metric}"] = plot.plot(
                    pen=pg.mkPen(colour, width=2), symbol="o", symbolSize=6,
                    symbolBrush=colour, name=f"{split} (epoch)")
        self.acc_plot.setYRange(0, 1)
        _, foreground = theme_colours()
        # The score to beat: the pretrained model's validation accuracy.
        self.start_line = pg.InfiniteLine(
            angle=0, movable=False, pen=pg.mkPen(foreground, width=1, style=Qt.DashLine),
            label="starting model", labelOpts={"position": 0.15, "color": foreground,
                                               "anchors": [(0, 1), (0, 1)]})
        self.acc_plot.addItem(self.start_line)
        plots = QHBoxLayout()
        plots.addWidget(self.loss_plot)
        plots.addWidget(self.acc_plot)
        self.layout_.addLayout(plots, 1)
        self._reset_series()
        self._update_freeze()

    def _reset_series(self) -> None:
        self.series = {key: ([], []) for key in self.curves}
        self.epochs_total = self.epochs.value()
        for curve in self.curves.values():
            curve.setData([], [])
        self.best_val = None
        self.start_acc = None  # the pretrained model's validation accuracy, when fine-tuning
        self.below_start = False
        self.summary = {}
        self.start_line.hide()

    def memory_values(self) -> dict:
        return {"data": self.data.text(), "run_dir": self.run_dir.text(),
                "finished_run": self.finished_run, "epochs": self.epochs.value(), "batch": self.batch.value(),
                "lr": self.lr.value(), "classes": self.classes.currentData(),
                "device": self.device.currentData(), "pretrained": self.pretrained.isChecked(),
                "freeze_early": self.freeze.isChecked()}

    def apply_memory(self, values: dict) -> None:
        self.data.set_text(values.get("data", ""))
        self.run_dir.set_text(values.get("run_dir", ""))
        self.finished_run = values.get("finished_run", "")
        self.pretrained.blockSignals(True)  # keep the remembered values, not a fresh preset
        self.pretrained.setChecked(bool(values.get("pretrained", True)))
        self.pretrained.blockSignals(False)
        self.epochs.setValue(int(values.get("epochs", 10)))
        self.batch.setValue(int(values.get("batch", 32)))
        self.lr.setValue(float(values.get("lr", 0.01)))
        self.freeze.setChecked(bool(values.get("freeze_early", True)))
        for combo, key in ((self.classes, "classes"), (self.device, "device")):
            index = combo.findData(values.get(key))
            if index >= 0:
                combo.setCurrentIndex(index)
        self._update_freeze()
        self._show_preset()
        self._update_resume()

    def set_data(self, prepared: Path) -> None:
        self.data.set_text(prepared)
        self.apply_preset()
        self.remember()

    def _preset(self) -> tuple[int, dict] | None:
        data = self.data.path()
        images = recipe.preset_images_in(data / "labels.csv") if data else None
        if not images:
            return None
        return images, recipe.preset(images, self.pretrained.isChecked())

    def _show_preset(self) -> None:
        found = self._preset()
        if found is None:
            self.preset_note.setText("Choose the prepared data for a preset that fits its size.")
            return
        images, p = found
        how = "fine-tuning" if p["recipe"] == recipe.FINE_TUNE else "training from scratch"
        self.preset_note.setText(
            f"Preset for {images:,} images, {how}: {p['epochs']} epochs, batch "
            f"{p['batch_size']}, learning rate {p['lr']:g}"
            + (", early layers kept" if p["freeze_early"] else "") + ".")

    def apply_preset(self) -> None:
        """Fill the settings from the preset for the chosen data (the user can change them)."""
        self._update_freeze()
        found = self._preset()
        if found is not None:
            _, p = found
            self.epochs.setValue(p["epochs"])
            self.batch.setValue(p["batch_size"])
            self.lr.setValue(p["lr"])
            self.freeze.setChecked(p["freeze_early"])
        self._show_preset()

    def _update_freeze(self) -> None:
        self.freeze.setEnabled(self.pretrained.isChecked())

    def _update_resume(self) -> None:
        unfinished = (bool(run_checkpoints(self.run_dir.path()))
                      and self.run_dir.text() != self.finished_run)
        self.resume_button.setEnabled(unfinished and not self.tab.busy)
        if unfinished and not self.tab.busy and not self.stats.text():
            self.stats.setText(f"An unfinished run can be resumed from {self.run_dir.text()}.")

    def _new_run_dir(self) -> Path:
        """A fresh run folder under the user data dir, grouped by dataset."""
        data = self.data.path()
        name = data.parent.name if data.name == "prepared" else data.name
        return work_dir(name) / "runs" / time.strftime("run-%Y%m%d-%H%M%S")

    def start(self, resume: bool) -> None:
        self.message.clear_message()
        self.split_note.clear_message()
        data = self.data.path()
        if data is None or not (data / "labels.csv").is_file():
            self.message.show_message("error", "Choose a prepared folder (the output of "
                                      "Prepare, with labels.csv) first.")
            return
        if resume:
            run_dir = self.run_dir.path()
            args = ["train", str(data), str(run_dir), "--resume", "auto"]
        else:
            run_dir = self._new_run_dir()
            self.run_dir.set_text(run_dir)
            args = ["train", str(data), str(run_dir), "--epochs", str(self.epochs.value()),
                    "--batch-size", str(self.batch.value()), "--lr", f"{self.lr.value():g}",
                    "--classes", str(self.classes.currentData())]
            if self.pretrained.isChecked():
                checkpoint = pretrained_checkpoint()
                if checkpoint is None:
                    self.message.show_message(
                        "error", "The pretrained checkpoint best_model.pth is not on this "
                        "machine.", ["Untick 'Start from the pretrained model' to train from "
                                     "scratch, or set FASDESK_MODELS_DIR to the folder that has it."])
                    return
                args += ["--init", str(checkpoint),
                         "--freeze-early" if self.freeze.isChecked() else "--no-freeze-early"]
        args += ["--device", self.device.currentData()]
        self.remember()
        if not resume:
            self._reset_series()
        if self.tab.start_backend(self, args):
            self.progress.busy("starting (loading torch)…")
            self.stats.setText("")

    def set_running(self, mine: bool) -> None:
        super().set_running(mine)
        self._update_resume()

    def _add(self, key: str, x: float, y) -> None:
        if y is None:
            return
        xs, ys = self.series[key]
        xs.append(float(x))
        ys.append(float(y))
        self.curves[key].setData(xs, ys)

    def _set_start(self, accuracy: float) -> None:
        self.start_acc = float(accuracy)
        self.start_line.show()  # first: a hidden line's label does not update
        self.start_line.setValue(self.start_acc)
        self.start_line.label.setFormat(f"starting model {_short_percent(self.start_acc)}")

    def _add_epoch(self, metrics: dict) -> None:
        """One epoch's point (at its end; the pretrained model's own score at 0)."""
        epoch = float(metrics.get("epoch", 0))
        for split in ("train", "val"):
            self._add(f"{split}_loss", epoch, metrics.get(f"{split}_loss"))
            self._add(f"{split}_acc", epoch, metrics.get(f"{split}_acc"))
        val = metrics.get("val_acc")
        start = val if not epoch else metrics.get("start_val_acc")  # epoch 0: the init metric
        if start is not None and self.start_acc is None:
            self._set_start(start)
        if val is None:
            return
        self.best_val = max(val, self.best_val or 0.0)
        if not epoch:
            self.stats.setText(f"starting model: validation accuracy {_short_percent(val)} "
                               "(the score to beat)")
            return
        if self.start_acc is not None:
            text = (f"epoch {int(epoch)}: starting model {_short_percent(self.start_acc)} → now "
                    f"{_short_percent(val)} (best {_short_percent(self.best_val)})")
        else:
            text = (f"epoch {int(epoch)}: validation accuracy {_short_percent(val)} "
                    f"(best {_short_percent(self.best_val)})")
        if metrics.get("train_loss") is not None:
            text += f", train loss {metrics['train_loss']:.4f}"
        self.stats.setText(text)
        below = self.start_acc is not None and val < self.start_acc
        if below:
            self.message.show_message(
                "warning", f"Validation accuracy fell below the starting model "
                f"({_short_percent(self.start_acc)} → {_short_percent(val)} at epoch {int(epoch)}).",
                ["best.pth is never replaced by a worse epoch: it stays the starting model "
                 "or the best epoch above it.",
                 "If it stays below, try a lower learning rate or more data."])
        elif self.below_start:
            self.message.clear_message()
        self.below_start = below

    def _load_history(self) -> None:
        """Curves of the epochs a resumed run already did (from its history.json)."""
        history = read_json_any(self.run_dir.path() / "history.json")
        if isinstance(history, list):
            for metrics in history:
                if isinstance(metrics, dict):
                    self._add_epoch(metrics)

    def on_event(self, event: dict) -> None:
        kind = event["event"]
        if kind == "start":
            self.epochs_total = int(event.get("epochs") or self.epochs.value())
            if not any(xs for xs, _ in self.series.values()):
                self._load_history()  # a resumed run after a restart: its earlier epochs
        elif kind == "progress":
            # Epochs are 1-based in events; a step's point sits inside its epoch.
            epoch = int(event.get("epoch", 1))
            steps = event.get("steps") or 0
            x = epoch - 1 + (float(event.get("step", 0)) / steps if steps else 0.0)
            self._add("step_loss", x, event.get("loss"))
            self._add("step_acc", x, event.get("acc"))
            speed = event.get("images_s")
            self.progress.update_progress(
                event.get("done", 0), event.get("total", 1), event.get("eta_s"),
                f"epoch {epoch}/{event.get('epochs', self.epochs_total)}"
                + (f"   {speed:.0f} images/s" if speed else ""))
        elif kind == "metric" and event.get("scope") in ("epoch", "init"):
            self._add_epoch(event)
        elif kind == "metric" and event.get("scope") == "split":
            notes = [str(n) for n in event.get("warnings") or []]
            if notes:
                self.split_note.show_message(
                    "warning", "The validation accuracy may not mean much:", notes)
        elif kind == "done":
            self.summary = event

    def on_finished(self, ok: bool, message: str) -> None:
        self.finish_progress(ok, message)
        run_dir = self.run_dir.path()
        if ok:
            self.finished_run = self.run_dir.text()
            self.remember()
            best = run_dir / "best.pth" if run_dir else None
            if best is not None and best.is_file():
                self.tab.evaluate.set_model(best, self.data.path())
                self.tab.export.set_checkpoint(best)
                start = self.summary.get("start_val_acc")
                if self.summary.get("beat_start") is False:
                    self.message.show_message(
                        "warning", f"No epoch beat the starting model "
                        f"({_short_percent(start)}): best.pth is the starting model.",
                        ["Evaluate and Export offer it, not a worse model.",
                         "To improve on it: more (and more varied) images, more epochs or a "
                         "lower learning rate."])
                else:
                    title = "Training finished"
                    best_acc = self.summary.get("best_val_acc")
                    if start is not None and best_acc is not None:
                        title += (f": starting model {_short_percent(start)} → best "
                                  f"{_short_percent(best_acc)}"
                                  + (" (same accuracy, lower validation loss)"
                                     if best_acc == start else ""))
                    self.message.show_message("ok", title, [f"Saved as {best}",
                                              "Next: evaluate it, then export it for the live view."])
        else:
            if run_checkpoints(run_dir):
                self.message.show_message(
                    "warning" if message == "cancelled" else "error",
                    "Training stopped before the end." if message == "cancelled"
                    else f"Training failed: {message}",
                    [f"Its checkpoints are kept in {run_dir}; press Resume to continue."],
                    pre="" if message == "cancelled" else "\n".join(list(self.tab.run.tail)[-8:]))
            elif message != "cancelled":
                super().show_failure(message, "\n".join(list(self.tab.run.tail)[-8:]))
        self._update_resume()

    def show_failure(self, message: str, tail: str) -> None:
        pass  # on_finished shows it, with the resume advice when there is a checkpoint


# -- 4. Evaluate -----------------------------------------------------------------------------

class EvaluateStep(StepPage):
    KEY = "evaluate"
    TITLE = "Evaluate"
    HELP = ("Measures a model (.pth or .onnx) on prepared crops: by default the validation "
            "images the training run held out.")

    def __init__(self, tab):
        super().__init__(tab)
        self.report: eval_report.EvalReport | None = None
        self.suggested: float | None = None
        form = QFormLayout()
        self.data = PathField("dir", placeholder="prepared folder")
        self.model = PathField("file", "Models (*.pth *.onnx)", placeholder="best.pth or .onnx")
        self.split = QComboBox()
        for label, value in (("validation (held out by training)", "val"),
                             ("all crops", "all"), ("test subset (CelebA-Spoof)", "test")):
            self.split.addItem(label, value)
        form.addRow("Prepared data:", self.data)
        form.addRow("Model:", self.model)
        form.addRow("Images:", self.split)
        self.layout_.addLayout(form)
        self.add_run_controls("Evaluate", self.start)
        self.layout_.addWidget(self.message)

        self.metrics = QTableWidget(0, 2)
        self.metrics.setHorizontalHeaderLabels(["Metric", "Value"])
        self.metrics.verticalHeader().hide()
        self.metrics.verticalHeader().setDefaultSectionSize(22)
        self.metrics.horizontalHeader().setSectionResizeMode(0, QHeaderView.Stretch)
        self.metrics.setEditTriggers(QAbstractItemView.NoEditTriggers)
        self.confusion = QTableWidget(0, 0)
        self.confusion.setEditTriggers(QAbstractItemView.NoEditTriggers)
        self.confusion.setFixedHeight(96)
        threshold_box = QGroupBox("Threshold for the live view")
        threshold_row = QGridLayout(threshold_box)
        self.target_kind = QComboBox()
        self.target_kind.addItem("BPCER at most (real rejected)", "bpcer")
        self.target_kind.addItem("APCER at most (attacks passed)", "apcer")
        self.target_rate = QDoubleSpinBox()
        self.target_rate.setRange(0.1, 50.0)
        self.target_rate.setSingleStep(0.5)
        self.target_rate.setValue(1.0)
        self.target_rate.setSuffix(" %")
        self.suggestion = QLabel("")
        self.suggestion.setWordWrap(True)
        self.apply_button = QPushButton("Apply to live")
        self.apply_button.setEnabled(False)
        self.apply_button.clicked.connect(self.apply_threshold)
        self.target_kind.currentIndexChanged.connect(self.update_suggestion)
        self.target_rate.valueChanged.connect(self.update_suggestion)
        threshold_row.addWidget(self.target_kind, 0, 0)
        threshold_row.addWidget(self.target_rate, 0, 1)
        threshold_row.addWidget(self.suggestion, 1, 0, 1, 2)
        threshold_row.addWidget(self.apply_button, 2, 1)
        left = _column(self.metrics, threshold_box, stretch_first=True)
        left.setMinimumWidth(250)
        left.setMaximumWidth(430)

        self.roc_plot = _plot("ROC")
        self.pr_plot = _plot("Precision-recall (attacks)")
        for plot, (x, y) in ((self.roc_plot, ("real rejected (BPCER)", "attacks caught (1 - APCER)")),
                             (self.pr_plot, ("recall", "precision"))):
            plot.setXRange(0, 1, padding=0.02)
            plot.setYRange(0, 1, padding=0.04)
            plot.setLabel("bottom", x)
            plot.setLabel("left", y)
            plot.setMinimumWidth(140)
        self.roc_plot.plot([0, 1], [0, 1], pen=pg.mkPen("#8a8f98", style=Qt.DashLine))
        self.roc_curve = self.roc_plot.plot(pen=pg.mkPen(TRAIN_COLOURS["train"], width=2))
        self.roc_marker = self.roc_plot.plot(pen=None, symbol="o", symbolSize=11,
                                             symbolBrush="#f0b429")
        self.pr_curve = self.pr_plot.plot(pen=pg.mkPen("#3fb27f", width=2))
        plots = QWidget()
        plots_row = QHBoxLayout(plots)
        plots_row.setContentsMargins(0, 0, 0, 0)
        plots_row.addWidget(self.roc_plot)
        plots_row.addWidget(self.pr_plot)
        confusion_title = QLabel("Confusion matrix (rows: truth, columns: predicted at the "
                                 "report's threshold)")
        confusion_title.setWordWrap(True)
        right = _column(plots, confusion_title, self.confusion, stretch_first=True)
        results = QSplitter(Qt.Horizontal)
        results.addWidget(left)
        results.addWidget(right)
        results.setStretchFactor(1, 1)
        results.setChildrenCollapsible(False)
        self.layout_.addWidget(results, 1)

    def memory_values(self) -> dict:
        return {"data": self.data.text(), "model": self.model.text(),
                "split": self.split.currentData(), "target_kind": self.target_kind.currentData(),
                "target_rate": self.target_rate.value()}

    def apply_memory(self, values: dict) -> None:
        self.data.set_text(values.get("data", ""))
        self.model.set_text(values.get("model", ""))
        for combo, key in ((self.split, "split"), (self.target_kind, "target_kind")):
            index = combo.findData(values.get(key))
            if index >= 0:
                combo.setCurrentIndex(index)
        self.target_rate.setValue(float(values.get("target_rate", 1.0)))
        report = self.report_path()
        if report is not None and report.is_file():
            self.show_report(report)

    def set_data(self, prepared: Path) -> None:
        self.data.set_text(prepared)
        self.remember()

    def set_model(self, model: Path, prepared: Path | None) -> None:
        self.model.set_text(model)
        if prepared is not None:
            self.data.set_text(prepared)
        self.remember()

    def report_path(self) -> Path | None:
        model = self.model.path()
        if model is None:
            return None
        # Under the user data dir, never beside the model (it may be read-only or shared);
        # named by the model's full path so each model keeps its own last report.
        tag = hashlib.sha1(str(model.expanduser().resolve()).encode("utf-8")).hexdigest()[:10]
        return (data_dir() / "training" / "reports"
                / f"{model.stem}-{tag}.eval-{self.split.currentData()}.json")

    def start(self) -> None:
        self.message.clear_message()
        data, model = self.data.path(), self.model.path()
        if data is None or not (data / "labels.csv").is_file():
            self.message.show_message("error", "Choose a prepared folder (with labels.csv).")
            return
        if model is None or not model.is_file():
            self.message.show_message("error", "Choose the model to evaluate (.pth or .onnx).")
            return
        self.remember()
        args = ["eval", str(data), str(model), "--out", str(self.report_path()),
                "--split", self.split.currentData()]
        if self.tab.start_backend(self, args):
            self.progress.busy("evaluating…")

    def on_finished(self, ok: bool, message: str) -> None:
        self.finish_progress(ok, message)
        if ok:
            self.show_report(self.report_path())

    def show_report(self, path: Path) -> None:
        try:
            self.report = eval_report.load(path)
        except eval_report.ReportError as exc:
            self.message.show_message("error", str(exc))
            return
        report = self.report
        rows = report.metric_rows()
        self.metrics.setRowCount(len(rows))
        for row, (name, value) in enumerate(rows):
            self.metrics.setItem(row, 0, _item(name))
            self.metrics.setItem(row, 1, _item(value, align_right=True))
        self._show_confusion(report)
        self.roc_curve.setData(report.roc_bpcer, report.roc_detect)
        self.pr_curve.setData(report.pr_recall, report.pr_precision)
        self.update_suggestion()

    def _show_confusion(self, report) -> None:
        names, matrix = report.class_names, report.confusion
        self.confusion.setRowCount(len(names))
        self.confusion.setColumnCount(len(names))
        self.confusion.setHorizontalHeaderLabels(names)
        self.confusion.setVerticalHeaderLabels(names)
        for i, row in enumerate(matrix):
            total = max(1, sum(row))
            for j, count in enumerate(row):
                item = _item(f"{count}  ({100.0 * count / total:.1f}%)", align_right=True)
                share = count / total
                good = i == j
                colour = QColor(46, 125, 50) if good else QColor(198, 40, 40)
                colour.setAlphaF(0.12 + 0.6 * share)
                item.setBackground(colour)
                self.confusion.setItem(i, j, item)
        self.confusion.horizontalHeader().setSectionResizeMode(QHeaderView.Stretch)
        self.confusion.resizeRowsToContents()
        height = self.confusion.horizontalHeader().height() + 4 + sum(
            self.confusion.rowHeight(i) for i in range(len(names)))
        self.confusion.setFixedHeight(height)

    def update_suggestion(self) -> None:
        """The threshold for the chosen target, from the report's raw scores (the same
        function `training eval` and the calibration use), with what it gives and how far
        the evaluated images support it."""
        if self.report is None:
            return
        kind = self.target_kind.currentData()
        target = self.target_rate.value() / 100.0
        choice = self.report.threshold_for(kind, target)
        self.suggested = None
        self.apply_button.setEnabled(False)
        self.roc_marker.setData([], [])
        if choice is None:
            self.suggestion.setText("This report has no per-image scores (it was written by an "
                                    "older version): press Evaluate again.")
            return
        if choice.threshold is None:
            self.suggestion.setText(choice.warning or "no threshold for this target")
            return
        self.suggested = choice.threshold
        text = (f"threshold <b>{format_threshold(choice.threshold)}</b>: APCER "
                f"{100 * (choice.apcer or 0):.2f}%, BPCER {100 * (choice.bpcer or 0):.2f}% "
                f"<small>(the middle of the score gap {format_threshold(choice.gap[0])}–"
                f"{format_threshold(choice.gap[1])})</small>")
        if choice.warning:
            text += f"<br><span style='color:#e0a030'>⚠ {html.escape(choice.warning)}</span>"
        self.suggestion.setText(text)
        if choice.apcer is not None and choice.bpcer is not None:
            self.roc_marker.setData([choice.bpcer], [1.0 - choice.apcer])
        model = self.evaluated_model()
        onnx = model is not None and model.suffix.lower() == ".onnx"
        self.apply_button.setText("Use in Live with this model" if onnx else "Store with the export")
        self.apply_button.setToolTip(
            "Switch the live view to the evaluated model, with this threshold" if onnx else
            "The threshold belongs to the evaluated checkpoint: the Export step stores it in "
            "the exported model, and it applies whenever that model is the live one")
        self.apply_button.setEnabled(model is not None)
        self.remember()

    def evaluated_model(self) -> Path | None:
        if self.report is None or not self.report.data.get("model"):
            return None
        return Path(self.report.data["model"])

    def apply_threshold(self) -> None:
        """A threshold goes only with the model it was picked for: an evaluated .onnx goes
        to the live view together with it; a checkpoint's goes into its export."""
        model, value = self.evaluated_model(), self.suggested
        if model is None or value is None:
            return
        if model.suffix.lower() == ".onnx":
            self.tab.model_threshold_requested.emit(str(model), float(value))
            self.tab.log(f"live view: {model.name} with threshold {format_threshold(value)}")
        else:
            self.tab.export.set_threshold(float(value), model)
            self.tab.log(f"threshold {format_threshold(value)} will be stored with the export "
                         f"of {model}")
            self.tab.go_to("export")


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
        self.threshold_label = QLabel("0.5 (the default; pick one in Evaluate)")
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
        folder = user_models_dir()
        return ([folder / f"{model_id}-int8.onnx", folder / f"{model_id}.onnx"] if int8
                else [folder / f"{model_id}.onnx"])

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
            "0.5 (the default; pick one in Evaluate)" if value is None else
            f"{format_threshold(value)} (picked in Evaluate for this checkpoint)")

    def model_id(self) -> str:
        return model_id_from(self.name.text())

    def start(self) -> None:
        self.message.clear_message()
        checkpoint = self.checkpoint.path()
        if checkpoint is None or not checkpoint.is_file():
            self.message.show_message("error", "Choose the checkpoint to export (best.pth of a run).")
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
        args = ["export", str(checkpoint), str(out)]
        if self.threshold() is not None:
            args += ["--threshold", repr(self.threshold())]
        if self.int8.isChecked():
            calibration = self.calibration.path()
            if calibration is None or not (calibration / "labels.csv").is_file():
                self.message.show_message("error", "INT8 needs calibration data: a prepared "
                                          "folder (with labels.csv).")
                return
            args += ["--int8", "--calibration", str(calibration)]
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
        except (OSError, ValueError) as exc:
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
        """Add the exported model(s) to the user manifest; returns (id, path) pairs.

        Without INT8 the export writes one fp32 model; with INT8 kept its OUT is the INT8
        model and the fp32 one sits beside it as `<stem>.fp32.onnx`. The fp32 model takes
        the plain name, the INT8 one the name with `-int8`. INT8 not kept (the backend says
        why): OUT is the fp32 model, renamed to the plain name.
        """
        model_id = self.model_id()
        onnx = [path for kind, path in self.outputs if kind == "onnx" and path.is_file()]
        if not onnx:
            raise OSError("the export finished but wrote no .onnx file")
        out = onnx[-1]  # the OUT argument, always written last
        card = read_model_card(out)
        fp32 = next((p for p in onnx if p.name.endswith(".fp32.onnx")), None)
        if fp32 is not None:
            # The backend names it after the INT8 file; give it the plain model name.
            plain = fp32.with_name(f"{model_id}.onnx")
            os.replace(fp32, plain)
            fp32 = plain
        elif out.name != f"{model_id}.onnx":
            moved, card = _rename_exported(out, f"{model_id}.onnx", card)
            self.outputs = [(kind, moved.get(path, path)) for kind, path in self.outputs]
            out = moved[out]
        found = [(model_id, fp32), (f"{model_id}-int8", out)] if fp32 else [(model_id, out)]
        classes = tuple(card.get("classes", ("real", "spoof")))
        for entry_id, path in found:
            registry.register_user_model(registry.ModelEntry(
                id=entry_id, kind="liveness",
                file=path.name if path.parent == user_models_dir() else str(path),
                sha256=registry.sha256_of(path), size=path.stat().st_size,
                input_size=int((card.get("input") or {}).get("size", 128)), classes=classes,
                description=f"trained in fasdesk from {self.checkpoint.text()}",
                extra={"source": "training", "checkpoint": self.checkpoint.text(),
                       "suggested_threshold": card.get("suggested_threshold"),
                       "threshold": (card.get("threshold") or {}).get("value")}))
        return found

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
                ("INT8 vs fp32: same verdict", _percent(agreement.get("agreement"))
                 + f" of {agreement.get('images', '?')} held-out crops at threshold "
                 f"{agreement.get('threshold', 0.5):g}"),
                ("INT8 vs fp32: median |Δ p_real|", _fixed(agreement.get("median_abs_delta_p_real"))),
                ("INT8 vs fp32: max |Δ p_real|", _fixed(agreement.get("max_abs_delta_p_real"))),
                ("calibration crops", str(agreement.get("calibration_images", "?"))),
            ]
        self.report.setRowCount(len(rows))
        for row, (name, value) in enumerate(rows):
            self.report.setItem(row, 0, _item(name))
            self.report.setItem(row, 1, _item(value))
        self.report.resizeColumnToContents(0)

    def use_in_live(self) -> None:
        model_id = self.use_choice.currentData()
        if model_id:
            self.tab.use_model_requested.emit(model_id)
            self.tab.log(f"live view switched to model '{model_id}'")
