"""`train DATA OUT`: MiniFASNetV2-SE with the Fourier branch on a prepared dataset.

Loss = (1 - ft_weight) * cross-entropy + ft_weight * MSE(Fourier branch, spectrum of the
grey crop); SGD momentum 0.9, weight decay 5e-4. Two recipes (training/recipe.py):

- fine-tune (`--init CKPT`): warm-up then cosine decay, gradient-norm clipping, early
  layers optionally frozen, ft_weight from the checkpoint (0 for the shipped model, whose
  Fourier branch was never trained: its random gradients would only disturb the
  features). The starting model's validation score is the score to beat: `best.pth`
  starts as the starting model and only an epoch that beats it replaces it. `--l2-sp`
  adds a pull toward the starting weights (off in the recipe: recipe.L2_SP).
- scratch: upstream's lr 0.1, x0.1 at epochs 10, 15, 22, 30, 50 epochs, ft_weight 0.5.
Both: BatchNorm trains on batch statistics; after every epoch its running statistics are
recomputed on `precise_bn` training batches (precise BN; frozen layers keep theirs): 100
from scratch, about 256 images when fine-tuning (recipe.precise_bn_batches).
Both: every training crop, real or attack alike, first gets the session-to-session
changes of training/augment.py (`--augment`, default recipe.AUGMENT), and validation sees
them too, fixed per crop, so `best.pth` is the epoch that holds up under them.
Epochs, batch size and lr not given come from `recipe.preset` (dataset size, recipe). The
batch is the global batch: under DDP each of W processes takes batch/W.

OUT gets `latest.pth` after every epoch (and when stopped by Ctrl-C / SIGTERM, mid-epoch),
`best.pth` whenever the validation score improves ("better": higher accuracy, or the same
accuracy with a lower loss), and `history.json` (per-epoch metrics). All are written
atomically. `--resume auto` continues from OUT/latest.pth exactly: model, optimiser, AMP
scaler, epoch and step (the learning rate is a function of the step), and every RNG (the
shuffle order depends only on seed and epoch). `--init CKPT` starts from a checkpoint's
weights with a fresh optimiser (the last layer is re-initialised when the number of classes
differs); when `--resume` finds a checkpoint, it wins over `--init`, so the command that
started a run also continues it. Every checkpoint is read with weights_only=True.

Several processes: `torchrun --nproc_per_node N -m training train ...` (gloo on CPU, NCCL
on CUDA); rank 0 writes checkpoints and events.
"""
from __future__ import annotations

import json
import math
import os
import random
import signal
import statistics
import time
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from fasdesk.core.io.errors import one_line
from fasdesk.core.io.files import write_atomic
from training import augment as A
from training import data as D
from training import layout
from training import recipe as R
from training.events import Emitter, ProgressLine
from training.model import (CheckpointError, FrozenFeatures, build_model, checkpoint_config,
                            fourier_size, fourier_target, read_checkpoint, save_checkpoint,
                            state_mismatch)

# Settings that neither the preset nor the recipe decides.
DEFAULTS = dict(momentum=0.9, weight_decay=5e-4, milestones=R.SCRATCH_MILESTONES, gamma=0.1,
                classes=2, val_fraction=0.2, seed=0, dropout=0.2, precision="auto")
SETTINGS = ("epochs", "batch_size", "lr", "momentum", "weight_decay", "milestones", "gamma",
            "ft_weight", "classes", "val_fraction", "seed", "dropout", "precise_bn",
            "clip_grad", "freeze_early", "precision", "augment", "l2_sp")
LATEST, BEST, HISTORY = layout.LATEST, layout.BEST, layout.HISTORY
# What defines the run's data, model and optimiser: a resumed run keeps its own.
RUN_DEFINING = ("classes", "val_fraction", "seed", "dropout", "batch_size", "lr",
                "freeze_early", "ft_weight", "recipe", "l2_sp")


class TrainError(Exception):
    """A run that cannot start or go on; one line for the user."""


class Stopped(Exception):
    """Ctrl-C / SIGTERM: a resumable checkpoint has been written."""


# -- processes and devices -----------------------------------------------------------------

class Dist:
    """This process's place in a torchrun group (or a single process)."""

    def __init__(self, device_arg: str):
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        if device_arg == "cuda" and not torch.cuda.is_available():
            raise TrainError("--device cuda: no CUDA device is available to torch here; "
                             "use --device cpu")
        use_cuda = device_arg == "cuda" or (device_arg == "auto" and torch.cuda.is_available())
        if use_cuda:
            torch.cuda.set_device(self.local_rank % torch.cuda.device_count())
            self.device = torch.device("cuda", torch.cuda.current_device())
        else:
            self.device = torch.device("cpu")
        if self.world > 1 and not dist.is_initialized():
            dist.init_process_group("nccl" if use_cuda else "gloo")

    @property
    def main(self) -> bool:
        return self.rank == 0

    def sum(self, values: list[float]) -> list[float]:
        """Element-wise sum over all processes (identity for one process)."""
        if self.world == 1:
            return values
        t = torch.tensor(values, dtype=torch.float64, device=self.device)
        dist.all_reduce(t)
        return t.tolist()

    def gather(self, obj):
        if self.world == 1:
            return [obj]
        out = [None] * self.world
        dist.all_gather_object(out, obj)
        return out

    def close(self):
        if self.world > 1 and dist.is_initialized():
            dist.destroy_process_group()


