"""Batch classification of files and folders, image reading of every bad input class, and
the annotation drawing."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fasdesk.core.images.annotate import COLOURS, draw_faces, face_caption, save_image
from fasdesk.core.images.batch import classify_paths
from fasdesk.core.io.imageio import ImageReadError, decode_image, iter_image_files, read_image
from fasdesk.core.inference.pipeline import FaceResult
from imagecases import jpeg_bomb, png_bomb, write_cases


@pytest.fixture(scope="module")
def cases(tmp_path_factory, samples_dir):
    folder = tmp_path_factory.mktemp("cases")
    return folder, write_cases(folder, samples_dir)


def check_result(result, expected: str) -> None:
    """One ImageResult against what imagecases says about its file."""
    if expected.startswith("error:"):
        assert result.error, result
        assert expected[6:] in result.error
        assert "\n" not in result.error and len(result.error) < 200
        assert result.faces == [] and (result.width, result.height) == (0, 0)
    else:
        assert result.error is None, result.error
        assert result.width > 0 and result.height > 0
        if expected == "face":
            assert len(result.faces) == 1
            assert result.faces[0].label in ("real", "spoof")
        else:
            assert result.faces == []


def test_every_input_class_in_a_folder(cases, pipeline):
    folder, expected = cases
    seen = []
    results = list(classify_paths([folder], pipeline, workers=2,
                                  progress=lambda done, total, path: seen.append((done, total))))
    by_name = {Path(r.path).relative_to(folder).as_posix(): r for r in results}
    # Every image-named file once (recursively), the .txt skipped.
    assert sorted(by_name) == sorted(expected)
    for name, want in expected.items():
        check_result(by_name[name], want)
    assert seen == [(i + 1, len(expected)) for i in range(len(expected))]
    # The copies of real_T1 keep real_T1's verdict and box, whatever their encoding.
    base = by_name["good.jpg"].faces[0]
    for name in ("rgba.png", "sixteen_bit.png", "visage é ü 顔.jpg", "UPPER.JPEG",
                 "exif_rotated.jpg"):
        face = by_name[name].faces[0]
        assert face.label == "real"
        assert np.abs(np.subtract(face.box, base.box)).max() <= 3, name
    assert by_name["nested/deeper/spoof copy.jpg"].faces[0].label == "spoof"


def test_results_follow_input_order_and_report_missing_paths(cases, pipeline, samples_dir):
    folder, _ = cases
    inputs = [samples_dir / "spoof_F2.jpg", folder / "empty.jpg", folder / "nope.jpg",
              samples_dir / "real_T1.jpg", samples_dir / "spoof_F1.jpg"]
    results = list(classify_paths(inputs, pipeline, workers=3))
    assert [r.path for r in results] == [str(p) for p in inputs]
    assert [r.faces[0].label if r.faces else r.error for r in results] == [
        "spoof", "empty file", "file not found", "real", "spoof"]
    record = results[0].to_json()
    assert list(record) == ["path", "width", "height", "faces", "error"]
    assert list(record["faces"][0]) == ["box", "detector_score", "p_real", "label", "reason",
                                        "logits"]
    assert results[0].image is None


def test_folders_are_walked_in_natural_order(tmp_path):
    """r2 before r10, as a person numbers photos (and sub-folders likewise)."""
    for name in ("r10.jpg", "r2.jpg", "R1.png", "s9/a.jpg", "s10/a.jpg", "notes.txt"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    found = [p.relative_to(tmp_path).as_posix() for p in iter_image_files([tmp_path])]
    assert found == ["R1.png", "r2.jpg", "r10.jpg", "s9/a.jpg", "s10/a.jpg"]


def test_cancel_stops_the_batch(samples_dir, pipeline):
    files = [samples_dir / n for n in ("real_T1.jpg", "spoof_F1.jpg", "spoof_F2.jpg")] * 3
    done = []
    results = list(classify_paths(files, pipeline, cancelled=lambda: len(done) >= 2,
                                  progress=lambda d, t, p: done.append(d), keep_images=True))
    assert len(results) == 2
    assert results[0].image is not None and results[0].image.shape == (640, 480, 3)


def test_empty_input_yields_nothing(tmp_path, pipeline):
    assert list(classify_paths([tmp_path], pipeline)) == []


def test_decompression_bomb_is_refused_before_decoding():
    for data in (png_bomb(), jpeg_bomb()):
        with pytest.raises(ImageReadError, match="60000x60000"):
            decode_image(data, "bomb")
    # The same headers with a sane size decode (so the refusal is about the size).
    assert decode_image(jpeg_bomb(24, 16)).shape == (16, 24, 3)


def test_read_image_messages_are_one_line(tmp_path):
    with pytest.raises(ImageReadError, match="file not found"):
        read_image(tmp_path / "missing.jpg")
    with pytest.raises(ImageReadError, match="folder"):
        read_image(tmp_path)


def _face(label, p_real, box=(40, 50, 100, 120)):
    return FaceResult(box=box, detector_score=0.9, p_real=p_real, label=label)


def test_annotation_colours_and_captions(tmp_path):
    image = np.full((400, 600, 3), 30, np.uint8)
    faces = [_face("real", 0.97, (40, 80, 120, 150)), _face("spoof", 0.03, (250, 80, 120, 150)),
             _face("unsure", None, (430, 80, 120, 150))]
    out = draw_faces(image, faces)
    assert out.shape == image.shape and not np.shares_memory(out, image)
    assert (image == 30).all()  # the input is not drawn on
    for face in faces:
        x, y, w, h = face.box
        # The left edge of each box, half-way down, has the label's colour.
        assert tuple(out[y + h // 2, x]) == COLOURS[face.label]
    assert [face_caption(f) for f in faces] == ["REAL 0.97", "SPOOF 0.03", "UNSURE"]
    # Relabelled under a stricter threshold, the real face turns red.
    strict = draw_faces(image, faces[:1], threshold=0.99)
    assert tuple(strict[80 + 75, 40]) == COLOURS["spoof"]
    # A face at the top edge gets its caption inside the box, still within the image.
    top = draw_faces(image, [_face("real", 0.9, (0, 0, 80, 80))])
    assert tuple(top[1, 1]) == COLOURS["real"]
    path = save_image(tmp_path / "sub" / "annotated é.png", out)
    assert (read_image(path) == out).all()
    with pytest.raises(OSError, match="unsupported"):
        save_image(tmp_path / "x.gif", out)


def test_batches_reuse_the_worker_replicas_and_follow_the_threshold(samples_dir, fp32_model,
                                                                      detector_model):
    from fasdesk.core.inference.pipeline import build_pipeline

    pipeline = build_pipeline(str(fp32_model), str(detector_model))
    real = samples_dir / "real_T1.jpg"
    first = [r.faces[0].label for r in classify_paths([real, real, real], pipeline, workers=2)]
    replicas = [pipeline.worker_replica(slot) for slot in range(2)]
    assert first == ["real"] * 3 and len(replicas) == 2 and pipeline not in replicas
    pipeline.threshold = 0.99999  # above the sample's p_real (0.9997)
    again = [r.faces[0].label for r in classify_paths([real, real, real], pipeline, workers=2)]
    assert again == ["spoof"] * 3
    assert all(a is b for a, b in zip([pipeline.worker_replica(slot) for slot in range(2)], replicas))


def test_a_worker_that_cannot_load_its_models_shares_the_first_ones(samples_dir, fp32_model,
                                                                     detector_model,
                                                                     monkeypatch):
    """A replica that fails to load (out of memory, say) is tried once per worker, not once
    per image, and its images are still classified, with the pipeline the batch was given."""
    from fasdesk.core.inference.pipeline import Pipeline, build_pipeline

    pipeline = build_pipeline(str(fp32_model), str(detector_model), threads=1)
    attempts = []

    def no_memory(self, threads=1):
        attempts.append(1)
        raise MemoryError("cannot allocate 40 MB")

    monkeypatch.setattr(Pipeline, "replica", no_memory)
    real = samples_dir / "real_T1.jpg"
    results = list(classify_paths([real] * 6, pipeline, workers=2))
    assert [r.error for r in results] == [None] * 6
    assert [r.faces[0].label for r in results] == ["real"] * 6
    assert len(attempts) <= 1  # slot 0 is the pipeline itself; slot 1 tried once at most
    assert len(pipeline._replicas) <= 1
