"""`prep` with hostile files (issue 15, items 2 and 5): one bad `_BB.txt` (NaN, a huge box,
a FIFO) or a FIFO named like a photo skips that image with its reason; the rest of the
dataset is prepared."""
from __future__ import annotations

import json
import shutil

import pytest

from fasdesk.core.datasets import dataset_info as dsi
from robustcases import fifos, needs_fifo  # noqa: F401 (fifos: a fixture)
from training_synth import make_celeba, make_folders, run_cli


@pytest.mark.parametrize("text, reason", [
    ("nan 10 100 100", "not a finite number"),
    ("10 10 inf 100", "not a finite number"),
    ("10 10 1e30 1e30", "far larger than the 480x640 image"),
    ("-5000 -5000 100 100", "outside the image"),
    ("10 10 0 0", "empty box"),
    ("x y w h", "four numbers"),
])
def test_read_box_refuses_unusable_boxes(tmp_path, text, reason):
    box = tmp_path / "a_BB.txt"
    box.write_text(text)
    with pytest.raises(ValueError, match=reason):
        dsi.read_box(box, dsi.FOLDERS, 480, 640)


@needs_fifo
def test_one_bad_image_or_box_never_aborts_prep(fifos, tmp_path, samples_dir):
    root = make_folders(tmp_path / "raw", samples_dir, per_class=3)
    real = root / "real"
    for name, box in (("nan", "nan 10 100 100"), ("huge", "10 10 1e30 1e30")):
        shutil.copy(real / "real_000.jpg", real / f"{name}.jpg")
        (real / f"{name}_BB.txt").write_text(box + "\n")
    fifos(real / "pipe.jpg")
    shutil.copy(real / "real_001.jpg", real / "pipebox.jpg")
    fifos(real / "pipebox_BB.txt")  # not a file: the detector finds the face instead
    out = tmp_path / "prep"
    rc, events, err = run_cli("prep", root, out, "--workers", "2", timeout=180)
    assert rc == 0, err
    manifest = json.loads((out / "manifest.json").read_text())
    reasons = {s["source"]: s["reason"] for s in manifest["skipped"]}
    assert set(reasons) == {"real/nan.jpg", "real/huge.jpg", "real/pipe.jpg"}
    assert reasons["real/nan.jpg"] == "bad box: nan_BB.txt holds a value that is not a finite number"
    assert reasons["real/huge.jpg"].startswith("bad box: huge_BB.txt: box 1e+30x1e+30 is far larger")
    assert "FIFO" in reasons["real/pipe.jpg"] and reasons["real/pipe.jpg"].startswith("unreadable")
    assert manifest["counts"]["crops"] == 3 + 3 + 1  # the samples and pipebox.jpg


@needs_fifo
def test_a_fifo_box_file_in_celeba_layout_is_skipped_not_read(fifos, tmp_path, samples_dir):
    root = make_celeba(tmp_path / "celeba", samples_dir, per_class=2)
    labels = json.loads((root / "metas/labels/train_label.json").read_text())
    victim = root / next(iter(labels))
    box = victim.with_name(victim.stem + "_BB.txt")
    box.unlink()
    fifos(box)
    out = tmp_path / "prep"
    rc, events, err = run_cli("prep", root, out, "--workers", "1", timeout=180)
    assert rc == 0, err
    skipped = json.loads((out / "manifest.json").read_text())["skipped"]
    assert [s["reason"] for s in skipped] == [
        f"bad box: cannot read {box.name}: is a FIFO (named pipe), not a regular file; not read"]


@pytest.mark.parametrize("size", ["100000", "100"])
def test_a_crop_size_the_network_cannot_take_is_refused_up_front(tmp_path, samples_dir, size):
    # 100000 px would need 30 GB per image; 100 px prepared fine and then failed in train.
    root = make_folders(tmp_path / "raw", samples_dir, per_class=1)
    rc, events, err = run_cli("prep", root, tmp_path / "prep", "--size", size)
    assert rc == 1 and "--size must be a multiple of 16 from 16 to 1024" in err
    assert err.strip().endswith(f"got {size}") and "Traceback" not in err

