"""The MiniFASNetV2-SE definition against the real checkpoint and its ONNX export."""
import json

import numpy as np
import onnxruntime as ort
import pytest
import torch

from fasdesk.core.inference.crop import preprocess
from fasdesk.core.io.imageio import read_image
from training_synth import make_folders, of_kind, run_cli, run_main
from training.model import (CheckpointError, fourier_target, load_model, read_checkpoint,
                            save_checkpoint)


def sample_batch(samples_dir) -> np.ndarray:
    """The three sample faces cropped by fasdesk.core.inference.crop at the reference boxes."""
    ref = json.loads((samples_dir / "reference.json").read_text())
    crops = [preprocess(read_image(samples_dir / name), [faces[0]["box_xywh"]])
             for name, faces in ref.items()]
    return np.concatenate(crops)


def test_checkpoint_loads_strictly_and_matches_reference_onnx(checkpoint, fp32_model, samples_dir):
    model, ckpt = load_model(checkpoint)  # strict: raises if any tensor is unused or missing
    state = read_checkpoint(checkpoint)["model_state_dict"]
    assert set(state) == set(model.state_dict())
    assert ckpt["config"]["classes"] == ["real", "spoof"]
    batch = np.concatenate([sample_batch(samples_dir),
                            np.random.RandomState(1).rand(5, 3, 128, 128).astype(np.float32)])
    with torch.no_grad():
        ours = model(torch.from_numpy(batch)).numpy()
    ref = ort.InferenceSession(str(fp32_model), providers=["CPUExecutionProvider"])
    theirs = ref.run(None, {"input": batch})[0]
    assert np.abs(ours - theirs).max() <= 1e-4
    assert (ours[:3].argmax(1) == [0, 1, 1]).all()  # real_T1, spoof_F1, spoof_F2


def test_export_reproduces_reference_onnx(checkpoint, fp32_model, samples_dir, tmp_path):
    out = tmp_path / "exported.onnx"
    rc, events, err = run_cli("export", checkpoint, out)
    assert rc == 0, err
    assert of_kind(events, "artifact", kind="onnx")[0]["path"] == str(out)
    batch = np.concatenate([sample_batch(samples_dir),
                            np.random.RandomState(2).rand(6, 3, 128, 128).astype(np.float32)])
    ours = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    ref = ort.InferenceSession(str(fp32_model), providers=["CPUExecutionProvider"])
    assert [i.name for i in ours.get_inputs()] == ["input"]
    assert [o.name for o in ours.get_outputs()] == ["output"]  # one output: no Fourier branch
    assert ours.get_inputs()[0].shape[0] not in (1, 9)  # dynamic batch
    diff = np.abs(ours.run(None, {"input": batch})[0] - ref.run(None, {"input": batch})[0]).max()
    assert diff <= 1e-4
    card = json.loads((tmp_path / "exported.card.json").read_text())
    assert card["classes"] == ["real", "spoof"] and card["input"]["size"] == 128
    assert card["source_checkpoint"]["sha256"] == \
        "290ad61b0ece12a4afef5186076415b05ef07f19d9e103db89875af05e795c02"
    assert card["metrics"]["validation_accuracy"] == pytest.approx(0.98203, abs=1e-4)
    assert card["max_abs_diff_vs_torch"] <= 1e-4


def test_fourier_target_is_normalised_spectrum():
    flat = torch.full((1, 3, 64, 64), 0.5)
    stripes = flat.clone()
    stripes[..., ::2] = 1.0  # a vertical grating: energy at the horizontal Nyquist frequency
    target = fourier_target(torch.cat([flat, stripes]), 8)
    assert target.shape == (2, 1, 8, 8)
    assert float(target.min()) >= 0 and float(target.max()) == pytest.approx(1.0)
    # DC (centre) is the maximum of a flat image; the grating adds energy at the left edge
    assert float(target[0, 0, 4, 4]) == pytest.approx(1.0)
    assert float(target[1, 0, 4, 0]) > float(target[0, 0, 4, 0]) + 0.1


def test_save_is_atomic_and_bad_files_are_clear(tmp_path):
    path = tmp_path / "c.pth"
    save_checkpoint({"model_state_dict": {"w": torch.ones(2)}}, path)
    assert torch.equal(read_checkpoint(path)["model_state_dict"]["w"], torch.ones(2))
    assert [p.name for p in tmp_path.iterdir()] == ["c.pth"]  # no temporary left behind
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="cannot read checkpoint"):
        read_checkpoint(tmp_path / "junk.pth")
    with pytest.raises(CheckpointError, match="not found"):
        read_checkpoint(tmp_path / "missing.pth")
    torch.save({"something": 1}, tmp_path / "other.pth")
    with pytest.raises(CheckpointError, match="not a MiniFAS checkpoint"):
        load_model(tmp_path / "other.pth")


