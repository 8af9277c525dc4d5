"""Screenshots of the whole window with real content: Live, Images and Training tabs.

    python scripts/screenshot_main_window.py [OUT_DIR] [--docs]
                                                  [--screen WIDTHxHEIGHT]

Live runs on a looping video of the sample photos (a live face, then two recaptured
ones) through the real models; the Live shot is taken on a confirmed real frame, once
with the Collect panel collapsed and once open. The Images tab classifies the samples
plus a text file named .jpg and shows the live photo selected. The Training tab is shot
with a small synthetic dataset (tests/training_synth.py) opened in its Dataset step. With --docs, docs/live.png, docs/images.png and docs/images_grid.png are rewritten.
With --screen (e.g. 1366x768, a laptop) the offscreen screen has that size and the window
sizes itself to it, as it does on a real screen, instead of the README's fixed size.
"""
from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

SCREEN = next((a.split("=", 1)[1] if "=" in a else sys.argv[sys.argv.index(a) + 1]
               for a in sys.argv[1:] if a.startswith("--screen")), None)
if SCREEN:
    import json

    _width, _height = (int(v) for v in SCREEN.lower().split("x"))
    _config = Path(tempfile.mkdtemp()) / "screen.json"
    _config.write_text(json.dumps({"screens": [{"name": "screen", "x": 0, "y": 0, "width": _width,
                                                "height": _height, "logicalDpi": 96}]}))
    os.environ["QT_QPA_PLATFORM"] = f"offscreen:configfile={_config}"
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT  # samples/ and models/ come with the project
SAMPLES = SHARED / "samples"
sys.path.insert(0, str(ROOT / "tests"))

SIZE = (1100, 680)  # the README's screenshots
LIVE_SECONDS = 12  # enough for several faces in the 30 s plot


MAX_DOC_BYTES = 300_000


def save_small(png: Path, target: Path) -> None:
    """The README copy: full colour (256 colours blotch the faces) when it fits in
    MAX_DOC_BYTES, else 256 colours."""
    from PIL import Image

    with Image.open(png) as image:
        image = image.convert("RGB")
        image.save(target, optimize=True)
        if target.stat().st_size > MAX_DOC_BYTES:
            image.quantize(256).save(target, optimize=True)


def main() -> int:
    args = [a for a in sys.argv[1:] if not a.startswith("--") and a != SCREEN]
    docs = "--docs" in sys.argv[1:]
    out = Path(args[0] if args else "/tmp")
    out.mkdir(parents=True, exist_ok=True)

    from livevideo import write_video

    from fasdesk.core.io.settings import Settings
    from fasdesk.core.live.sources import SourceSpec
    from fasdesk.ui.app import create_app
    from fasdesk.ui.main_window import MainWindow

    app = create_app()

    def pump(until, timeout=60.0):
        deadline = time.monotonic() + timeout
        while not until() and time.monotonic() < deadline:
            app.processEvents()
            time.sleep(0.01)
        app.processEvents()

    def shot(name: str, doc: str | None = None) -> None:
        image = window.grab()
        if SCREEN:
            name, doc = f"{name}-{SCREEN}", None  # not the README's size
        path = out / f"fasdesk-window-{name}.png"
        image.save(str(path))
        print(path)
        if docs and doc:
            save_small(path, ROOT / "docs" / doc)
            print(ROOT / "docs" / doc)

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        video = write_video(tmp / "demo.avi", SAMPLES, frames_per_sample=30)
        photos = tmp / "photos"
        photos.mkdir()
        for name in ("real_T1.jpg", "spoof_F1.jpg", "spoof_F2.jpg"):
            shutil.copy(SAMPLES / name, photos)
        (photos / "notes.jpg").write_text("a text file with a .jpg name\n")

        window = MainWindow(settings=Settings(mirror=False, loop_playback=True), save=False)
        if not SCREEN:
            window.resize(*SIZE)
        window.show()
        pump(lambda: False, 0.5)
        shot("live-idle")

        live = window.live_tab
        live.start(SourceSpec.parse(str(video)))
        started = time.monotonic()
        pump(lambda: time.monotonic() - started > LIVE_SECONDS, LIVE_SECONDS + 5)

        def confirmed_real() -> bool:
            frame = live.last_frame
            return (frame is not None and len(frame.faces) == 1
                    and frame.faces[0].confirmed(live.view.threshold, live.view.confirm_n))

        pump(confirmed_real, 30)
        shot("live", "live.png")
        window.collect_panel.setChecked(True)
        pump(lambda: False, 0.3)
        shot("live-collect")
        window.collect_panel.setChecked(False)

        window.tabs.setCurrentWidget(window.images_tab)
        images = window.images_tab
        window.classify_paths([str(photos)])
        pump(lambda: images.model.rowCount() == 4 and not images.is_running())
        live.stop()
        pump(lambda: not live.running, 10)
        for row in range(images.proxy.rowCount()):
            if images.proxy.index(row, 1).data() == "real_T1.jpg":
                images.table.selectRow(row)
        pump(images.preview.has_image, 10)
        pump(images.model.thumbnails.idle, 10)  # (read for the rows on screen)
        pump(lambda: False, 0.3)
        shot("images", "images.png")
        images.set_view("grid")
        pump(images.model.thumbnails.idle, 10)
        pump(lambda: False, 0.3)
        shot("images-grid", "images_grid.png")
        images.set_view("list")

        window.tabs.setCurrentIndex(2)
        if window.training_tab is not None:
            from training_synth import make_folders

            dataset = make_folders(tmp / "office cam", SAMPLES, per_class=6)
            scanned = []
            window.training_tab.dataset.scanned.connect(lambda: scanned.append(1))
            window.training_tab.offer_dataset(dataset)
            pump(lambda: bool(scanned), 30)
        pump(lambda: False, 0.5)
        shot("training")
        window.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
