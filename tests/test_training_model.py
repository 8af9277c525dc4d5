"""The MiniFASNetV2-SE definition against the real checkpoint and its ONNX export."""
import json

import numpy as np
import onnxruntime as ort
import pytest
import torch

from fasdesk.core.crop import preprocess
from fasdesk.core.imageio import read_image
from training_synth import of_kind, run_cli
from training.model import (CheckpointError, fourier_target, load_model, read_checkpoint,
                            save_checkpoint)


def sample_batch(samples_dir) -> np.ndarray:
    """The three sample faces cropped by fasdesk.core.crop at the reference boxes."""
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
