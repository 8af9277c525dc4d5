"""Splits, batches and augmentation of training.data on small arrays (no training)."""
import numpy as np
import pytest
import torch

from training import data as D


def rows(categories, subsets=None):
    subsets = subsets or ["train"] * len(categories)
    return [{"crop": f"c{i}.png", "category": c, "subset": s}
            for i, (c, s) in enumerate(zip(categories, subsets))]


def test_split_is_stratified_seeded_and_keeps_test_apart():
    cats = ["real"] * 10 + ["replay"] * 5 + ["print"] * 2 + ["real"] * 3
    subsets = ["train"] * 17 + ["test"] * 3
    r = rows(cats, subsets)
    labels = D.class_index(cats, ["real", "spoof"])
    split = D.split_indices(r, labels, 0.2, seed=0)
    assert split["test"].tolist() == [17, 18, 19]
    val = split["val"]
    assert (labels[val] == 0).sum() == 2 and (labels[val] == 1).sum() == 1  # round(0.2 n)
    assert set(split["train"]) | set(val) == set(range(17)) and not set(split["train"]) & set(val)
    again = D.split_indices(r, labels, 0.2, seed=0)
    assert np.array_equal(again["val"], val)
    other = [D.split_indices(r, labels, 0.2, seed=s)["val"].tolist() for s in range(1, 6)]
    assert any(v != val.tolist() for v in other)


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
