"""Frame -> face results: detection, quality gate, crop, one batched liveness run."""
from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass, field

import numpy as np

from fasdesk.core.inference.detector import LIVE_MAX_SIDE, Detection, FaceDetector
from fasdesk.core.io.imageio import to_bgr8
from fasdesk.core.decision.verdict import DEFAULT_THRESHOLD, UNSURE, label
from fasdesk.core.inference.liveness import LivenessEngine, SplitBatchEngine

# The pretrained model's documented minimum face size (longer box side, pixels).
MIN_FACE_SIZE = 64
# A box reaching closer than this to the image edge is treated as cut by the border.
BORDER_MARGIN = 2

# A face whose logits came out NaN/inf gets no score and no verdict, and says why.
INVALID_OUTPUT = "model error: invalid scores (NaN or infinite logits); no verdict"


def _finite(value: float, digits: int) -> float | None:
    """A float for JSON: rounded, or None when NaN/inf (JSON has no such numbers)."""
    value = float(value)
    return round(value, digits) if math.isfinite(value) else None


@dataclass
class FaceResult:
    box: tuple[int, int, int, int]  # x, y, w, h in original image pixels
    detector_score: float
    p_real: float | None  # None when the face was not judged (see reason)
    label: str  # "real", "spoof" or "unsure"
    reason: str | None = None
    logits: list[float] = field(default_factory=list)
    landmarks: tuple[tuple[float, float], ...] = ()

    def relabel(self, threshold: float) -> str:
        """The label under another threshold (no new inference)."""
        return label(self.p_real, threshold)

    def to_json(self) -> dict:
        return {"box": list(self.box), "detector_score": _finite(self.detector_score, 4),
                "p_real": None if self.p_real is None else _finite(self.p_real, 6),
                "label": self.label, "reason": self.reason,
                "logits": [_finite(v, 5) for v in self.logits]}


@dataclass
class FrameTimings:
    """Seconds spent in each stage for one frame."""
    detect: float = 0.0
    preprocess: float = 0.0
    liveness: float = 0.0

    @property
    def total(self) -> float:
        return self.detect + self.preprocess + self.liveness


def quality_issue(box, width: int, height: int, min_face: int = MIN_FACE_SIZE) -> str | None:
    """Why a face cannot be judged fairly, or None when it can."""
    x, y, w, h = box
    if max(w, h) < min_face:
        return f"face too small ({max(w, h):.0f} px, model needs at least {min_face} px)"
    if (x < BORDER_MARGIN or y < BORDER_MARGIN or x + w > width - BORDER_MARGIN
            or y + h > height - BORDER_MARGIN):
        return "face cut by the image border"
    return None


