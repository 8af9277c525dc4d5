"""Calibrating a camera: record real faces and attacks, measure the model, pick the
threshold, optionally fine-tune, and keep it all as a profile. No Qt, no torch.

A *session* is one calibration: a folder under the user data folder holding

- `dataset/`: the recordings as a folders-layout dataset (see fasdesk.core.datasets.dataset_info):
  `real/<stage>_<frame>.jpg` and `spoof/<attack>/<attack>_<frame>.jpg`, each with its
  `_BB.txt` (the face box in the frame's pixels), so `training prep` and the Training
  tab read it as it is;
- `session.json`: what was recorded (source, frames, faces kept and rejected, and for every
  sample its frame number, time and box), the settings and the reports.

Recording a stage (`record_stage`) runs frames from a source (camera, video file or image
folder, all through fasdesk.core.live.sources) through the live pipeline and keeps the largest
face the model can judge of one frame in `every` (faces too small or cut by the border are
counted, not kept). A camera records for `seconds`; a file is read to its end.

The report (`evaluate`) scores the saved samples (`score_session`, the same crop and
engine as the live view) and splits every recording by time: the first half (`train`),
the next quarter (`pick`) and the last quarter (`held_out`), leaving out the frames within
2% of the recording's length of each boundary, so neighbouring frames, nearly identical,
never sit on both sides. The threshold for the target BPCER is picked on frames the
model was not trained on (train + pick for the current model, pick only after fine-tuning
on the train part) and the error rates are measured on the held-out frames, which nothing
else used.
"""
from __future__ import annotations

import json
import math
import os
import re
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from fasdesk.core.calibration import defaults, score_axis
from fasdesk.core.calibration import robustness as R
from fasdesk.core.calibration.naming import slug
from fasdesk.core.datasets import dataset_info
from fasdesk.core.datasets.collect import CollectError, pick_face, write_sample
from fasdesk.core.inference.crop import preprocess
from fasdesk.core.io.files import write_atomic
from fasdesk.core.io.imageio import ImageReadError, read_image
from fasdesk.core.live.loop import LiveFrame, LiveLoop
from fasdesk.core.io.paths import data_dir
from fasdesk.core.live.sources import SourceError, SourceSpec, open_source
from fasdesk.core.decision import uncertainty
from fasdesk.core.decision.thresholds import (equal_error_rate, pad_errors, support_counts,
                                     threshold_for_target)

SESSION_FILE = "session.json"
SESSION_FORMAT = 1
REAL = "real"
# Attacks offered by name; the folder names are ones `training prep` knows (dataset_info).
ATTACK_TITLES = {"replay": "Phone or tablet screen (replay)", "print": "Printed photo"}
DEFAULT_SECONDS = defaults.SECONDS
DEFAULT_EVERY = defaults.EVERY
DEFAULT_TARGET_BPCER = defaults.TARGET_BPCER
DEFAULT_MAX_APCER = defaults.MAX_APCER
# Time split of every recording (fractions of its length) and the guard at each boundary.
SEGMENTS = (("train", 0.0, 0.5), ("pick", 0.5, 0.75), ("held_out", 0.75, 1.0))
GUARD = 0.02
HIST_BINS = 20
SCORE_BATCH = 32


class CalibrationError(Exception):
    """Something a person can fix (no faces in a recording, too few frames); one line."""


def calibration_root() -> Path:
    return data_dir() / "calibration"


def attack_name(text: str) -> str:
    """The folder name of an attack the user named ("Phone screen" -> "phone_screen")."""
    name = re.sub(r"[^a-z0-9]+", "_", str(text).strip().lower()).strip("_")[:40]
    if not name or name == REAL:
        raise CalibrationError(f"'{text}' cannot name an attack: use letters or digits, "
                               f"and not 'real'")
    return name


def attack_title(name: str) -> str:
    return ATTACK_TITLES.get(name, name.replace("_", " "))


# What the report's sentence calls several presentations of an attack.
ATTACK_PLURALS = {"replay": "phone or tablet replays", "print": "printed photos"}


