"""Raw dataset layouts: detection, counts, boxes and the problems shown before prep."""
from __future__ import annotations

import json
import shutil

import pytest

from fasdesk.core.datasets import dataset_info as di


def _celeba(root, samples_dir, labels):
    """A tiny CelebA-Spoof tree: labels {relative path: spoof type}, boxes in 224 frame."""
    vectors = {}
    for rel, spoof_type in labels.items():
        image = root / rel
        image.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(samples_dir / ("real_T1.jpg" if spoof_type == 0 else "spoof_F1.jpg"), image)
        di.box_path_for(image).write_text("56 28 112 140 0.99\n")
        vector = [0] * 44
        vector[40] = spoof_type
        vectors[rel] = vector
    (root / "metas" / "labels").mkdir(parents=True)
    (root / "metas" / "labels" / "train_label.json").write_text(json.dumps(vectors))


def test_celeba_layout_counts_types_and_scales_boxes(tmp_path, samples_dir):
    _celeba(tmp_path, samples_dir, {"Data/train/1/live/a.jpg": 0, "Data/train/1/live/b.jpg": 0,
                                    "Data/train/2/spoof/c.jpg": 1, "Data/train/2/spoof/d.jpg": 8,
                                    "Data/train/3/spoof/e.jpg": 4})
    assert di.detect_layout(tmp_path) == di.CELEBA
    info = di.scan(tmp_path)
    assert info.ok and info.counts == {0: 2, 1: 1, 4: 1, 8: 1}
    assert info.live == 2 and info.spoof == 3
    # The default subset drops paper masks (type 4), as upstream's training did.
    assert di.scan(tmp_path, spoof_types=di.DEFAULT_SPOOF_TYPES).counts == {0: 2, 1: 1, 8: 1}
    sample = next(di.iter_samples(tmp_path))
    # 224-frame box scaled to the 640x480 (w x h) sample image.
    x, y, w, h = di.read_box(sample.box_path, di.CELEBA, 480, 640)
    assert (x, y, w, h) == pytest.approx((56 * 480 / 224, 28 * 640 / 224, 112 * 480 / 224, 140 * 640 / 224))


def test_celeba_without_labels_is_a_problem(tmp_path):
    (tmp_path / "metas" / "labels").mkdir(parents=True)
    info = di.scan(tmp_path)
    assert info.layout == di.CELEBA and not info.ok
    assert info.problems[0].startswith("no labels")
    with pytest.raises(di.DatasetError, match="no labels"):
        list(di.iter_samples(tmp_path))


def test_folders_layout_types_from_subfolders(tmp_path, samples_dir):
    for rel in ("real/a.jpg", "real/sub/b.jpg", "spoof/replay/c.jpg", "spoof/d.jpg",
                "spoof/odd/e.jpg"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(samples_dir / "real_T1.jpg", tmp_path / rel)
    di.write_box(tmp_path / "real" / "a_BB.txt", (10.4, 20, 200, 220.6))
    info = di.scan(tmp_path)
    assert info.ok and info.counts == {0: 2, 7: 1, di.SPOOF_OTHER: 2}
    assert info.missing_boxes == 4
    assert any("spoof/odd" in w for w in info.warnings)
    assert di.read_box(tmp_path / "real" / "a_BB.txt", di.FOLDERS, 480, 640) == (10, 20, 200, 221)


@pytest.mark.parametrize("make, message", [
    (lambda root: (root / "real").mkdir(), "no images found"),
    (lambda root: (root / "spoof").mkdir() or (root / "spoof" / "x.jpg").write_bytes(b"1"),
     "real (live) class is empty"),
    (lambda root: (root / "real").mkdir() or (root / "real" / "x.png").write_bytes(b"1"),
     "spoof class is empty"),
    (lambda root: None, "is not a dataset"),
])
def test_broken_datasets_name_their_problem(tmp_path, make, message):
    make(tmp_path)
    info = di.scan(tmp_path)
    assert not info.ok
    assert message in info.problems[0]


def test_bad_box_file_gives_a_reason(tmp_path):
    box = tmp_path / "a_BB.txt"
    box.write_text("left top\n")
    with pytest.raises(ValueError, match="four numbers"):
        di.read_box(box, di.FOLDERS, 100, 100)
    box.write_text("1 1 0 0\n")
    with pytest.raises(ValueError, match="empty box"):
        di.read_box(box, di.FOLDERS, 100, 100)
