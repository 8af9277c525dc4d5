"""The `fasdesk` command line: classify, models, doctor (as a real process and through
main())."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np

from fasdesk.cli import main
from fasdesk.core.io.imageio import read_image
from conftest import run_fasdesk
from imagecases import write_cases

EXPECTED = {"real_T1.jpg": "real", "spoof_F1.jpg": "spoof", "spoof_F2.jpg": "spoof"}


def check_sample_records(records: list[dict], samples_dir) -> None:
    reference = json.loads((samples_dir / "reference.json").read_text())
    assert [r["path"].rsplit("/", 1)[-1] for r in records] == sorted(EXPECTED)
    for record in records:
        name = record["path"].rsplit("/", 1)[-1]
        assert (record["width"], record["height"], record["error"]) == (480, 640, None)
        assert len(record["faces"]) == 1
        face, ref = record["faces"][0], reference[name][0]
        assert set(face) == {"box", "detector_score", "p_real", "label", "reason", "logits"}
        assert face["label"] == EXPECTED[name] and face["reason"] is None
        assert np.abs(np.subtract(face["box"], ref["box_xywh"])).max() <= 3
        assert abs(face["p_real"] - ref["best_model.onnx"]["p_real"]) < 0.02
        assert len(face["logits"]) == 2


def test_classify_samples_json_in_a_real_process(samples_dir):
    proc = run_fasdesk("classify", str(samples_dir), "--json")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    check_sample_records([json.loads(line) for line in proc.stdout.splitlines()], samples_dir)


def test_classify_samples_json_through_main(samples_dir, capsys, fp32_model, detector_model):
    args = ["classify", str(samples_dir), "--json", "--model", str(fp32_model),
            "--detector", str(detector_model)]
    assert main(args) == 0
    out = capsys.readouterr().out
    check_sample_records([json.loads(line) for line in out.splitlines()], samples_dir)


def test_bad_inputs_are_reported_and_the_run_goes_on(tmp_path, samples_dir):
    cases = write_cases(tmp_path / "mixed", samples_dir)
    missing = tmp_path / "not-there.jpg"
    # An ASCII-only console (as on some Windows code pages) must not break on "顔".
    proc = run_fasdesk("classify", str(tmp_path / "mixed"), str(missing), "--json",
                       env={"PYTHONIOENCODING": "ascii"})
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and proc.stderr == ""
    records = {json.loads(line)["path"]: json.loads(line) for line in proc.stdout.splitlines()}
    assert len(records) == len(cases) + 1
    for name, expected in cases.items():
        record = records[str(tmp_path / "mixed" / name)]
        if expected.startswith("error:"):
            assert expected[6:] in record["error"] and "\n" not in record["error"]
            assert record["faces"] == []
        else:
            assert record["error"] is None
            assert len(record["faces"]) == (1 if expected == "face" else 0), name
    assert records[str(missing)]["error"] == "file not found"


def test_table_threshold_and_annotate(tmp_path, samples_dir, capsys, monkeypatch):
    out_dir = tmp_path / "annotated"
    elsewhere = tmp_path / "elsewhere" / "spoof_F2.jpg"
    elsewhere.parent.mkdir()
    shutil.copy(samples_dir / "spoof_F2.jpg", elsewhere)
    args = ["classify", str(samples_dir), str(elsewhere), str(samples_dir / "spoof_F1.jpg"),
            "--annotate", str(out_dir)]
    assert main(args) == 0
    table = capsys.readouterr().out.splitlines()
    assert "REAL" in table[0] and "SPOOF" in table[1] and "SPOOF" in table[2]
    assert table[-1] == ("5 image(s), 5 face(s): 1 real, 4 spoof, 0 unsure; 0 unreadable; "
                         "threshold 0.5 (default)")
    # Files from a folder keep their place under the folder's name, a file named directly
    # goes on top, and a second copy of the same file does not overwrite the first.
    written = sorted(p.relative_to(out_dir).as_posix() for p in out_dir.rglob("*.jpg"))
    assert written == ["samples/real_T1.jpg", "samples/spoof_F1.jpg", "samples/spoof_F1_1.jpg",
                       "samples/spoof_F2.jpg", "spoof_F2.jpg"]
    for name, label in EXPECTED.items():
        drawn = read_image(out_dir / "samples" / name).astype(int)
        original = read_image(samples_dir / name)
        assert drawn.shape == original.shape
        record = json.loads(_classify_json(samples_dir / name, capsys))
        x, y, w, h = record["faces"][0]["box"]
        b, g, r = drawn[y + h // 2, x]
        if label == "real":
            assert g > r + 80 and g > b + 80
        else:
            assert r > g + 80 and r > b + 80
    # '.' is named after the folder it stands for; nothing lands outside DIR.
    monkeypatch.chdir(samples_dir)
    assert main(["classify", ".", "--annotate", str(tmp_path / "dot")]) == 0
    assert sorted(p.name for p in (tmp_path / "dot" / "samples").iterdir()) == sorted(EXPECTED)
    capsys.readouterr()
    # A stricter threshold turns the real face into a spoof.
    assert main(["classify", str(samples_dir / "real_T1.jpg"), "--threshold", "0.99999"]) == 0
    assert "SPOOF" in capsys.readouterr().out


def _classify_json(path, capsys) -> str:
    assert main(["classify", str(path), "--json"]) == 0
    return capsys.readouterr().out


def test_classify_refusals_are_one_line(tmp_path, samples_dir, capsys, monkeypatch, request):
    def refused(args, *words):
        assert main(args) == 1
        captured = capsys.readouterr()
        assert captured.out == "" and captured.err.count("\n") == 1, captured.err
        for word in words:
            assert word in captured.err

    refused(["classify", str(samples_dir), "--model", str(tmp_path / "gone.onnx")], "not found")
    refused(["classify", str(samples_dir), "--threshold", "1.5"], "between 0 and 1")
    (tmp_path / "empty").mkdir()
    refused(["classify", str(tmp_path / "empty")], "no image files")
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\x00" * 100)
    refused(["classify", str(samples_dir), "--model", str(junk)], "cannot load", "junk.onnx")
    # No models anywhere: say how to get them.
    monkeypatch.setenv("FASDESK_MODELS_DIR", str(tmp_path / "empty"))
    request.getfixturevalue("without_bundled_models")
    refused(["classify", str(samples_dir)], "fasdesk models pull")


def test_models_list_json(capsys, models_dir, fp32_model, detector_model):
    assert main(["models", "list", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert all(list(row) == ["id", "kind", "path", "sha256", "default"] for row in rows)
    by_id = {row["id"]: row for row in rows}
    assert by_id["minifasnet-v2se"] == {
        "id": "minifasnet-v2se", "kind": "liveness", "path": str(fp32_model),
        "sha256": "af2381b88f38769222ed93379e12444e2a50814575de1c46170de570c55a42b6",
        "default": True}
    assert by_id["yunet-2023mar"]["kind"] == "detector" and by_id["yunet-2023mar"]["default"]
    assert by_id["minifasnet-v2se-dynq"]["default"] is False
    assert main(["models"]) == 0
    assert "minifasnet-v2se" in capsys.readouterr().out


def test_models_list_without_files(capsys, monkeypatch, tmp_path, without_bundled_models):
    monkeypatch.setenv("FASDESK_MODELS_DIR", str(tmp_path))
    assert main(["models", "list", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    # Every known model is still listed (the manifest's), none with a file.
    assert {"minifasnet-v2se", "minifasnet-v2se-dynq", "yunet-2023mar"} <= {r["id"] for r in rows}
    assert [row["path"] for row in rows] == [None] * len(rows)


def test_models_verify(capsys, monkeypatch, tmp_path, models_dir, fp32_model, detector_model,
                       request):
    from fasdesk.core.models import registry

    assert main(["models", "verify"]) == 0
    out = capsys.readouterr().out
    for model_id in ("minifasnet-v2se", "yunet-2023mar", "minifasnet-v2se-pth"):  # bundled
        assert f"{model_id}: ok (" in out, model_id
    assert out.count(": ok (") + out.count(": not found") == len(registry.load_manifest())
    request.getfixturevalue("without_bundled_models")
    bad = tmp_path / "bad"
    bad.mkdir()
    data = bytearray(detector_model.read_bytes())
    data[1000] ^= 1
    (bad / "detector.onnx").write_bytes(bytes(data))
    monkeypatch.setenv("FASDESK_MODELS_DIR", str(bad))
    assert main(["models", "verify"]) == 1
    captured = capsys.readouterr()
    assert "yunet-2023mar: HASH MISMATCH" in captured.out and "models pull" in captured.out
    assert "minifasnet-v2se: not found" in captured.out
    assert "1 model(s) failed verification" in captured.err


def test_models_verify_exit_status(capsys, monkeypatch, tmp_path, fp32_model, detector_model,
                                   without_bundled_models):
    folder = tmp_path / "models"
    folder.mkdir()
    monkeypatch.setenv("FASDESK_MODELS_DIR", str(folder))
    # Nothing anywhere: not a success.
    assert main(["models", "verify"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("fasdesk: not found: minifasnet-v2se, yunet-2023mar; run "
                          "'fasdesk models pull', or offline copy best_model.onnx and "
                          "detector.onnx")
    assert "FASDESK_MODELS_DIR" in err
    # The two the app needs, intact: success, though the optional quantized model is absent.
    shutil.copy(fp32_model, folder)
    shutil.copy(detector_model, folder)
    assert main(["models", "verify"]) == 0
    assert "minifasnet-v2se-dynq: not found" in capsys.readouterr().out
    # A model asked for by name must be there.
    assert main(["models", "verify", "minifasnet-v2se-dynq"]) == 1
    assert "'fasdesk models pull minifasnet-v2se-dynq'" in capsys.readouterr().err
    assert main(["models", "verify", "yunet-2023mar"]) == 0


def test_doctor(capsys, fp32_model, detector_model):
    # A real process, so we can also see that torch is never imported to report it.
    code = ("import sys; from fasdesk.cli import main; rc = main(['doctor']); "
            "print('torch imported:', 'torch' in sys.modules, file=sys.stderr); "
            "raise SystemExit(rc)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for word in ("onnxruntime", "opencv", "numpy", "python", "CPUExecutionProvider",
                 "minifasnet-v2se (default): ok", "yunet-2023mar (default): ok", "cameras:",
                 "liveness model minifasnet-v2se optimized: yes (exact rewrite",
                 "no problems found"):
        assert word in proc.stdout, word
    assert proc.stderr.strip() == "torch imported: False"
    assert main(["doctor", "--json", "--no-cameras"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["problems"] == [] and report["cameras"] is None
    assert {"fasdesk", "python", "numpy", "opencv", "onnxruntime", "torch"} <= set(report["versions"])
    assert "CPUExecutionProvider" in report["providers"]["available"]
    assert report["liveness_runtime"]["model"] == "minifasnet-v2se"
    assert report["liveness_runtime"]["optimized"] is True


def test_doctor_reports_a_damaged_model(capsys, monkeypatch, tmp_path, detector_model):
    (tmp_path / "detector.onnx").write_bytes(b"not the detector")
    monkeypatch.setenv("FASDESK_MODELS_DIR", str(tmp_path))
    assert main(["doctor", "--no-cameras"]) == 1
    out = capsys.readouterr().out
    assert "yunet-2023mar (default): hash mismatch" in out and "problems:" in out