def attack_plural(name: str) -> str:
    """'replay' -> 'phone or tablet replays', 'mask_3d' -> 'mask 3d attacks'."""
    return ATTACK_PLURALS.get(name, name.replace("_", " ") + " attacks")


def quality_key(reason: str) -> str:
    """The quality gate's reason in two words, for the counts shown while recording."""
    if "too small" in reason:
        return "too small"
    if "border" in reason:
        return "cut by the border"
    return reason


# -- recordings ----------------------------------------------------------------------------

@dataclass
class Sample:
    file: str  # relative to the session folder
    frame: int  # the source's frame number
    t: float  # seconds from the start of the recording
    box: list[int]  # x, y, w, h in the frame's pixels


@dataclass
class Recording:
    stage: str  # "real" or the attack's folder name
    source: str  # SourceSpec text: camera index, video file or image folder
    source_name: str = ""  # what the OS or the file calls it
    frames: int = 0
    faces: int = 0  # faces the model could judge
    no_face_frames: int = 0
    rejected: dict = field(default_factory=dict)  # quality_key -> faces
    duration: float = 0.0
    started: str = ""
    samples: list[Sample] = field(default_factory=list)

    @property
    def kind(self) -> str:
        return REAL if self.stage == REAL else "attack"

    @property
    def title(self) -> str:
        return "Real faces" if self.stage == REAL else attack_title(self.stage)

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> "Recording":
        data = dict(data)
        samples = [Sample(str(s["file"]), int(s["frame"]), float(s["t"]),
                          [int(v) for v in s["box"]]) for s in data.pop("samples", [])]
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known, samples=samples)


@dataclass
class RecordingStatus:
    """What the recording screen shows after each frame."""
    stage: str
    t: float  # seconds recorded
    limit: float | None  # seconds to record (camera), None for a file
    position: int  # frames read
    total: int | None  # frames in the file, when known
    saved: int
    faces: int
    no_face_frames: int
    rejected: dict

    @property
    def remaining(self) -> float | None:
        return None if self.limit is None else max(0.0, self.limit - self.t)


class StageRecorder:
    """Keeps the largest judgeable face of one frame in `every` of one stage."""

    def __init__(self, session: "Session", recording: Recording, every: int = DEFAULT_EVERY):
        self.session = session
        self.recording = recording
        self.every = max(1, int(every))
        self._since = self.every  # the first frame with a face is kept
        folder = Path("dataset") / ("real" if recording.stage == REAL
                                    else f"spoof/{recording.stage}")
        self.folder = folder
        (session.root / folder).mkdir(parents=True, exist_ok=True)

    def feed(self, frame_bgr: np.ndarray, faces, frame_index: int, t: float) -> bool:
        """Count one processed frame (its tracked faces); save its sample when due. True
        when saved."""
        rec = self.recording
        rec.frames += 1
        rec.duration = max(rec.duration, t)
        for face in faces:
            if face.result.reason is None:
                rec.faces += 1
            else:
                key = quality_key(face.result.reason)
                rec.rejected[key] = rec.rejected.get(key, 0) + 1
        if not faces:
            rec.no_face_frames += 1
        self._since += 1
        if self._since < self.every:
            return False
        face, _ = pick_face(faces)  # the largest face the model can judge (Collect's rule)
        if face is None:
            return False
        rel = self.folder / f"{rec.stage}_{frame_index:06d}.jpg"
        try:
            write_sample(self.session.root / rel, frame_bgr, face.result.box)
        except CollectError as exc:
            raise CalibrationError(str(exc)) from None
        rec.samples.append(Sample(rel.as_posix(), int(frame_index), round(float(t), 4),
                                  [int(v) for v in face.result.box]))
        self._since = 0
        return True


def frame_count(spec: SourceSpec, source) -> int | None:
    """Frames in a video file or image folder (None for a camera or when unknown)."""
    if spec.kind == "video":
        cap = cv2.VideoCapture(spec.target)
        try:
            n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        finally:
            cap.release()
        return n if n > 0 else None
    files = getattr(source, "files", None)
    return len(files) if files else None