def _rng_state(aug_gen: torch.Generator) -> dict:
    """Every random state, as tensors, lists and numbers (loadable with weights_only=True)."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {"torch": torch.get_rng_state(),
             "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss),
                       float(cached)],
             "python": list(random.getstate()), "augment": aug_gen.get_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict, aug_gen: torch.Generator) -> None:
    torch.set_rng_state(state["torch"])
    kind, keys, pos, has_gauss, cached = state["numpy"]
    keys = keys.numpy() if isinstance(keys, torch.Tensor) else np.asarray(keys)
    np.random.set_state((kind, keys.astype(np.uint32), pos, has_gauss, cached))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    aug_gen.set_state(state["augment"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# -- the run -------------------------------------------------------------------------------

def run(data_dir, out_dir, *, epochs=None, batch_size=None, lr=None, init=None, resume=None,
        device="auto", classes=None, val_fraction=None, seed=None, ft_weight=None,
        milestones=None, momentum=None, weight_decay=None, dropout=None, precise_bn=None,
        clip_grad=None, freeze_early=None, precision=None, augment=None, l2_sp=None,
        emitter: Emitter | None = None) -> dict:
    """Train; returns the summary of the `done` event. Raises TrainError / Stopped.
    Settings left None come from the resumed run, the preset or DEFAULTS."""
    pd = Dist(device)
    emitter = emitter if (emitter is not None and pd.main) else Emitter(False, text_stream=open(os.devnull, "w"))
    try:
        return _run(pd, emitter, Path(data_dir), Path(out_dir), locals())
    finally:
        pd.close()


def _resolve_settings(given: dict, ckpt: dict | None, images: int, init_config: dict | None,
                      em: Emitter) -> dict:
    """Command-line values, else the resumed run's, else the preset's and the recipe's."""
    previous = (ckpt or {}).get("train_args") or {}
    if ckpt is not None:
        recipe = previous.get("recipe", R.SCRATCH)  # runs of earlier versions: milestones
    else:
        recipe = R.FINE_TUNE if given["init"] else R.SCRATCH
    fine = recipe == R.FINE_TUNE
    preset = R.preset(images, fine)
    defaults = {**DEFAULTS, **{k: preset[k] for k in ("epochs", "batch_size", "lr", "freeze_early",
                                                      "augment", "l2_sp")},
                # fine-tuning continues with the checkpoint's own Fourier weight
                "ft_weight": float(init_config["ft_weight"]) if fine and init_config else 0.5,
                "precise_bn": None,  # from the batch size, below
                "clip_grad": R.CLIP_NORM if fine else 0.0}
    settings = {"recipe": recipe}
    ignored = []
    for key in SETTINGS:
        value = given.get(key)
        if ckpt is not None and key in RUN_DEFINING and key in previous:
            if value is not None and value != previous[key] and key != "milestones":
                ignored.append(f"--{key.replace('_', '-')}")
            value = previous[key]
        if value is None:
            value = previous.get(key, defaults[key])
        settings[key] = value
    if ignored:
        em.log(f"{', '.join(ignored)} ignored on --resume: the run keeps its own settings",
               "warning")
    settings["milestones"] = sorted(int(m) for m in settings["milestones"])
    if settings["precise_bn"] is None:
        settings["precise_bn"] = R.precise_bn_batches(recipe, int(settings["batch_size"]))
    if settings["freeze_early"] and not fine:
        raise TrainError("--freeze-early needs --init: there are no trained early layers to keep")
    try:
        settings["augment"] = ",".join(A.parse_ops(settings["augment"])) or "none"
    except ValueError as exc:
        raise TrainError(f"--augment: {exc}") from None
    if float(settings["l2_sp"]) and not fine:
        raise TrainError("--l2-sp needs --init: there are no starting weights to stay close to")
    if not 0 <= float(settings["ft_weight"]) <= 1:
        raise TrainError(f"--ft-weight must be in [0, 1], got {settings['ft_weight']}")
    return settings


def _find_resume(resume: str | None, out: Path) -> Path | None:
    if not resume:
        return None
    if resume == "auto":
        return out / LATEST if (out / LATEST).is_file() else None
    path = Path(resume)
    if not path.is_file():
        raise TrainError(f"--resume: checkpoint not found: {path}")
    return path


