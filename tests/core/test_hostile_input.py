"""Regression tests for issue 22: the defects an adversarial run found (one test group per
item, in the issue's order). Every hostile file is built here, never committed."""
from __future__ import annotations

import errno
import json
import os
import shutil
import stat
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest

from fasdesk.cli import main
from fasdesk.core.io import files
from fasdesk.core.io.paths import user_models_dir
from fasdesk.core.models import registry
from robustcases import nan_model

HOSTILE_MANIFESTS = [
    b'{"models":[1]}',
    b"[1]",
    b'{"models":[{"kind":"liveness"}]}',
    b'{"models":[{"id":"x","kind":"liveness","file":"x.onnx","classes":5}]}',
    b"[" * 50_000,
]


def _run(*args: str, stdin=None, stdout=subprocess.PIPE, env=None, timeout=120):
    return subprocess.run([sys.executable, "-m", *args], stdout=stdout, stderr=subprocess.PIPE,
                          text=True, timeout=timeout, env=env or dict(os.environ))


def _one_line(stderr: str) -> str:
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    return lines[0]


# -- 1. annotate never writes over its source or any file it did not create ----------------

def test_annotate_into_the_photos_parent_keeps_the_originals(tmp_path, samples_dir, monkeypatch):
    photos = tmp_path / "photos"
    photos.mkdir()
    for name in ("real_T1.jpg", "spoof_F1.jpg"):
        shutil.copy(samples_dir / name, photos / name)
    before = {p.name: p.read_bytes() for p in photos.iterdir()}
    monkeypatch.chdir(tmp_path)
    # 'photos/x.jpg' under '.' is the original itself: today's code overwrote it.
    assert main(["classify", "photos", "--annotate", "."]) == 0
    assert main(["classify", "photos/real_T1.jpg", "--annotate", "photos"]) == 0
    for name, data in before.items():
        assert (photos / name).read_bytes() == data, f"{name} was overwritten"
    written = sorted(p.name for p in photos.iterdir())
    assert "real_T1-annotated.jpg" in written and "spoof_F1-annotated.jpg" in written


def test_save_image_never_replaces_an_existing_file(tmp_path):
    from fasdesk.core.images.annotate import save_image

    target = tmp_path / "a.png"
    target.write_bytes(b"precious")
    image = np.zeros((8, 8, 3), np.uint8)
    first, second = save_image(target, image), save_image(target, image)
    assert target.read_bytes() == b"precious"
    assert (first.name, second.name) == ("a-annotated.png", "a-annotated-2.png")


# -- 2. a bad file read at start is reported once, set aside, and the app starts -----------

@pytest.mark.parametrize("content", HOSTILE_MANIFESTS)
def test_a_bad_user_manifest_is_set_aside_and_models_list_works(content, capsys):
    manifest = user_models_dir() / "manifest.json"
    manifest.parent.mkdir(parents=True, exist_ok=True)
    manifest.write_bytes(content)
    assert main(["models", "list", "--json"]) == 0
    out, err = capsys.readouterr()
    assert registry.DEFAULT_LIVENESS in {row["id"] for row in json.loads(out)}
    assert "model list" in err and "moved to" in err and "Traceback" not in err
    assert not manifest.exists() and manifest.with_name("manifest.json.bad").read_bytes() == content
    assert main(["models", "list"]) == 0
    assert "model list" not in capsys.readouterr().err  # reported once


def test_the_gui_starts_with_bad_manifest_settings_and_profile(tmp_path):
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    (user_models_dir()).mkdir(parents=True, exist_ok=True)
    (user_models_dir() / "manifest.json").write_bytes(b'{"models":[1]}')
    from fasdesk.core.calibration.profiles import profiles_dir
    from fasdesk.core.io.settings import settings_path

    settings_path().parent.mkdir(parents=True, exist_ok=True)
    settings_path().write_bytes(b"[" * 50_000)
    profiles_dir().mkdir(parents=True, exist_ok=True)
    (profiles_dir() / "evil.json").write_bytes(b'{"format": 1, "threshold": "x"}')
    proc = _run("fasdesk", "--quit-after", "0.5", env=env, timeout=180)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    assert settings_path().with_name("settings.json.bad").is_file()