def record_stage(session: "Session", stage: str, source_text: str, pipeline,
                 seconds: float = DEFAULT_SECONDS, every: int = DEFAULT_EVERY,
                 should_stop: Callable[[], bool] | None = None,
                 on_frame: Callable[[LiveFrame, RecordingStatus], None] | None = None,
                 camera_names: dict | None = None) -> Recording:
    """Record one stage into the session (replacing an earlier take of it) and return it.

    Raises SourceError when the source cannot be opened or fails, CalibrationError when a
    sample cannot be saved."""
    spec = SourceSpec.parse(source_text)
    source = open_source(spec, loop=False, camera_names=camera_names)
    session.drop_stage(stage)
    recording = Recording(stage=stage, source=source_text, source_name=source.name,
                          started=time.strftime("%Y-%m-%dT%H:%M:%S"))
    # `every` thins consecutive video frames; each photo of a folder is a picture of its own.
    recorder = StageRecorder(session, recording, 1 if spec.kind in ("folder", "image") else every)
    loop = LiveLoop(source, pipeline)  # the live view's step: tracks, new photo = new scene
    total = None if source.live else frame_count(spec, source)
    fps = source.fps_hint or 25.0
    started = time.monotonic()
    try:
        while not (should_stop and should_stop()):
            live = loop.step()
            if live is None:
                break
            t = live.time - started if source.live else source.position / fps
            if source.live and t > seconds:
                break
            recorder.feed(loop.frame, live.faces, source.position, t)
            if on_frame is not None:
                on_frame(live, RecordingStatus(
                    stage, t, seconds if source.live else None, recording.frames, total,
                    len(recording.samples), recording.faces, recording.no_face_frames,
                    dict(recording.rejected)))
    finally:
        source.close()
    if not source.live:
        recording.duration = recording.frames / fps  # the file's length in time
    session.recordings.append(recording)
    session.save()
    return recording


# -- sessions ------------------------------------------------------------------------------

class Session:
    """One calibration's folder: recordings, settings, reports (session.json)."""

    def __init__(self, root: Path, data: dict | None = None):
        self.root = Path(root)
        data = data or {}
        self.created = str(data.get("created") or time.strftime("%Y-%m-%dT%H:%M:%S"))
        self.settings = dict(data.get("settings") or {})
        self.reports = dict(data.get("reports") or {})
        self.recordings = [Recording.from_json(r) for r in data.get("recordings", [])]

    @classmethod
    def create(cls, name: str, parent: Path | None = None) -> "Session":
        parent = parent or calibration_root()
        stem = time.strftime("%Y%m%d-%H%M%S") + (f"-{slug(name)}" if slug(name) else "")
        root = parent / stem
        n = 1
        while root.exists():
            n += 1
            root = parent / f"{stem}-{n}"
        root.mkdir(parents=True)
        session = cls(root)
        session.save()
        return session

    @classmethod
    def load(cls, root: str | os.PathLike) -> "Session":
        root = Path(root)
        try:
            from fasdesk.core.io.files import read_json

            data = read_json(root / SESSION_FILE, 64 << 20)
            return cls(root, data)
        except FileNotFoundError:
            raise CalibrationError(f"no calibration recordings in {root}") from None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise CalibrationError(f"{root / SESSION_FILE} cannot be read ({exc})") from None

    @property
    def dataset(self) -> Path:
        return self.root / "dataset"

    def recording(self, stage: str) -> Recording | None:
        return next((r for r in self.recordings if r.stage == stage), None)

    @property
    def attacks(self) -> list[str]:
        return [r.stage for r in self.recordings if r.stage != REAL]

    def drop_stage(self, stage: str) -> None:
        """Forget a stage's earlier take, and its files."""
        old = self.recording(stage)
        if old is None:
            return
        self.recordings.remove(old)
        for sample in old.samples:
            path = self.root / sample.file
            for p in (path, dataset_info.box_path_for(path)):
                try:
                    p.unlink()
                except OSError:
                    pass

    def to_json(self) -> dict:
        return {"format": SESSION_FORMAT, "created": self.created, "settings": self.settings,
                "recordings": [r.to_json() for r in self.recordings], "reports": self.reports}

    def save(self) -> None:
        write_atomic(self.root / SESSION_FILE, json.dumps(self.to_json(), indent=1))

    def check(self) -> None:
        """Raise CalibrationError unless every recording has faces and there is an attack."""
        if self.recording(REAL) is None:
            raise CalibrationError("no real-face recording: record the real stage first")
        if not self.attacks:
            raise CalibrationError("no attack recording: record at least one attack")
        for rec in self.recordings:
            if not rec.samples:
                raise CalibrationError(
                    f"no faces found in the {rec.title.lower()} recording ({rec.source}): "
                    f"{rec.frames} frames, {rec.no_face_frames} without a face"
                    + (", " + ", ".join(f"{n} {k}" for k, n in rec.rejected.items())
                       if rec.rejected else ""))