def cpu_has_bf16() -> bool:
    """Whether this CPU computes bfloat16 natively (AVX-512 BF16 or AMX), as oneDNN sees it."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def autocast_dtype(precision: str, device: torch.device):
    """The autocast dtype of the training step for --precision (None: float32).

    auto: float16 with loss scaling on CUDA; float32 on CPU (bfloat16 training steps were
    no faster on the measured AVX-512 BF16 CPU for this depthwise-heavy network; the
    kept early layers use it, see frozen_dtype).
    """
    if precision == "fp32":
        return None
    if precision == "bf16":
        if device.type == "cpu" and not cpu_has_bf16():
            raise TrainError("--precision bf16: this CPU has no native bfloat16 "
                             "(AVX-512 BF16 or AMX); use --precision fp32")
        return torch.bfloat16
    return torch.float16 if device.type == "cuda" else None


def frozen_dtype(precision: str, device: torch.device):
    """The autocast dtype of the kept early layers (forward only): bfloat16 on a CPU with
    native bfloat16 unless --precision fp32 (about 2x faster than float32 there)."""
    if precision == "fp32" or device.type != "cpu":
        return None
    return torch.bfloat16 if cpu_has_bf16() else None


def _read_checkpoint(path: Path, flag: str) -> dict:
    try:
        return read_checkpoint(path)
    except CheckpointError as exc:
        raise TrainError(f"{flag}: {exc}") from None


def _config_of(ckpt: dict, path: Path, flag: str) -> dict:
    try:
        return checkpoint_config(ckpt, path)
    except CheckpointError as exc:
        raise TrainError(f"{flag}: {exc}") from None


def _run(pd: Dist, em: Emitter, data_dir: Path, out: Path, given: dict) -> dict:
    resume_path = _find_resume(given["resume"], out)
    if resume_path is not None and given["init"]:
        # A run started with --init and resumed with the same command line continues.
        em.log(f"--init is ignored: resuming the run in {resume_path}", "warning")
        given = {**given, "init": None}
    ckpt = init_ckpt = init_config = None
    if resume_path is not None:
        ckpt = _read_checkpoint(resume_path, "--resume")
        _config_of(ckpt, resume_path, "--resume")
        if "optimizer_state_dict" not in ckpt or "epoch" not in ckpt:
            raise TrainError(f"{resume_path} is not a resumable training checkpoint (no "
                             f"optimiser state); use --init {resume_path} to fine-tune from it")
    elif given["resume"] == "auto":
        em.log(f"no {LATEST} in {out}: starting a new run")
    if given["init"]:
        init_ckpt = _read_checkpoint(Path(given["init"]), "--init")
        init_config = _config_of(init_ckpt, Path(given["init"]), "--init")

    # Data and settings
    try:
        prepared = D.load_prepared(data_dir)
    except D.DataError as exc:
        raise TrainError(str(exc)) from None
    images = R.preset_images(prepared.rows)
    s = _resolve_settings(given, ckpt, images, init_config, em)
    if s["batch_size"] < 2:
        raise TrainError("--batch-size must be at least 2 (BatchNorm needs two images)")
    fine = s["recipe"] == R.FINE_TUNE
    try:
        class_names = D.class_names(prepared.categories, int(s["classes"]))
        labels = D.class_index(prepared.categories, class_names)
        split = D.split_indices(prepared.rows, labels, s["val_fraction"], s["seed"])
    except D.DataError as exc:
        raise TrainError(str(exc)) from None
    train_idx, val_idx = split["train"], split["val"]
    split_notes = D.split_warnings(prepared.rows, labels, split, class_names)
    for c, name in enumerate(class_names):
        if not np.any(labels[train_idx] == c):
            raise TrainError(f"the {name} class is empty in the training split of {data_dir}; "
                             "add images of it and run prep again")
    try:
        train_store = D.CropStore(prepared, train_idx)
        val_store = D.CropStore(prepared, val_idx)
    except D.DataError as exc:
        raise TrainError(str(exc)) from None

    # Model, optimiser
    torch.manual_seed(s["seed"] + pd.rank)
    np.random.seed(s["seed"] + pd.rank)
    random.seed(s["seed"] + pd.rank)
    aug_gen = torch.Generator().manual_seed(s["seed"] * 7919 + pd.rank)
    config = {"input_size": prepared.size, "num_classes": len(class_names),
              "ft_weight": float(s["ft_weight"]), "classes": class_names,
              "dropout": s["dropout"]}
    model = build_model(config)
    if init_ckpt is not None:
        _load_init(model, init_ckpt, init_config, given["init"], prepared.size, em)
    if ckpt is not None:
        _check_resume(model, ckpt, resume_path, prepared.size, class_names)
    # channels_last: about 30% faster on CPU (oneDNN) and what tensor cores want on CUDA.
    model.to(pd.device, memory_format=torch.channels_last)
    frozen = _freeze(model, bool(s["freeze_early"]), float(s["ft_weight"]) > 0)
    if s["freeze_early"]:
        model.frozen_features = FrozenFeatures(model, frozen_dtype(s["precision"], pd.device))
    keep_features = bool(s["freeze_early"])  # validation and precise BN: only the last stage
    # Validation sees the training's session changes too (fixed per crop), so best.pth is
    # the epoch that holds up under them, not just on the recording as it was.
    nuisance_ops = A.parse_ops(s["augment"]) if s["augment"] != "none" else ()
    val_view = D.NuisanceView(val_store, nuisance_ops, s["seed"]) if nuisance_ops else val_store
    val_forward = _Forward(model, val_view, pd, keep_features, len(val_idx))
    train_forward = _Forward(model, train_store, pd, keep_features, int(
        s["precise_bn"] or 0) * math.ceil(int(s["batch_size"]) / pd.world))
    params = [p for p in model.parameters() if p.requires_grad]
    anchor = _anchor(model, s, ckpt, resume_path)
    optimizer = torch.optim.SGD(params, lr=s["lr"], momentum=s["momentum"],
                                weight_decay=s["weight_decay"])
    amp_dtype = autocast_dtype(s["precision"], pd.device)
    scaler = torch.amp.GradScaler("cuda", enabled=amp_dtype == torch.float16)
    start_epoch, start_step, history, partial = 0, 0, [], None
    best, start_acc = None, None  # best: (val accuracy, val loss) to beat
    if ckpt is not None:
        try:
            optimizer.load_state_dict(ckpt["optimizer_state_dict"])
        except (ValueError, KeyError, RuntimeError) as exc:
            raise TrainError(f"--resume {resume_path}: its optimiser state does not fit this "
                             f"run ({one_line(exc)})") from None
        if scaler.is_enabled() and ckpt.get("scaler_state_dict"):
            scaler.load_state_dict(ckpt["scaler_state_dict"])
        start_epoch, start_step = int(ckpt["epoch"]), int(ckpt.get("step") or 0)
        history = list(ckpt.get("history") or [])
        if ckpt.get("best_val_acc") is not None:
            best = (float(ckpt["best_val_acc"]), ckpt.get("best_val_loss"))
        start_acc = ckpt.get("start_val_acc")
        partial = ckpt.get("partial")
        states = ckpt.get("rng_states") or []
        if len(states) == pd.world:
            _set_rng_state(states[pd.rank], aug_gen)
        else:
            em.log(f"resuming with {pd.world} processes from a run with {len(states)}: "
                   "random streams restart", "warning")
        em.log(f"resuming {resume_path} at epoch {start_epoch + 1}"
               + (f", step {start_step + 1}" if start_step else ""))
    net = model
    if pd.world > 1:
        net = nn.parallel.DistributedDataParallel(
            model, device_ids=[pd.device.index] if pd.device.type == "cuda" else None)

    epochs = int(s["epochs"])
    per_rank = max(2, math.ceil(int(s["batch_size"]) / pd.world))
    first_batches = D.epoch_batches(len(train_idx), per_rank, 0, s["seed"], pd.rank, pd.world)
    steps_per_epoch = len(first_batches)
    total_steps = epochs * steps_per_epoch

    def lr_at(step: int) -> float:
        return R.learning_rate(s["recipe"], float(s["lr"]), step, steps_per_epoch, total_steps,
                               s["milestones"], float(s["gamma"]))

    ft_size = fourier_size(prepared.size)
    train_args = {k: (list(v) if isinstance(v, tuple) else v) for k, v in s.items()}
    precision = {None: "fp32", torch.float16: "fp16", torch.bfloat16: "bf16"}[amp_dtype]
    if model.frozen_features is not None and model.frozen_features.dtype is not None:
        precision += ", bf16 early layers"
    em.start("train", total=total_steps, data=str(data_dir), out=str(out), device=str(pd.device),
             processes=pd.world, epochs=epochs, steps_per_epoch=steps_per_epoch,
             train_images=len(train_idx), val_images=len(val_idx), classes=class_names,
             amp=amp_dtype is not None, precision=precision, recipe=s["recipe"],
             batch_size=int(s["batch_size"]), lr=float(s["lr"]),
             freeze_early=bool(s["freeze_early"]), augment=s["augment"],
             start_epoch=start_epoch)
    em.log(f"train: {len(train_idx)} training / {len(val_idx)} validation images, classes "
           f"{'/'.join(class_names)}, {s['recipe']} recipe: {epochs} epochs x {steps_per_epoch} "
           f"steps of {s['batch_size']}, lr {s['lr']:g}"
           + (f", warm-up {R.warmup_steps(steps_per_epoch, total_steps)} steps then cosine, "
              f"gradient norm clipped at {s['clip_grad']:g}" if fine else
              f", x{s['gamma']:g} at epochs {' '.join(map(str, s['milestones']))}")
           + (", early layers kept" if s["freeze_early"] else "")
           + f"; device {pd.device} ({precision}), {pd.world} process(es)")
    if len(val_idx) == 0:
        em.log("no validation images (too few per class): best.pth follows training accuracy",
               "warning")
    # How far to trust the validation accuracy (the Training tab shows the warnings).
    em.metric(scope="split", train_images=len(train_idx), val_images=len(val_idx),
              guard_images=len(split["guard"]),
              recordings=len(set(D.recording_keys(prepared.rows))), warnings=split_notes)
    for note in split_notes:
        em.log(f"validation: {note}", "warning")

    out.mkdir(parents=True, exist_ok=True)

    def checkpoint(epoch, step, **extra):
        ck = _checkpoint(model, optimizer, scaler, config, train_args, epoch, step, history,
                         best, start_acc, aug_gen, pd, **extra)
        if anchor:  # a resumed run is pulled toward the same starting weights
            ck["l2_sp_anchor"] = {name: start.detach().cpu() for name, (_, start) in anchor.items()}
        return ck

    def write(ck, name, kind):
        if pd.main:
            save_checkpoint(ck, out / name)
            em.artifact(out / name, kind)

    if init_ckpt is not None and ckpt is None and len(val_idx):
        # The score to beat; best.pth is the starting model until an epoch beats it.
        val_loss, val_acc, _ = _validate(model, val_forward, val_idx, labels, len(class_names))
        best, start_acc = (val_acc, val_loss), val_acc
        em.metric(scope="init", epoch=0, val_loss=val_loss, val_acc=val_acc)
        em.log(f"starting model: validation accuracy {val_acc:.4f} (the score to beat)")
        write(checkpoint(0, 0, val_acc=val_acc), BEST, "best")

    stop = _StopFlag()
    line = ProgressLine("train", stream=None if pd.main else open(os.devnull, "w"))
    step_times: list[float] = []
    done_steps = start_epoch * steps_per_epoch + start_step
    last_epoch_metrics = history[-1] if history else {}
    clip = float(s["clip_grad"] or 0)

    def all_finite(finite: bool) -> bool:
        return finite if pd.world == 1 else pd.sum([0.0 if finite else 1.0])[0] == 0

    with stop.installed():
        for epoch in range(start_epoch, epochs):
            _train_mode(model, frozen)
            batches = D.epoch_batches(len(train_idx), per_rank, epoch, s["seed"], pd.rank, pd.world)
            first = start_step if epoch == start_epoch else 0
            acc_loss, acc_correct, acc_n = (partial or (0.0, 0.0, 0.0)) if first else (0.0, 0.0, 0.0)
            epoch_started = time.monotonic()
            upcoming = train_store.prefetch(train_idx[batches[first]]) if first < len(batches) else None
            for step in range(first, len(batches)):
                t0 = time.monotonic()
                rows = train_idx[batches[step]]
                crops = upcoming.result()
                if nuisance_ops:  # both classes alike (training.augment)
                    crops = A.nuisance(crops, A.batch_rng(s["seed"], epoch, step, pd.rank),
                                       nuisance_ops)
                if step + 1 < len(batches):  # read the next batch while this one trains
                    upcoming = train_store.prefetch(train_idx[batches[step + 1]])
                x = D.tensor_batch(crops).to(
                    pd.device, non_blocking=True, memory_format=torch.channels_last)
                y = torch.from_numpy(labels[rows]).to(pd.device)
                lr_now = lr_at(done_steps)
                for group in optimizer.param_groups:
                    group["lr"] = lr_now
                loss, logits = train_step(net, x, y, aug_gen, optimizer, scaler, ft_size,
                                          float(s["ft_weight"]), amp_dtype, clip, all_finite,
                                          anchor, float(s["l2_sp"]))
                finite = bool(torch.isfinite(loss))
                correct = (logits.argmax(1) == y).sum().item()
                loss_sum, n_correct, n_seen, bad, stopping = pd.sum(
                    [loss.item() * len(y) if finite else 0.0, correct, len(y),
                     0.0 if finite else 1.0, 1.0 if stop.requested else 0.0])
                if bad:
                    raise TrainError(
                        f"the loss became NaN/inf at epoch {epoch + 1} step {step + 1}; stopped. "
                        f"The last good checkpoint is {out / LATEST if (out / LATEST).is_file() else 'none (first epoch)'}; "
                        f"try a lower --lr (now {lr_now:g})")
                acc_loss += loss_sum
                acc_correct += n_correct
                acc_n += n_seen
                done_steps += 1
                dt = time.monotonic() - t0
                step_times.append(dt)
                recent = statistics.median(step_times[-20:])
                em.progress(done_steps, total_steps, recent * (total_steps - done_steps),
                            epoch=epoch + 1, epochs=epochs, step=step + 1, steps=len(batches),
                            loss=loss_sum / n_seen, acc=n_correct / n_seen, lr=lr_now,
                            images_s=n_seen / dt if dt > 0 else None)
                line.update(done_steps, total_steps,
                            f"epoch {epoch + 1}/{epochs} loss {acc_loss / acc_n:.4f} "
                            f"acc {acc_correct / acc_n:.3f} {n_seen / max(dt, 1e-9):.0f} img/s")
                if stopping and step + 1 < len(batches):
                    write(checkpoint(epoch, step + 1, partial=(acc_loss, acc_correct, acc_n)),
                          LATEST, "checkpoint")
                    raise Stopped(f"stopped at epoch {epoch + 1} step {step + 1}; saved "
                                  f"{out / LATEST}; continue with --resume auto")

            # End of epoch: BatchNorm statistics, validate, checkpoint.
            if s["precise_bn"]:
                # With the features cached, always the same crops (the first epoch's first
                # batches); otherwise this epoch's first batches.
                _precise_bn(model, train_forward, train_idx,
                            (first_batches if train_forward.cached else batches)[:int(s["precise_bn"])],
                            frozen)
            val_loss, val_acc, per_class = _validate(model, val_forward, val_idx, labels,
                                                     len(class_names))
            train_acc = acc_correct / max(acc_n, 1)
            score = (val_acc, val_loss) if val_acc is not None else (train_acc, None)
            is_best = _better(score, best)
            if is_best:
                best = score
            last_epoch_metrics = {
                "epoch": epoch + 1, "train_loss": acc_loss / max(acc_n, 1), "train_acc": train_acc,
                "val_loss": val_loss, "val_acc": val_acc,
                "val_per_class": dict(zip(class_names, per_class)) if per_class is not None else None,
                "lr": optimizer.param_groups[0]["lr"], "best": is_best, "start_val_acc": start_acc,
                "seconds": time.monotonic() - epoch_started}
            history.append(last_epoch_metrics)
            ck = checkpoint(epoch + 1, 0, val_acc=val_acc)
            write(ck, LATEST, "checkpoint")
            if is_best:
                write(ck, BEST, "best")
            if pd.main:
                write_atomic(out / HISTORY, json.dumps(history, indent=1))
            em.metric(scope="epoch", epochs=epochs, **last_epoch_metrics)
            below = start_acc is not None and val_acc is not None and val_acc < start_acc
            em.log(f"epoch {epoch + 1}/{epochs}: train loss {last_epoch_metrics['train_loss']:.4f} "
                   f"acc {train_acc:.4f}, val "
                   + (f"loss {val_loss:.4f} acc {val_acc:.4f}" if val_acc is not None else "n/a")
                   + (" (best)" if is_best else "")
                   + (f" (below the starting model's {start_acc:.4f})" if below else ""),
                   "warning" if below else "info")
            partial = None
            if pd.sum([1.0 if stop.requested else 0.0])[0] and epoch + 1 < epochs:
                raise Stopped(f"stopped after epoch {epoch + 1}; saved {out / LATEST}; "
                              "continue with --resume auto")
    beat_start = None
    if start_acc is not None:
        beat_start = any(h.get("best") for h in history)
        if not beat_start:
            em.log(f"no epoch beat the starting model: {start_acc:.2f}; best.pth is the "
                   "starting model", "warning")
    summary = {"epochs": epochs, "best_val_acc": best[0] if best else None,
               "start_val_acc": start_acc, "beat_start": beat_start, "best": str(out / BEST),
               "latest": str(out / LATEST), "history": str(out / HISTORY),
               "images_s": (per_rank * pd.world / statistics.median(step_times)) if step_times else None,
               **{k: last_epoch_metrics.get(k) for k in ("train_loss", "train_acc", "val_loss", "val_acc")}}
    em.done(**summary)
    return summary


def _better(score: tuple, best: tuple | None) -> bool:
    """Whether (accuracy, loss) beats the best so far: higher accuracy, or the same
    accuracy with a lower loss."""
    if best is None:
        return True
    acc, loss = score
    best_acc, best_loss = best
    if acc != best_acc:
        return acc > best_acc
    return loss is not None and best_loss is not None and loss < best_loss


def _freeze(model, early: bool, fourier: bool) -> list[nn.Module]:
    """Stop training the early layers (when asked) and the Fourier branch (when its loss has
    no weight). Parameters that need no gradient cost no backward pass; a branch that is
    not run must not hold trainable parameters under DDP. Returns the frozen modules."""
    frozen = list(model.early_layers()) if early else []
    model.with_fourier = fourier
    if not fourier:
        frozen.append(model.FTGenerator)
    for module in frozen:
        for p in module.parameters():
            p.requires_grad_(False)
    return frozen


def _train_mode(model, frozen: list[nn.Module]) -> None:
    """Training mode, except the frozen layers: their BatchNorm keeps the checkpoint's
    statistics."""
    model.train()
    for module in frozen:
        module.eval()


def l2_sp_penalty(anchor: dict) -> torch.Tensor:
    """sum ||w - w_start||^2 over the trained parameters (L2-SP, Li et al. 2018): zero at
    the starting weights, growing as the fine-tune moves away from them. `anchor` maps a
    name to (parameter, its starting value)."""
    terms = [(p.float() - start.float()).pow(2).sum() for p, start in anchor.values()]
    return torch.stack(terms).sum() if terms else torch.zeros(())


def _anchor(model, s: dict, ckpt, resume_path) -> dict:
    """{name: (parameter, starting value)} of the trained parameters for the L2-SP pull;
    empty when it is off. A new run starts from the weights just loaded; a resumed one
    reads them from its checkpoint."""
    if not float(s["l2_sp"]):
        return {}
    trained = {name: p for name, p in model.named_parameters() if p.requires_grad}
    if ckpt is None:
        return {name: (p, p.detach().clone()) for name, p in trained.items()}
    saved = ckpt.get("l2_sp_anchor") or {}
    if set(saved) != set(trained):
        raise TrainError(f"--resume {resume_path}: the run's starting weights for --l2-sp "
                         "are not in the checkpoint; start a new run folder")
    return {name: (p, saved[name].to(p.device)) for name, p in trained.items()}


def train_step(net, x, y, aug_gen, optimizer, scaler, ft_size: int, ft_weight: float,
               amp_dtype=None, clip_grad: float = 0.0, all_finite=bool, anchor=None,
               l2_sp: float = 0.0):
    """One optimisation step on a batch x (RGB [B,3,S,S] in [0,1]) with labels y:
    augmentation, Fourier target (when ft_weight > 0), forward under autocast (`amp_dtype`,
    None = float32), loss, backward, gradient clipping to the global norm `clip_grad`
    (0 = none) and the update. The update is skipped when the loss is not finite; under DDP
    `all_finite` makes every process agree first (one process skipping the backward pass
    would leave the others waiting for its gradients). Returns (loss, logits), both still
    on the device. With `anchor` and l2_sp > 0 the loss also has l2_sp / 2 * l2_sp_penalty
    (the pull toward the starting weights)."""
    x = D.augment(x, aug_gen)
    target = fourier_target(x, ft_size) if ft_weight > 0 else None
    with torch.autocast(x.device.type, dtype=amp_dtype or torch.float32,
                        enabled=amp_dtype is not None):
        out = net(x)
        logits, ft = out if isinstance(out, tuple) else (out, None)
        loss = nn.functional.cross_entropy(logits.float(), y)
        if target is not None:
            loss = (1 - ft_weight) * loss + ft_weight * nn.functional.mse_loss(ft.float(), target)
    if anchor and l2_sp > 0:
        loss = loss + 0.5 * l2_sp * l2_sp_penalty(anchor)
    optimizer.zero_grad(set_to_none=True)
    if all_finite(bool(torch.isfinite(loss))):
        scaler.scale(loss).backward()
        if clip_grad > 0:
            scaler.unscale_(optimizer)
            params = [p for group in optimizer.param_groups for p in group["params"]]
            nn.utils.clip_grad_norm_(params, clip_grad)
        scaler.step(optimizer)
        scaler.update()
    return loss.detach(), logits.detach()


def _load_init(model, ckpt: dict, config: dict, path, input_size: int, em: Emitter) -> None:
    if config["input_size"] != input_size:
        raise TrainError(f"--init {path}: a model for {config['input_size']}x"
                         f"{config['input_size']} crops, the data has {input_size}x{input_size}; "
                         f"prep the data with --size {config['input_size']}")
    state = ckpt["model_state_dict"]
    own = model.state_dict()
    mismatched = [k for k, v in state.items() if k in own and own[k].shape != v.shape]
    unknown = [k for k in state if k not in own]
    missing = [k for k in own if k not in state]
    if unknown or missing or any(not k.startswith("model.logits") for k in mismatched):
        raise TrainError(f"--init {path}: not a MiniFASNetV2-SE checkpoint of this input size "
                         f"({state_mismatch(model, state)})")
    if mismatched:
        state = {k: v for k, v in state.items() if k not in mismatched}
        em.log(f"--init: the checkpoint has a different number of classes; its last layer "
               f"is not used", "warning")
    model.load_state_dict(state, strict=not mismatched)
    em.log(f"initialised from {path}")


def _check_resume(model, ckpt: dict, path: Path, input_size: int, class_names: list) -> None:
    """A resumed checkpoint must be this run's model: one line saying why not."""
    config = checkpoint_config(ckpt, path)
    if config["input_size"] != input_size:
        raise TrainError(f"--resume {path}: a run on {config['input_size']}x{config['input_size']} "
                         f"crops, this data is {input_size}x{input_size}; use the data it was "
                         "trained on or start a new run folder")
    if config["num_classes"] != len(class_names):
        raise TrainError(f"--resume {path}: a run with {config['num_classes']} classes, this one "
                         f"has {len(class_names)}; use the data it was trained on or start a new "
                         "run folder")
    try:
        model.load_state_dict(ckpt["model_state_dict"])
    except RuntimeError:
        raise TrainError(f"--resume {path}: does not match MiniFASNetV2-SE "
                         f"({state_mismatch(model, ckpt['model_state_dict'])})") from None


