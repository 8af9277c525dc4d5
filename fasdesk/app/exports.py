"""A training export joins the model list. No Qt.

`training export CHECKPOINT OUT.onnx` writes OUT (and its card) and, with a kept INT8
model at OUT, the fp32 model beside it (training.layout.fp32_twin). Here they get the
names the model list shows: the fp32 model `<id>.onnx`, the INT8 one `<id>-int8.onnx`
(an INT8 model asked for but not kept leaves the fp32 model at OUT, renamed to the plain
name), each registered with fasdesk.core.models.cards.register_model_file.
"""
from __future__ import annotations

from pathlib import Path

from fasdesk.core.io.paths import user_models_dir
from fasdesk.core.models.cards import ModelCard, model_card_path, register_model_file
from training import layout


def export_files(model_id: str, int8: bool) -> list[Path]:
    """The model files an export under this name ends with (OUT first)."""
    folder = user_models_dir()
    return ([folder / f"{model_id}-int8.onnx", folder / f"{model_id}.onnx"] if int8
            else [folder / f"{model_id}.onnx"])


def register_export(onnx_written: list[Path], model_id: str,
                    checkpoint: str) -> tuple[list[tuple[str, Path]], dict[Path, Path]]:
    """Add an export's models to the model list; `onnx_written` are its .onnx artifacts
    in the order the backend reported them (OUT last). Returns the (id, path) pairs and
    {old path: new path} of the files renamed (models and cards).
    Raises OSError (nothing written, a file that cannot be moved) or CardError."""
    onnx = [Path(p) for p in onnx_written if Path(p).is_file()]
    if not onnx:
        raise OSError("the export finished but wrote no .onnx file")
    out = onnx[-1]  # the OUT argument, always written last
    fp32 = next((p for p in onnx if layout.is_fp32_twin(p)), None)
    plain = f"{model_id}.onnx"
    found = [(model_id, fp32, plain), (f"{model_id}-int8", out, None)] if fp32 else \
        [(model_id, out, plain)]
    card = ModelCard.read(out)  # the fp32 twin has none of its own: OUT's describes it
    registered, moved = [], {}
    for entry_id, path, name in found:
        _, final = register_model_file(
            path, entry_id, source="training", name=name, card=card,
            description=f"trained in fasdesk from {checkpoint}",
            extra={"checkpoint": checkpoint})
        registered.append((entry_id, final))
        if final != path:
            moved.update({path: final, model_card_path(path): model_card_path(final)})
    return registered, moved
