"""The ONNX liveness engine: any MiniFAS-style classifier.

A model takes float32 [N, 3, S, S] RGB crops in [0, 1] (see `fasdesk.core.inference.crop`) and
returns [N, K] logits where class 0 is "real" and the others are kinds of spoof (K = 2
for real/spoof, more for spoof types). p_real = softmax(logits)[0].

On the CPU every model runs in its fast form when the exact rewrite applies
(fasdesk.core.inference.optimize.runtime_model); `model_path` stays the file that was chosen, and
`optimized` / `optimization` say whether it runs rewritten and why (not).
"""
from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

from fasdesk.core.inference.crop import preprocess
from fasdesk.core.inference.runtime import session_options
from fasdesk.core.io.errors import one_line

# Preferred order; CPU is always the last resort.
PROVIDER_PREFERENCE = (
    "CUDAExecutionProvider",
    "CoreMLExecutionProvider",
    "DmlExecutionProvider",
    "CPUExecutionProvider",
)


class ModelError(Exception):
    """A liveness model that is missing, unreadable or of the wrong shape."""


def best_providers(available: list[str] | None = None) -> list[str]:
    """The execution providers to use, best first, from those onnxruntime has."""
    import onnxruntime as ort

    available = ort.get_available_providers() if available is None else available
    chosen = [p for p in PROVIDER_PREFERENCE if p in available]
    return chosen or ["CPUExecutionProvider"]


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def real_scores(logits: np.ndarray) -> np.ndarray:
    """p_real [N] from logits [N, K]: NaN for a face whose logits are not all finite (a
    broken model), which gets no score and no verdict."""
    p_real = softmax(logits.astype(np.float64))[:, 0]
    p_real[~np.isfinite(logits).all(axis=1)] = np.nan
    return p_real


