"""Model info and About dialogs."""
from __future__ import annotations

import platform
import statistics
import time
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (QDialog, QDialogButtonBox, QFormLayout, QLabel, QTableWidget,
                               QTableWidgetItem, QVBoxLayout)

from fasdesk import __version__
from fasdesk.core.models import registry
from fasdesk.core.inference.liveness import LivenessEngine, ModelError

LATENCY_RUNS = 20


def measure_latency(engine: LivenessEngine, runs: int = LATENCY_RUNS) -> float:
    """Median seconds for one face (batch of 1), after a warm-up run."""
    import numpy as np

    batch = np.random.default_rng(0).random((1, 3, engine.input_size, engine.input_size),
                                            dtype=np.float32)
    engine.logits(batch)
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        engine.logits(batch)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def model_info(model_path: Path) -> dict[str, str]:
    """What the info dialog shows, as label -> text (raises ModelError)."""
    from fasdesk.core.inference.optimize import describe

    engine = LivenessEngine(model_path)
    entry = next((e for e in registry.load_manifest() if e.kind == "liveness"
                  and e.file == model_path.name), None)
    digest = registry.file_sha256(model_path)
    shown = f"{digest[:32]}\n{digest[32:]}"  # 64 hex digits do not word-wrap
    if entry and entry.sha256:
        check = "matches the registry" if digest == entry.sha256.lower() else "DIFFERS from the registry"
        shown += f"\n({check})"
    classes = ", ".join(entry.classes) if entry and entry.classes else f"{engine.num_classes} (class 0 = real)"
    return {
        "Model": entry.id if entry else "(not in the registry)",
        "File": str(model_path),
        "Size": f"{model_path.stat().st_size / 1e6:.2f} MB",
        "SHA-256": shown,
        "Input": f"{engine.input_size} x {engine.input_size} RGB",
        "Classes": classes,
        "License": entry.license if entry and entry.license else "unknown",
        "Execution provider": engine.provider,
        "Optimized": describe(engine.optimized, engine.optimization),
        "Latency (1 face)": f"{measure_latency(engine) * 1000:.2f} ms (median of {LATENCY_RUNS})",
    }


class ModelInfoDialog(QDialog):
    def __init__(self, model_path: Path, parent=None):
        super().__init__(parent)
        self.setWindowTitle("Model info")
        self.setMinimumWidth(560)
        layout = QVBoxLayout(self)
        form = QFormLayout()
        try:
            self.info = model_info(Path(model_path))
        except (ModelError, OSError) as exc:
            self.info = {"Error": str(exc)}
        for key, value in self.info.items():
            label = QLabel(value)
            label.setTextInteractionFlags(Qt.TextSelectableByMouse)
            label.setWordWrap(True)
            form.addRow(f"{key}:", label)
        layout.addLayout(form)
        buttons = QDialogButtonBox(QDialogButtonBox.Close)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)


def versions() -> dict[str, str]:
    """What the About box lists: the packages `fasdesk doctor` reports, plus Qt's runtime."""
    import onnxruntime
    from PySide6.QtCore import qVersion

    from fasdesk.core.diagnostics.doctor import versions as package_versions

    shown = {name: version for name, version in package_versions().items() if version}
    shown["Qt runtime"] = qVersion()
    shown["execution providers"] = ", ".join(onnxruntime.get_available_providers())
    shown["system"] = f"{platform.system()} {platform.release()} ({platform.machine()})"
    return shown


class AboutDialog(QDialog):
    def __init__(self, parent=None):
        super().__init__(parent)
        self.setWindowTitle("About fasdesk")
        self.setMinimumWidth(620)
        layout = QVBoxLayout(self)
        title = QLabel(f"<h2>fasdesk {__version__}</h2>"
                       "<p>Face liveness (anti-spoofing) checking on the desktop: live camera "
                       "view, image classification and MiniFAS training.<br>"
                       "Licensed under Apache-2.0.</p>")
        title.setWordWrap(True)
        layout.addWidget(title)
        form = QFormLayout()
        for key, value in versions().items():
            form.addRow(f"{key}:", QLabel(value))
        layout.addLayout(form)
        layout.addWidget(QLabel("<b>Models</b>"))
        entries = registry.load_manifest()
        table = QTableWidget(len(entries), 4)
        table.setHorizontalHeaderLabels(["Model", "Kind", "License", "Source"])
        for row, entry in enumerate(entries):
            found = registry.find_file(entry.file)
            cells = [entry.id, entry.kind, entry.license or "unknown", entry.url or "(local)"]
            for col, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setToolTip(f"{entry.description}\n{found or 'not downloaded'}")
                table.setItem(row, col, item)
        table.verticalHeader().hide()
        table.horizontalHeader().setStretchLastSection(True)
        table.resizeColumnsToContents()
        table.setEditTriggers(QTableWidget.NoEditTriggers)
        table.setMaximumHeight(40 + 30 * max(1, len(entries)))
        layout.addWidget(table)
        buttons = QDialogButtonBox(QDialogButtonBox.Close)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)
        self.table = table
