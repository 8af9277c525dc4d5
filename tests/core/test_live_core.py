"""The live view's GUI-free parts: sources, tracking, settings, the live loop."""
from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

from fasdesk.core.live.loop import LiveLoop
from fasdesk.core.inference.pipeline import FaceResult
from fasdesk.core.io.settings import Settings, load_settings, save_settings
from fasdesk.core.live.sources import (RECENT_SOURCES, Pacer, SourceError, SourceSpec, VideoFileSource,
                                  add_recent, open_source, probe_cameras)
from fasdesk.core.decision.verdict import is_confirmed
from fasdesk.core.live.tracking import FaceTracker, iou

from livevideo import FRAMES_PER_SAMPLE, SEQUENCE, write_video


def face(box, p):
    return FaceResult(box=box, detector_score=0.9, p_real=p,
                      label="unsure" if p is None else ("real" if p >= 0.5 else "spoof"))


def test_recent_sources_newest_first_without_repeats_and_kept_in_settings(tmp_path):
    recent: list[str] = []
    for name in ["a.mp4", "b.mp4", "a.mp4"] + [f"{i}.mp4" for i in range(RECENT_SOURCES)]:
        recent = add_recent(recent, name)
    assert recent == [f"{i}.mp4" for i in reversed(range(RECENT_SOURCES))]
    assert add_recent(["x", "y", "z"], "y") == ["y", "x", "z"]

    path = tmp_path / "settings.json"
    save_settings(Settings(recent_sources=["/videos/a.mp4", "/photos"]), path)
    assert load_settings(path)[0].recent_sources == ["/videos/a.mp4", "/photos"]
    path.write_text(json.dumps({"recent_sources": ["/videos/a.mp4", 7, ""]}))
    settings, warning = load_settings(path)
    assert settings.recent_sources == ["/videos/a.mp4"] and "recent_sources" in warning


def test_source_spec_parse(tmp_path, samples_dir):
    assert SourceSpec.parse("0") == SourceSpec("camera", "0")
    assert SourceSpec.parse(str(samples_dir)).kind == "folder"
    assert SourceSpec.parse(str(samples_dir / "real_T1.jpg")).kind == "image"
    assert SourceSpec.parse(str(tmp_path / "x.mp4")).kind == "video"


def test_video_source_loops_or_ends_and_errors_are_clear(tmp_path, samples_dir):
    video = write_video(tmp_path / "v.avi", samples_dir, frames_per_sample=2)
    n = 2 * len(SEQUENCE)
    with VideoFileSource(video, loop=False) as src:
        frames = [src.read() for _ in range(n)]
        assert all(f is not None and f.shape == (480, 640, 3) for f in frames)
        assert src.read() is None and src.position == n - 1
    with VideoFileSource(video, loop=True) as src:
        positions = [(src.read(), src.position)[1] for _ in range(n + 2)]
        assert positions == list(range(n)) + [0, 1]
    with pytest.raises(SourceError, match="not found"):
        open_source(SourceSpec("video", str(tmp_path / "none.avi")))
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"\0" * 3000)
    with pytest.raises(SourceError, match="junk.mp4"):
        open_source(SourceSpec("video", str(junk)))
    with pytest.raises(SourceError, match="could not be opened"):
        open_source(SourceSpec("camera", "93"))


def test_image_folder_skips_unreadable_files(tmp_path, samples_dir):
    shutil.copy(samples_dir / "real_T1.jpg", tmp_path / "a.jpg")
    (tmp_path / "b.jpg").write_bytes(b"not a jpeg")
    src = open_source(SourceSpec.parse(str(tmp_path)), loop=False)
    first = src.read()
    assert first is not None and first.shape == (640, 480, 3)
    assert src.read() is None
    assert len(src.skipped) == 1 and "b.jpg" in src.skipped[0]
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(SourceError, match="no image files"):
        open_source(SourceSpec.parse(str(empty)))


