"""Screenshots of every step of Calibrate... and of the profiles dialog, with real content.

    python scripts/screenshot_calibration.py [OUT_DIR] [--docs]

Makes two recordings from the sample photos (tests/calibration_media.py): the live photo
moving in front of the camera, and the same face filmed off a phone screen (blur, gamma,
drifting moire, colour cast), which the shipped model takes for real. Then it drives the
dialog like a user: setup, the real stage, the attack, the report, a fine-tune with the
training preset, saving the profile; then the Live tab on the same source with the profile
applied, and Tools > Camera profiles with a re-score. With --docs the images README shows
are also written to docs/calibration_*.png. Takes one to two minutes on a laptop CPU.
"""
from __future__ import annotations

import os
import sys
import time

import shot_session
from shot_session import ROOT, SHARED

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("OMP_NUM_THREADS", "1")  # the backend's tiny batches on a busy CPU
sys.path.insert(0, str(ROOT / "tests"))

DOCS = {"1_setup": "calibration_setup", "2_real": "calibration_real",
        "3_attack": "calibration_attack", "4_report": "calibration_report",
        "5_fine_tuned": "calibration_fine_tuned", "6_saved": "calibration_saved",
        "7_live": "calibration_live", "8_profiles": "calibration_profiles"}


def main(argv: list[str]) -> int:
    out, docs, work = shot_session.start(argv, "calibration")

    from calibration_media import write_recording

    from fasdesk.core.io.settings import Settings
    from fasdesk.core.live.sources import SourceSpec
    from fasdesk.ui.app import create_app
    from fasdesk.ui.main_window import MainWindow

    real = write_recording(work / "front-door.avi", SHARED / "samples", 120)
    phone = write_recording(work / "phone-replay.avi", SHARED / "samples", 120, attack=True)
    app = create_app()
    window = MainWindow(settings=Settings(), save=False)
    window.resize(1180, 760)
    window.show()

    def wait(done, timeout=600.0):
        end = time.monotonic() + timeout
        while not done():
            app.processEvents()
            time.sleep(0.02)
            if time.monotonic() > end:
                raise TimeoutError("the dialog did not get there in time")
        for _ in range(5):
            app.processEvents()

    def shot(widget, name):
        app.processEvents()
        image = widget.grab()
        image.save(str(out / f"{name}.png"))
        if docs and name in DOCS:
            image.save(str(ROOT / "docs" / f"{DOCS[name]}.png"))
        print(out / f"{name}.png")

    window.live_tab.start(SourceSpec.parse(str(real)))
    wait(lambda: window.live_tab.frames_shown > 3)
    window.live_tab.calibrate_button.click()
    dialog = window.calibration_dialog
    dialog.setup.set_attack("replay", SourceSpec.parse(str(phone)))
    dialog.setup.every.setValue(1)
    shot(dialog, "1_setup")
    dialog.setup.start_button.click()
    dialog.recorder.record_button.click()
    wait(lambda: dialog.worker is None)
    shot(dialog, "2_real")
    dialog.recorder.next_button.click()
    dialog.recorder.record_button.click()
    wait(lambda: dialog.worker is None)
    shot(dialog, "3_attack")
    dialog.recorder.next_button.click()
    wait(lambda: dialog.before is not None)
    shot(dialog, "4_report")
    dialog.report.tune_button.click()  # epochs, batch and lr on "auto": the backend's preset
    wait(lambda: dialog.tuned_model is not None or "failed" in dialog.report.tune_status.text())
    shot(dialog, "5_fine_tuned")
    dialog.report.profile_name.setText("Front door")
    dialog.report.save_button.click()
    shot(dialog, "6_saved")
    dialog.close()  # the live view goes on, now with the profile
    wait(lambda: window.live_tab.running and window.live_tab.frames_shown > 10)
    window.live_tab.frames_shown = 0
    wait(lambda: window.live_tab.frames_shown > 10)
    shot(window, "7_live")
    profiles = window.open_profiles()
    profiles.model_combo.setCurrentIndex(profiles.model_combo.findData("minifasnet-v2se"))
    profiles.rescore_button.click()
    wait(lambda: profiles.worker is None and profiles.rescored is not None)
    shot(profiles, "8_profiles")
    profiles.close()
    window.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