# -- 3. tamper checks ----------------------------------------------------------------------

def _tampered_copy(folder: Path, fp32_model: Path, detector_model: Path) -> Path:
    folder.mkdir()
    data = bytearray(fp32_model.read_bytes())
    data[-10] ^= 0xFF
    (folder / fp32_model.name).write_bytes(bytes(data))
    shutil.copy(detector_model, folder / detector_model.name)
    return folder / fp32_model.name


def test_a_registry_file_named_by_path_or_link_gets_the_hash_check(tmp_path, fp32_model,
                                                                 detector_model, monkeypatch):
    tampered = _tampered_copy(tmp_path / "models", fp32_model, detector_model)
    monkeypatch.setenv("FASDESK_MODELS_DIR", str(tampered.parent))
    link = tmp_path / "innocent.onnx"
    link.symlink_to(tampered)
    # A settings 'model' stored as a path goes through the same resolve().
    for named in (str(tampered), str(link), str(tmp_path / "models" / ".." / "models" / tampered.name)):
        with pytest.raises(registry.ModelIntegrityError):
            registry.resolve(named)


def test_the_hash_is_recomputed_after_a_same_size_rewrite_with_the_mtime_reset(tmp_path):
    path = tmp_path / "m.onnx"
    path.write_bytes(b"a" * 1000)
    st = os.stat(path)
    first = registry.file_sha256(path)
    with open(path, "r+b") as fh:  # in place: same inode, same size
        fh.write(b"b")
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert registry.file_sha256(path) != first


def test_models_verify_catches_a_tampered_cached_fast_copy(fp32_model, tmp_path, capsys):
    from fasdesk.core.inference import modelcache, optimize

    modelcache.forget_memory()
    derived = optimize.runtime_model(fp32_model)
    assert derived.path is not None
    record_path = derived.path.with_suffix(".json")
    # Replace the fast copy with another model and edit its record to match.
    evil = nan_model(tmp_path / "evil.onnx")
    shutil.copy(evil, derived.path)
    record = json.loads(record_path.read_text())
    record["sha256"] = registry.sha256_of(derived.path)
    record_path.write_text(json.dumps(record))
    assert main(["models", "verify", registry.DEFAULT_LIVENESS]) == 1
    assert "not the" in capsys.readouterr().out
    # On load, the swapped-in file lacks its source's stamp: it is rebuilt, never run.
    modelcache.forget_memory()
    again = optimize.runtime_model(fp32_model)
    assert registry.sha256_of(again.path) != registry.sha256_of(evil)
    assert main(["models", "verify", registry.DEFAULT_LIVENESS]) == 0
    modelcache.forget_memory()


# -- 4. one threshold rule: the model's stored one unless the user gives one ---------------