def test_pacer_keeps_rate_without_bursts():
    pacer = Pacer(10.0)
    assert pacer.wait_time(now=100.0) == 0.0
    pacer.advance()
    # Re-checking before the frame is due must not push the schedule further.
    assert pacer.wait_time(now=100.05) == pytest.approx(0.05)
    assert pacer.wait_time(now=100.08) == pytest.approx(0.02)
    assert pacer.wait_time(now=100.1) == pytest.approx(0.0)
    pacer.advance()
    # Far behind: restart from now instead of a catch-up burst.
    assert pacer.wait_time(now=105.0) == 0.0
    pacer.advance()
    assert pacer.wait_time(now=105.0) == pytest.approx(0.1)
    assert Pacer(None).wait_time() == 0.0


def test_linux_camera_names_come_from_sysfs(tmp_path):
    from fasdesk.core.live.sources import linux_cameras

    def node(name, label, index):
        (tmp_path / name).mkdir()
        (tmp_path / name / "name").write_text(label + "\n")
        (tmp_path / name / "index").write_text(f"{index}\n")

    node("video0", "Integrated Camera: Integrated C", 0)
    node("video1", "Integrated Camera: Integrated C", 1)  # the same webcam's metadata node
    node("video10", "USB2.0 HD UVC WebCam", 0)
    cameras = linux_cameras(tmp_path)
    assert [(c.index, c.name) for c in cameras] == [
        (0, "Integrated Camera: Integrated C"), (10, "USB2.0 HD UVC WebCam")]
    assert cameras[1].label == "USB2.0 HD UVC WebCam (10)"
    # This machine, checked against what its sysfs says (no cameras: an empty list).
    found = probe_cameras()
    v4l = Path("/sys/class/video4linux")
    if sys.platform.startswith("linux"):
        nodes = list(v4l.glob("video*")) if v4l.is_dir() else []
        assert bool(found) == bool(nodes)
        assert {c.name for c in found} <= {(n / "name").read_text().strip() for n in nodes}


def test_tracker_ids_confirmation_and_history():
    tracker = FaceTracker(smoothing=0.0, max_missed=2)
    a, b = (100, 100, 80, 100), (400, 120, 80, 100)
    assert iou(a, a) == 1.0 and iou(a, b) == 0.0
    first = tracker.update([face(a, 0.9), face(b, 0.1)], now=0.0)
    ids = [f.track_id for f in first]
    assert ids == [1, 2]
    moved = (104, 98, 80, 100)
    for t in (0.1, 0.2):
        out = tracker.update([face(b, 0.2), face(moved, 0.95)], now=t)
        assert [f.track_id for f in out] == [2, 1]  # matched by overlap, not by order
    real = out[1]
    assert real.confirmed(0.5, 3) and not real.confirmed(0.5, 4)
    assert not real.confirmed(0.92, 3)  # a stricter threshold re-decides from the scores
    assert not out[0].confirmed(0.5, 1)
    # An unjudged (None) score or a missed frame breaks the streak.
    assert not is_confirmed([0.9, None, 0.9, 0.9], 0.5, 3)
    assert is_confirmed([None, 0.9, 0.9, 0.9], 0.5, 3)
    out = tracker.update([face(b, 0.2)], now=0.3)
    out = tracker.update([face(b, 0.2), face(moved, 0.95)], now=0.4)
    assert out[1].track_id == 1 and not out[1].confirmed(0.5, 3)
    times, values = tracker.histories()[1]
    assert list(times) == [0.0, 0.1, 0.2, 0.4] and values[-1] == 0.95
    for t in (0.5, 0.6, 0.7):
        tracker.update([], now=t)
    assert tracker.tracks == {}  # gone for longer than max_missed
    assert tracker.update([face(a, 0.9)], now=0.8)[0].track_id == 3  # ids never reused


def test_tracker_smoothing_and_history_window():
    tracker = FaceTracker(smoothing=0.5, history_seconds=1.0)
    box = (10, 10, 80, 80)
    scores = [tracker.update([face(box, p)], now=t)[0].score
              for t, p in ((0.0, 1.0), (0.6, 0.0), (1.2, 0.0))]
    assert scores == [1.0, 0.5, 0.25]
    times, _ = tracker.histories()[1]
    assert list(times) == [0.6, 1.2]