# -- segments, scores, reports -----------------------------------------------------------

def held_out_share() -> float:
    """The share of a recording's samples that land in the held-out segment (its last
    quarter less the guard before it): 0.23."""
    start, end = next((a, b) for name, a, b in SEGMENTS if name == "held_out")
    return (end - start) - GUARD


def samples_needed(target_bpcer: float) -> int:
    """Real-face samples a recording needs so that its held-out part alone has the real
    faces the target needs (uncertainty.min_count_for_target: 60 for 5% -> 261)."""
    return math.ceil(uncertainty.min_count_for_target(target_bpcer) / held_out_share() - 1e-9)


def seconds_needed(target_bpcer: float, fps: float, every: int = 1,
                   face_share: float = 1.0) -> float:
    """Recording time from a camera at `fps`, keeping one frame in `every`, with a
    judgeable face in `face_share` of the frames, for `samples_needed` samples (60
    held-out real faces for 5% at 25 fps and every 2: 20.9 s)."""
    if fps <= 0 or not 0 < face_share <= 1:
        raise ValueError("fps must be positive and face_share in (0, 1]")
    return samples_needed(target_bpcer) * max(1, int(every)) / (fps * face_share)


def segments(recording: Recording) -> list[str | None]:
    """The time segment of each sample ("train", "pick", "held_out"; None in a guard)."""
    length = recording.duration or max((s.t for s in recording.samples), default=0.0)
    guard = GUARD * length
    out = []
    for sample in recording.samples:
        name = None
        for seg, start, end in SEGMENTS:
            lo = start * length + (guard if start > 0 else 0.0)
            hi = end * length - (guard if end < 1 else -1.0)
            if lo <= sample.t < hi:
                name = seg
                break
        out.append(name)
    return out


def fine_tune_counts_problem(session: Session, target_bpcer: float) -> str | None:
    """What a fine-tune's report would lack, checked before any training starts (one line),
    or None: train faces in every recording, enough real faces in the pick segments alone
    to pick the fine-tuned model's threshold for the target, held-out faces of every stage."""
    session.check()
    needed, _ = support_counts(target_bpcer)
    for rec in session.recordings:
        seg = segments(rec)
        if "train" not in seg:
            return f"the {rec.title.lower()} recording has no faces to fine-tune on: record it longer"
        if "held_out" not in seg:
            return f"the {rec.title.lower()} recording has no held-out faces: record it longer"
    real = session.recording(REAL)
    pick = segments(real).count("pick")
    if pick < needed:
        return (f"too few real faces to fine-tune for the target: a fine-tuned model's "
                f"threshold is picked on {pick} real faces, a {100 * target_bpcer:g}% BPCER "
                f"needs at least {needed} (record the real stage longer, keep more frames, "
                f"or raise the target); nothing was trained")
    return None


