"""`eval DATA MODEL`: a `.pth` checkpoint or an `.onnx` model on a prepared dataset.

Which images (`--split`): `val` (default) is the validation split the training run held
out (same seed and fraction, read from the checkpoint or the model card; 0 and 0.2
otherwise), `train` the rest of the non-test rows, `test` CelebA-Spoof's own test subset,
`all` every row. `.onnx` models run through fasdesk.core.inference.liveness.LivenessEngine, exactly
as the app runs them; `.pth` through torch.

The report (JSON; see training.metrics for the definitions): model, data, split, n,
classes, threshold, accuracy, per_class_accuracy, confusion_matrix [true][predicted],
roc_auc, average_precision, apcer, bpcer, acer, apcer_per_type, apcer_max, eer,
operating_points {bpcer: {kind, target, threshold, apcer, bpcer, gap, n_real, n_attack,
needed, reliable, warning}, apcer: {...}} (fasdesk.core.decision.thresholds.threshold_for_target),
curves {roc: {fpr, tpr, thresholds}, pr: {precision, recall, thresholds}} (thresholds on
p_spoof = 1 - p_real), counts per class, and the raw scores {p_real, label, attack_type}
(one entry per image, in the order evaluated), from which the app picks thresholds for
other targets with the same function.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from fasdesk.core.calibration import robustness as R
from fasdesk.core.datasets import dataset_info as dsi
from fasdesk.core.io.files import write_atomic
from fasdesk.core.inference.liveness import softmax
from fasdesk.core.models.cards import CardError, ModelCard, model_card_path
from training import metrics as M
from training.events import Emitter, ProgressLine, eta
from fasdesk.core.decision.verdict import DEFAULT_THRESHOLD


class EvalError(Exception):
    """One line for the user."""


ROBUST_MAX = 300  # real crops re-scored darker / moving / tinted (the first ones evaluated)


class _TorchScorer:
    def __init__(self, path: Path, device: str):
        import torch

        from training.model import CheckpointError, load_model

        try:
            self.model, ckpt = load_model(path)
        except CheckpointError as exc:
            raise EvalError(str(exc)) from None
        use_cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
        if device == "cuda" and not torch.cuda.is_available():
            raise EvalError("--device cuda: no CUDA device is available")
        self.device = torch.device("cuda" if use_cuda else "cpu")
        self.model.to(self.device)
        config = ckpt["config"]
        self.classes = list(config["classes"])
        self.input_size = int(config["input_size"])
        self.split_args = ckpt.get("train_args") or {}
        self._torch = torch

    def logits(self, batch: np.ndarray) -> np.ndarray:
        with self._torch.no_grad():
            return self.model(self._torch.from_numpy(batch).to(self.device)).float().cpu().numpy()


class _OnnxScorer:
    def __init__(self, path: Path):
        from fasdesk.core.inference.liveness import LivenessEngine, ModelError

        try:
            self.engine = LivenessEngine(path)
        except ModelError as exc:
            raise EvalError(str(exc)) from None
        self.input_size = self.engine.input_size
        try:
            card = ModelCard.read(path)
        except CardError as exc:
            raise EvalError(str(exc)) from None
        k = self.engine.num_classes
        classes = card.classes if card else None
        if not classes or len(classes) != k:
            if k != 2:
                raise EvalError(f"{path.name} has {k} outputs but no model card "
                                f"({model_card_path(path).name}) naming its classes")
            classes = ["real", "spoof"]
        self.classes = list(classes)
        split = card.other.get("split") if card else None
        self.split_args = split if isinstance(split, dict) else {}

    def logits(self, batch: np.ndarray) -> np.ndarray:
        return self.engine.logits(batch)


def run(data_dir, model_path, out=None, split="val", threshold=DEFAULT_THRESHOLD, target_bpcer=0.05,
        target_apcer=0.05, val_fraction=None, seed=None, batch_size=64, device="auto",
        emitter: Emitter | None = None) -> dict:
    from training import data as D

    em = emitter or Emitter()
    model_path = Path(model_path)
    if not model_path.is_file():
        raise EvalError(f"model not found: {model_path}")
    suffix = model_path.suffix.lower()
    if suffix not in (".pth", ".pt", ".onnx"):
        raise EvalError(f"{model_path.name}: give a .pth checkpoint or an .onnx model")
    if split not in D.SPLITS:
        raise EvalError(f"--split must be one of {', '.join(D.SPLITS)}")
    try:
        prepared = D.load_prepared(data_dir)
    except D.DataError as exc:
        raise EvalError(str(exc)) from None
    scorer = _OnnxScorer(model_path) if suffix == ".onnx" else _TorchScorer(model_path, device)
    if scorer.input_size != prepared.size:
        raise EvalError(f"the model takes {scorer.input_size}x{scorer.input_size} crops but "
                        f"{data_dir} has {prepared.size}x{prepared.size}; run prep with "
                        f"--size {scorer.input_size}")
    try:
        labels = D.class_index(prepared.categories, scorer.classes)
    except D.DataError as exc:
        raise EvalError(str(exc)) from None
    vf = val_fraction if val_fraction is not None else scorer.split_args.get("val_fraction", 0.2)
    sd = seed if seed is not None else scorer.split_args.get("seed", 0)
    idx = D.split_indices(prepared.rows, labels, vf, sd)[split]
    if len(idx) == 0:
        raise EvalError(f"the {split} split of {data_dir} is empty"
                        + ("; try --split all" if split != "all" else ""))
    store = D.CropStore(prepared, idx, cache_bytes=0)

    em.start("eval", total=len(idx), data=str(data_dir), model=str(model_path), split=split)
    line = ProgressLine("eval")
    logits_parts = []
    started = time.monotonic()
    try:
        for i in range(0, len(idx), batch_size):
            rows = idx[i:i + batch_size]
            logits_parts.append(scorer.logits(D.tensor_batch(store.batch(rows)).numpy()))
            done = min(i + batch_size, len(idx))
            em.progress(done, len(idx), eta(done, len(idx), time.monotonic() - started))
            line.update(done, len(idx))
    except D.DataError as exc:
        raise EvalError(str(exc)) from None
    logits = np.concatenate(logits_parts).astype(np.float64)
    rows = [prepared.rows[i] for i in idx]
    try:
        M.finite_scores(logits)
        report = build_report(logits, labels[idx], scorer.classes,
                              [int(r.get("spoof_type") or 0) for r in rows],
                              threshold, target_bpcer, target_apcer)
    except M.NonFiniteScores as exc:
        raise EvalError(f"{model_path.name} gives invalid outputs ({exc}, e.g. logits of "
                        f"NaN): no metric is meaningful; the model is broken") from None
    report = {"model": str(model_path), "data": str(Path(data_dir)), "split": split,
              "val_fraction": vf, "seed": sd, **report,
              "robustness": robustness(scorer, store, idx[labels[idx] == 0][:ROBUST_MAX],
                                       threshold, batch_size)}
    summary = {k: report[k] for k in ("n", "accuracy", "roc_auc", "average_precision",
                                      "apcer", "bpcer", "acer", "eer")}
    em.metric(scope="eval", **summary)
    em.log("eval: " + ", ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}"
                                for k, v in summary.items()))
    em.log("eval: " + R.line(report["robustness"]))
    if out:
        out = Path(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(out, json.dumps(report, indent=1))
        em.artifact(out, "report")
    em.done(**report)
    return report


def robustness(scorer, store, real_rows, threshold: float, batch_size: int = 64) -> dict | None:
    """The evaluated real crops re-scored darker / moving / tinted (the calibration report's
    check, fasdesk.core.calibration.robustness, here on the crops themselves): R.counts at
    the threshold; None without real crops."""
    from training import data as D

    if len(real_rows) == 0:
        return None
    scores = {name: [] for name in R.CONDITIONS}
    for i in range(0, len(real_rows), batch_size):
        crops = store.batch(real_rows[i:i + batch_size])
        for name in R.CONDITIONS:
            changed = np.stack([R.condition(c, name, i + k) for k, c in enumerate(crops)])
            logits = scorer.logits(D.tensor_batch(changed).numpy()).astype(np.float64)
            scores[name].append(softmax(logits)[:, 0])
    return R.counts({k: np.concatenate(v) for k, v in scores.items()}, threshold)


def build_report(logits: np.ndarray, labels: np.ndarray, classes: list[str],
                 spoof_types: list[int], threshold: float = DEFAULT_THRESHOLD, target_bpcer: float = 0.05,
                 target_apcer: float = 0.05) -> dict:
    """All metrics from logits [N, K] (class 0 real) and class indices."""
    probs = softmax(logits)
    p_real = probs[:, 0]
    # Decision at the threshold: real when p_real >= threshold, else the likeliest spoof class.
    spoof_pred = 1 + np.argmax(probs[:, 1:], axis=1)
    pred = np.where(p_real >= threshold, 0, spoof_pred)
    cm = M.confusion_matrix(labels, pred, len(classes))
    is_attack = labels != 0
    p_spoof = 1.0 - p_real
    types = [dsi.type_name(t) for t in spoof_types]
    errors = M.pad_errors(is_attack, p_real, threshold, np.array(types))
    return {
        "n": int(len(labels)),
        "classes": list(classes),
        "counts": {c: int((labels == i).sum()) for i, c in enumerate(classes)},
        "threshold": float(threshold),
        "accuracy": float(np.trace(cm) / cm.sum()),
        "per_class_accuracy": dict(zip(classes, M.per_class_accuracy(cm))),
        "confusion_matrix": cm.tolist(),
        "roc_auc": M.roc_auc(is_attack, p_spoof),
        "average_precision": M.average_precision(is_attack, p_spoof),
        "apcer": errors["apcer"], "bpcer": errors["bpcer"], "acer": errors["acer"],
        "apcer_per_type": errors["apcer_per_type"], "apcer_max": errors["apcer_max"],
        "eer": M.equal_error_rate(is_attack, p_real)["eer"],
        "operating_points": {
            "bpcer": M.threshold_for_target(is_attack, p_real, "bpcer", target_bpcer).to_json(),
            "apcer": M.threshold_for_target(is_attack, p_real, "apcer", target_apcer).to_json(),
        },
        "curves": {
            "roc": M.downsample_curve(M.roc_curve(is_attack, p_spoof)),
            "pr": M.downsample_curve(M.pr_curve(is_attack, p_spoof)),
        },
        "scores": {
            "p_real": [float(v) if np.isfinite(v) else None for v in p_real],
            "label": [int(v) for v in labels],
            "attack_type": [t if a else None for t, a in zip(types, is_attack)],
        },
    }
