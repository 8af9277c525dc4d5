"""`fasdesk bench`: runs both configurations on real frames and reports every field.
No timing is asserted here (a busy machine must not fail a test); only that the numbers
exist, are positive and come from the frames and configurations claimed."""
from __future__ import annotations

import json

import cv2
import pytest

from fasdesk.cli import main
from fasdesk.core.diagnostics import benchmark
from fasdesk.core.inference.detector import FaceDetector
from fasdesk.core.io.imageio import read_image

STAGES = ("decode", "detect", "preprocess", "liveness", "liveness_per_face", "total", "fps")


@pytest.fixture(autouse=True)
def _samples(samples_dir, monkeypatch):
    monkeypatch.setenv("FASDESK_SAMPLES_DIR", str(samples_dir))


def _check_frame_block(block: dict, faces: int) -> None:
    for name in ("default", "reference"):
        stats = block[name]
        assert stats["faces_per_frame"] == faces, name
        for stage in STAGES:
            assert stats[stage] > 0, (name, stage)
        # Each frame's total contains each of its parts, so the medians keep that order.
        assert stats["total"] >= max(stats[s] for s in ("decode", "detect", "preprocess", "liveness"))
    assert block["speedup"] > 0


@pytest.mark.e2e
def test_bench_json_reports_every_field(capsys, detector_model, fp32_model, quantized_model):
    assert main(["bench", "--json", "--repeats", "1", "--folder-images", "6"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["reference_config"]["model"] == quantized_model.name
    assert report["default_config"]["detect_max_side"] == 320
    assert report["machine"]["cores"] >= 1 and report["machine"]["cpu"]
    frames = report["frames"]
    assert frames["count"] == 3 and frames["size"] == [480, 640]
    _check_frame_block(frames, faces=1)
    assert frames["same_verdicts"] is True
    many = report["frames_8_faces"]
    _check_frame_block(many, faces=8)
    assert many["default_8_vs_1_face_time"] > 1
    per_face = report["liveness_batch1_ms"]
    assert all(per_face[k] > 0 for k in ("default", "fp32", "dynq"))
    folder = report["folder"]
    assert folder["images"] == 6
    assert folder["default_images_per_s"] > 0 and folder["reference_images_per_s"] > 0


@pytest.mark.e2e
def test_bench_text_report_and_video_source(tmp_path, samples_dir, capsys):
    video = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10, (480, 640))
    assert writer.isOpened()
    for _ in range(2):
        for name in ("real_T1.jpg", "spoof_F1.jpg"):
            writer.write(read_image(samples_dir / name))
    writer.release()
    assert main(["bench", "--source", str(video), "--repeats", "1", "--folder-images", "0"]) == 0
    out = capsys.readouterr().out
    assert "4 frame(s) 480x640, 1 face" in out
    assert "8-face frame" in out and "folder of" not in out
    for line in ("detect", "liveness per face", "frames per second"):
        assert line in out


def test_mosaic_has_eight_judgeable_faces(samples_dir, detector_model):
    images = [read_image(samples_dir / n) for n in ("real_T1.jpg", "spoof_F1.jpg", "spoof_F2.jpg")]
    detector = FaceDetector(detector_model)
    frame = benchmark.mosaic(images, detector)
    assert frame.shape == (480, 640, 3)
    faces = detector.detect(frame)
    assert len(faces) == 8
    assert min(max(f.box[2], f.box[3]) for f in faces) >= 64


def test_bench_bad_source_is_one_line(tmp_path, capsys):
    assert main(["bench", "--source", str(tmp_path / "missing"), "--repeats", "1"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("fasdesk: ") and err.strip().count("\n") == 0
    empty = tmp_path / "empty.txt"
    empty.write_text("not a video")
    assert main(["bench", "--source", str(empty), "--repeats", "1"]) == 1
    assert "no images or video frames" in capsys.readouterr().err


@pytest.mark.e2e
def test_bench_help_says_how_long_and_quick_is_the_short_version(capsys, detector_model,
                                                                 fp32_model):
    from fasdesk.perf import QUICK

    with pytest.raises(SystemExit):
        main(["bench", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "It takes about 2 minutes on a 2-core laptop" in help_text
    assert "without it the fp32 model stands in" in help_text
    assert "--quick takes about 15 seconds" in help_text
    assert main(["bench", "--quick", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["repeats"] == QUICK["repeats"]
    assert report["folder"]["images"] == QUICK["folder_images"]
    assert report["agreement_vs_fp32"]["crops"] == QUICK["agreement_crops"]
    # Numbers given still count.
    assert main(["bench", "--quick", "--json", "--repeats", "1", "--folder-images", "0"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["repeats"] == 1 and "folder" not in report


@pytest.mark.e2e
def test_bench_without_the_quantized_model_uses_fp32_as_the_reference(
        capsys, monkeypatch, tmp_path, fp32_model, detector_model, without_bundled_models):
    import shutil

    folder = tmp_path / "models"
    folder.mkdir()
    for model in (fp32_model, detector_model):
        shutil.copy(model, folder)
    monkeypatch.setenv("FASDESK_MODELS_DIR", str(folder))
    assert main(["bench", "--quick", "--json", "--repeats", "1", "--folder-images", "0"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["reference_config"]["model"] == "best_model.onnx"
    assert "fasdesk models pull minifasnet-v2se-dynq" in report["reference_config"]["note"]
    assert "dynq" not in report["liveness_batch1_ms"]
    assert report["frames"]["same_verdicts"] is True
    assert main(["bench", "--quick", "--repeats", "1", "--folder-images", "0"]) == 0
    assert "the reference runs the fp32 model unoptimized" in capsys.readouterr().out
