"""The fast liveness model: built from the real fp32 model, same logits and verdicts, its
agreement on jittered crops, the registry making it the default only while it is intact,
and the live detection size keeping the boxes and verdicts."""
from __future__ import annotations

import json
from collections import Counter

import numpy as np
import onnx
import pytest

from fasdesk.core.inference import modelcache

from fasdesk.core.inference import compare, optimize

from fasdesk.core.models import registry
from fasdesk.core.inference.crop import preprocess
from fasdesk.core.io.imageio import read_image
from fasdesk.core.inference.liveness import LivenessEngine
from conftest import tampered

SAMPLES = ("real_T1.jpg", "spoof_F1.jpg", "spoof_F2.jpg")


@pytest.fixture(scope="module")
def reference(samples_dir):
    return json.loads((samples_dir / "reference.json").read_text())


@pytest.fixture(scope="module")
def fast_model(fp32_model, tmp_path_factory):
    path = tmp_path_factory.mktemp("fast") / "fast.onnx"
    compare.check_rewrite(str(fp32_model), out=path)  # `fasdesk models optimize --out`
    return path


@pytest.fixture(scope="module")
def sample_crops(samples_dir, reference):
    return np.concatenate([preprocess(read_image(samples_dir / n), [reference[n][0]["box_xywh"]])
                           for n in SAMPLES])


def test_rewritten_graph_has_no_prelu_and_blocked_widths(fast_model, fp32_model):
    before = Counter(n.op_type for n in onnx.load(str(fp32_model)).graph.node)
    model = onnx.load(str(fast_model))
    after = Counter(n.op_type for n in model.graph.node)
    assert before["PRelu"] == 33 and after["PRelu"] == 0
    assert after["Relu"] == before["Relu"] + 33
    groups = [a.i for n in model.graph.node if n.op_type == "Conv"
              for a in n.attribute if a.name == "group" and a.i > 1]
    assert groups and all(g % optimize.CHANNEL_BLOCK == 0 for g in groups)
    batch = model.graph.input[0].type.tensor_type.shape.dim[0]
    assert batch.dim_param and not batch.dim_value  # dynamic batch kept


def test_onnxruntime_fuses_every_relu_of_the_fast_model(fast_model, tmp_path):
    # A Relu left on its own runs on one thread; each must fold into its Conv.
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    options.optimized_model_filepath = str(tmp_path / "fused.onnx")
    ort.InferenceSession(str(fast_model), options, providers=["CPUExecutionProvider"])
    ops = Counter(n.op_type for n in onnx.load(str(tmp_path / "fused.onnx")).graph.node)
    assert ops["Relu"] == 0 and ops["PRelu"] == 0
    assert ops["FusedConv"] >= 33


def test_same_logits_and_verdicts_as_fp32_on_the_samples(fast_model, sample_crops, reference):
    fast = LivenessEngine(fast_model)
    p_real, logits = fast.p_real(sample_crops)
    for i, name in enumerate(SAMPLES):
        want = reference[name][0]["best_model.onnx"]
        np.testing.assert_allclose(logits[i], want["logits_real_spoof"], atol=1e-4)
        assert ("real" if p_real[i] >= 0.5 else "spoof") == want["label"]


def test_batch_of_eight_equals_single_runs(fast_model, sample_crops):
    fast = LivenessEngine(fast_model)
    eight = np.concatenate([sample_crops, sample_crops, sample_crops[:2]])
    together = fast.logits(eight)
    np.testing.assert_allclose(together, np.concatenate([fast.logits(c[None]) for c in eight]),
                               atol=1e-5)


def test_rewrite_is_deterministic(fast_model, fp32_model, tmp_path):
    again = tmp_path / "again.onnx"
    modelcache.forget_memory()
    compare.check_rewrite(str(fp32_model), out=again)
    assert registry.sha256_of(again) == registry.sha256_of(fast_model)


