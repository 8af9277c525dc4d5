"""The inference core against the upstream reference: logits, boxes, verdicts, the quality
gate, any image size and layout, EXIF orientation, and refusing the wrong model."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from fasdesk.core.inference.crop import preprocess
from fasdesk.core.io.imageio import read_image
from fasdesk.core.inference.liveness import LivenessEngine, ModelError
from imagecases import save_with_orientation

SAMPLES = ("real_T1.jpg", "spoof_F1.jpg", "spoof_F2.jpg")
EXPECTED_LABELS = {"real_T1.jpg": "real", "spoof_F1.jpg": "spoof", "spoof_F2.jpg": "spoof"}
# The quantized model quantizes activations at run time with the CPU's int8 kernels, so
# its logits depend on the CPU: on this machine spoof_F1's differ from upstream's by
# 0.05. The fp32 model has no such dependence and is held to the 1e-4 contract.
QUANTIZED_LOGIT_TOL = 0.1


@pytest.fixture(scope="module")
def reference(samples_dir):
    return json.loads((samples_dir / "reference.json").read_text())


@pytest.mark.parametrize("model_name, logit_tol", [
    ("best_model.onnx", 1e-4), ("best_model_quantized.onnx", QUANTIZED_LOGIT_TOL)])
def test_logits_match_reference_given_its_boxes(model_name, logit_tol, models_dir, samples_dir,
                                                reference, fp32_model, quantized_model):
    engine = LivenessEngine(models_dir / model_name)
    assert (engine.input_size, engine.num_classes) == (128, 2)
    for name in SAMPLES:
        faces = reference[name]
        image = read_image(samples_dir / name)
        batch = preprocess(image, [f["box_xywh"] for f in faces], engine.input_size)
        p_real, logits = engine.p_real(batch)
        for i, face in enumerate(faces):
            ref = face[model_name]
            np.testing.assert_allclose(logits[i], ref["logits_real_spoof"], atol=logit_tol,
                                       err_msg=f"{model_name} {name}")
            assert abs(p_real[i] - ref["p_real"]) < 1e-3
            assert ("real" if p_real[i] >= 0.5 else "spoof") == ref["label"]


def test_batched_run_equals_single_runs(pipeline, samples_dir, reference):
    crops = [preprocess(read_image(samples_dir / n), [reference[n][0]["box_xywh"]], 128)
             for n in SAMPLES]
    together = pipeline.engine.logits(np.concatenate(crops))
    one_by_one = np.concatenate([pipeline.engine.logits(c) for c in crops])
    np.testing.assert_allclose(together, one_by_one, atol=1e-5)


def test_pipeline_finds_reference_faces_and_verdicts(pipeline, samples_dir, reference):
    for name in SAMPLES:
        faces = pipeline.process(read_image(samples_dir / name))
        ref = reference[name]
        assert len(faces) == len(ref) == 1
        face, want = faces[0], ref[0]
        assert np.abs(np.subtract(face.box, want["box_xywh"])).max() <= 3, name
        assert abs(face.p_real - want["best_model.onnx"]["p_real"]) < 0.02
        assert face.label == EXPECTED_LABELS[name]
        assert face.reason is None
        assert abs(face.detector_score - want["detector_score"]) < 0.02


def test_rgb_frames_give_the_same_result(pipeline, samples_dir):
    bgr = read_image(samples_dir / "spoof_F2.jpg")
    from_bgr = pipeline.process(bgr)
    from_rgb = pipeline.process(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), rgb=True)
    assert [f.box for f in from_bgr] == [f.box for f in from_rgb]
    assert from_bgr[0].p_real == pytest.approx(from_rgb[0].p_real, abs=1e-6)


def test_big_portrait_photo_finds_the_face(pipeline, samples_dir, reference):
    """3840 tall, 2560 wide: YuNet at full resolution (the reference) finds nothing here."""
    image = read_image(samples_dir / "real_T1.jpg")
    big = cv2.resize(image, (2560, 3840), interpolation=cv2.INTER_CUBIC)
    faces = pipeline.process(big)
    assert len(faces) == 1
    # 480x640 -> 2560x3840 also stretches the height a little (x5.33 wide, x6 tall).
    scale = np.array([2560 / image.shape[1], 3840 / image.shape[0]] * 2)
    ref_box = np.array(reference["real_T1.jpg"][0]["box_xywh"]) * scale
    # Boxes in the big image's pixels: centre within 10% of the reference face's size.
    centre = np.array(faces[0].box[:2]) + np.array(faces[0].box[2:]) / 2
    ref_centre = ref_box[:2] + ref_box[2:] / 2
    assert np.abs(centre - ref_centre).max() < 0.1 * ref_box[2:].max()
    assert faces[0].label == "real"
    # What the reference does (YuNet once, at full resolution) finds nothing here.
    from fasdesk.core.inference.detector import FaceDetector

    full_res = FaceDetector(pipeline.detector.model_path, max_side=max(big.shape), fine_side=0)
    assert full_res.detect(big) == []


def test_exif_orientation_is_applied(pipeline, samples_dir, reference, tmp_path):
    image = read_image(samples_dir / "real_T1.jpg")
    ref_box = reference["real_T1.jpg"][0]["box_xywh"]
    for orientation in (6, 8, 3):
        path = tmp_path / f"o{orientation}.jpg"
        save_with_orientation(path, image, orientation)
        shown = read_image(path)
        assert shown.shape == image.shape
        faces = pipeline.process(shown)
        assert len(faces) == 1 and faces[0].label == "real"
        assert np.abs(np.subtract(faces[0].box, ref_box)).max() <= 3
    # The stored pixels really are turned: without the tag the face is elsewhere.
    raw = cv2.imdecode(np.fromfile(tmp_path / "o6.jpg", np.uint8), cv2.IMREAD_UNCHANGED)
    assert raw.shape[:2] == image.shape[1::-1]


def test_small_face_is_unsure_with_reason(pipeline, samples_dir):
    image = read_image(samples_dir / "real_T1.jpg")
    small = cv2.resize(image, None, fx=0.25, fy=0.25, interpolation=cv2.INTER_AREA)
    canvas = np.full((480, 360, 3), 127, np.uint8)
    canvas[100:100 + small.shape[0], 100:100 + small.shape[1]] = small
    faces = pipeline.process(canvas)
    assert len(faces) == 1
    face = faces[0]
    assert max(face.box[2:]) < 64
    assert face.label == "unsure" and face.p_real is None and face.logits == []
    assert "too small" in face.reason and "64" in face.reason
    assert face.relabel(0.01) == "unsure"


def test_face_cut_by_border_is_unsure(pipeline, samples_dir):
    image = read_image(samples_dir / "real_T1.jpg")
    for cut in (np.ascontiguousarray(image[:, 170:]), np.ascontiguousarray(image[160:, :])):
        faces = pipeline.process(cut)
        assert len(faces) == 1
        assert faces[0].label == "unsure" and faces[0].p_real is None
        assert "border" in faces[0].reason


@pytest.mark.parametrize("frame_kind", ["gray", "bgra", "uint16", "float"])
def test_any_frame_layout(pipeline, samples_dir, frame_kind):
    image = read_image(samples_dir / "spoof_F1.jpg")
    frame = {"gray": lambda: cv2.cvtColor(image, cv2.COLOR_BGR2GRAY),
             "bgra": lambda: cv2.cvtColor(image, cv2.COLOR_BGR2BGRA),
             "uint16": lambda: image.astype(np.uint16) * 257,
             "float": lambda: image.astype(np.float32) / 255.0}[frame_kind]()
    faces = pipeline.process(frame)
    assert len(faces) == 1 and faces[0].label == "spoof"


def test_tiny_and_empty_frames_have_no_faces(pipeline):
    assert pipeline.process(np.zeros((1, 1, 3), np.uint8)) == []
    assert pipeline.process(np.full((200, 300), 90, np.uint8)) == []


def _tiny_model(path, in_shape, out_dim):
    """A real ONNX model (global pool + flatten + linear) with the given shapes."""
    import onnx
    from onnx import TensorProto, helper

    channels = in_shape[1]
    weight = helper.make_tensor("W", TensorProto.FLOAT, [channels, out_dim],
                                np.ones(channels * out_dim, np.float32).tolist())
    nodes = [helper.make_node("GlobalAveragePool", ["input"], ["pooled"]),
             helper.make_node("Flatten", ["pooled"], ["flat"]),
             helper.make_node("MatMul", ["flat", "W"], ["output"])]
    graph = helper.make_graph(
        nodes, "tiny", [helper.make_tensor_value_info("input", TensorProto.FLOAT, in_shape)],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["N", out_dim])], [weight])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def test_engine_refuses_wrong_shaped_models(tmp_path):
    pytest.importorskip("onnx")
    wrong_input = _tiny_model(tmp_path / "grey.onnx", ["N", 1, 128, 128], 2)
    with pytest.raises(ModelError, match=r"expected input \[N, 3, S, S\]"):
        LivenessEngine(wrong_input)
    not_square = _tiny_model(tmp_path / "wide.onnx", ["N", 3, 64, 128], 2)
    with pytest.raises(ModelError, match="square"):
        LivenessEngine(not_square)
    one_logit = _tiny_model(tmp_path / "one.onnx", ["N", 3, 64, 64], 1)
    with pytest.raises(ModelError, match=r"K >= 2"):
        LivenessEngine(one_logit)
    # The right shapes load, with S and K read from the model.
    fine = LivenessEngine(_tiny_model(tmp_path / "ok.onnx", ["N", 3, 64, 64], 3))
    assert (fine.input_size, fine.num_classes) == (64, 3)


def test_engine_refuses_a_file_that_is_not_a_model(tmp_path):
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"definitely not protobuf" * 10)
    with pytest.raises(ModelError) as err:
        LivenessEngine(junk)
    assert "junk.onnx" in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(ModelError, match="not found"):
        LivenessEngine(tmp_path / "missing.onnx")
