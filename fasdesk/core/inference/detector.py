"""Face detection with YuNet, run by onnxruntime (or by cv2.FaceDetectorYN, like upstream).

YuNet's anchors cover faces of roughly 10 to 300 pixels at its input size, so running it
on a full-resolution photo misses big faces (a 3840x2560 portrait yields nothing). We
therefore detect on a copy scaled down to fit `max_side`, and for large images add a
second, finer pass so small faces in a crowd photo are still found; the boxes of all
passes are mapped back to original pixels and merged with non-maximum suppression.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import cv2
import numpy as np

from fasdesk.core.inference.runtime import session_options
from fasdesk.core.io.errors import one_line

# OpenCV 5's DNN engine warns on every detector creation that it ignores target hints.
cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)

SCORE_THRESHOLD = 0.8
NMS_THRESHOLD = 0.3
TOP_K = 5000
# Coarse-pass side for live camera frames (one pass, no fine pass). Faces smaller than the
# liveness model's 64 px minimum get no verdict anyway, and at 320 px a 64 px face of a
# 640x480 frame is still 32 px, well inside YuNet's range; boxes stay within ~6% of the
# face size of full-resolution detection (verdicts unchanged on the samples) at a third of
# the cost.
LIVE_MAX_SIDE = 320
# "onnxruntime" runs YuNet through onnxruntime (about 2x faster than OpenCV's DNN module
# here, same boxes to 1e-4 px); "opencv" is cv2.FaceDetectorYN, as upstream's demo uses.
BACKENDS = ("onnxruntime", "opencv")
STRIDES = (8, 16, 32)
PAD_MULTIPLE = 32
YUNET_OUTPUTS = {f"{kind}_{stride}" for kind in ("cls", "obj", "bbox", "kps") for stride in STRIDES}


@dataclass(frozen=True)
class Detection:
    box: tuple[float, float, float, float]  # x, y, w, h in original image pixels
    score: float
    landmarks: tuple[tuple[float, float], ...]  # eyes, nose tip, mouth corners


class DetectorError(Exception):
    """The detector model is missing or cannot be loaded."""


FREE_SIZE_RECIPE = "yunet-free-size-v1"


def _free_size_model(model_path) -> tuple[bytes | None, dict]:
    """The modelcache recipe: YuNet with free input height and width (the file fixes
    640x640, but its reshapes and resizes work for any multiple of 32)."""
    try:
        import onnx
    except ImportError:  # then cv2.FaceDetectorYN runs it
        return None, {"note": "the onnx package is not installed", "cache": False}
    try:
        model = onnx.load(str(model_path))
    except Exception as exc:  # protobuf and onnx raise several types
        raise DetectorError(f"cannot load detector model {model_path}: {one_line(exc)}") from None
    dims = model.graph.input[0].type.tensor_type.shape.dim
    names = {o.name for o in model.graph.output}
    if len(dims) != 4 or not names >= YUNET_OUTPUTS:
        raise DetectorError(f"{model_path} is not a YuNet face detector "
                            f"(expected outputs {', '.join(sorted(YUNET_OUTPUTS))})")
    for dim, name in ((dims[2], "height"), (dims[3], "width")):
        dim.ClearField("dim_value")
        dim.dim_param = name
    for output in model.graph.output:
        output.type.tensor_type.shape.dim[1].ClearField("dim_value")
        output.type.tensor_type.shape.dim[1].dim_param = "anchors"
    del model.graph.value_info[:]
    return model.SerializeToString(), {}


def _yunet_session(model_path: str, threads: int | None):
    """An onnxruntime session for YuNet with a free input size (built once per detector
    file and kept in the user cache, fasdesk.core.inference.modelcache), or None without onnx."""
    import onnxruntime as ort

    from fasdesk.core.inference import modelcache

    try:
        derived = modelcache.derive(model_path, FREE_SIZE_RECIPE, _free_size_model)
    except OSError as exc:
        raise DetectorError(f"cannot read detector model {model_path}: "
                            f"{exc.strerror or exc}") from None
    if not derived.derived:
        return None
    try:
        return ort.InferenceSession(str(derived.path) if derived.path else derived.data,
                                    session_options(threads), providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises several private exception types
        raise DetectorError(f"cannot load detector model {model_path}: {one_line(exc)}") from None


class FaceDetector:
    """YuNet face detector working on any image size.

    max_side: the longer side of the coarse pass (faces from about 1/60 to the whole
    frame). fine_side: the longer side of the extra pass for images much larger than
    max_side; 0 disables it.
    """

    def __init__(self, model_path: str | os.PathLike, score_threshold: float = SCORE_THRESHOLD,
                 nms_threshold: float = NMS_THRESHOLD, max_side: int = 640, fine_side: int = 1920,
                 backend: str = "onnxruntime", threads: int | None = None):
        self.model_path = str(model_path)
        if not os.path.isfile(self.model_path):
            raise DetectorError(f"detector model not found: {self.model_path}")
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
        from fasdesk.core.inference.runtime import refuse_control_flow

        refuse_control_flow(self.model_path, "detector model", DetectorError)
        self.score_threshold = score_threshold
        self.nms_threshold = nms_threshold
        self.max_side = max_side
        self.fine_side = fine_side
        self.backend = backend
        self.threads = threads
        if backend == "onnxruntime":
            self._session = _yunet_session(self.model_path, threads)
            if self._session is not None:
                self._input_name = self._session.get_inputs()[0].name
                self._output_names = [o.name for o in self._session.get_outputs()]
                return
            self.backend = backend = "opencv"  # onnx (to free the input size) is missing
        try:
            self._yunet = cv2.FaceDetectorYN.create(
                self.model_path, "", (320, 320), score_threshold, nms_threshold, TOP_K)
        except cv2.error as exc:
            raise DetectorError(f"cannot load detector model {self.model_path}: "
                                f"{str(exc).strip().splitlines()[-1]}") from None
        self._input_size = (320, 320)

    def _pass_sides(self, width: int, height: int) -> list[int]:
        longest = max(width, height)
        sides = [min(longest, self.max_side)]
        if self.fine_side and longest > 1.5 * self.max_side:
            sides.append(min(longest, self.fine_side))
        return sides

    def _run(self, image: np.ndarray, side: int) -> np.ndarray:
        height, width = image.shape[:2]
        scale = side / max(width, height)
        if scale < 1.0:
            size = (max(1, round(width * scale)), max(1, round(height * scale)))
            small = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        else:
            scale, small = 1.0, image
        in_size = (small.shape[1], small.shape[0])
        # The upstream pipeline the pretrained liveness model was validated with feeds YuNet
        # RGB; doing the same keeps our boxes (and so the crops) on its reference boxes.
        rgb = cv2.cvtColor(small, cv2.COLOR_BGR2RGB)
        if self.backend == "onnxruntime":
            faces = self._detect_onnxruntime(rgb)
        else:
            if in_size != self._input_size:
                self._yunet.setInputSize(in_size)
                self._input_size = in_size
            _, faces = self._yunet.detect(rgb)
            faces = None if faces is None else faces.copy()
        if faces is None or len(faces) == 0:
            return np.zeros((0, 15), np.float32)
        # Columns: x, y, w, h, 5 landmark (x, y) pairs, score.
        sx = width / in_size[0]
        sy = height / in_size[1]
        faces[:, 0:14:2] *= sx
        faces[:, 1:14:2] *= sy
        return faces

    def _detect_onnxruntime(self, rgb: np.ndarray) -> np.ndarray:
        """YuNet's raw outputs decoded the way cv2.FaceDetectorYN does (same pad to a
        multiple of 32, same anchor decoding and NMS): rows of x, y, w, h, 5 landmarks,
        score, in `rgb`'s pixels."""
        height, width = rgb.shape[:2]
        pad_h, pad_w = -(-height // PAD_MULTIPLE) * PAD_MULTIPLE, -(-width // PAD_MULTIPLE) * PAD_MULTIPLE
        blob = np.zeros((1, 3, pad_h, pad_w), np.float32)
        blob[0, :, :height, :width] = rgb.transpose(2, 0, 1)
        out = dict(zip(self._output_names, self._session.run(None, {self._input_name: blob})))
        rows = []
        for stride in STRIDES:
            cols = pad_w // stride
            score = np.sqrt(np.clip(out[f"cls_{stride}"][0, :, 0], 0, 1)
                            * np.clip(out[f"obj_{stride}"][0, :, 0], 0, 1))
            keep = np.flatnonzero(score >= self.score_threshold)
            if len(keep) == 0:
                continue
            col = (keep % cols).astype(np.float32)[:, None]
            row = (keep // cols).astype(np.float32)[:, None]
            box = out[f"bbox_{stride}"][0, keep]
            kps = out[f"kps_{stride}"][0, keep]
            faces = np.empty((len(keep), 15), np.float32)
            faces[:, 2:4] = np.exp(box[:, 2:4]) * stride
            faces[:, 0:1] = (col + box[:, 0:1]) * stride - faces[:, 2:3] / 2
            faces[:, 1:2] = (row + box[:, 1:2]) * stride - faces[:, 3:4] / 2
            faces[:, 4:14:2] = (kps[:, 0::2] + col) * stride
            faces[:, 5:14:2] = (kps[:, 1::2] + row) * stride
            faces[:, 14] = score[keep]
            rows.append(faces)
        if not rows:
            return np.zeros((0, 15), np.float32)
        faces = np.concatenate(rows)
        keep = cv2.dnn.NMSBoxes(faces[:, :4].astype(np.int32).tolist(), faces[:, 14].tolist(),
                                self.score_threshold, self.nms_threshold, 1.0, TOP_K)
        return faces[np.asarray(keep, int).reshape(-1)]

    def detect(self, image_bgr: np.ndarray) -> list[Detection]:
        """Faces in an 8-bit BGR image, best score first."""
        height, width = image_bgr.shape[:2]
        if min(height, width) < 8:
            return []
        runs = [self._run(image_bgr, side) for side in self._pass_sides(width, height)]
        faces = np.concatenate(runs) if len(runs) > 1 else runs[0]
        if len(runs) > 1 and len(faces) > 1:
            keep = cv2.dnn.NMSBoxes(faces[:, :4].tolist(), faces[:, 14].tolist(),
                                    self.score_threshold, self.nms_threshold)
            faces = faces[np.asarray(keep, int).reshape(-1)]
        order = np.argsort(-faces[:, 14])
        return [Detection(box=tuple(float(v) for v in f[:4]), score=float(f[14]),
                          landmarks=tuple((float(f[4 + 2 * i]), float(f[5 + 2 * i])) for i in range(5)))
                for f in faces[order]]