def test_live_loop_verdicts_on_the_sample_video(tmp_path, samples_dir, pipeline):
    video = write_video(tmp_path / "v.avi", samples_dir)
    loop = LiveLoop(open_source(SourceSpec.parse(str(video)), loop=False), pipeline, mirror=True)
    frames = []
    while (frame := loop.step()) is not None:
        frames.append(frame)
    assert len(frames) == FRAMES_PER_SAMPLE * len(SEQUENCE)
    for frame in frames:
        expected = SEQUENCE[frame.index // FRAMES_PER_SAMPLE][1]
        assert [f.label(0.5) for f in frame.faces] == [expected]
        assert frame.rgb.flags["C_CONTIGUOUS"] and frame.rgb.shape == (480, 640, 3)
    # Mirrored boxes stay on the (centred) face, and the pixels are flipped with them.
    x, _, w, _ = frames[0].faces[0].result.box
    assert abs((x + w / 2) - 320) < 60
    assert frames[0].mirrored and frames[0].timings.total > 0


def test_settings_round_trip_and_bad_files(tmp_path):
    path = tmp_path / "cfg" / "settings.json"
    assert load_settings(path) == (Settings(), None)
    settings = Settings(threshold=0.7, confirm_frames=5, source="clip.mp4",
                        last_folders={"images": "/data"}, geometry="AAA=")
    save_settings(settings, path)
    assert load_settings(path) == (settings, None)
    assert [p.name for p in path.parent.iterdir()] == ["settings.json"]  # no temp left

    path.write_text("{not json", encoding="utf-8")
    loaded, warning = load_settings(path)
    assert loaded == Settings() and "corrupt" in warning

    path.write_text(json.dumps({"threshold": 7, "mirror": "yes", "confirm_frames": 4,
                                "unknown": 1}), encoding="utf-8")
    loaded, warning = load_settings(path)
    assert loaded.threshold == 0.5 and loaded.mirror is True and loaded.confirm_frames == 4
    assert "threshold" in warning and "mirror" in warning
    path.write_text("[1, 2]", encoding="utf-8")
    assert load_settings(path)[0] == Settings()


def test_camera_that_stops_sending_frames_raises_a_clear_error():
    """A webcam unplugged mid-stream: reads fail; after a short grace the source says so."""
    from fasdesk.core.live.sources import CAMERA_MAX_FAILURES, CameraSource

    class UnpluggedCapture:  # what cv2.VideoCapture.read returns once the device is gone
        reads = 0

        def read(self):
            self.reads += 1
            return False, None

        def release(self):
            pass

    camera = CameraSource(0, "USB Camera")
    camera._cap, camera._opened = UnpluggedCapture(), True
    with pytest.raises(SourceError, match="USB Camera stopped sending frames"):
        camera.read()
    assert camera._cap.reads == CAMERA_MAX_FAILURES
    camera.close()


def test_each_photo_of_a_folder_starts_new_tracks(tmp_path, samples_dir, pipeline):
    # The same photo under two names: the boxes overlap exactly, so only the change of
    # photo keeps the face of one from continuing the other's track (and plot line).
    for name in ("a.jpg", "b.jpg"):
        shutil.copy(samples_dir / "real_T1.jpg", tmp_path / name)
    loop = LiveLoop(open_source(SourceSpec.parse(str(tmp_path))), pipeline)
    frames = [loop.step() for _ in range(4)]  # a, b, a, b
    assert [[f.track_id for f in frame.faces] for frame in frames] == [[1], [2], [3], [4]]
    assert all(len(times) == 1 for times, _ in frames[-1].histories.values())
    assert sorted(frames[-1].histories) == [1, 2, 3, 4]  # earlier photos stay on the plot
    # One image shown again and again is one face, one track.
    single = LiveLoop(open_source(SourceSpec.parse(str(tmp_path / "a.jpg"))), pipeline)
    assert [[f.track_id for f in single.step().faces] for _ in range(3)] == [[1], [1], [1]]


def test_tracker_new_scene_closes_tracks_but_keeps_their_history():
    tracker = FaceTracker()
    box = (100, 100, 80, 80)
    assert tracker.update([face(box, 0.9)], 0.0)[0].track_id == 1
    assert tracker.update([face(box, 0.9)], 0.1)[0].track_id == 1
    tracker.new_scene()
    assert tracker.update([face(box, 0.1)], 0.2)[0].track_id == 2
    assert tracker.update([face(box, 0.1)], 0.3)[0].track_id == 2
    history = tracker.histories()
    assert list(history[1][1]) == [0.9, 0.9] and list(history[2][1]) == [0.1, 0.1]