class Pipeline:
    """Detector + liveness engine + quality gate, for single frames."""

    def __init__(self, detector: FaceDetector, engine: LivenessEngine,
                 threshold: float = DEFAULT_THRESHOLD, min_face: int = MIN_FACE_SIZE):
        self.detector = detector
        self.engine = engine
        self.threshold = threshold
        self.threshold_source = "given"  # or "model" / "default": see build_pipeline
        # Why the model's card could not be read when the default threshold stood in for it.
        self.card_problem: str | None = None
        self.min_face = min_face
        self.last_timings = FrameTimings()
        self._replicas: list[Pipeline | None] = []
        self._replicas_lock = threading.Lock()

    def replica(self, threads: int | None = 1) -> "Pipeline":
        """An independent copy for another thread: its own detector and liveness session,
        each with `threads` onnxruntime threads (one per worker keeps parallel workers from
        competing for the cores)."""
        d = self.detector
        detector = FaceDetector(d.model_path, d.score_threshold, d.nms_threshold, d.max_side,
                                d.fine_side, backend=d.backend, threads=threads)
        engine = LivenessEngine(self.engine.model_path, providers=self.engine.session.get_providers(),
                                threads=threads, optimize=self.engine.optimize)
        return Pipeline(detector, engine, self.threshold, self.min_face)

    @property
    def single_threaded(self) -> bool:
        return self.detector.threads == 1 and self.engine.threads == 1

    def worker_replica(self, slot: int) -> "Pipeline":
        """The single-threaded pipeline of parallel worker number `slot` (0, 1, ...): this
        one for slot 0 when it is single-threaded itself, else a replica made on first use
        (in the calling thread, so one worker can start while another loads its models)
        and kept for later batches. It follows this pipeline's threshold and minimum face
        size. One batch at a time: each slot is asked for by one thread."""
        own = 1 if self.single_threaded else 0
        if slot < own:
            return self
        index = slot - own
        with self._replicas_lock:
            self._replicas += [None] * (index + 1 - len(self._replicas))
            copy = self._replicas[index]
        if copy is None:
            copy = self.replica()
            with self._replicas_lock:
                self._replicas[index] = copy
        copy.threshold, copy.min_face = self.threshold, self.min_face
        return copy

    def process(self, frame: np.ndarray, rgb: bool = False) -> list[FaceResult]:
        """Face results for one frame of any layout (see imageio.to_bgr8)."""
        image = to_bgr8(frame, rgb=rgb)
        t0 = time.perf_counter()
        detections = self.detector.detect(image)
        results = self.classify_detections(image, detections)
        self.last_timings.detect = time.perf_counter() - t0 - (
            self.last_timings.preprocess + self.last_timings.liveness)
        return results

    def classify_detections(self, image: np.ndarray,
                            detections: list[Detection]) -> list[FaceResult]:
        """Quality gate and liveness for faces already found in an 8-bit BGR image."""
        height, width = image.shape[:2]
        results: list[FaceResult] = []
        judged: list[int] = []
        for det in detections:
            # Integer boxes (truncated, as upstream does) are both reported and cropped, so
            # a reported box reproduces its logits exactly.
            box = tuple(int(v) for v in det.box)
            reason = quality_issue(box, width, height, self.min_face)
            results.append(FaceResult(box=box, detector_score=det.score, p_real=None,
                                      label=UNSURE, reason=reason, landmarks=det.landmarks))
            if reason is None:
                judged.append(len(results) - 1)
        p_real, logits, cropping, running = self.engine.judge(image, [results[i].box for i in judged])
        for j, i in enumerate(judged):
            if not math.isfinite(p_real[j]):
                results[i].reason = INVALID_OUTPUT  # stays unsure, with no score
                continue
            results[i].p_real = float(p_real[j])
            results[i].logits = [float(v) for v in logits[j]]
            results[i].label = label(results[i].p_real, self.threshold)
        self.last_timings = FrameTimings(preprocess=cropping, liveness=running)
        return results


def build_pipeline(model=None, detector=None, threshold: float | None = DEFAULT_THRESHOLD,
                   providers: list[str] | None = None, live: bool = False,
                   threads: int | None = None) -> Pipeline:
    """A pipeline from registry ids or file paths (None = the defaults).

    live=True sizes detection for camera frames (detector.LIVE_MAX_SIDE, one pass) and
    runs several faces as two half-batches on two cores (liveness.SplitBatchEngine);
    photos keep the default passes that also find small faces in large images.
    threads=1 makes a single-threaded pipeline for photos, which then serves as the first
    of a folder's parallel workers (Pipeline.worker_replica) instead of idling beside them.
    The liveness model runs in its fast form where the exact rewrite applies
    (fasdesk.core.inference.optimize); registry models must match their recorded SHA-256.

    threshold=None: the one rule for a model's threshold, the same in every front end: the
    threshold stored with the model (its card or registry entry) when there is one, else
    DEFAULT_THRESHOLD. `threshold_source` on the result says which ("given", "model",
    "default").

    Raises registry.MissingModelError, liveness.ModelError or detector.DetectorError with
    a message for the user.
    """
    from fasdesk.core.models import registry

    detector_path = registry.resolve(detector, kind="detector")
    model_path = registry.resolve(model, kind="liveness")
    source, card_trouble = "given", None
    if threshold is None:
        from fasdesk.core.models.cards import card_problem, stored_threshold

        entry = registry.registry_entry_for(model_path)
        threshold = stored_threshold(model_path, entry)
        source = "model" if threshold is not None else "default"
        if threshold is None:
            threshold = DEFAULT_THRESHOLD
            card_trouble = card_problem(model_path)
    # Live: the detector stays on the calling thread, so the liveness session's pool is
    # the only one spinning between frames (see fasdesk.core.inference.runtime).
    face_detector = (FaceDetector(detector_path, max_side=LIVE_MAX_SIDE, fine_side=0, threads=1)
                     if live else FaceDetector(detector_path, threads=threads))
    # Live frames often hold several faces: their batch runs as two halves on two cores.
    engine_class = SplitBatchEngine if live else LivenessEngine
    pipeline = Pipeline(face_detector, engine_class(model_path, providers=providers,
                                                    threads=None if live else threads),
                        threshold=threshold)
    pipeline.threshold_source = source
    pipeline.card_problem = card_trouble
    return pipeline
