"""The model card (read and written compatibly, each field's type checked) and the one
registration of a model file, as training exports and calibration use them."""
from __future__ import annotations

import json

import pytest

from fasdesk.app.exports import register_export
from fasdesk.core.io.paths import user_models_dir
from fasdesk.core.models import registry
from fasdesk.core.models.cards import (CardError, ModelCard, model_card_path,
                                       register_model_file, stored_threshold)
from training import layout

# What `training export` wrote before the card had a class, fields in its order.
OLD_CARD = {
    "format": 1, "file": "door.onnx", "sha256": "ab" * 32, "precision": "fp32",
    "input": {"name": "input", "shape": ["N", 3, 128, 128], "size": 128,
              "layout": "NCHW RGB float32 in [0, 1]"},
    "output": {"name": "output", "shape": ["N", 2], "kind": "logits"},
    "classes": ["real", "spoof"], "suggested_threshold": 0.42, "threshold": {"value": 0.42},
    "metrics": {"validation_accuracy": 0.97}, "split": {"val_fraction": 0.2, "seed": 0},
    "source_checkpoint": {"path": "/runs/best.pth", "sha256": "cd" * 32, "epoch": 3},
    "max_abs_diff_vs_torch": 1e-6, "int8_agreement": None, "int8": None,
    "created": "2026-01-02T03:04:05Z",
}


def test_a_card_comes_back_as_it_was_written(tmp_path):
    model = tmp_path / "door.onnx"
    model_card_path(model).write_text(json.dumps(OLD_CARD))
    card = ModelCard.read(model)
    assert card.threshold_value == 0.42 and card.input_size == 128
    assert card.classes == ("real", "spoof") and card.other["split"]["seed"] == 0
    assert card.to_json() == OLD_CARD  # every field, the unknown ones too
    card.with_threshold(0.3, **{"from": "calibration"}).write(model)
    again = json.loads(model_card_path(model).read_text())
    assert again["threshold"] == {"value": 0.3, "from": "calibration"}
    assert again["suggested_threshold"] == 0.3
    assert {k: v for k, v in again.items() if "threshold" not in k} == \
        {k: v for k, v in OLD_CARD.items() if "threshold" not in k}
    assert ModelCard.read(tmp_path / "none.onnx") is None


@pytest.mark.parametrize("field, value", [
    ("classes", "real,spoof"), ("classes", ["real"]), ("classes", [1, 2]),
    ("input", {"size": "128"}), ("input", {"size": True}), ("input", [128]),
    ("threshold", {"value": "0.5"}), ("threshold", {"value": 1.5}), ("threshold", 0.5),
    ("suggested_threshold", "high"), ("sha256", 123), ("metrics", []), ("format", "1"),
])
def test_a_field_of_the_wrong_type_is_one_clear_error(tmp_path, field, value):
    model = tmp_path / "m.onnx"
    model_card_path(model).write_text(json.dumps({**OLD_CARD, field: value}))
    with pytest.raises(CardError, match=f"'{field}' must be"):
        ModelCard.read(model)


@pytest.mark.parametrize("content", ["{not json", "[1, 2]", "[" * 100_000, '"card"'])
def test_what_is_not_a_card_is_refused_and_ignored_where_only_read(tmp_path, content,
                                                                   fp32_model):
    model = tmp_path / "m.onnx"
    model.write_bytes(fp32_model.read_bytes())
    model_card_path(model).write_text(content)
    with pytest.raises(CardError, match="m.card.json"):
        ModelCard.read(model)
    assert stored_threshold(model) is None  # nothing fails over a bad card


def test_registering_names_the_file_and_stores_the_threshold(fp32_model):
    out = user_models_dir() / "export-tmp.onnx"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(fp32_model.read_bytes())
    ModelCard.from_json({**OLD_CARD, "file": out.name, "sha256": registry.sha256_of(out),
                         "threshold": None, "suggested_threshold": 0.5}).write(out)
    entry, path = register_model_file(out, "door-cam", source="calibration", name="door-cam.onnx",
                                      description="test", threshold=0.25,
                                      threshold_note={"from": "calibration"},
                                      extra={"session": "/s"})
    assert path == user_models_dir() / "door-cam.onnx" and not out.exists()
    assert not model_card_path(out).exists()
    card = ModelCard.read(path)
    assert card.file == "door-cam.onnx" and card.threshold == {"value": 0.25, "from": "calibration"}
    assert card.other["split"] == OLD_CARD["split"]
    got = registry.get_entry("door-cam")
    assert got.file == "door-cam.onnx" and got.sha256 == registry.sha256_of(path)
    assert got.extra == {"source": "calibration", "session": "/s", "suggested_threshold": 0.25,
                         "threshold": 0.25}
    assert registry.resolve("door-cam") == path and stored_threshold(path, got) == 0.25


def test_an_int8_export_registers_both_models_with_the_int8_card(fp32_model):
    """A kept INT8 export: OUT is the INT8 model with the card, its fp32 twin beside it."""
    folder = user_models_dir()
    folder.mkdir(parents=True, exist_ok=True)
    out = folder / "hall-int8.onnx"
    twin = layout.fp32_twin(out)
    out.write_bytes(fp32_model.read_bytes() + b"")
    twin.write_bytes(fp32_model.read_bytes())
    ModelCard.from_json({**OLD_CARD, "file": out.name, "sha256": registry.sha256_of(out)}).write(out)
    registered, moved = register_export([twin, out], "hall", "/runs/best.pth")
    assert registered == [("hall", folder / "hall.onnx"), ("hall-int8", out)]
    assert moved == {twin: folder / "hall.onnx",
                     model_card_path(twin): model_card_path(folder / "hall.onnx")}
    fp32 = registry.get_entry("hall")
    assert fp32.extra["threshold"] == 0.42 and fp32.extra["checkpoint"] == "/runs/best.pth"
    assert fp32.extra["source"] == "training" and fp32.input_size == 128
    assert registry.get_entry("hall-int8").file == out.name
    with pytest.raises(OSError, match="no .onnx"):
        register_export([folder / "missing.onnx"], "x", "/c")
