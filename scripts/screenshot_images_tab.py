"""Screenshots of the Images tab with real content, for eyeballing and the README.

    python scripts/screenshot_images_tab.py [OUT_DIR]

Classifies the sample photos plus a few unreadable files, then saves: the empty tab,
the progress bar mid-batch, the results with a selected preview, an error row selected,
and the banner shown when the model cannot be loaded.
"""
from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "samples"
NAMES = ("real_T1.jpg", "spoof_F1.jpg", "spoof_F2.jpg")


def make_folders(base: Path) -> tuple[Path, Path]:
    mixed = base / "photos"
    mixed.mkdir()
    for name in NAMES:
        shutil.copy(SAMPLES / name, mixed)
    import cv2
    import numpy as np

    real, spoof = (cv2.imread(str(SAMPLES / n)) for n in NAMES[:2])
    cv2.imwrite(str(mixed / "two_faces.jpg"), np.hstack([real, spoof]))
    cv2.imwrite(str(mixed / "small_face.png"), cv2.resize(real, None, fx=0.2, fy=0.2,
                                                          interpolation=cv2.INTER_AREA))
    (mixed / "empty.jpg").write_bytes(b"")
    (mixed / "notes.jpg").write_text("a text file with a .jpg name\n")
    jpeg = (SAMPLES / "real_T1.jpg").read_bytes()
    (mixed / "truncated.jpg").write_bytes(jpeg[: len(jpeg) // 4])
    many = base / "many"
    many.mkdir()
    for i in range(300):
        shutil.copy(SAMPLES / NAMES[i % 3], many / f"{i:03d}_{NAMES[i % 3]}")
    return mixed, many


def select(tab, name: str) -> None:
    for row in range(tab.proxy.rowCount()):
        if tab.proxy.index(row, 1).data() == name:
            tab.table.selectRow(row)
            return
    raise LookupError(name)


def main() -> int:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp")
    out.mkdir(parents=True, exist_ok=True)
    from PySide6.QtWidgets import QApplication

    from fasdesk.core.inference.pipeline import build_pipeline
    from fasdesk.ui import workers
    from fasdesk.ui.images_tab import ImagesTab

    app = QApplication.instance() or QApplication([])

    def pump(until, timeout=60.0):
        deadline = time.monotonic() + timeout
        while not until() and time.monotonic() < deadline:
            app.processEvents()
            time.sleep(0.01)
        app.processEvents()

    def shot(name):
        path = out / f"fasdesk-images-{name}.png"
        tab.grab().save(str(path))
        print(path)

    with tempfile.TemporaryDirectory() as tmp:
        mixed, many = make_folders(Path(tmp))
        tab = ImagesTab()
        tab.resize(1180, 680)
        tab.show()
        pump(lambda: False, 0.2)
        shot("empty")

        tab.add_paths([str(many)])
        pump(lambda: tab.model.rowCount() >= 12)
        shot("progress")
        tab.cancel()
        pump(lambda: not tab.is_running())
        tab.clear()

        tab.add_paths([str(mixed)])
        pump(lambda: not tab.is_running())
        select(tab, "real_T1.jpg")
        pump(tab.preview.has_image, 10)
        pump(tab.model.thumbnails.idle, 10)  # (read for the rows on screen)
        shot("results")
        select(tab, "spoof_F2.jpg")
        pump(lambda: False, 0.5)
        shot("results-spoof")
        select(tab, "two_faces.jpg")
        pump(lambda: False, 0.5)
        shot("two-faces")
        select(tab, "small_face.png")
        pump(lambda: False, 0.5)
        shot("unsure")
        select(tab, "truncated.jpg")
        pump(lambda: False, 0.3)
        shot("error-row")

        tab.set_pipeline_factory(lambda: build_pipeline(model=Path(tmp) / "missing.onnx"))
        tab.add_paths([str(mixed / "real_T1.jpg")])
        pump(lambda: not tab.is_running())
        shot("model-missing")
        tab.cancel()
        workers.stop_all()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