class _Forward:
    """The model's output for un-augmented crops (validation, precise BN), by row index.

    When the early layers are frozen, their output for a crop (MultiFTNet.features: frozen
    weights, frozen BatchNorm statistics, no augmentation) is the same all run long: it is
    computed once and kept, up to CACHE_BYTES, and later passes run only the last stage
    (MultiFTNet's head) - the costliest part of validating after every epoch is skipped.
    """

    CACHE_BYTES = 512 << 20

    def __init__(self, model, store, pd: Dist, frozen_features: bool, images: int):
        self.model, self.store, self.pd = model, store, pd
        side = store.size // 8  # conv_4 runs at 1/8 of the input
        self.cached = frozen_features and images * 128 * side * side * 4 <= self.CACHE_BYTES
        self.features: dict[int, torch.Tensor] = {}

    def _input(self, rows) -> torch.Tensor:
        return D.tensor_batch(self.store.batch(rows)).to(self.pd.device,
                                                         memory_format=torch.channels_last)

    def __call__(self, rows) -> torch.Tensor:
        if not self.cached:
            return self.model(self._input(rows))
        missing = [int(r) for r in rows if int(r) not in self.features]
        if missing:
            fast = self.model.frozen_features
            x = self._input(missing)
            features = fast(x, exact=True) if fast is not None else self.model.model.features(x)
            for r, f in zip(missing, features):
                self.features[r] = f.clone()
        batch = torch.stack([self.features[int(r)] for r in rows])
        return self.model.model.head(batch.contiguous(memory_format=torch.channels_last))