def score_session(session: Session, model_path, engine=None, progress=None) -> dict[str, np.ndarray]:
    """p_real of every saved sample, per stage, by the model at `model_path`: the live
    view's crop and engine on the saved frames. Unreadable samples score NaN."""
    if engine is None:
        from fasdesk.core.inference.liveness import LivenessEngine

        engine = LivenessEngine(model_path)
    total = sum(len(r.samples) for r in session.recordings)
    done = 0
    scores = {}
    for rec in session.recordings:
        values = np.full(len(rec.samples), np.nan)
        for start in range(0, len(rec.samples), SCORE_BATCH):
            batch, index = [], []
            for i in range(start, min(start + SCORE_BATCH, len(rec.samples))):
                sample = rec.samples[i]
                try:
                    image = read_image(session.root / sample.file)
                except ImageReadError:
                    continue
                batch.append(preprocess(image, [sample.box], engine.input_size))
                index.append(i)
            if batch:
                p_real, _ = engine.p_real(np.concatenate(batch))
                values[index] = p_real
            done += min(SCORE_BATCH, len(rec.samples) - start)
            if progress is not None:
                progress(done, total)
        scores[rec.stage] = values
    scores.update(_robustness_scores(session, engine))
    return scores


def _robustness_scores(session: Session, engine) -> dict[str, np.ndarray]:
    """The held-out real faces re-scored darker / moving / tinted (keys "robust:<condition>",
    fasdesk.core.calibration.robustness) and every real face's brightness, sharpness and
    size (R.SPREAD_KEY); evaluate() turns them into the report's robustness line and note."""
    rec = session.recording(REAL)
    if rec is None:
        return {}
    held, stats = [], []
    for sample, seg in zip(rec.samples, segments(rec)):
        try:
            image = read_image(session.root / sample.file)
        except ImageReadError:
            continue
        stats.append(R.face_stats(image, sample.box))
        if seg == "held_out":
            held.append((image, sample.box))
    out = {R.SPREAD_KEY: np.asarray(stats, float).reshape(-1, 3)}
    if held:
        out.update({R.SCORE_KEY + name: values
                    for name, values in R.condition_scores(held, engine).items()})
    return out


def _rates(is_attack, p_real, types, threshold) -> dict:
    errors = pad_errors(is_attack, p_real, threshold, types)
    accepted = np.asarray(p_real, np.float64) >= threshold
    is_attack = np.asarray(is_attack, bool)
    types = np.asarray(types)
    # The same rates as k of n with their 95% interval (see fasdesk.core.decision.uncertainty).
    counts = {"real": uncertainty.rate(int((~accepted[~is_attack]).sum()), int((~is_attack).sum())),
              "attacks": {str(t): uncertainty.rate(int(accepted[is_attack & (types == t)].sum()),
                                                   int((is_attack & (types == t)).sum()))
                          for t in sorted(set(types[is_attack].tolist()))}}
    return {"n_real": int((~is_attack).sum()), "n_attack": int(is_attack.sum()),
            "bpcer": errors["bpcer"], "apcer": errors["apcer"],
            "apcer_per_type": errors.get("apcer_per_type", {}), "apcer_max": errors.get("apcer_max"),
            "acer": errors["acer"], "eer": equal_error_rate(is_attack, p_real)["eer"],
            "counts": counts}


def rates_sentence(report: dict) -> str:
    """A report's held-out result in words: 'At 0.99: 1 of 23 real people rejected (could
    be up to 22%), 13 of 23 phone or tablet replays accepted.'"""
    from fasdesk.core.decision.thresholds import format_threshold

    counts = report["held_out"]["counts"]
    return uncertainty.rates_sentence(
        format_threshold(report["threshold"]), (counts["real"]["k"], counts["real"]["n"]),
        [(attack_plural(stage), c["k"], c["n"]) for stage, c in counts["attacks"].items()])


