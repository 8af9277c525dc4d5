"""`python -m training prep` on small datasets in both layouts, built from the real samples."""
import csv
import json

import cv2
import numpy as np
import pytest

from fasdesk.core.inference.crop import face_crop
from fasdesk.core.io.imageio import read_image
from training_synth import make_celeba, make_folders, of_kind, run_cli


def read_labels(out):
    with open(out / "labels.csv", newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture
def folders(tmp_path, samples_dir):
    root = make_folders(tmp_path / "raw", samples_dir, per_class=4)
    (root / "spoof" / "replay" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated jpeg")
    blank = np.full((240, 320, 3), 128, np.uint8)  # no face, no _BB.txt: the detector finds none
    cv2.imwrite(str(root / "real" / "blank.jpg"), blank)
    # a real face without _BB.txt: the detector finds it
    cv2.imwrite(str(root / "real" / "detect_me.jpg"), cv2.imread(str(samples_dir / "real_T1.jpg")))
    return root


def test_folders_layout_crops_counts_and_skips(folders, tmp_path):
    out = tmp_path / "prep"
    rc, events, err = run_cli("prep", folders, out, "--workers", "2")
    assert rc == 0, err
    manifest = json.loads((out / "manifest.json").read_text())
    counts = manifest["counts"]
    assert counts["listed"] == 11 and counts["crops"] == 9 and counts["skipped"] == 2
    assert counts["real"] == 5 and counts["spoof"] == 4
    assert counts["skipped_by_reason"] == {"no face": 1, "unreadable": 1}
    reasons = {s["source"]: s["reason"] for s in manifest["skipped"]}
    assert reasons["real/blank.jpg"].startswith("no face")
    assert reasons["spoof/replay/broken.jpg"].startswith("unreadable")
    rows = {r["source"]: r for r in read_labels(out)}
    assert rows["spoof/replay/spoof_000.jpg"]["category"] == "replay"
    assert rows["spoof/replay/spoof_000.jpg"]["label"] == "spoof"
    assert rows["real/detect_me.jpg"]["label"] == "real"
    # The crop on disk is exactly fasdesk.core.inference.crop.face_crop at the _BB.txt box.
    src = folders / "real" / "real_001.jpg"
    box = [float(v) for v in (folders / "real" / "real_001_BB.txt").read_text().split()]
    expected = face_crop(read_image(src), box, 128)
    assert np.array_equal(cv2.imread(str(out / rows["real/real_001.jpg"]["crop"])), expected)
    # Events: start with the total, progress counting to it, artifacts, done with counts.
    assert of_kind(events, "start")[0]["total"] == 11
    assert of_kind(events, "progress")[-1]["done"] == 11
    assert {e["kind"] for e in of_kind(events, "artifact")} == {"labels", "manifest"}
    assert of_kind(events, "done")[0]["crops"] == 9


def test_rerun_reuses_finished_crops(folders, tmp_path):
    out = tmp_path / "prep"
    assert run_cli("prep", folders, out, "--workers", "1")[0] == 0
    crop = out / "crops" / "real" / "real_000.png"
    stamp = crop.stat().st_mtime_ns
    rc, events, _ = run_cli("prep", folders, out)
    assert rc == 0
    assert of_kind(events, "done")[0]["reused"] == 9
    assert crop.stat().st_mtime_ns == stamp


def test_celeba_layout_types_subsets_and_boxes(tmp_path, samples_dir):
    root = make_celeba(tmp_path / "celeba", samples_dir, per_class=4)
    out = tmp_path / "prep"
    rc, events, err = run_cli("prep", root, out)
    assert rc == 0, err
    counts = json.loads((out / "manifest.json").read_text())["counts"]
    # default types 0 1 2 3 7 8 9: the paper masks (4) are left out
    assert counts["by_category"] == {"real": 6, "replay": 6}
    assert counts["by_subset"] == {"test": 4, "train": 8}
    rows = read_labels(out)
    first = rows[0]
    image = read_image(root / first["source"])
    h, w = image.shape[:2]
    frame = [float(v) for v in (root / first["source"]).with_name(
        (root / first["source"]).stem + "_BB.txt").read_text().split()[:4]]
    box = [frame[0] * w / 224, frame[1] * h / 224, frame[2] * w / 224, frame[3] * h / 224]
    assert np.array_equal(cv2.imread(str(out / first["crop"])), face_crop(image, box, 128))
    rc, _, _ = run_cli("prep", root, tmp_path / "prep2", "--spoof-types", "0", "4", "--size", "64")
    assert rc == 0
    counts = json.loads((tmp_path / "prep2" / "manifest.json").read_text())["counts"]
    assert counts["by_category"] == {"paper_mask": 6, "real": 6}
    assert cv2.imread(str(tmp_path / "prep2" / read_labels(tmp_path / "prep2")[0]["crop"])).shape == (64, 64, 3)


def _assert_clear_failure(rc, events, err, *needles):
    assert rc == 1
    lines = err.strip().splitlines()
    assert lines[-1].startswith("error: ") and "Traceback" not in err
    for needle in needles:
        assert needle in lines[-1]
    assert of_kind(events, "error") and not of_kind(events, "done")


def test_bad_datasets_get_one_clear_line(tmp_path, samples_dir):
    (tmp_path / "empty").mkdir()
    _assert_clear_failure(*run_cli("prep", tmp_path / "empty", tmp_path / "o1"), "is not a dataset")
    (tmp_path / "nolabels" / "metas").mkdir(parents=True)
    _assert_clear_failure(*run_cli("prep", tmp_path / "nolabels", tmp_path / "o2"), "no labels")
    only_real = make_folders(tmp_path / "onlyreal", samples_dir, per_class=2)
    for p in (only_real / "spoof").rglob("*"):
        if p.is_file():
            p.unlink()
    _assert_clear_failure(*run_cli("prep", only_real, tmp_path / "o3"), "spoof class is empty")
    corrupt = make_folders(tmp_path / "corrupt", samples_dir, per_class=2)
    for p in (corrupt / "spoof").rglob("*.jpg"):
        p.write_bytes(b"garbage")
    rc, events, err = run_cli("prep", corrupt, tmp_path / "o4")
    _assert_clear_failure(rc, events, err, "spoof class is empty", "2 images were skipped")
    # the manifest still says why
    manifest = json.loads((tmp_path / "o4" / "manifest.json").read_text())
    assert manifest["counts"]["skipped_by_reason"] == {"unreadable": 2}