@torch.no_grad()
def _precise_bn(model, forward: "_Forward", train_idx, batches, frozen=()) -> None:
    """Recompute the BatchNorm running statistics as the plain average over `batches`
    (un-augmented training crops) with the weights as they are now; frozen layers keep
    theirs.

    The running averages that training keeps (momentum 0.1) trail the weights; after few
    steps (small datasets, short runs) they are far from the real statistics and the model
    in eval mode is much worse than in training. No randomness is used.
    """
    kept = {id(m) for module in frozen for m in module.modules()}
    norms = [m for m in model.modules()
             if isinstance(m, nn.modules.batchnorm._BatchNorm) and id(m) not in kept]
    saved = [m.momentum for m in norms]
    model.eval()
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average
        m.train()
    for batch in batches:
        forward(train_idx[batch])
    for m, momentum in zip(norms, saved):
        m.momentum = momentum
    if forward.pd.world > 1:  # every process gets the average of all processes' statistics
        for m in norms:
            for buf in (m.running_mean, m.running_var):
                dist.all_reduce(buf)
                buf /= forward.pd.world


@torch.no_grad()
def _validate(model, forward: "_Forward", idx, labels, num_classes: int, batch: int = 32):
    """(loss, accuracy, per-class accuracy) on this rank's share, summed over ranks; leaves
    the model in eval mode. Batches of 32: on CPU about 1.5x faster per image than 128."""
    if len(idx) == 0:
        return None, None, None
    model.eval()
    pd = forward.pd
    mine = idx[pd.rank::pd.world]
    loss_sum = 0.0
    correct = np.zeros(num_classes)
    count = np.zeros(num_classes)
    for i in range(0, len(mine), batch):
        rows = mine[i:i + batch]
        y = torch.from_numpy(labels[rows]).to(pd.device)
        logits = forward(rows).float()
        loss_sum += nn.functional.cross_entropy(logits, y, reduction="sum").item()
        hit = (logits.argmax(1) == y).cpu().numpy()
        np.add.at(correct, labels[rows], hit)
        np.add.at(count, labels[rows], 1)
    total = pd.sum([loss_sum, *correct.tolist(), *count.tolist()])
    loss_sum, correct, count = total[0], np.array(total[1:1 + num_classes]), np.array(total[1 + num_classes:])
    per_class = [float(c / n) if n else None for c, n in zip(correct, count)]
    return float(loss_sum / count.sum()), float(correct.sum() / count.sum()), per_class