def evaluate(session: Session, scores: dict[str, np.ndarray], target_bpcer: float,
             max_apcer: float = DEFAULT_MAX_APCER, fine_tuned: bool = False,
             threshold: float | None = None) -> dict:
    """The report on one model's scores (see the module docstring for the split).

    `fine_tuned`: the model was trained on the train segments, so the threshold is picked
    on the pick segments only. `threshold`: use this one instead of picking it.
    Raises CalibrationError when there is too little to pick a threshold on."""
    session.check()
    pick_from = ("pick",) if fine_tuned else ("train", "pick")
    parts = {"pick": ([], [], []), "held_out": ([], [], []), "shown": ([], [], [])}
    histograms_of = ("pick", "held_out") if fine_tuned else ("train", "pick", "held_out")
    for rec in session.recordings:
        values = scores[rec.stage]
        for seg, p in zip(segments(rec), values):
            if seg is None or not np.isfinite(p):
                continue
            targets = []
            if seg in pick_from:
                targets.append("pick")
            if seg == "held_out":
                targets.append("held_out")
            if seg in histograms_of:
                targets.append("shown")
            for name in targets:
                attack, p_list, types = parts[name]
                attack.append(rec.kind != REAL)
                p_list.append(float(p))
                types.append(rec.stage)
    pick_attack, pick_p, _ = (np.array(v) for v in parts["pick"])
    pick_attack = pick_attack.astype(bool)
    n_real = int((~pick_attack).sum())
    needed, reliable = support_counts(target_bpcer)
    if threshold is None and n_real < needed:
        raise CalibrationError(
            f"too few frames for the target: {n_real} real faces to pick the threshold on, "
            f"a {100 * target_bpcer:g}% BPCER target needs at least {needed} (record the real "
            f"stage longer, keep more frames, or raise the target)")
    choice = threshold_for_target(pick_attack, pick_p, "bpcer", target_bpcer)
    if threshold is None:
        threshold = choice.threshold
    held_attack, held_p, held_types = (np.array(v) for v in parts["held_out"])
    held_attack = held_attack.astype(bool)
    held = _rates(held_attack, held_p, held_types, threshold)
    warnings = [choice.warning] if choice.warning else []
    real_held = held["n_real"]
    if real_held < reliable:
        warnings.append(f"{real_held} held-out real faces support a {100 * target_bpcer:g}% "
                        f"BPCER only roughly; {reliable} or more are needed to rely on it")
    if held["bpcer"] is not None and held["bpcer"] > target_bpcer + 1e-12:
        warnings.append(f"on the held-out frames the threshold rejects "
                        f"{100 * held['bpcer']:.1f}% of real faces, above the "
                        f"{100 * target_bpcer:g}% target: the model's scores of real faces "
                        f"change within the recording")
    missing = [attack_title(r.stage) for r in session.recordings
               if r.kind != REAL and r.stage not in held["apcer_per_type"]]
    if missing:
        warnings.append("no held-out faces for " + ", ".join(missing) + ": record longer")
    shown_attack, shown_p, shown_types = parts["shown"]
    edges = np.linspace(0.0, 1.0, HIST_BINS + 1)
    counts = {}
    for rec in session.recordings:
        values = [p for p, t in zip(shown_p, shown_types) if t == rec.stage]
        counts[rec.stage] = np.histogram(np.clip(values, 0, 1), bins=edges)[0].tolist()
    worst = held["apcer_max"]
    spread = R.spread(scores.get(R.SPREAD_KEY, []))
    if R.uniform_warning(spread) and not fine_tuned:  # about the recording: said once
        warnings.append(R.uniform_warning(spread))
    report = {
        "threshold": float(threshold),
        "target_bpcer": float(target_bpcer),
        "max_apcer": float(max_apcer),
        "picked_on": {"segments": list(pick_from), "n_real": n_real,
                      "n_attack": int(pick_attack.sum()), "choice": choice.to_json()},
        "held_out": held,
        "meets_target": held["bpcer"] is not None and held["bpcer"] <= target_bpcer + 1e-12,
        "needs_fine_tune": worst is not None and worst > max_apcer + 1e-12,
        "histogram": {"edges": [round(float(e), 4) for e in edges], "counts": counts,
                      "segments": list(histograms_of)},
        # The same scores on the log-odds axis (fasdesk.core.calibration.score_axis): fixed
        # bins, so every report shares one scale.
        "histogram_log_odds": {
            "edges": [round(float(e), 4) for e in score_axis.edges()],
            "counts": score_axis.histograms(
                {rec.stage: [p for p, t in zip(shown_p, shown_types) if t == rec.stage]
                 for rec in session.recordings}),
            "threshold_at": round(score_axis.threshold_position(threshold), 4),
            "segments": list(histograms_of)},
        "warnings": warnings,
        "robustness": R.counts({k[len(R.SCORE_KEY):]: v for k, v in scores.items()
                                if k.startswith(R.SCORE_KEY)}, threshold),
        "real_spread": spread,
        # The held-out real faces a claim of the target needs (rule of three: 60 for 5%).
        "real_needed": reliable,
    }
    report["sentence"] = rates_sentence(report)
    return report


