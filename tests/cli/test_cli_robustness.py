"""The command line under hostile input (issue 15, items 2, 3, 6 and 7): one line each,
never a traceback, never a hang. Real processes, real models."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

import pytest
from conftest import run_fasdesk

from robustcases import CAPPED, fifos, nan_model, needs_fifo, radiance_bomb, sparse  # noqa: F401

LONG = "a" * 300  # one name component over every common file system's 255-byte limit




def one_line_error(stderr: str) -> str:
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    return lines[0]


@needs_fifo
def test_classify_reports_fifos_devices_giants_and_bombs_and_goes_on(fifos, tmp_path,
                                                                    samples_dir):
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "face.jpg").write_bytes((samples_dir / "real_T1.jpg").read_bytes())
    fifos(folder / "in_folder.jpg")
    alone = fifos(tmp_path / "x.jpg")
    giant = sparse(tmp_path / "giant.jpg")
    bomb = radiance_bomb(tmp_path / "hdr.jpg")
    # The timeout is the test: before the fix the FIFOs blocked classify for ever.
    proc = run_fasdesk("classify", "--json", str(alone), "/dev/zero", str(giant), str(bomb),
                       str(folder), timeout=120, preexec_fn=CAPPED)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    records = {Path(r["path"]).name: r for r in map(json.loads, proc.stdout.splitlines())}
    assert set(records) == {"x.jpg", "zero", "giant.jpg", "hdr.jpg", "in_folder.jpg", "face.jpg"}
    assert "FIFO" in records["x.jpg"]["error"] and "FIFO" in records["in_folder.jpg"]["error"]
    assert "device" in records["zero"]["error"]
    assert "too large" in records["giant.jpg"]["error"]
    assert "15000x14000 pixels, over the 200 MP limit" in records["hdr.jpg"]["error"]
    assert records["face.jpg"]["error"] is None and records["face.jpg"]["faces"][0]["label"] == "real"


@pytest.mark.parametrize("json_flag", [[], ["--json"]])
def test_a_reader_that_goes_away_ends_classify_quietly(tmp_path, samples_dir, json_flag):
    # `fasdesk classify ... | head -1`: the reader closes the pipe after one line. Enough
    # photos that classify is still writing then (with three it may already be done).
    for i in range(40):
        shutil.copy(samples_dir / "real_T1.jpg", tmp_path / f"real_{i:02d}.jpg")
    proc = subprocess.Popen([sys.executable, "-m", "fasdesk", "classify", *json_flag,
                             str(tmp_path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    first = proc.stdout.readline()
    proc.stdout.close()
    _, err = proc.communicate(timeout=120)
    assert b"real_00.jpg" in first
    assert proc.returncode == 141  # 128 + SIGPIPE, as for any Unix tool
    assert err == b"", err.decode()


def test_names_too_long_for_the_file_system(tmp_path, samples_dir):
    proc = run_fasdesk("classify", "--json", str(tmp_path / f"{LONG}.jpg"),
                       str(samples_dir / "real_T1.jpg"), preexec_fn=CAPPED)
    assert proc.returncode == 2 and proc.stderr == ""
    first, second = map(json.loads, proc.stdout.splitlines())
    assert first["error"] == "cannot read (File name too long)"
    assert second["error"] is None
    for flag in ("--model", "--detector"):
        proc = run_fasdesk("classify", flag, f"{LONG}.onnx", str(samples_dir), preexec_fn=CAPPED)
        assert proc.returncode == 1
        assert one_line_error(proc.stderr).startswith("fasdesk: model file not found")
    proc = run_fasdesk("classify", "--annotate", str(tmp_path / LONG),
                       str(samples_dir / "real_T1.jpg"), preexec_fn=CAPPED)
    assert proc.returncode == 1
    assert "File name too long" in one_line_error(proc.stderr)


@pytest.mark.parametrize("value", ["nan", "inf", "-1", "soon"])
def test_quit_after_takes_only_a_number_of_seconds(value):
    proc = run_fasdesk("--quit-after", value, timeout=60,
                       env={"QT_QPA_PLATFORM": "offscreen"}, preexec_fn=CAPPED)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("fasdesk: error: argument --quit-after")


@needs_fifo
def test_bench_refuses_a_fifo_or_device_as_its_source(fifos, tmp_path):
    pipe = fifos(tmp_path / "clip.mp4")
    for source in (pipe, "/dev/zero", tmp_path / f"{LONG}.mp4"):
        proc = run_fasdesk("bench", "--repeats", "1", "--folder-images", "0", "--source",
                           str(source), timeout=120, preexec_fn=CAPPED)
        assert proc.returncode == 1
        assert one_line_error(proc.stderr).startswith("fasdesk: --source")


def test_nan_logits_give_no_verdict_and_valid_json(tmp_path, samples_dir, detector_model):
    model = nan_model(tmp_path / "nan.onnx")
    proc = run_fasdesk("classify", "--json", "--model", str(model), "--detector",
                       str(detector_model), str(samples_dir), preexec_fn=CAPPED)
    assert proc.returncode == 0
    # The NaN test model has nothing for the fast rewrite, which is said in its own
    # log line (issue 11); the error itself is still one line.
    assert "Traceback" not in proc.stderr, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if "invalid scores" in line]
    assert len(errors) == 1, proc.stderr
    # Strict JSON: a NaN/Infinity token fails the parse.
    records = [json.loads(line, parse_constant=lambda c: pytest.fail(f"JSON has {c}"))
               for line in proc.stdout.splitlines()]
    faces = [face for record in records for face in record["faces"]]
    assert len(records) == 3 and len(faces) == 3
    for face in faces:
        assert face["p_real"] is None and face["label"] == "unsure" and face["logits"] == []
        assert face["reason"].startswith("model error: invalid scores")


@pytest.mark.parametrize("weights", [(np.nan, np.nan), (0.0, -np.inf)], ids=["nan", "inf"])
def test_invalid_logits_give_no_score_in_a_live_frame_of_several_faces(
        tmp_path, samples_dir, detector_model, weights):
    """Live frames with two or more faces run as two half-batches (SplitBatchEngine.judge);
    a broken model's faces get no score there either: logits [0, -inf] are not p_real 1.0."""
    import cv2

    from fasdesk.core.inference.pipeline import INVALID_OUTPUT, build_pipeline

    model = nan_model(tmp_path / "broken.onnx", weights=weights)
    pipeline = build_pipeline(model, detector_model, live=True)
    face = cv2.imread(str(samples_dir / "real_T1.jpg"))
    frame = cv2.resize(cv2.hconcat([face, face]), (640, 427))
    results = pipeline.process(frame)
    assert len(results) == 2
    assert all(r.p_real is None and r.label == "unsure" and r.reason == INVALID_OUTPUT
               for r in results), results
