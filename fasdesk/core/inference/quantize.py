"""Static INT8 quantization of a liveness model.

onnxruntime only (no torch), so the app's own model tools can use it as well as the
training backend's `export --int8`; the agreement with the fp32 model is measured by
fasdesk.core.inference.compare.agreement. Calibration data are face crops preprocessed by
fasdesk.core.inference.crop.to_tensor, the same input the model sees in use.

Method: onnxruntime's shape inference and graph pre-processing, then static QDQ
quantization: int8 weights per output channel, uint8 activations, ranges from the
calibration crops (min/max). Needs the `onnx` package (onnxruntime.quantization does).

An INT8 model is only worth deploying when it gives the fp32 model's verdicts and is
faster than the fp32 model as the app runs it (its exact fast form, fasdesk.core.inference.optimize).
`int8_gate` measures both on this machine and says whether to keep it, and why not.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Iterable

import numpy as np

from fasdesk.core.inference.liveness import LivenessEngine
from fasdesk.core.decision.verdict import DEFAULT_THRESHOLD

# Keep an INT8 model only with at least this share of identical verdicts on held-out crops.
MIN_AGREEMENT = 0.995
TIMING_RUNS = 200  # batch-1 runs per model, in alternating blocks


class QuantizeError(Exception):
    """One line for the user."""


def _calibration_reader(input_name: str, batches: Iterable[np.ndarray]):
    from onnxruntime.quantization import CalibrationDataReader

    class CropReader(CalibrationDataReader):
        """Feeds preprocessed crop batches [B, 3, S, S] to the calibrator."""

        def __init__(self):
            self._batches = iter(list(batches))

        def get_next(self):
            batch = next(self._batches, None)
            return None if batch is None else {input_name: np.ascontiguousarray(batch, np.float32)}

    return CropReader()


def quantize_static_int8(fp32_path: str | os.PathLike, out_path: str | os.PathLike,
                         calibration: np.ndarray, batch_size: int = 16) -> Path:
    """Write the static INT8 (QDQ) model of `fp32_path`, calibrated on `calibration`
    ([N, 3, S, S] float32 model inputs), to `out_path`."""
    try:
        from onnxruntime.quantization import (CalibrationMethod, QuantFormat, QuantType,
                                              quant_pre_process, quantize_static)
    except ImportError as exc:
        raise QuantizeError(f"INT8 quantization needs the onnx package ({exc}); "
                            "pip install onnx") from None
    if len(calibration) == 0:
        raise QuantizeError("no calibration crops to quantize with")
    # Only its input name is needed: no fast rewrite for a model that is about to be quantized.
    engine = LivenessEngine(fp32_path, providers=["CPUExecutionProvider"], optimize=False)
    batches = [calibration[i:i + batch_size] for i in range(0, len(calibration), batch_size)]
    out_path = Path(out_path)
    with tempfile.TemporaryDirectory(prefix="fasdesk-quant-") as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        quant_pre_process(str(fp32_path), str(prepared), skip_symbolic_shape=True)
        quantize_static(
            str(prepared), str(out_path), _calibration_reader(engine.input_name, batches),
            quant_format=QuantFormat.QDQ, activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8, per_channel=True,
            calibrate_method=CalibrationMethod.MinMax)
    return out_path


def gate_decision(agreement: float, int8_ms: float, fp32_ms: float, crops: int) -> tuple[bool, str]:
    """(keep INT8?, the one line that says why) from the verdict agreement with fp32 on
    `crops` held-out crops and the batch-1 milliseconds of INT8 and of the optimized fp32
    model measured side by side."""
    figures = (f"{100 * agreement:.2f}% identical verdicts on {crops} held-out crops "
               f"(need {100 * MIN_AGREEMENT:.1f}%), {int8_ms:.2f} ms per face vs {fp32_ms:.2f} ms "
               f"for the optimized fp32 model")
    if agreement < MIN_AGREEMENT and int8_ms >= fp32_ms:
        return False, f"INT8 not kept: it changes verdicts and is not faster: {figures}"
    if agreement < MIN_AGREEMENT:
        return False, f"INT8 not kept: it changes verdicts: {figures}"
    if int8_ms >= fp32_ms:
        return False, f"INT8 not kept: it is not faster here: {figures}"
    return True, f"INT8 kept: {figures}"


def int8_gate(fp32_path: str | os.PathLike, int8_path: str | os.PathLike, held_out: np.ndarray,
              threshold: float = DEFAULT_THRESHOLD, runs: int = TIMING_RUNS) -> dict:
    """Agreement of the INT8 model with fp32 on `held_out` crops, and both models' batch-1
    time on this machine (fp32 in the fast form the app runs it in), with the decision:
    {"kept", "reason", "agreement": {...}, "ms_per_face": {"int8", "fp32_optimized"},
    "fp32_optimized": bool}."""
    from fasdesk.core.inference.compare import agreement, per_face_ms

    fp32 = LivenessEngine(fp32_path, providers=["CPUExecutionProvider"])
    int8 = LivenessEngine(int8_path, providers=["CPUExecutionProvider"], optimize=False)
    measured = agreement(fp32, int8, held_out, threshold)
    timing = per_face_ms({"int8": int8, "fp32_optimized": fp32}, held_out[:1], runs=runs)
    kept, reason = gate_decision(measured["agreement"], timing["int8"], timing["fp32_optimized"],
                                 measured["crops"])
    return {"kept": kept, "reason": reason, "agreement": measured, "ms_per_face": timing,
            "fp32_optimized": fp32.optimized}