def recordings_summary(session: Session) -> list[dict]:
    out = []
    for rec in session.recordings:
        segs = segments(rec)
        out.append({"stage": rec.stage, "kind": rec.kind, "title": rec.title,
                    "source": rec.source, "source_name": rec.source_name,
                    "frames": rec.frames, "faces": rec.faces, "samples": len(rec.samples),
                    "no_face_frames": rec.no_face_frames, "rejected": dict(rec.rejected),
                    "duration_s": round(rec.duration, 2),
                    "segments": {name: segs.count(name) for name, _, _ in SEGMENTS},
                    "folder": str(session.dataset / ("real" if rec.stage == REAL
                                                     else f"spoof/{rec.stage}"))})
    return out


def model_summary(model: str | None, path: Path) -> dict:
    """{id (registry id, None for a plain file), path, sha256} of the model measured."""
    from fasdesk.core.models.registry import file_sha256, get_entry

    entry = get_entry(str(model)) if model else None
    return {"id": entry.id if entry else None, "path": str(Path(path).resolve()),
            "sha256": file_sha256(path)}


# -- fine-tuning ---------------------------------------------------------------------------

def starting_checkpoint(model_path: Path) -> Path | None:
    """The training checkpoint a model came from: its card's source checkpoint, else the
    shipped best_model.pth (the weights of the default models)."""
    from fasdesk.core.models import registry
    from fasdesk.core.models.cards import ModelCard

    source = ModelCard.read_or_empty(model_path).other.get("source_checkpoint")
    path = source.get("path") if isinstance(source, dict) else None
    if isinstance(path, str) and Path(path).is_file():
        return Path(path)
    return registry.pretrained_checkpoint()


def fine_tune_data(session: Session, model_path: Path) -> tuple[Path, Path]:
    """Lay out the train-segment samples as their own folders-layout dataset (under the
    session's `fine-tune/`) for the backend to fine-tune on; returns (the dataset, the
    checkpoint to start from). Raises CalibrationError when there is none."""
    session.check()
    checkpoint = starting_checkpoint(Path(model_path))
    if checkpoint is None:
        raise CalibrationError("no training checkpoint to fine-tune from (best_model.pth "
                               "missing or damaged); run 'fasdesk models pull "
                               "minifasnet-v2se-pth'")
    train_data = fine_tune_dir(session) / "train-data"
    if train_data.exists():
        shutil.rmtree(train_data)
    for rec in session.recordings:
        for sample, seg in zip(rec.samples, segments(rec)):
            if seg != "train":
                continue
            src = session.root / sample.file
            dst = train_data / Path(sample.file).relative_to("dataset")
            dst.parent.mkdir(parents=True, exist_ok=True)
            for a, b in ((src, dst), (dataset_info.box_path_for(src), dataset_info.box_path_for(dst))):
                try:
                    os.link(a, b)
                except OSError:
                    shutil.copyfile(a, b)
    return train_data, checkpoint


def fine_tune_dir(session: Session) -> Path:
    """Where a session's fine-tuning works (its dataset, prepared crops, training run)."""
    return session.root / "fine-tune"


# -- the outcome ---------------------------------------------------------------------------

