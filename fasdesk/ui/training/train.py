"""Training step 3, Train: `training train` with the preset for the data size, live curves."""
from __future__ import annotations

import shutil
import time
from pathlib import Path

import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (QCheckBox, QComboBox, QDoubleSpinBox, QGridLayout, QHBoxLayout,
                               QLabel, QPushButton, QSpinBox)

from fasdesk.core.io.paths import data_dir
from fasdesk.core.models import registry
from fasdesk.ui.training.widgets import (MessageBox, PathField, StepPage, read_json_any,
                                         theme_colours, work_dir)
from fasdesk.ui.training.common import TRAIN_COLOURS, add_legend, new_plot, short_percent
from training import layout, recipe


# -- 3. Train --------------------------------------------------------------------------------

def cuda_present() -> bool:
    """Whether an NVIDIA GPU driver is visible (without importing torch in the GUI)."""
    return Path("/proc/driver/nvidia/version").exists() or shutil.which("nvidia-smi") is not None


def pretrained_checkpoint() -> Path | None:
    """The shipped model's training checkpoint (best_model.pth), when present and intact."""
    return registry.pretrained_checkpoint()


def run_checkpoints(run_dir: Path | None) -> list[Path]:
    """Checkpoints a run folder holds that `--resume auto` can continue from."""
    if run_dir is None or not run_dir.is_dir():
        return []
    latest = layout.latest_checkpoint(run_dir)
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
        self.layout_.addLayout(self._form())
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
        self.layout_.addLayout(self._plots(), 1)
        self._reset_series()
        self._update_freeze()

    def _form(self) -> QGridLayout:
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
                                   "best_model.pth missing or damaged; run 'fasdesk models pull "
                                   "minifasnet-v2se-pth'")
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
        return grid

    def _plots(self) -> QHBoxLayout:
        """Loss and accuracy per step and per epoch, with the starting model's score."""
        self.loss_plot = new_plot("Loss")
        self.acc_plot = new_plot("Accuracy")
        self.curves = {}
        for plot, metric in ((self.loss_plot, "loss"), (self.acc_plot, "acc")):
            plot.setLabel("bottom", "epoch")
            # Loss falls and accuracy rises: keep each legend where its curves are not
            # (accuracy's in the bottom corner, under the late, high points).
            add_legend(plot, (-10, 10) if metric == "loss" else (-10, -5))
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
        return plots

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
        images = recipe.preset_images_in(layout.labels_file(data)) if data else None
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
            + (", early layers kept" if p["freeze_early"] else "")
            + (f"; real and attack crops alike varied in {p['augment'].replace(',', ', ')}"
               if p.get("augment") and p["augment"] != "none" else "") + ".")

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

    def _run_dir_for_new_run(self) -> Path | None:
        """The Run folder the user gave; a fresh one (shown in the field) when it is empty
        or one the tab made for an earlier run. A folder of the user's that holds a run's
        checkpoints already is refused with a message (Resume continues that run)."""
        chosen = self.run_dir.path()
        made_here = chosen is not None and chosen.parent.name == "runs" and \
            chosen.is_relative_to(data_dir() / "training")
        if chosen is None or made_here:
            run_dir = self._new_run_dir()
            self.run_dir.set_text(run_dir)
            return run_dir
        if run_checkpoints(chosen) or (chosen / layout.BEST).exists():
            self.message.show_message(
                "error", f"The Run folder {chosen} already holds a training run.",
                ["Press Resume to continue it, or choose an empty folder (or clear the field "
                 "for a new one under the fasdesk data folder) to start a new run."])
            return None
        return chosen

    def start(self, resume: bool) -> None:
        self.message.clear_message()
        self.split_note.clear_message()
        data = self.data.path()
        if data is None or not layout.is_prepared(data):
            self.message.show_message("error", "Choose a prepared folder (the output of "
                                      f"Prepare, with {layout.LABELS}) first.")
            return
        device = self.device.currentData()
        if resume:
            args = layout.train_args(data, self.run_dir.path(), resume="auto", device=device)
        else:
            init = None
            if self.pretrained.isChecked():
                init = pretrained_checkpoint()
                if init is None:
                    self.message.show_message(
                        "error", "The pretrained checkpoint best_model.pth is missing or "
                        "damaged.", ["Untick 'Start from the pretrained model' to train from "
                                     "scratch, or run 'fasdesk models pull minifasnet-v2se-pth'."])
                    return
            run_dir = self._run_dir_for_new_run()
            if run_dir is None:
                return
            args = layout.train_args(
                data, run_dir, epochs=self.epochs.value(), batch_size=self.batch.value(),
                lr=float(self.lr.value()), classes=self.classes.currentData(), init=init,
                freeze_early=self.freeze.isChecked() if init is not None else None,
                device=device)
        self.remember()
        if not resume:
            self._reset_series()
        if self.tab.start_backend(self, args):
            self.progress.busy("starting (loading torch)…")
            self.stats.setText("")

    def set_running(self, mine: bool) -> None:
        super().set_running(mine)
        self._update_resume()
        # The model is not ready to judge while it trains.
        self.next_button.setEnabled(not self.tab.busy)

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
        self.start_line.label.setFormat(f"starting model {short_percent(self.start_acc)}")

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
            self.stats.setText(f"starting model: validation accuracy {short_percent(val)} "
                               "(the score to beat)")
            return
        if self.start_acc is not None:
            text = (f"epoch {int(epoch)}: starting model {short_percent(self.start_acc)} → now "
                    f"{short_percent(val)} (best {short_percent(self.best_val)})")
        else:
            text = (f"epoch {int(epoch)}: validation accuracy {short_percent(val)} "
                    f"(best {short_percent(self.best_val)})")
        if metrics.get("train_loss") is not None:
            text += f", train loss {metrics['train_loss']:.4f}"
        self.stats.setText(text)
        below = self.start_acc is not None and val < self.start_acc
        if below:
            self.message.show_message(
                "warning", f"Validation accuracy fell below the starting model "
                f"({short_percent(self.start_acc)} → {short_percent(val)} at epoch {int(epoch)}).",
                ["best.pth is never replaced by a worse epoch: it stays the starting model "
                 "or the best epoch above it.",
                 "If it stays below, try a lower learning rate or more data."])
        elif self.below_start:
            self.message.clear_message()
        self.below_start = below

    def _load_history(self) -> None:
        """Curves of the epochs a resumed run already did (from its history.json)."""
        history = read_json_any(layout.history_file(self.run_dir.path()))
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
            best = layout.best_checkpoint(run_dir) if run_dir else None
            if best is not None and best.is_file():
                self.tab.evaluate.set_model(best, self.data.path())
                self.tab.export.set_checkpoint(best)
                start = self.summary.get("start_val_acc")
                if self.summary.get("beat_start") is False:
                    self.message.show_message(
                        "warning", f"No epoch beat the starting model "
                        f"({short_percent(start)}): best.pth is the starting model.",
                        ["Evaluate and Export offer it, not a worse model.",
                         "To improve on it: more (and more varied) images, more epochs or a "
                         "lower learning rate."])
                else:
                    title = "Training finished"
                    best_acc = self.summary.get("best_val_acc")
                    if start is not None and best_acc is not None:
                        title += (f": starting model {short_percent(start)} → best "
                                  f"{short_percent(best_acc)}"
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