def _checkpoint(model, optimizer, scaler, config, train_args, epoch, step, history,
                best, start_acc, aug_gen, pd: Dist, val_acc=None, partial=None) -> dict:
    """A checkpoint of tensors and plain data only (readable with weights_only=True)."""
    states = pd.gather(_rng_state(aug_gen))  # every rank's, so a resume is exact for all
    return {
        "model_state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "config": config,
        "validation_accuracy": val_acc,
        "epoch": epoch,
        "step": step,
        "partial": list(partial) if partial else None,
        "optimizer_state_dict": optimizer.state_dict(),
        "scaler_state_dict": scaler.state_dict() if scaler.is_enabled() else None,
        "rng_states": states,
        "best_val_acc": best[0] if best else None,
        "best_val_loss": best[1] if best else None,
        "start_val_acc": start_acc,
        "history": history,
        "train_args": train_args,
    }


class _StopFlag:
    """Ctrl-C / SIGTERM set a flag; the loop saves and stops at the next step boundary.
    A second signal stops at once (the last checkpoint is still there)."""

    def __init__(self):
        self.requested = False
        self._old = {}

    def _handle(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def installed(self):
        flag = self

        class _Ctx:
            def __enter__(self_):
                for sig in (signal.SIGINT, signal.SIGTERM):
                    try:
                        flag._old[sig] = signal.signal(sig, flag._handle)
                    except ValueError:  # not the main thread
                        pass
                return flag

            def __exit__(self_, *exc):
                for sig, old in flag._old.items():
                    signal.signal(sig, old)
                return False

        return _Ctx()
