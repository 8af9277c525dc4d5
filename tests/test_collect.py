"""Collect mode's core: live faces saved as a folders-layout dataset prep can read."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from fasdesk.core import dataset_info
from fasdesk.core.collect import (AutoCapture, CollectError, SampleCollector,
                                  collectable_boxes, default_dataset_dir)
from fasdesk.core.imageio import read_image
from fasdesk.core.sources import SourceSpec, open_source


def _video(path, frames):
    height, width = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (width, height))
    assert writer.isOpened()
    for frame in frames:
        writer.write(frame)
    writer.release()
    return path


def test_samples_from_a_video_source_land_labelled_with_their_boxes(tmp_path, samples_dir, pipeline):
    # A recorded "camera": 4 frames of the live face, then 4 of a recaptured one.
    real = read_image(samples_dir / "real_T1.jpg")
    spoof = read_image(samples_dir / "spoof_F1.jpg")
    video = _video(tmp_path / "session.avi", [real] * 4 + [spoof] * 4)

    collector = SampleCollector(tmp_path / "ds")
    auto = AutoCapture(every=2)
    seen_boxes = {"real": [], "replay": []}
    source = open_source(SourceSpec.parse(str(video)), loop=False)
    try:
        for index in range(8):
            frame = source.read()
            assert frame is not None
            label = "real" if index < 4 else "replay"
            if index in (0, 4):
                auto.press(label)  # the person holds the button for this stretch
            due = auto.tick()
            if due is None:
                continue
            boxes = collectable_boxes(pipeline.process(frame))
            assert len(boxes) == 1
            collector.save(frame, boxes, due)
            seen_boxes[due] += boxes
    finally:
        source.close()

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


def test_faces_the_model_cannot_judge_are_not_collected(samples_dir, pipeline):
    image = read_image(samples_dir / "real_T1.jpg")
    small = cv2.resize(image, (image.shape[1] // 6, image.shape[0] // 6),
                       interpolation=cv2.INTER_AREA)
    results = pipeline.process(small)
    assert results and all(r.reason for r in results)
    assert collectable_boxes(results) == []


def test_unknown_class_and_unwritable_folder_are_clear_errors(tmp_path):
    collector = SampleCollector(tmp_path / "ds")
    frame = np.zeros((120, 160, 3), np.uint8)
    with pytest.raises(ValueError, match="unknown sample class"):
        collector.save(frame, [(10, 10, 50, 50)], "cat")
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(CollectError, match="cannot save samples"):
        SampleCollector(blocker).save(frame, [(10, 10, 50, 50)], "real")
    assert collector.save(frame, [], "real") == []


def test_default_dataset_is_under_the_user_data_dir():
    from fasdesk.core.paths import data_dir

    assert default_dataset_dir().is_relative_to(data_dir())


def test_auto_capture_keeps_every_kth_frame_while_held():
    auto = AutoCapture(every=3)
    assert auto.tick() is None
    auto.press("print")
    kept = [auto.tick() for _ in range(7)]
    assert kept == ["print", None, None, "print", None, None, "print"]
    auto.release()
    assert auto.tick() is None