def test_equivalence_check_catches_a_changed_weight(fast_model, fp32_model, tmp_path):
    assert optimize.max_logit_difference(fp32_model, fast_model) < optimize.EQUIVALENCE_TOLERANCE
    model = onnx.load(str(fast_model))
    convs = [n for n in model.graph.node if n.op_type == "Conv"]
    weight = next(i for i in model.graph.initializer if i.name == convs[len(convs) // 2].input[1])
    values = onnx.numpy_helper.to_array(weight) * np.float32(1.2)
    weight.CopyFrom(onnx.numpy_helper.from_array(values, weight.name))
    broken = tmp_path / "broken.onnx"
    onnx.save(model, str(broken))
    assert optimize.max_logit_difference(fp32_model, broken) > optimize.EQUIVALENCE_TOLERANCE


def test_agreement_on_500_jittered_crops(fast_model, fp32_model, samples_dir, detector_model):
    photos, boxes = compare.face_photos([samples_dir], detector_model)
    assert len(photos) == 3
    crops = compare.jittered_crops(photos, boxes, 500)
    assert crops.shape == (500, 3, 128, 128)
    # The jitter is real: no two crops alike, and the fp32 scores spread across the range.
    flat = crops.reshape(len(crops), -1)
    assert len(np.unique(flat[:, ::997], axis=0)) == 500
    p_fp32 = LivenessEngine(fp32_model).p_real(crops[:100])[0]
    assert p_fp32.min() < 0.1 and p_fp32.max() > 0.9
    report = compare.agreement(fp32_model, fast_model, crops)
    assert report["crops"] == 500
    assert report["agreement"] >= 0.995
    assert report["median_abs_delta_p_real"] <= 0.005
    assert report["max_abs_delta_p_real"] < 1e-3


def test_jittered_crops_are_deterministic(samples_dir, detector_model):
    photos, boxes = compare.face_photos([samples_dir], detector_model)
    a = compare.jittered_crops(photos, boxes, 12, seed=3)
    b = compare.jittered_crops(photos, boxes, 12, seed=3)
    c = compare.jittered_crops(photos, boxes, 12, seed=4)
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_models_optimize_command(samples_dir, capsys, tmp_path):
    from fasdesk.cli import main

    out_file = tmp_path / "fast.onnx"
    assert main(["models", "optimize", "--images", str(samples_dir), "--crops", "20",
                 "--out", str(out_file), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["model"] == registry.DEFAULT_LIVENESS and out["optimized"] is True
    assert out["agreement"]["crops"] == 20 and out["agreement"]["agreement"] == 1.0
    assert out["written"] == str(out_file)
    assert registry.sha256_of(out_file) == registry.sha256_of(out["cached"])
    # Nothing new to pick: the list still has one default liveness model, the shipped id.
    assert main(["models", "list", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["id"] for r in rows if r["default"] and r["kind"] == "liveness"] == [registry.DEFAULT_LIVENESS]

    assert main(["models", "optimize", "--crops", "0"]) == 1
    assert capsys.readouterr().err.strip().count("\n") == 0


def test_live_detection_keeps_boxes_and_verdicts(samples_dir, reference, fp32_model, detector_model):
    from fasdesk.core.inference.pipeline import build_pipeline

    live = build_pipeline(fp32_model, detector_model, live=True)
    assert live.detector.max_side == 320 and live.detector.fine_side == 0
    for name in SAMPLES:
        faces = live.process(read_image(samples_dir / name))
        want = reference[name][0]
        assert len(faces) == 1
        side = max(want["box_xywh"][2:])
        assert np.abs(np.subtract(faces[0].box, want["box_xywh"])).max() <= 0.07 * side, name
        assert faces[0].label == want["best_model.onnx"]["label"]


def test_onnxruntime_detector_matches_opencv(samples_dir, detector_model):
    """The default onnxruntime YuNet gives cv2.FaceDetectorYN's faces: samples, an 8-face
    mosaic, a small frame, a big portrait (two passes) and a frame without faces."""
    import cv2

    from fasdesk.core.diagnostics.benchmark import mosaic
    from fasdesk.core.inference.detector import FaceDetector

    images = [read_image(samples_dir / n) for n in SAMPLES]
    fast = FaceDetector(detector_model)
    upstream = FaceDetector(detector_model, backend="opencv")
    assert fast.backend == "onnxruntime"
    frames = images + [mosaic(images, upstream), cv2.resize(images[1], (240, 320)),
                       cv2.resize(images[2], (2000, 2667)), np.full((480, 640, 3), 90, np.uint8)]
    counts = []
    for frame in frames:
        a, b = fast.detect(frame), upstream.detect(frame)
        counts.append(len(a))
        assert len(a) == len(b)
        for x, y in zip(a, b):
            np.testing.assert_allclose(x.box, y.box, atol=0.01)
            np.testing.assert_allclose(x.landmarks, y.landmarks, atol=0.01)
            assert x.score == pytest.approx(y.score, abs=1e-4)
    assert counts == [1, 1, 1, 8, 1, 1, 0]


def test_detector_refuses_files_that_are_not_yunet(tmp_path, fp32_model):
    from fasdesk.core.inference.detector import DetectorError, FaceDetector

    with pytest.raises(DetectorError, match="not a YuNet face detector"):
        FaceDetector(fp32_model)
    garbage = tmp_path / "detector.onnx"
    garbage.write_bytes(b"not the detector")
    with pytest.raises(DetectorError, match="cannot load detector model"):
        FaceDetector(garbage)


def test_split_batch_engine_gives_the_same_logits(fast_model, sample_crops, samples_dir,
                                                  detector_model):
    from fasdesk.core.diagnostics.benchmark import mosaic
    from fasdesk.core.inference.detector import FaceDetector
    from fasdesk.core.inference.liveness import SplitBatchEngine
    from fasdesk.core.inference.pipeline import build_pipeline

    plain, split = LivenessEngine(fast_model), SplitBatchEngine(fast_model)
    for n in (1, 2, 3, 8):
        batch = np.concatenate([sample_crops] * 3)[:n]
        np.testing.assert_allclose(split.logits(batch), plain.logits(batch), atol=1e-5)
    # Each half cuts its own crops: the same as cropping them all, then one batch.
    detector = FaceDetector(detector_model)
    frame = mosaic([read_image(samples_dir / n) for n in SAMPLES], detector)
    boxes = [tuple(int(v) for v in d.box) for d in detector.detect(frame)]
    assert len(boxes) == 8
    p_split, logits_split, cropping, running = split.judge(frame, boxes)
    p_plain, logits_plain = plain.p_real(preprocess(frame, boxes))
    np.testing.assert_allclose(logits_split, logits_plain, atol=1e-5)
    np.testing.assert_allclose(p_split, p_plain, atol=1e-6)
    assert cropping > 0 and running > 0
    assert isinstance(build_pipeline(fast_model, live=True).engine, SplitBatchEngine)
    assert type(build_pipeline(fast_model).engine) is LivenessEngine


# ----------------------------------------------------------------------------- at load time

def _cache_files(source):

    digest = registry.sha256_of(source)
    return (modelcache.folder() / f"{digest}.{optimize.RECIPE}.onnx",
            modelcache.folder() / f"{digest}.{optimize.RECIPE}.json")


def test_every_liveness_model_runs_in_its_fast_form(fp32_model, sample_crops, reference, tmp_path):
    """Shipped (registry id), given as a file (--model, Open ONNX...), or exported by
    training and registered: each runs rewritten, and gives the fp32 logits."""
    import shutil

    from fasdesk.core.diagnostics.benchmark import PlainSession
    from fasdesk.core.io.paths import user_models_dir
    from fasdesk.core.inference.pipeline import build_pipeline

    modelcache.forget_memory()  # this test's (empty) cache folder, as in a fresh install
    trained = user_models_dir() / "office-cam.onnx"  # what the Training tab registers
    trained.parent.mkdir(parents=True)
    shutil.copy(fp32_model, trained)
    registry.register_user_model(registry.ModelEntry(
        id="office-cam", kind="liveness", file=trained.name, sha256=registry.sha256_of(trained)))
    opened = tmp_path / "opened.onnx"
    shutil.copy(fp32_model, opened)
    plain = PlainSession(fp32_model).logits(sample_crops)
    for chosen, file in ((None, fp32_model), ("office-cam", trained), (str(opened), opened)):
        for live in (True, False):
            engine = build_pipeline(chosen, live=live).engine
            assert engine.model_path == file  # the file the user chose...
            assert engine.optimized and "33 PRelu rewritten" in engine.optimization
            np.testing.assert_allclose(engine.logits(sample_crops), plain, atol=1e-4)
    fast_copy, record = _cache_files(fp32_model)
    assert fast_copy.is_file() and record.is_file()  # ...run from one fast copy per content
    assert len(list(fast_copy.parent.glob(f"*.{optimize.RECIPE}.onnx"))) == 1


def test_fast_copy_is_cached_and_rebuilt_when_missing_or_damaged(fp32_model, sample_crops,
                                                                 tmp_path, monkeypatch):

    modelcache.forget_memory()
    first = optimize.runtime_model(fp32_model)
    fast_copy, record = _cache_files(fp32_model)
    assert first.built_now and first.path == fast_copy and first.info["optimized"]
    built = fast_copy.stat().st_mtime_ns
    modelcache.forget_memory()  # a new process: read from the cache, not built
    again = optimize.runtime_model(fp32_model)
    assert not again.built_now and again.path == fast_copy
    assert fast_copy.stat().st_mtime_ns == built
    assert optimize.runtime_model(fp32_model) is again  # once per process

    def rebuilt() -> bool:
        modelcache.forget_memory()
        result = optimize.runtime_model(fp32_model)
        engine = LivenessEngine(fp32_model)
        np.testing.assert_allclose(engine.logits(sample_crops),
                                   LivenessEngine(fp32_model, optimize=False).logits(sample_crops),
                                   atol=1e-4)
        return result.built_now and engine.optimized

    tampered(fast_copy)  # damaged: still loads, but would give other logits
    assert rebuilt()
    fast_copy.unlink()
    assert rebuilt()
    record.write_text("{not json")
    assert rebuilt()
    # A cache folder that cannot be written: built in memory, still optimized.
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocked))
    assert rebuilt()
    assert optimize.runtime_model(fp32_model).data is not None


def test_models_the_rewrite_does_not_fit_run_as_they_are_with_one_log_line(
        quantized_model, fp32_model, sample_crops, tmp_path, caplog):
    import shutil

    from fasdesk.core.diagnostics.benchmark import PlainSession

    quantized_model = shutil.copy(quantized_model, tmp_path / "opened.onnx")  # new to this process
    with caplog.at_level("WARNING", logger="fasdesk.core.inference.optimize"):
        quantized = LivenessEngine(quantized_model)
        LivenessEngine(quantized_model)  # loaded again: no second line
    assert not quantized.optimized and "quantized" in quantized.optimization
    assert quantized.runtime_model == str(quantized_model)
    lines = [r.getMessage() for r in caplog.records]
    assert lines == [f"fasdesk: {quantized_model.name} runs as it is, not optimized: "
                     f"{quantized.optimization}"]
    np.testing.assert_array_equal(quantized.logits(sample_crops),
                                  PlainSession(quantized_model).logits(sample_crops))
    # A model already in the fast form (e.g. written by `models optimize --out`) runs as is.
    fast = tmp_path / "fast.onnx"
    compare.check_rewrite(str(fp32_model), out=fast)
    engine = LivenessEngine(fast)
    assert engine.optimized and engine.optimization.startswith("already in the fast form")
    assert engine.runtime_model == str(fast)
