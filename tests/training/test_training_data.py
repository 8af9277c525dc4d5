"""Splits, batches and augmentation of training.data on small arrays (no training)."""
import numpy as np
import pytest
import torch

from training import data as D


def rows(categories, subsets=None):
    subsets = subsets or ["train"] * len(categories)
    return [{"crop": f"c{i}.png", "category": c, "subset": s}
            for i, (c, s) in enumerate(zip(categories, subsets))]


def test_one_recording_per_class_is_split_by_time_and_keeps_test_apart():
    cats = ["real"] * 10 + ["replay"] * 5 + ["print"] * 2 + ["real"] * 3
    subsets = ["train"] * 17 + ["test"] * 3
    r = rows(cats, subsets)
    labels = D.class_index(cats, ["real", "spoof"])
    split = D.split_indices(r, labels, 0.2, seed=0)
    assert split["test"].tolist() == [17, 18, 19]
    # c0..c9 is one recording: its last 2 frames validate, the one before is the guard;
    # the spoofs c10..c16 (7 frames, too few for a guard) give their last one.
    assert split["val"].tolist() == [8, 9, 16] and split["guard"].tolist() == [7]
    assert split["train"].tolist() == [0, 1, 2, 3, 4, 5, 6, 10, 11, 12, 13, 14, 15]
    # The frames' order is their number, not the file order: c10 comes after c9.
    assert D.split_indices(r, labels, 0.2, seed=3)["val"].tolist() == [8, 9, 16]


def test_many_recordings_are_held_out_whole_and_seeded():
    r, cats = [], []
    for person in range(8):
        for label in ("real", "replay"):
            for frame in range(10):
                r.append({"crop": "x", "category": label, "subset": "train",
                          "source": f"{label}/person{person}/frame_{frame:04d}.jpg"})
                cats.append(label)
    labels = D.class_index(cats, ["real", "spoof"])
    split = D.split_indices(r, labels, 0.25, seed=0)
    keys = D.recording_keys(r)
    val_keys = {keys[i] for i in split["val"]}
    assert val_keys.isdisjoint({keys[i] for i in split["train"]})  # never both sides
    assert len(split["guard"]) == 0
    for c in (0, 1):  # 2 of 8 recordings of each class: round(0.25 * 80) = 20 images
        assert (labels[split["val"]] == c).sum() == 20
    assert np.array_equal(D.split_indices(r, labels, 0.25, seed=0)["val"], split["val"])
    other = [D.split_indices(r, labels, 0.25, seed=s)["val"].tolist() for s in range(1, 6)]
    assert any(v != split["val"].tolist() for v in other)
    assert D.split_warnings(r, labels, split, ["real", "spoof"])[0].startswith(
        "only 40 validation images (20 real, 20 spoof)")


def test_recordings_are_named_by_folder_and_name_without_numbers():
    r = [{"source": "real/real_000012.jpg"}, {"source": "real/real_000013.jpg"},
         {"source": "real/real_20261203-100605_00007.jpg"},
         {"source": "real/real_20261203-100606_00008.jpg"},
         {"source": "Data/train/1001/live/000123.jpg"}, {"source": "Data/train/1002/live/000124.jpg"}]
    keys = D.recording_keys(r)
    assert keys[0] == keys[1] == "real/real_#"
    assert keys[2] == keys[3] == "real/real_#-#_#"  # a Collect session, second by second
    assert keys[4] != keys[5]  # CelebA-Spoof: one subject, one recording


def test_a_split_of_near_identical_frames_warns():
    """40 frames of one clip per class: what gave 100% accuracy and AUC 1.0 unwarned."""
    r, cats = [], []
    for label in ("real", "replay"):
        for frame in range(40):
            r.append({"crop": "x", "category": label, "subset": "train",
                      "source": f"{label}/clip_{frame:05d}.jpg"})
            cats.append(label)
    labels = D.class_index(cats, ["real", "spoof"])
    split = D.split_indices(r, labels, 0.2, seed=0)
    assert len(split["val"]) == 16 and len(split["guard"]) == 2
    notes = D.split_warnings(r, labels, split, ["real", "spoof"])
    assert len(notes) == 2
    assert notes[0].startswith("only 16 validation images (8 real, 8 spoof)")
    assert notes[1].startswith("100% of the validation images come from the same 2 recording(s)")


def test_small_classes_keep_a_training_image():
    labels = np.array([0, 0, 1, 1])
    split = D.split_indices(rows(["real", "real", "replay", "replay"]), labels, 0.2)
    assert sorted(labels[split["val"]].tolist()) == [0, 1]  # one each, one left to train on


def test_class_grouping():
    cats = ["real", "print", "replay", "replay"]
    assert D.class_names(cats, 2) == ["real", "spoof"]
    assert D.class_names(cats, 3) == ["real", "print", "replay"]
    assert D.class_index(cats, ["real", "print", "replay"]).tolist() == [0, 1, 2, 2]
    with pytest.raises(D.DataError, match="use --classes 3"):
        D.class_names(cats, 4)


def test_epoch_batches_cover_once_and_split_evenly_across_processes():
    one = D.epoch_batches(23, 4, epoch=1, seed=0)
    assert sorted(np.concatenate(one).tolist()) == list(range(23))
    assert all(len(b) >= 2 for b in one)  # a last batch of one is merged (BatchNorm)
    assert [b.tolist() for b in D.epoch_batches(23, 4, 1, 0)] == [b.tolist() for b in one]
    assert np.concatenate(D.epoch_batches(23, 4, 2, 0)).tolist() != np.concatenate(one).tolist()
    ranks = [D.epoch_batches(23, 4, 1, 0, rank=r, world=2) for r in range(2)]
    assert len(ranks[0]) == len(ranks[1])  # DDP needs the same number of steps everywhere
    seen = np.concatenate([np.concatenate(r) for r in ranks])
    assert set(seen.tolist()) == set(range(23)) and len(seen) == 24  # one image padded


def test_augment_is_reproducible_bounded_and_varied():
    x = torch.rand(6, 3, 32, 32)
    a = D.augment(x, torch.Generator().manual_seed(3))
    b = D.augment(x, torch.Generator().manual_seed(3))
    c = D.augment(x, torch.Generator().manual_seed(4))
    assert a.shape == x.shape and torch.equal(a, b) and not torch.equal(a, c)
    assert float(a.min()) >= 0 and float(a.max()) <= 1
    # with no randomness left in the config the augmentation is the identity
    still = D.AugmentConfig(scale=(1, 1), shift=0, rotation_deg=0, flip=0, brightness=0,
                            contrast=0, saturation=0, hue=0)
    torch.testing.assert_close(D.augment(x, torch.Generator(), still), x, atol=1e-5, rtol=0)
    mirror = D.AugmentConfig(scale=(1, 1), shift=0, rotation_deg=0, flip=1, brightness=0,
                             contrast=0, saturation=0, hue=0)
    torch.testing.assert_close(D.augment(x, torch.Generator(), mirror), x.flip(-1), atol=1e-5, rtol=0)
