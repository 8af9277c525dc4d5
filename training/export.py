"""`export CHECKPOINT OUT.onnx`: the classifier of a checkpoint as an ONNX model.

The model takes `input` float32 [N, 3, S, S] (RGB in [0, 1], fasdesk.core.inference.crop.to_tensor)
and returns `output` [N, K] logits (class 0 real); the batch is dynamic and the Fourier
branch is left out. Before anything is written the ONNX model is run with onnxruntime
against the torch model on random inputs and on prepared crops when given; a max |diff|
above 1e-4 stops the export.

`--int8 --calibration DATA`: a static INT8 (QDQ) model is calibrated on half of up to 256
crops of the prepared dataset DATA and checked on the other half. It is kept only when it
gives the fp32 model's verdict on at least 99.5% of those held-out crops AND runs faster
than the fp32 model as the app runs it (optimized) on this machine
(fasdesk.core.inference.quantize.int8_gate). Kept: OUT.onnx is the INT8 model and the fp32 model
sits beside it as `<stem>.fp32.onnx`. Not kept: OUT.onnx is the fp32 model, and one line
says why (agreement and timings). The model card records the outcome either way.

`--threshold P`: the threshold picked for this model (the Evaluate step's or a camera
calibration's); it is stored in the card as `threshold.value`, and the app applies it
whenever this file (same SHA-256) is the live model, and only then
(fasdesk.core.models.cards.stored_threshold).

The model card `<stem>.card.json` (fasdesk.core.models.cards.ModelCard) holds: format, file, sha256,
input (name, size), output, classes, suggested_threshold (the stored threshold, else 0.5),
threshold ({value} when one was given), metrics (what is known: the
checkpoint's validation accuracy, an eval report's figures with --report), split
(val_fraction, seed, so eval finds the held-out images), source_checkpoint (path,
sha256), created, max_abs_diff_vs_torch, and with --int8 the gate's outcome ("int8":
kept, reason, agreement, ms_per_face) and the agreement report of a kept INT8 model.
"""
from __future__ import annotations

import os
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from fasdesk.core.decision.verdict import DEFAULT_THRESHOLD
from fasdesk.core.inference.quantize import MIN_AGREEMENT
from fasdesk.core.models.registry import sha256_of
from fasdesk.core.models.cards import CARD_FORMAT, ModelCard
from training import layout
from training.events import Emitter
from training.model import CheckpointError, load_model

TOLERANCE = 1e-4
OPSET = 13


class ExportError(Exception):
    """One line for the user."""


def export_onnx(classifier: torch.nn.Module, input_size: int, path: Path) -> None:
    """Write the classifier (eval mode) as ONNX with a dynamic batch."""
    dummy = torch.zeros(1, 3, input_size, input_size)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        torch.onnx.export(classifier, (dummy,), str(path), input_names=["input"],
                          output_names=["output"],
                          dynamic_axes={"input": {0: "batch_size"}, "output": {0: "batch_size"}},
                          opset_version=OPSET, dynamo=False)


def max_abs_diff(classifier: torch.nn.Module, onnx_path: Path, inputs: np.ndarray) -> float:
    import onnxruntime as ort

    from fasdesk.core.inference.runtime import session_options

    session = ort.InferenceSession(str(onnx_path), session_options(),
                                   providers=["CPUExecutionProvider"])
    with torch.no_grad():
        expected = classifier(torch.from_numpy(inputs)).numpy()
    got = session.run(["output"], {"input": inputs})[0]
    return float(np.abs(got - expected).max())


def _calibration_crops(data_dir, size: int, limit: int, seed: int = 0) -> np.ndarray:
    """Up to `limit` prepared crops (seeded choice) as the model input [N, 3, S, S]."""
    from training import data as D

    try:
        prepared = D.load_prepared(data_dir)
    except D.DataError as exc:
        raise ExportError(f"--calibration: {exc}") from None
    if prepared.size != size:
        raise ExportError(f"--calibration: {data_dir} has {prepared.size}x{prepared.size} crops, "
                          f"the model takes {size}x{size}")
    n = len(prepared.rows)
    idx = np.sort(np.random.RandomState(seed).permutation(n)[:limit])
    try:
        crops = D.CropStore(prepared, idx, cache_bytes=0).batch(idx)
    except D.DataError as exc:
        raise ExportError(f"--calibration: {exc}") from None
    return D.tensor_batch(crops).numpy()


