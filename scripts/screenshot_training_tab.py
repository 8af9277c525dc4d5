"""Screenshots of the Training tab and Collect mode with real content, for eyeballing and
the README.

    python scripts/screenshot_training_tab.py [OUT_DIR] [--docs]

Builds a small synthetic dataset from the sample photos (tests/training_synth.py: jittered
photos as "real", simulated screen recaptures as "replay"; a third of the recaptures are
faint, so the model has something to get wrong), then drives every step with the real
backend: dataset, prepare (one corrupt file is skipped), train (4 epochs from the
pretrained checkpoint, the preset's other settings), evaluate (every crop), export with
INT8. It also runs the Live tab on a video of the samples with Collect mode on. With --docs the evaluate screenshot is
also written to docs/training.png. Takes a few minutes on a laptop CPU.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import shot_session
from shot_session import ROOT, SHARED

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
SAMPLES = SHARED / "samples"
sys.path.insert(0, str(ROOT / "tests"))


def make_dataset(root: Path, per_class: int = 30, seed: int = 1) -> Path:
    import cv2
    import numpy as np

    from training_synth import jitter, load_faces, recapture

    rng = np.random.RandomState(seed)
    faces = load_faces(SAMPLES)
    for label in ("real", "spoof"):
        for i in range(per_class):
            image, box = jitter(*faces[i % len(faces)], rng)
            if label == "spoof":
                # Faint recaptures (screen artefacts blended in weakly) are the hard cases.
                strength = rng.uniform(0.1, 0.3) if i % 3 == 0 else 1.0
                image = cv2.addWeighted(recapture(image, rng), strength, image, 1 - strength, 0)
            folder = root / ("real" if label == "real" else "spoof/replay")
            folder.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(folder / f"{label}_{i:03d}.jpg"), image)
            (folder / f"{label}_{i:03d}_BB.txt").write_text(
                " ".join(str(int(round(v))) for v in box) + "\n")
    (root / "spoof" / "replay" / "cut_short.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    return root


def main(argv: list[str]) -> int:
    out, docs, work = shot_session.start(argv, "training")

    from PySide6.QtCore import QEventLoop, QTimer

    from fasdesk.core.io.settings import Settings
    from fasdesk.core.live.sources import SourceSpec
    from fasdesk.ui.app import create_app
    from fasdesk.ui.main_window import MainWindow
    from livevideo import write_video

    app = create_app()
    window = MainWindow(settings=Settings(), save=False)
    window.resize(1180, 780)
    window.show()
    tab = window.training_tab

    def wait(condition, timeout_s: float) -> None:
        loop = QEventLoop()
        timer = QTimer()
        timer.timeout.connect(lambda: condition() and loop.quit())
        timer.start(50)
        QTimer.singleShot(int(timeout_s * 1000), loop.quit)
        loop.exec()
        timer.stop()

    def run(button) -> None:
        done = []
        tab.run.finished.connect(lambda ok, message: done.append((ok, message)))
        button.click()
        wait(lambda: bool(done), 1800)
        print(tab.current_page().TITLE, done, flush=True)

    def shot(widget, name: str) -> Path:
        app.processEvents()
        path = out / f"{name}.png"
        widget.grab().save(str(path))
        return path

    # Collect mode on a video of the samples.
    video = write_video(work / "session.avi", SAMPLES)
    panel = window.collect_panel
    panel.setChecked(True)
    panel.set_folder(work / "collected")
    window.live_tab.start(SourceSpec.parse(str(video)))
    wait(lambda: panel.last_frame is not None and panel.last_frame.index < 3, 60)
    window.live_tab.stop()
    wait(lambda: not window.live_tab.running, 10)
    for _ in range(3):
        panel.buttons["real"].click()
        panel._saved_index = None
    shot(window, "0_collect")

    window.tabs.setCurrentWidget(tab)
    tab.dataset.set_folder(str(make_dataset(work / "raw" / "office cam")))
    wait(lambda: tab.dataset.info is not None, 60)
    shot(window, "1_dataset")
    tab.dataset.next_button.click()
    run(tab.prepare.start_button)
    shot(window, "2_prepare")
    tab.prepare.next_button.click()
    tab.train.epochs.setValue(4)  # the preset's batch size and learning rate, fewer epochs
    run(tab.train.start_button)
    shot(window, "3_train")
    tab.train.next_button.click()
    evaluate = tab.evaluate
    evaluate.split.setCurrentIndex(evaluate.split.findData("all"))
    run(evaluate.start_button)
    evaluate.target_rate.setValue(5.0)
    evaluate_png = shot(window, "4_evaluate")
    tab.go_to("export")
    tab.export.name.setText("office-cam")
    tab.export.int8.setChecked(True)
    run(tab.export.start_button)
    shot(window, "5_export")
    tab.export.use_button.click()
    window.tabs.setCurrentWidget(window.live_tab)
    live = window.live_tab
    live.start(SourceSpec.parse(str(video)))  # now judged by the new model
    wait(lambda: live.last_frame is not None and live.frames_shown > 3
         and live.last_frame.index < 3, 60)
    live.stop()
    wait(lambda: not live.running, 10)
    shot(window, "6_live_with_new_model")
    if docs:
        from PySide6.QtGui import QImage

        image = QImage(str(evaluate_png))
        target = ROOT / "docs" / "training.png"
        target.parent.mkdir(exist_ok=True)
        image.save(str(target), "PNG", 0)
        print(f"docs image: {target} ({target.stat().st_size // 1024} KB)")
    window.close()
    print(f"screenshots in {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
