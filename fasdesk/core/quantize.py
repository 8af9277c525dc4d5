"""Static INT8 quantization of a liveness model.

onnxruntime only (no torch), so the app's own model tools can use it as well as the
training backend's `export --int8`; the agreement with the fp32 model is measured by
fasdesk.core.optimize.agreement. Calibration data are face crops preprocessed by
fasdesk.core.crop.to_tensor, the same input the model sees in use.

Method: onnxruntime's shape inference and graph pre-processing, then static QDQ
quantization: int8 weights per output channel, uint8 activations, ranges from the
calibration crops (min/max). Needs the `onnx` package (onnxruntime.quantization does).
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Iterable

import numpy as np

from fasdesk.core.liveness import LivenessEngine


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
    engine = LivenessEngine(fp32_path, providers=["CPUExecutionProvider"])
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