def run(checkpoint, out, int8=False, calibration=None, calibration_size=256, threshold=None,
        report=None, emitter: Emitter | None = None) -> dict:
    em = emitter or Emitter()
    if threshold is not None and not 0.0 <= threshold <= 1.0:
        raise ExportError(f"--threshold must be between 0 and 1, got {threshold}")
    checkpoint, out = Path(checkpoint), Path(out)
    if out.suffix.lower() != ".onnx":
        raise ExportError(f"the output must be an .onnx file, got {out.name}")
    if int8 and not calibration:
        raise ExportError("--int8 needs --calibration DATA (a prepared dataset) to calibrate on")
    eval_report = None
    if report:
        try:
            from fasdesk.core.io.files import read_json

            eval_report = read_json(report, 16 << 20)
        except (OSError, ValueError) as exc:
            raise ExportError(f"--report {report}: cannot read it ({exc})") from None
    try:
        model, ckpt = load_model(checkpoint)
    except CheckpointError as exc:
        raise ExportError(str(exc)) from None
    config = ckpt["config"]
    size = int(config["input_size"])
    steps = 4 if int8 else 3
    em.start("export", total=steps, checkpoint=str(checkpoint), out=str(out), int8=bool(int8))
    classifier = model.model.eval()

    calib = None
    if calibration:
        calib = _calibration_crops(calibration, size, calibration_size)
    out.parent.mkdir(parents=True, exist_ok=True)
    from fasdesk.core.io.files import clean_stale_work_dirs, work_dir_prefix

    clean_stale_work_dirs(out.parent, "export")  # what a killed export left
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=work_dir_prefix("export")) as tmpdir:
        fp32_tmp = Path(tmpdir) / "model.onnx"
        export_onnx(classifier, size, fp32_tmp)
        em.progress(1, steps, None, stage="exported")
        check = np.random.RandomState(0).rand(8, 3, size, size).astype(np.float32)
        if calib is not None:
            check = np.concatenate([check, calib[:64]])
        diff = max_abs_diff(classifier, fp32_tmp, check)
        em.progress(2, steps, None, stage="verified", max_abs_diff=diff)
        if not diff <= TOLERANCE:
            raise ExportError(f"the ONNX model differs from the torch model by {diff:.3g} "
                              f"(> {TOLERANCE:g}); nothing was written")
        em.log(f"export: ONNX matches torch (max |diff| {diff:.2e} on {len(check)} inputs)")
        agreement = gate = None
        if int8:
            from fasdesk.core.inference.quantize import QuantizeError, int8_gate, quantize_static_int8

            int8_tmp = Path(tmpdir) / "model.int8.onnx"
            half = max(1, len(calib) // 2)
            try:
                quantize_static_int8(fp32_tmp, int8_tmp, calib[:half] if len(calib) > 1 else calib)
            except QuantizeError as exc:
                raise ExportError(str(exc)) from None
            em.progress(3, steps, None, stage="quantized")
            held_out = calib[half:] if len(calib) > 1 else calib
            gate = int8_gate(fp32_tmp, int8_tmp, held_out,
                             DEFAULT_THRESHOLD if threshold is None else threshold)
            agreement = dict(gate["agreement"])
            agreement["images"] = agreement.pop("crops")  # held-out prepared images
            agreement["calibration_images"] = int(half)
            gate["agreement"] = agreement
            em.metric(scope="export", **agreement)
            em.log(f"export: {gate['reason']}")
            fp32_out = layout.fp32_twin(out)
            if gate["kept"]:
                os.replace(fp32_tmp, fp32_out)
                os.replace(int8_tmp, out)
                em.artifact(fp32_out, "onnx")
            else:
                os.replace(fp32_tmp, out)
                # An earlier export's fp32 twin would now stand beside an fp32 model.
                fp32_out.unlink(missing_ok=True)
        else:
            os.replace(fp32_tmp, out)
    em.artifact(out, "onnx")
    card = _model_card(out, checkpoint, ckpt, threshold, diff, eval_report, gate)
    cpath = ModelCard.from_json(card).write(out)
    em.artifact(cpath, "model_card")
    em.progress(steps, steps, 0.0, stage="done")
    kept = bool(gate and gate["kept"])
    em.done(onnx=str(out), model_card=str(cpath), max_abs_diff=diff, int8=kept,
            int8_requested=bool(int8), int8_reason=gate["reason"] if gate else None,
            agreement=agreement)
    return card


def _model_card(out: Path, checkpoint: Path, ckpt: dict, threshold: float | None, diff: float,
                eval_report: dict | None, gate: dict | None) -> dict:
    config = ckpt["config"]
    metrics = {}
    if ckpt.get("validation_accuracy") is not None:
        metrics["validation_accuracy"] = float(ckpt["validation_accuracy"])
    if eval_report:
        for key in ("split", "n", "accuracy", "roc_auc", "average_precision", "apcer", "bpcer",
                    "acer", "eer", "per_class_accuracy", "operating_points"):
            if key in eval_report:
                metrics[key] = eval_report[key]
    train_args = ckpt.get("train_args") or {}
    return {
        "format": CARD_FORMAT,
        "file": out.name,
        "sha256": sha256_of(out),
        "precision": "int8" if gate and gate["kept"] else "fp32",
        "input": {"name": "input", "shape": ["N", 3, config["input_size"], config["input_size"]],
                  "size": int(config["input_size"]), "layout": "NCHW RGB float32 in [0, 1]"},
        "output": {"name": "output", "shape": ["N", len(config["classes"])], "kind": "logits"},
        "classes": list(config["classes"]),
        "suggested_threshold": DEFAULT_THRESHOLD if threshold is None else float(threshold),
        "threshold": None if threshold is None else {"value": float(threshold)},
        "metrics": metrics,
        "split": {"val_fraction": train_args.get("val_fraction", 0.2), "seed": train_args.get("seed", 0)},
        "source_checkpoint": {"path": str(checkpoint.resolve()), "sha256": sha256_of(checkpoint),
                              "epoch": ckpt.get("epoch")},
        "max_abs_diff_vs_torch": diff,
        "int8_agreement": gate["agreement"] if gate and gate["kept"] else None,
        "int8": None if gate is None else {
            "kept": gate["kept"], "reason": gate["reason"], "agreement": gate["agreement"],
            "ms_per_face": gate["ms_per_face"], "min_agreement": MIN_AGREEMENT,
            "compared_with": "the fp32 model, optimized as the app runs it"
                             if gate["fp32_optimized"] else "the fp32 model"},
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
