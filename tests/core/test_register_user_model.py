"""The user manifest: trained models join the registry and resolve like shipped ones."""
from __future__ import annotations

import shutil

import pytest

from fasdesk.core.models import registry
from fasdesk.core.io.paths import user_models_dir


def test_registered_model_resolves_and_replaces_its_old_entry(fp32_model):
    user_models_dir().mkdir(parents=True)
    shutil.copy(fp32_model, user_models_dir() / "mine.onnx")
    entry = registry.ModelEntry(id="mine", kind="liveness", file="mine.onnx", input_size=128,
                                classes=("real", "spoof"), extra={"source": "training"})
    registry.register_user_model(entry)
    assert registry.resolve("mine") == user_models_dir() / "mine.onnx"
    assert registry.get_entry("mine").extra == {"source": "training"}
    registry.register_user_model(registry.ModelEntry(id="mine", kind="liveness",
                                                     file=str(fp32_model)))
    assert [e.id for e in registry.load_manifest()].count("mine") == 1
    assert registry.resolve("mine") == fp32_model  # absolute file paths work too


def test_builtin_ids_are_not_overwritten():
    with pytest.raises(ValueError, match="built-in"):
        registry.register_user_model(registry.ModelEntry(id=registry.DEFAULT_LIVENESS,
                                                         kind="liveness", file="x.onnx"))