class _RunsCode:
    """Unpickling this calls os.system: what a crafted .pth from the internet can do."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os

        return os.system, (f"touch {self.marker}",)


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory, samples_dir):
    """A prepared set of 4 crops: enough for the commands to reach the checkpoint."""
    base = tmp_path_factory.mktemp("tiny")
    rc, _, err = run_cli("prep", make_folders(base / "raw", samples_dir, per_class=2),
                         base / "prep", "--workers", 1)
    assert rc == 0, err
    return base / "prep"


def test_a_pickle_that_would_run_code_is_refused_everywhere(tmp_path, tiny_data, checkpoint,
                                                            capsys):
    import pickle

    marker = tmp_path / "code-ran"
    real = read_checkpoint(checkpoint)  # the shipped checkpoint is plain data: it loads
    crafted = tmp_path / "crafted.pth"  # torch's zip format, the payload beside real weights
    torch.save({**real, "config": _RunsCode(marker)}, crafted)
    legacy = tmp_path / "legacy.pth"  # a bare pickle, the payload as the state dict
    with open(legacy, "wb") as fh:
        pickle.dump({"model_state_dict": _RunsCode(marker)}, fh, protocol=2)
    for path in (crafted, legacy):
        with pytest.raises(CheckpointError, match="refused: it is not a plain checkpoint"):
            read_checkpoint(path)
        for args in (("train", tiny_data, tmp_path / "run", "--init", path),
                     ("train", tiny_data, tmp_path / "run", "--resume", path),
                     ("eval", tiny_data, path), ("export", path, tmp_path / "m.onnx")):
            rc, _, err = run_main(capsys, *args)
            assert rc == 1 and "refused" in err and "posix.system" in err, err
            assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not marker.exists()
    assert not (tmp_path / "m.onnx").exists() and not (tmp_path / "run").exists()


def test_checkpoints_of_earlier_versions_still_load(tmp_path, checkpoint):
    """They hold numpy RNG state and numpy floats: plain data that weights_only allows."""
    old = {**read_checkpoint(checkpoint), "rng_states": [{"numpy": np.random.get_state()}],
           "history": [{"val_loss": np.float64(0.5)}]}
    torch.save(old, tmp_path / "old.pth")
    ckpt = read_checkpoint(tmp_path / "old.pth")
    assert ckpt["history"][0]["val_loss"] == 0.5
    assert load_model(tmp_path / "old.pth")[1]["config"]["input_size"] == 128


@pytest.mark.parametrize("config, field", [
    ({"input_size": "128"}, "input_size"), ({"input_size": 100}, "input_size"),
    ({"num_classes": 0}, "num_classes"), ({"num_classes": 2.5}, "num_classes"),
    ({"dropout": float("nan")}, "dropout"), ({"classes": ["real"]}, "classes"),
    (["not", "a", "dict"], None)])
def test_a_bad_checkpoint_config_is_one_line(tmp_path, tiny_data, checkpoint, capsys, config,
                                             field):
    path = tmp_path / "bad.pth"
    torch.save({**read_checkpoint(checkpoint), "config": config}, path)
    expected = f"bad checkpoint config: {field}" if field else "bad checkpoint config: a list"
    with pytest.raises(CheckpointError, match=expected):
        load_model(path)
    for args in (("train", tiny_data, tmp_path / "run", "--init", path),
                 ("train", tiny_data, tmp_path / "run", "--resume", path),
                 ("eval", tiny_data, path), ("export", path, tmp_path / "m.onnx")):
        rc, _, err = run_main(capsys, *args)
        assert rc == 1 and expected in err and len(err.strip().splitlines()) == 1, err


def test_kept_early_layers_run_fused_and_their_features_are_kept_exactly(tiny_data, checkpoint):
    """Fine-tuning with the early layers kept runs them as a BatchNorm-folded copy (bfloat16
    where the CPU has it); validation uses exact float32 features computed once."""
    from training import data as D
    from training.model import FrozenFeatures
    from training.train import Dist, _Forward, _freeze

    model, _ = load_model(checkpoint)
    _freeze(model, True, False)
    model.frozen_features = FrozenFeatures(model, torch.bfloat16)
    prepared = D.load_prepared(tiny_data)
    rows = np.arange(len(prepared.rows))
    forward = _Forward(model, D.CropStore(prepared, rows), Dist("cpu"), True, len(rows))
    assert forward.cached
    x = D.tensor_batch(forward.store.batch(rows))
    with torch.no_grad():
        reference = model(x)  # eval mode: the network's own layers, float32
        first = forward(rows)
        again = forward(rows[::-1])  # from the kept features, in another order
        exact = model.frozen_features(x, exact=True)
        fast = model.frozen_features(x)
    torch.testing.assert_close(first, reference, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(again, first.flip(0), rtol=0, atol=1e-5)
    assert len(forward.features) == len(rows)
    torch.testing.assert_close(exact, model.model.features(x), rtol=1e-4, atol=1e-4)
    assert float((fast - exact).abs().max()) < 0.1 * float(exact.abs().max())  # bf16: close
    model.train()
    with torch.no_grad():  # training mode uses the fused copy for the kept layers
        assert model(x).shape == (len(rows), 2)
    assert "frozen_features" not in str(list(model.state_dict()))
