"""Per-face tracking across frames: stable ids, score history, temporal confirmation.

Faces are matched to the tracks of earlier frames by box overlap (IoU, greedy, best pairs
first). A track keeps its p_real history with timestamps (for the live plot) and the
scores of its last few observations, from which "confirmed real" is decided: a face is
confirmed only after N consecutive observations judged real. Because confirmation is
computed from the stored scores, a new threshold re-decides it without new inference.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np

from fasdesk.core.decision.verdict import is_confirmed, label, real_streak
from fasdesk.core.inference.pipeline import FaceResult

# Consecutive boxes of one face overlap far more than this even at 5 fps; two people
# side by side, or a cut to another face in a video, overlap less.
IOU_MATCH = 0.4
HISTORY_SECONDS = 30.0
# A face unseen for this many frames loses its track (and its id).
MAX_MISSED = 15


def iou(a, b) -> float:
    """Intersection over union of two x, y, w, h boxes."""
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    iw = min(ax + aw, bx + bw) - max(ax, bx)
    ih = min(ay + ah, by + bh) - max(ay, by)
    if iw <= 0 or ih <= 0:
        return 0.0
    inter = iw * ih
    return inter / (aw * ah + bw * bh - inter)


@dataclass
class TrackedFace:
    """One face of one frame, with its track."""
    result: FaceResult
    track_id: int
    score: float | None  # p_real shown: smoothed when smoothing is on, else the raw score
    recent: tuple  # the track's last scores (None where not judged), oldest first

    def label(self, threshold: float) -> str:
        return label(self.score, threshold)

    def confirmed(self, threshold: float, n: int) -> bool:
        return is_confirmed(self.recent, threshold, n)

    def streak(self, threshold: float, n: int) -> int:
        """Real frames in a row so far, at most n (the "2/3" countdown)."""
        return real_streak(self.recent, threshold, n)


@dataclass
class Track:
    id: int
    box: tuple
    last_time: float
    missed: int = 0
    smoothed: float | None = None
    times: deque = field(default_factory=deque)
    values: deque = field(default_factory=deque)
    recent: deque = field(default_factory=lambda: deque(maxlen=32))
    closed: bool = False  # from an earlier scene: kept for the plot, never matched again


class FaceTracker:
    """Assigns stable ids to faces and keeps their score history.

    smoothing: weight of the previous smoothed score in an exponential moving average
    (0 = off, 0.6 = calm); recent_len: how many last scores each face carries (at least
    the largest confirmation N the UI may ask for).
    """

    def __init__(self, iou_match: float = IOU_MATCH, max_missed: int = MAX_MISSED,
                 history_seconds: float = HISTORY_SECONDS, smoothing: float = 0.0,
                 recent_len: int = 10):
        self.iou_match = iou_match
        self.max_missed = max_missed
        self.history_seconds = history_seconds
        self.smoothing = smoothing
        self.recent_len = recent_len
        self.tracks: dict[int, Track] = {}
        self._next_id = 1

    def reset(self) -> None:
        self.tracks.clear()
        self._next_id = 1

    def new_scene(self) -> None:
        """The next frame shows another scene (the next photo of a folder): its faces get
        new ids. The old tracks keep their history for the plot and age out as usual."""
        for track in self.tracks.values():
            track.closed = True

    def _match(self, results: list[FaceResult]) -> dict[int, int]:
        """Face index -> track id, greedy by descending IoU."""
        pairs = []
        for i, r in enumerate(results):
            for tid, track in self.tracks.items():
                if track.closed:
                    continue
                overlap = iou(r.box, track.box)
                if overlap >= self.iou_match:
                    pairs.append((overlap, i, tid))
        pairs.sort(reverse=True)
        matched: dict[int, int] = {}
        used: set[int] = set()
        for _, i, tid in pairs:
            if i not in matched and tid not in used:
                matched[i] = tid
                used.add(tid)
        return matched

    def update(self, results: list[FaceResult], now: float) -> list[TrackedFace]:
        """Match this frame's faces to tracks; returns them in the order given."""
        matched = self._match(results)
        out = []
        seen = set()
        for i, result in enumerate(results):
            tid = matched.get(i)
            if tid is None:
                tid = self._next_id
                self._next_id += 1
                self.tracks[tid] = Track(tid, result.box, now)
            track = self.tracks[tid]
            seen.add(tid)
            track.box, track.last_time, track.missed = result.box, now, 0
            p = result.p_real
            if p is None:
                track.smoothed = None
            elif track.smoothed is None or not self.smoothing:
                track.smoothed = p
            else:
                track.smoothed = self.smoothing * track.smoothed + (1 - self.smoothing) * p
            track.recent.append(track.smoothed)
            if track.smoothed is not None:
                track.times.append(now)
                track.values.append(track.smoothed)
            while track.times and track.times[0] < now - self.history_seconds:
                track.times.popleft()
                track.values.popleft()
            out.append(TrackedFace(result, tid, track.smoothed,
                                   tuple(track.recent)[-self.recent_len:]))
        for tid in list(self.tracks):
            if tid not in seen:
                track = self.tracks[tid]
                track.missed += 1
                track.recent.append(None)  # an unseen frame breaks the real streak
                if track.missed > self.max_missed:
                    del self.tracks[tid]
        return out

    def histories(self) -> dict[int, tuple[np.ndarray, np.ndarray]]:
        """Track id -> (times, p_real values) over the history window, for plotting."""
        return {tid: (np.fromiter(t.times, float, len(t.times)),
                      np.fromiter(t.values, float, len(t.values)))
                for tid, t in self.tracks.items() if t.times}
