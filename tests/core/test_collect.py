"""Collect mode's core: one live face per press, saved as a folders-layout dataset prep reads."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from fasdesk.core.datasets import dataset_info
from fasdesk.core.datasets.collect import (AutoCapture, CollectError, SampleCollector, default_dataset_dir,
                                  delete_sample, face_at, pick_face)
from fasdesk.core.images.display import sample_thumbnail
from fasdesk.core.io.imageio import read_image
from fasdesk.core.live.loop import LiveLoop
from fasdesk.core.live.sources import SourceSpec, open_source
from fasdesk.core.live.tracking import FaceTracker

from livevideo import two_face_frame


def _video(path, frames):
    height, width = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (width, height))
    assert writer.isOpened()
    for frame in frames:
        writer.write(frame)
    writer.release()
    return path


def _live_frames(spec_text, pipeline, count):
    """`count` frames through the live loop (source, pipeline, tracker), as Live runs them."""
    loop = LiveLoop(open_source(SourceSpec.parse(spec_text), loop=True), pipeline, FaceTracker())
    try:
        return [loop.step() for _ in range(count)]
    finally:
        loop.source.close()


def test_samples_from_a_video_source_land_labelled_with_their_boxes(tmp_path, samples_dir, pipeline):
    # A recorded "camera": 4 frames of the live face, then 4 of a recaptured one.
    real = read_image(samples_dir / "real_T1.jpg")
    spoof = read_image(samples_dir / "spoof_F1.jpg")
    video = _video(tmp_path / "session.avi", [real] * 4 + [spoof] * 4)

    collector = SampleCollector(tmp_path / "ds")
    auto = AutoCapture(every=2)
    seen_boxes = {"real": [], "replay": []}
    for index, frame in enumerate(_live_frames(str(video), pipeline, 8)):
        label = "real" if index < 4 else "replay"
        if index in (0, 4):
            auto.press(label)  # the person holds the button for this stretch
        due = auto.tick()
        if due is None:
            continue
        face, problem = pick_face(frame.faces)
        assert problem is None and len(frame.faces) == 1
        collector.save(frame.rgb, face.result.box, due, rgb=True)
        seen_boxes[due].append(tuple(int(v) for v in face.result.box))

    # Every second frame while held: 2 of each.
    assert collector.counts["real"] == 2 and collector.counts["replay"] == 2
    assert SampleCollector(tmp_path / "ds").counts == collector.counts  # counted from disk

    samples = list(dataset_info.iter_samples(tmp_path / "ds"))
    assert sorted(s.spoof_type for s in samples) == [0, 0, 7, 7]
    for sample in samples:
        label = "real" if sample.is_live else "replay"
        assert sample.box_path is not None
        image = read_image(sample.path)
        box = dataset_info.read_box(sample.box_path, dataset_info.FOLDERS,
                                    image.shape[1], image.shape[0])
        assert tuple(int(v) for v in box) in seen_boxes[label]
        # The saved frame still shows the face the box points at.
        again = pipeline.process(image)
        x, y, w, h = again[0].box
        assert abs(x - box[0]) < 0.1 * w and abs(y - box[1]) < 0.1 * h

    info = dataset_info.scan(tmp_path / "ds")
    assert info.ok and info.layout == dataset_info.FOLDERS
    assert info.counts == {0: 2, 7: 2} and info.missing_boxes == 0


def test_one_press_saves_one_face_the_clicked_one_or_the_largest(tmp_path, samples_dir, pipeline):
    """Someone holds a printed photo next to their face: pressing Print must not save
    their real face as a print too (it did: every face got the button's class)."""
    folder = tmp_path / "cam"
    folder.mkdir()
    cv2.imwrite(str(folder / "frame.png"), two_face_frame(samples_dir))
    frames = _live_frames(str(folder), pipeline, 3)
    frame = frames[-1]
    assert len(frame.faces) == 2
    real, printed = sorted(frame.faces, key=lambda f: f.result.box[0])  # live left, photo right
    assert real.label(0.5) == "real" and printed.label(0.5) == "spoof"
    area = lambda f: f.result.box[2] * f.result.box[3]  # noqa: E731
    assert area(printed) > area(real)

    # Nothing selected: the largest face only.
    assert pick_face(frame.faces) == (printed, None)
    collector = SampleCollector(tmp_path / "ds")
    saved = collector.save(frame.rgb, pick_face(frame.faces)[0].result.box, "print", rgb=True)
    # A click inside the live face selects it (its track id holds from frame to frame).
    x, y, w, h = real.result.box
    clicked = face_at(frame.faces, x + w / 2, y + h / 2)
    assert clicked is real and face_at(frame.faces, 2, 2) is None
    face, problem = pick_face(frames[-1].faces, clicked.track_id)
    assert face is real and problem is None
    collector.save(frame.rgb, face.result.box, "real", rgb=True)

    samples = {s.spoof_type: s for s in dataset_info.iter_samples(tmp_path / "ds")}
    assert sorted(samples) == [0, 1] and collector.counts["print"] == collector.counts["real"] == 1
    for spoof_type, face in ((0, real), (1, printed)):
        image = read_image(samples[spoof_type].path)
        box = dataset_info.read_box(samples[spoof_type].box_path, dataset_info.FOLDERS,
                                    image.shape[1], image.shape[0])
        assert box == tuple(float(v) for v in face.result.box)
        # The thumbnail the Dataset step shows is the crop the model sees: same verdict.
        thumb = sample_thumbnail(samples[spoof_type].path, dataset_info.FOLDERS, 128)
        assert (thumb.width, thumb.height) == (128, 128)
        rgb = np.frombuffer(thumb.data, np.uint8).reshape(128, 128, 3)
        logits = pipeline.engine.logits(
            (rgb.astype(np.float32) / 255.0).transpose(2, 0, 1)[None])
        assert (logits[0, 0] > logits[0, 1]) == (spoof_type == 0)

    # A selected face that left the frame, or that cannot be judged: nothing, with the reason.
    face, problem = pick_face(frame.faces, 999)
    assert face is None and "not in this frame" in problem
    delete_sample(saved)
    assert not saved.exists() and not dataset_info.box_path_for(saved).exists()
    collector.recount()
    assert collector.counts["print"] == 0 and collector.counts["real"] == 1


def test_faces_the_model_cannot_judge_are_not_collected(tmp_path, samples_dir, pipeline):
    image = read_image(samples_dir / "real_T1.jpg")
    small = cv2.resize(image, (image.shape[1] // 6, image.shape[0] // 6),
                       interpolation=cv2.INTER_AREA)
    cv2.imwrite(str(tmp_path / "small.png"), small)
    frame = _live_frames(str(tmp_path / "small.png"), pipeline, 1)[0]
    assert frame.faces and all(f.result.reason for f in frame.faces)
    face, problem = pick_face(frame.faces)
    assert face is None and "no face" in problem
    face, problem = pick_face(frame.faces, frame.faces[0].track_id)
    assert face is None and "cannot be judged" in problem


def test_unknown_class_and_unwritable_folder_are_clear_errors(tmp_path):
    collector = SampleCollector(tmp_path / "ds")
    frame = np.zeros((120, 160, 3), np.uint8)
    with pytest.raises(ValueError, match="unknown sample class"):
        collector.save(frame, (10, 10, 50, 50), "cat")
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(CollectError, match="cannot save samples"):
        SampleCollector(blocker).save(frame, (10, 10, 50, 50), "real")
    assert collector.counts["real"] == 0


def test_default_dataset_is_under_the_user_data_dir():
    from fasdesk.core.io.paths import data_dir

    assert default_dataset_dir().is_relative_to(data_dir())


def test_auto_capture_keeps_every_kth_frame_while_held():
    auto = AutoCapture(every=3)
    assert auto.tick() is None
    auto.press("print")
    kept = [auto.tick() for _ in range(7)]
    assert kept == ["print", None, None, "print", None, None, "print"]
    auto.release()
    assert auto.tick() is None