def test_classify_uses_the_threshold_stored_with_the_model(tmp_path, fp32_model, samples_dir,
                                                          capsys):
    model = tmp_path / "strict.onnx"
    shutil.copy(fp32_model, model)
    card = {"sha256": registry.sha256_of(model), "threshold": {"value": 0.99999}}
    (tmp_path / "strict.card.json").write_text(json.dumps(card))
    photo = str(samples_dir / "real_T1.jpg")
    assert main(["classify", photo, "--model", str(model), "--json"]) == 0
    out, err = capsys.readouterr()
    record = json.loads(out)
    assert record["threshold"] == 0.99999 and record["faces"][0]["label"] == "spoof"
    assert "stored with the model" in err
    assert main(["classify", photo, "--model", str(model), "--json", "--threshold", "0.5"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["threshold"] == 0.5 and record["faces"][0]["label"] == "real"


def test_classify_says_when_the_models_card_cannot_be_read(tmp_path, fp32_model, samples_dir,
                                                          capsys):
    model = tmp_path / "strict.onnx"
    shutil.copy(fp32_model, model)
    # The strict card of the test above, with 'classes' of the wrong type: not a card.
    card = {"sha256": registry.sha256_of(model), "threshold": {"value": 0.99999}, "classes": 5}
    (tmp_path / "strict.card.json").write_text(json.dumps(card))
    photo = str(samples_dir / "real_T1.jpg")
    assert main(["classify", photo, "--model", str(model)]) == 0
    out, err = capsys.readouterr()
    assert "REAL" in out and out.rstrip().endswith("threshold 0.5 (default)")
    assert err.count("\n") == 1 and "strict.card.json" in err and "'classes'" in err
    assert "judging at 0.5 (default)" in err
    # With the user's own threshold the card does not matter: nothing to say.
    assert main(["classify", photo, "--model", str(model), "--threshold", "0.5"]) == 0
    assert capsys.readouterr().err == ""


# -- 5. control-flow operators are refused at load -----------------------------------------

def _loop_model(path: Path, size: int = 128) -> Path:
    """The liveness interface, with a Loop of 2^62 iterations before the output."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    body = helper.make_graph(
        [helper.make_node("Identity", ["cond_in"], ["cond_out"]),
         helper.make_node("Identity", ["v_in"], ["v_out"])],
        "body",
        [helper.make_tensor_value_info("i", TensorProto.INT64, []),
         helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
         helper.make_tensor_value_info("v_in", TensorProto.FLOAT, None)],
        [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
         helper.make_tensor_value_info("v_out", TensorProto.FLOAT, None)])
    graph = helper.make_graph(
        [helper.make_node("GlobalAveragePool", ["input"], ["pooled"]),
         helper.make_node("Flatten", ["pooled"], ["flat"]),
         helper.make_node("MatMul", ["flat", "weights"], ["pre"]),
         helper.make_node("Loop", ["trips", "cond", "pre"], ["logits"], body=body)],
        "loop_liveness",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, size, size])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 2])],
        [numpy_helper.from_array(np.ones((3, 2), np.float32), "weights"),
         numpy_helper.from_array(np.array(2 ** 62, np.int64), "trips"),
         numpy_helper.from_array(np.array(True), "cond")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def test_a_model_with_a_loop_is_refused_at_load_in_one_line(tmp_path, samples_dir):
    from fasdesk.core.inference.detector import DetectorError, FaceDetector
    from fasdesk.core.inference.liveness import LivenessEngine, ModelError

    loop = _loop_model(tmp_path / "loop.onnx")
    with pytest.raises(ModelError, match="control-flow operators \\(Loop\\)"):
        LivenessEngine(loop)
    with pytest.raises(DetectorError, match="control-flow"):
        FaceDetector(loop)
    proc = _run("fasdesk", "classify", str(samples_dir / "real_T1.jpg"), "--model", str(loop),
                timeout=60)
    assert proc.returncode == 1 and "control-flow" in _one_line(proc.stderr)


# -- 6. memory: the pixel limit for video frames; decoded bytes, not pixels ----------------

def big_header_video(path: Path, width: int = 15000, height: int = 14000) -> Path:
    """A 3-frame MJPG AVI of a few kB whose container and JPEG headers claim width x height
    frames (the decoder would allocate the full frame for each)."""
    import cv2

    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 5, (64, 48))
    for _ in range(3):
        writer.write(np.zeros((48, 64, 3), np.uint8))
    writer.release()
    data = bytearray(path.read_bytes())
    at = data.find(b"\xff\xc0")  # every frame's JPEG SOF0: height, width
    while at >= 0:
        struct.pack_into(">HH", data, at + 5, height, width)
        at = data.find(b"\xff\xc0", at + 2)
    for tag, offset in ((b"avih", 8 + 32), (b"strf", 8 + 4)):  # AVI main and stream headers
        struct.pack_into("<ii", data, data.find(tag) + offset, width, height)
    path.write_bytes(bytes(data))
    return path


def test_a_video_over_the_pixel_limit_is_refused_from_its_header(tmp_path, monkeypatch):
    import cv2

    from fasdesk.core.live.sources import SourceError, VideoFileSource

    video = big_header_video(tmp_path / "big.avi")
    assert video.stat().st_size < 100_000
    decoded = []
    monkeypatch.setattr(cv2.VideoCapture, "read", lambda self: decoded.append(1))
    with pytest.raises(SourceError, match="header claims 15000x14000 frames"):
        VideoFileSource(video).open()
    assert decoded == []  # refused before any frame was decoded


def _png_header(width: int, height: int, depth: int, colour: int) -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return (struct.pack(">I", len(body)) + kind + body
                + struct.pack(">I", zlib.crc32(kind + body)))

    ihdr = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
            + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b""))


def test_a_16_bit_png_within_the_pixel_limit_is_budgeted_by_its_bytes(tmp_path):
    from fasdesk.core.io.imageio import ImageReadError, read_image

    bomb = tmp_path / "deep.png"
    bomb.write_bytes(_png_header(14_000, 14_000, 16, 6))  # 196 MP, 16-bit RGBA: 1.6 GB
    with pytest.raises(ImageReadError, match="16-bit, 4-channel.*GB of memory"):
        read_image(bomb)


# -- 7. deep or mistyped JSON: one safe reader --------------------------------------------

DEEP = "[" * 100_000 + "]" * 100_000


def test_the_json_reader_caps_depth_and_types_fields(tmp_path):
    deep = tmp_path / "deep.json"
    deep.write_text(DEEP)
    with pytest.raises(files.JsonError, match="nested too deeply"):
        files.read_json(deep, expect=None)
    assert files.parse_json('{"s": "[[[[[[[[[[[[[[[[[[[["}')["s"].startswith("[")
    with pytest.raises(files.JsonError, match="threshold: expected a number, found text"):
        files.take({"threshold": "x"}, "threshold", float)
    assert files.take({}, "size", int, 128) == 128


def test_deep_and_mistyped_json_everywhere_is_a_clean_error(tmp_path, fp32_model):
    from fasdesk.core.calibration.session import CalibrationError, Session
    from fasdesk.core.datasets import dataset_info as dsi
    from fasdesk.core.models import eval_report
    from fasdesk.core.models.cards import CardError, ModelCard, stored_threshold

    # CelebA label file
    celeba = tmp_path / "celeba"
    (celeba / "metas" / "labels").mkdir(parents=True)
    (celeba / "Data" / "train").mkdir(parents=True)
    (celeba / "metas" / "labels" / "train_label.json").write_text(DEEP)
    with pytest.raises(dsi.DatasetError, match="nested too deeply"):
        list(dsi.iter_samples(celeba))
    # model cards: nested, and of the wrong types
    model = tmp_path / "m.onnx"
    shutil.copy(fp32_model, model)
    (tmp_path / "m.card.json").write_text(DEEP)
    with pytest.raises(CardError, match="nested too deeply"):
        ModelCard.read(model)
    assert stored_threshold(model) is None
    (tmp_path / "m.card.json").write_text(json.dumps(
        {"sha256": registry.sha256_of(model), "threshold": {"value": "high"},
         "classes": 5, "split": [1], "input": {"size": "big"}}))
    with pytest.raises(CardError, match="must be"):
        ModelCard.read(model)
    assert stored_threshold(model) is None
    # a calibration session, an eval report
    (tmp_path / "session").mkdir()
    (tmp_path / "session" / "session.json").write_text(DEEP)
    with pytest.raises(CalibrationError, match="nested too deeply"):
        Session.load(tmp_path / "session")
    (tmp_path / "report.json").write_text(DEEP)
    with pytest.raises(eval_report.ReportError, match="nested too deeply"):
        eval_report.load(tmp_path / "report.json")


# -- 8. every skipped input path is an error row -------------------------------------------

def _deep_folder(root: Path, levels: int = 25) -> Path:
    """A folder chain whose full path is over PATH_MAX (made with relative steps)."""
    here = os.getcwd()
    os.chdir(root)
    try:
        for _ in range(levels):
            os.mkdir("d" * 200)
            os.chdir("d" * 200)
        with open("x.jpg", "wb") as fh:
            fh.write(b"\xff\xd8")
    finally:
        os.chdir(here)
    return root


def test_a_path_over_the_os_limit_is_an_error_row_and_exit_2(tmp_path, samples_dir, capsys):
    shutil.copy(samples_dir / "real_T1.jpg", tmp_path / "real_T1.jpg")
    _deep_folder(tmp_path)
    assert main(["classify", str(tmp_path), "--json"]) == 2
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    errors = [r for r in records if r["error"]]
    assert len(records) == 2 and len(errors) == 1
    assert "too long" in errors[0]["error"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root lists every folder")
def test_an_unlistable_folder_is_an_error_row(tmp_path, samples_dir, capsys):
    shutil.copy(samples_dir / "real_T1.jpg", tmp_path / "real_T1.jpg")
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0)
    try:
        assert main(["classify", str(tmp_path), "--json"]) == 2
    finally:
        locked.chmod(stat.S_IRWXU)
    errors = [json.loads(x)["error"] for x in capsys.readouterr().out.splitlines()]
    assert any(e and "cannot be listed" in e for e in errors)


# -- 9. any file name the OS allows: export and display -----------------------------------

def test_non_utf8_and_newline_names_export_and_show_on_one_row(tmp_path):
    from fasdesk.core.images import report

    name = os.fsdecode(b"caf\xe9\nphoto.jpg")  # Latin-1 bytes and a newline
    record = {"path": str(tmp_path / name), "width": 1, "height": 1, "faces": [], "error": None}
    report.write_csv(tmp_path / "out.csv", [record])
    report.write_json(tmp_path / "out.json", [record])
    assert b"caf\xe9\nphoto.jpg" in (tmp_path / "out.csv").read_bytes()
    assert json.loads((tmp_path / "out.json").read_text())[0]["path"] == record["path"]
    shown = report.display_name(name)
    assert "\n" not in shown and shown == "caf\\xe9\\nphoto.jpg"


# -- 10. prep output inside the source -----------------------------------------------------

def test_prep_refuses_nested_outputs_and_skips_old_ones(tmp_path, samples_dir):
    from training import prep
    from training_synth import make_folders

    ds = make_folders(tmp_path / "ds", samples_dir, per_class=2)
    with pytest.raises(prep.PrepError, match="inside the dataset"):
        prep.run(ds, ds / "real" / "out", workers=1)
    out = tmp_path / "out"
    prep.run(ds, out, workers=1)
    with pytest.raises(prep.PrepError, match="prep output"):
        prep.run(out / "crops", tmp_path / "out2", workers=1)
    # An output left inside the source by an older version is not read as raw images.
    shutil.copytree(out, ds / "real" / "old")
    manifest = prep.run(ds, tmp_path / "out3", workers=1)
    assert manifest["counts"]["real"] == 2 and manifest["counts"]["spoof"] == 2


# -- 11. metrics over non-finite scores are an error ---------------------------------------

def test_a_nan_model_does_not_report_a_perfect_auc():
    from training import metrics as M
    from training.evaluate import build_report

    with pytest.raises(M.NonFiniteScores):
        M.roc_auc([True, False], [np.nan, 0.1])
    logits = np.full((4, 2), np.nan)
    with pytest.raises(M.NonFiniteScores):
        build_report(logits, np.array([0, 0, 1, 1]), ["real", "spoof"], [0, 0, 7, 7])


# -- 12. one-line errors instead of tracebacks ---------------------------------------------

@pytest.mark.parametrize("argv", [
    ["--quit-after", "3000000"],
    ["models", "optimize", "--crops", "1e8"],
    ["models", "optimize", "--crops", "100000000"],
])
def test_fasdesk_arguments_out_of_range_are_usage_errors(argv, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    assert "error: argument" in capsys.readouterr().err  # (one usage line + the error)


@pytest.mark.parametrize("argv", [
    ["train", "d", "o", "--threads", "-3"], ["train", "d", "o", "--dropout", "2"],
    ["train", "d", "o", "--seed", "-5"], ["train", "d", "o", "--epochs", "-1"],
    ["eval", "d", "m", "--target-bpcer", "-1"], ["eval", "d", "m", "--target-bpcer", "nan"],
    ["eval", "d", "m", "--batch-size", "0"], ["eval", "d", "m", "--batch-size", "-4"],
    ["eval", "d", "m", "--threshold", "nan"], ["export", "c", "o.onnx", "--calibration-size", "0"],
])
def test_training_arguments_out_of_range_are_usage_errors(argv, capsys):
    from training.cli import main as training_main

    with pytest.raises(SystemExit) as exit_:
        training_main(argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "error: argument" in err and "Traceback" not in err


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
@pytest.mark.parametrize("args", [["models", "list"], ["doctor", "--no-cameras", "--json"],
                                  ["classify", "--json", "SAMPLE"]])
@pytest.mark.parametrize("buffered", [True, False], ids=["buffered", "unbuffered"])
def test_output_to_a_full_disk_is_one_line(args, buffered, samples_dir):
    """Buffered (a user's default) the write fails at the last flush, unbuffered in print."""
    args = [str(samples_dir / "real_T1.jpg") if a == "SAMPLE" else a for a in args]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    if not buffered:
        env["PYTHONUNBUFFERED"] = "1"
    with open("/dev/full", "w") as full:
        proc = _run("fasdesk", *args, stdout=full, env=env)
    assert proc.returncode == 1
    assert "No space left on device" in _one_line(proc.stderr)


def test_classify_with_stdout_closed_is_one_line(samples_dir):
    proc = subprocess.run([sys.executable, "-m", "fasdesk", "classify",
                           str(samples_dir / "real_T1.jpg")], stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True, timeout=60,
                          preexec_fn=lambda: os.close(1))
    assert proc.returncode == 1 and "standard output is closed" in _one_line(proc.stderr)


# -- 13. two instances do not undo each other's settings ----------------------------------

def test_two_instances_keep_each_others_changes(tmp_path):
    from fasdesk.core.io.settings import load_settings, save_settings

    path = tmp_path / "settings.json"
    a, _ = load_settings(path)
    b, _ = load_settings(path)
    a.threshold = 0.8
    save_settings(a, path)  # A closes first
    b.mirror = False
    save_settings(b, path)  # B closes later: it changed the mirror, not the threshold
    final, _ = load_settings(path)
    assert final.threshold == 0.8 and final.mirror is False
    b.threshold = 0.3  # B's own later change still wins
    save_settings(b, path)
    assert load_settings(path)[0].threshold == 0.3


def test_a_bad_value_reset_at_load_does_not_come_back_with_the_merge(tmp_path):
    from fasdesk.core.io.settings import load_settings, replace_settings, save_settings

    path = tmp_path / "settings.json"
    path.write_text(json.dumps({"threshold": "high", "mirror": False}))
    settings, warning = load_settings(path)
    assert "threshold" in warning and settings.threshold == 0.5
    save_settings(replace_settings(settings, confirm_frames=7), path)
    saved = json.loads(path.read_text())
    assert saved["threshold"] == 0.5 and saved["mirror"] is False and saved["confirm_frames"] == 7


# -- 14. leftovers -------------------------------------------------------------------------

def test_write_atomic_never_replaces_a_fifo_or_device(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(files.FileRefused, match="FIFO"):
        files.write_atomic(fifo, "x")
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    device = tmp_path / "null"
    try:
        os.mknod(device, stat.S_IFCHR | 0o666, os.makedev(1, 3))
    except PermissionError:
        return  # only root makes device nodes (and only root could replace them)
    with pytest.raises(files.FileRefused, match="device"):
        files.write_atomic(device, "x")
    assert stat.S_ISCHR(os.lstat(device).st_mode)
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_a_fifo_model_is_reported_as_not_a_regular_file(tmp_path):
    fifo = tmp_path / "best_model.onnx"
    os.mkfifo(fifo)
    with pytest.raises(registry.MissingModelError, match="FIFO.*not a regular file"):
        registry.resolve(str(fifo))


def test_a_killed_exports_work_folders_are_cleaned(tmp_path):
    dead = tmp_path / ".export-999999999-abc"  # no such process
    alive = tmp_path / f".export-{os.getpid()}-def"
    other = tmp_path / ".exports-of-someone"
    for folder in (dead, alive, other):
        folder.mkdir()
        (folder / "model.onnx").write_bytes(b"x")
    assert files.clean_stale_work_dirs(tmp_path, "export") == [str(dead)]
    assert not dead.exists() and alive.is_dir() and other.is_dir()


def test_prep_on_a_full_disk_says_so(tmp_path, samples_dir, monkeypatch):
    from training import prep
    from training_synth import make_folders

    ds = make_folders(tmp_path / "ds", samples_dir, per_class=2)
    real_write = prep.write_atomic

    def full(path, data, **kwargs):
        if str(path).endswith(".png"):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(path, data, **kwargs)

    monkeypatch.setattr(prep, "write_atomic", full)
    with pytest.raises(prep.PrepError, match="is full \\(No space left on device\\)"):
        prep.run(ds, tmp_path / "out", workers=1)


def test_a_fifo_model_in_the_models_folder_is_not_reported_as_missing(tmp_path, detector_model,
                                                                     monkeypatch, capsys):
    os.mkfifo(tmp_path / "best_model.onnx")
    shutil.copy(detector_model, tmp_path / detector_model.name)
    monkeypatch.setenv("FASDESK_MODELS_DIR", str(tmp_path))
    with pytest.raises(registry.MissingModelError, match="FIFO.*not a regular file"):
        registry.resolve(registry.DEFAULT_LIVENESS)
    assert main(["models", "verify", registry.DEFAULT_LIVENESS]) == 1
    assert "FIFO (named pipe), not a regular file" in capsys.readouterr().out


def test_images_tab_shows_and_exports_odd_names(qtbot, pipeline, samples_dir, tmp_path):
    from PySide6.QtCore import Qt

    from fasdesk.ui.images_tab import ImagesTab, ResultsModel

    folder = tmp_path / "odd"
    folder.mkdir()
    shutil.copy(samples_dir / "real_T1.jpg", folder / "two\nlines.jpg")
    shutil.copy(samples_dir / "spoof_F1.jpg", os.fsencode(folder) + b"/caf\xe9.jpg")
    from fasdesk.ui import workers

    tab = ImagesTab()
    qtbot.addWidget(tab)
    tab.set_pipeline_factory(lambda: pipeline)
    tab.resize(1366, 768)
    tab.show()
    tab.add_paths([str(folder)])
    qtbot.waitUntil(lambda: tab.model.rowCount() == 2 and not tab.is_running(), timeout=60_000)
    shown = sorted(tab.model.index(r, ResultsModel.FILE).data(Qt.ItemDataRole.DisplayRole)
                   for r in range(2))
    assert shown == ["caf\\xe9.jpg", "two\\nlines.jpg"]
    assert tab.export_csv(str(tmp_path / "out.csv"))  # raised UnicodeEncodeError before
    assert b"caf\xe9.jpg" in (tmp_path / "out.csv").read_bytes()
    tab.grab().save(str(tmp_path / "odd-names.png"))
    if os.environ.get("FASDESK_SCREENSHOT_DIR"):
        shutil.copy(tmp_path / "odd-names.png", os.environ["FASDESK_SCREENSHOT_DIR"])
    tab.cancel()
    assert workers.stop_all()