def fine_tune_kept(before: dict, after: dict | None, accept_robustness_loss: bool = False) -> bool:
    """Whether the fine-tuned model is the one to use: it must do better than the current
    model on the held-out frames (lower ACER, each at its own threshold); a tie keeps the
    model the user already has. It must also accept at least as many of the held-out real
    faces made darker / moving / tinted (fasdesk.core.calibration.robustness), unless the
    user saw that line and confirmed (`accept_robustness_loss`)."""
    if after is None:
        return False
    a, b = after["held_out"].get("acer"), before["held_out"].get("acer")
    better = a is not None and (b is None or a < b - 1e-12)
    return better and (accept_robustness_loss or not robustness_loss(before, after))


def robustness_loss(before: dict, after: dict | None) -> bool:
    """Whether the fine-tuned model accepts fewer changed real faces than the current one."""
    return after is not None and R.loss(before.get("robustness"), after.get("robustness"))


def shortfall(chosen: dict) -> str | None:
    """One line when a report's threshold misses its target on the held-out frames (real
    faces rejected above the target, attacks let through above the acceptable share), else
    None. Shown where a profile is saved and stored in it for where it is applied."""
    held = chosen["held_out"]
    parts = []
    if not chosen["meets_target"] and held["bpcer"] is not None:
        parts.append(f"rejects {100 * held['bpcer']:.1f}% of real faces (target "
                     f"{100 * chosen['target_bpcer']:g}%)")
    if chosen["needs_fine_tune"]:
        parts.append(f"lets {100 * (held['apcer_max'] or 0):.1f}% of attacks through "
                     f"(acceptable {100 * chosen['max_apcer']:g}%)")
    if not parts:
        return None
    return "This profile misses the target: on the held-out frames it " + " and ".join(parts) + "."


def conclude(session: Session, source: dict, model: dict, before: dict,
             after: dict | None = None, tuned_model: dict | None = None,
             profile_name: str | None = None, confirm_frames: int = 3,
             accept_robustness_loss: bool = False):
    """The calibration's result (what `fasdesk calibrate --json` prints, see README) and
    the profile it makes (None without a profile name). Stores the reports in the session.
    """
    from fasdesk.core.calibration.profiles import Profile

    kept = fine_tune_kept(before, after, accept_robustness_loss)
    chosen_model = tuned_model if kept else model
    chosen = after if kept else before
    session.reports = {"before": before, "after": after}
    session.save()
    result = {
        "session": str(session.root),
        "source": source,
        "model": model,
        "recordings": recordings_summary(session),
        "target_bpcer": before["target_bpcer"],
        "max_apcer": before["max_apcer"],
        "before": before,
        "after": after,
        "fine_tuned_model": tuned_model,
        "robustness_loss": robustness_loss(before, after),
        "chosen": {"model": chosen_model["id"] or chosen_model["path"],
                   "sha256": chosen_model["sha256"], "threshold": chosen["threshold"],
                   "fine_tuned": kept, "confirm_frames": int(confirm_frames)},
        "profile": None,
    }
    profile = None
    if profile_name:
        profile = Profile(
            name=profile_name.strip(), source=source, model=result["chosen"]["model"],
            model_sha256=chosen_model["sha256"], threshold=float(chosen["threshold"]),
            confirm_frames=int(confirm_frames), target_bpcer=float(before["target_bpcer"]),
            max_apcer=float(before["max_apcer"]), fine_tuned=kept,
            metrics={"before": _headline(before), "after": _headline(after) if after else None,
                     "shortfall": shortfall(chosen)},
            recordings=[{"stage": r["stage"], "source": r["source"], "folder": r["folder"],
                         "samples": r["samples"]} for r in result["recordings"]],
            session=str(session.root))
    return result, profile


def _headline(report: dict) -> dict:
    held = report["held_out"]
    return {"threshold": report["threshold"], "bpcer": held["bpcer"], "apcer": held["apcer"],
            "apcer_per_type": held["apcer_per_type"], "acer": held["acer"], "eer": held["eer"],
            "n_real": held["n_real"], "n_attack": held["n_attack"],
            "robustness": report.get("robustness"), "counts": held.get("counts")}


__all__ = ["CalibrationError", "Session", "Recording", "RecordingStatus", "record_stage",
           "score_session", "evaluate", "fine_tune_data", "SourceError"]