class LivenessEngine:
    """An onnxruntime session for a liveness model; faces go through in one batched run."""

    def __init__(self, model_path: str | os.PathLike, providers: list[str] | None = None,
                 threads: int | None = None, optimize: bool = True):
        import onnxruntime as ort

        self.model_path = Path(model_path)
        if not self.model_path.is_file():
            raise ModelError(f"liveness model not found: {self.model_path}")
        from fasdesk.core.inference.runtime import refuse_control_flow

        refuse_control_flow(self.model_path, "liveness model", ModelError)
        self.threads = threads
        self.optimize = optimize
        options = session_options(threads)
        requested = providers or best_providers()
        self.runtime_model = self._runtime_model(requested[0])
        try:
            self.session = ort.InferenceSession(self.runtime_model, options, providers=requested)
        except Exception as exc:  # onnxruntime raises several private exception types
            raise ModelError(f"cannot load liveness model {self.model_path.name}: "
                             f"{one_line(exc)}") from None
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        if len(inputs) != 1 or len(outputs) < 1:
            raise ModelError(f"{self.model_path.name}: expected one input [N,3,S,S] and an "
                             f"output [N,K]; got {len(inputs)} inputs, {len(outputs)} outputs")
        shape = inputs[0].shape
        if (len(shape) != 4 or shape[1] != 3 or not isinstance(shape[2], int)
                or shape[2] != shape[3] or shape[2] < 16):
            raise ModelError(f"{self.model_path.name}: expected input [N, 3, S, S] (square RGB "
                             f"crops), got {shape}")
        if inputs[0].type != "tensor(float)":
            raise ModelError(f"{self.model_path.name}: expected a float32 input, got {inputs[0].type}")
        out_shape = outputs[0].shape
        if len(out_shape) != 2 or not isinstance(out_shape[1], int) or out_shape[1] < 2:
            raise ModelError(f"{self.model_path.name}: expected output [N, K] logits with K >= 2 "
                             f"(class 0 = real), got {out_shape}")
        self.input_name = inputs[0].name
        self.output_name = outputs[0].name
        self.input_size: int = shape[2]
        self.num_classes: int = out_shape[1]
        self.fixed_batch = shape[0] if isinstance(shape[0], int) else None
        self.provider = self.session.get_providers()[0]
        if self.optimize and not self.optimized and self.provider == "CPUExecutionProvider":
            from fasdesk.core.inference.optimize import log_not_optimized

            log_not_optimized(self.model_path, self.optimization)

    def _runtime_model(self, provider: str) -> str | bytes:
        """What onnxruntime loads: the fast copy of the model on the CPU when the rewrite
        applies, else the file itself. Sets `optimized` and `optimization` (why)."""
        if not self.optimize:
            self.optimized, self.optimization = False, "not requested"
            return str(self.model_path)
        from fasdesk.core.inference.optimize import plan

        try:
            load, self.optimized, self.optimization = plan(self.model_path, provider)
        except OSError as exc:
            raise ModelError(f"cannot read liveness model {self.model_path}: "
                             f"{exc.strerror or exc}") from None
        return load

    def logits(self, batch: np.ndarray) -> np.ndarray:
        """Raw logits [N, K] for a preprocessed batch [N, 3, S, S]."""
        if len(batch) == 0:
            return np.zeros((0, self.num_classes), np.float32)
        if self.fixed_batch is not None and len(batch) != self.fixed_batch:
            # A model exported with a fixed batch: run it face by face.
            return np.concatenate([self.logits(batch[i:i + 1]) for i in range(len(batch))])
        return self.session.run([self.output_name], {self.input_name: batch})[0]

    def p_real(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(p_real [N], logits [N, K]) for a preprocessed batch. p_real is NaN for a face
        whose logits are not all finite (a broken model): no score, not a verdict."""
        logits = self.logits(batch)
        return real_scores(logits), logits

    def judge(self, image: np.ndarray, boxes) -> tuple[np.ndarray, np.ndarray, float, float]:
        """(p_real [N], logits [N, K], seconds cropping, seconds in the model) for the face
        `boxes` of one 8-bit BGR image."""
        t0 = time.perf_counter()
        batch = preprocess(image, boxes, self.input_size)
        t1 = time.perf_counter()
        p_real, logits = self.p_real(batch)
        return p_real, logits, t1 - t0, time.perf_counter() - t1


class SplitBatchEngine(LivenessEngine):
    """A LivenessEngine for several faces per frame on a multi-core CPU: a batch of two or
    more runs as two halves at once, each on its own single-threaded session, instead of
    one session splitting every small operation across threads (which here scaled worse
    than one face at a time, and stalls when other programs hold a core). Each half also
    cuts its own crops (`judge`). One face still runs on the multi-threaded session."""

    def __init__(self, model_path: str | os.PathLike, providers: list[str] | None = None,
                 threads: int | None = None, optimize: bool = True):
        super().__init__(model_path, providers, threads, optimize)
        self._halves = []
        if self.provider == "CPUExecutionProvider" and (os.cpu_count() or 1) >= 2 \
                and self.fixed_batch is None:
            import onnxruntime as ort
            from concurrent.futures import ThreadPoolExecutor

            self._halves = [ort.InferenceSession(self.runtime_model, session_options(1),
                                                 providers=["CPUExecutionProvider"])
                            for _ in range(2)]
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fasdesk-half")

    def logits(self, batch: np.ndarray) -> np.ndarray:
        if len(batch) < 2 or not self._halves:
            return super().logits(batch)
        mid = (len(batch) + 1) // 2
        first, second = self._halves
        other = self._pool.submit(second.run, [self.output_name], {self.input_name: batch[mid:]})
        head = first.run([self.output_name], {self.input_name: batch[:mid]})[0]
        return np.concatenate([head, other.result()[0]])

    def judge(self, image: np.ndarray, boxes) -> tuple[np.ndarray, np.ndarray, float, float]:
        if len(boxes) < 2 or not self._halves:
            return super().judge(image, boxes)
        mid = (len(boxes) + 1) // 2
        first, second = self._halves

        def half(session, part):
            t = time.perf_counter()
            batch = preprocess(image, part, self.input_size)
            cropped = time.perf_counter() - t
            return session.run([self.output_name], {self.input_name: batch})[0], cropped

        t0 = time.perf_counter()
        other = self._pool.submit(half, second, boxes[mid:])
        head, cropped = half(first, boxes[:mid])
        logits = np.concatenate([head, other.result()[0]])
        wall = time.perf_counter() - t0
        # The halves overlap: the calling thread's crop time stands for the crop stage.
        return real_scores(logits), logits, cropped, wall - cropped
