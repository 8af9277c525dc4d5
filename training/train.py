"""`train DATA OUT`: MiniFASNetV2-SE with the Fourier branch on a prepared dataset.

Loss = (1 - ft_weight) * cross-entropy + ft_weight * MSE(Fourier branch, spectrum of the
grey crop) with ft_weight 0.5 (upstream). SGD momentum 0.9, weight decay 5e-4, lr 0.1,
x0.1 at epochs 10, 15, 22, 30; 50 epochs; batch 256 (the global batch: under DDP each of
W processes takes batch/W).

OUT gets `latest.pth` after every epoch (and when stopped by Ctrl-C / SIGTERM, mid-epoch),
`best.pth` whenever the validation accuracy improves, and `history.json` (per-epoch
metrics). All are written atomically. `--resume auto` continues from OUT/latest.pth
exactly: model, optimiser, scheduler, AMP scaler, epoch and step, and every RNG
(the shuffle order depends only on seed and epoch). `--init CKPT` starts from a
checkpoint's weights with a fresh optimiser (fine-tuning; the last layer is re-initialised
when the number of classes differs); when `--resume` finds a checkpoint, it wins over
`--init`, so the command that started a run also continues it.

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

from training import data as D
from training.events import Emitter, ProgressLine
from training.model import (CheckpointError, build_model, checkpoint_config, fourier_size,
                            fourier_target, read_checkpoint, save_checkpoint)

DEFAULTS = dict(epochs=50, batch_size=256, lr=0.1, momentum=0.9, weight_decay=5e-4,
                milestones=(10, 15, 22, 30), gamma=0.1, ft_weight=0.5, classes=2,
                val_fraction=0.2, seed=0, dropout=0.2, precise_bn=100)
LATEST, BEST, HISTORY = "latest.pth", "best.pth", "history.json"
# What defines the run's data and model: taken from the checkpoint on --resume.
RUN_DEFINING = ("classes", "val_fraction", "seed", "dropout", "batch_size")


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
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(),
             "python": random.getstate(), "augment": aug_gen.get_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict, aug_gen: torch.Generator) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    aug_gen.set_state(state["augment"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# -- the run -------------------------------------------------------------------------------

def run(data_dir, out_dir, *, epochs=None, batch_size=None, lr=None, init=None, resume=None,
        device="auto", classes=None, val_fraction=None, seed=None, ft_weight=None,
        milestones=None, momentum=None, weight_decay=None, dropout=None, precise_bn=None,
        amp=True, emitter: Emitter | None = None) -> dict:
    """Train; returns the summary of the `done` event. Raises TrainError / Stopped."""
    pd = Dist(device)
    emitter = emitter if (emitter is not None and pd.main) else Emitter(False, text_stream=open(os.devnull, "w"))
    try:
        return _run(pd, emitter, Path(data_dir), Path(out_dir), locals())
    finally:
        pd.close()


def _resolve_settings(given: dict, ckpt: dict | None) -> dict:
    """Command-line values, else the resumed run's, else the defaults."""
    previous = (ckpt or {}).get("train_args", {}) if ckpt else {}
    settings = {}
    for key, default in DEFAULTS.items():
        value = given.get(key)
        if ckpt is not None and key in RUN_DEFINING and key in previous:
            value = previous[key]  # the resumed run's data split and classes stay fixed
        if value is None:
            value = previous.get(key, default)
        settings[key] = value
    settings["milestones"] = sorted(int(m) for m in settings["milestones"])
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


def _run(pd: Dist, em: Emitter, data_dir: Path, out: Path, given: dict) -> dict:
    resume_path = _find_resume(given["resume"], out)
    if resume_path is not None and given["init"]:
        # A run started with --init and resumed with the same command line continues.
        em.log(f"--init is ignored: resuming the run in {resume_path}", "warning")
        given = {**given, "init": None}
    ckpt = None
    if resume_path is not None:
        try:
            ckpt = read_checkpoint(resume_path)
        except CheckpointError as exc:
            raise TrainError(str(exc)) from None
        if "optimizer_state_dict" not in ckpt:
            raise TrainError(f"{resume_path} is not a resumable training checkpoint (no "
                             f"optimiser state); use --init {resume_path} to fine-tune from it")
    elif given["resume"] == "auto":
        em.log(f"no {LATEST} in {out}: starting a new run")
    s = _resolve_settings(given, ckpt)
    if s["batch_size"] < 2:
        raise TrainError("--batch-size must be at least 2 (BatchNorm needs two images)")

    # Data
    try:
        prepared = D.load_prepared(data_dir)
        class_names = D.class_names(prepared.categories, int(s["classes"]))
        labels = D.class_index(prepared.categories, class_names)
        split = D.split_indices(prepared.rows, labels, s["val_fraction"], s["seed"])
    except D.DataError as exc:
        raise TrainError(str(exc)) from None
    train_idx, val_idx = split["train"], split["val"]
    for c, name in enumerate(class_names):
        if not np.any(labels[train_idx] == c):
            raise TrainError(f"the {name} class is empty in the training split of {data_dir}; "
                             "add images of it and run prep again")
    try:
        train_store = D.CropStore(prepared, train_idx)
        val_store = D.CropStore(prepared, val_idx)
    except D.DataError as exc:
        raise TrainError(str(exc)) from None

    # Model, optimiser, schedule
    torch.manual_seed(s["seed"] + pd.rank)
    np.random.seed(s["seed"] + pd.rank)
    random.seed(s["seed"] + pd.rank)
    aug_gen = torch.Generator().manual_seed(s["seed"] * 7919 + pd.rank)
    config = {"input_size": prepared.size, "num_classes": len(class_names),
              "ft_weight": s["ft_weight"], "classes": class_names, "dropout": s["dropout"]}
    model = build_model(config)
    if given["init"]:
        _load_init(model, given["init"], em)
    # channels_last: about 30% faster on CPU (oneDNN) and what tensor cores want on CUDA.
    model.to(pd.device, memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=s["lr"], momentum=s["momentum"],
                                weight_decay=s["weight_decay"])
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, s["milestones"], s["gamma"])
    use_amp = bool(given["amp"]) and pd.device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    start_epoch, start_step, history, best_acc, partial = 0, 0, [], None, None
    if ckpt is not None:
        if checkpoint_config(ckpt).get("num_classes") != len(class_names):
            raise TrainError(f"{resume_path} has {checkpoint_config(ckpt).get('num_classes')} "
                             f"classes, this run {len(class_names)}")
        model.load_state_dict(ckpt["model_state_dict"])
        optimizer.load_state_dict(ckpt["optimizer_state_dict"])
        scheduler.load_state_dict(ckpt["scheduler_state_dict"])
        if use_amp and ckpt.get("scaler_state_dict"):
            scaler.load_state_dict(ckpt["scaler_state_dict"])
        if given["lr"] is not None and given["lr"] != ckpt["train_args"].get("lr"):
            em.log("--lr is ignored on --resume: the run continues its own schedule", "warning")
        start_epoch, start_step = int(ckpt["epoch"]), int(ckpt.get("step", 0))
        history, best_acc = list(ckpt.get("history", [])), ckpt.get("best_val_acc")
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
    steps_per_epoch = len(D.epoch_batches(len(train_idx), per_rank, 0, s["seed"], pd.rank, pd.world))
    total_steps = epochs * steps_per_epoch
    ft_size = fourier_size(prepared.size)
    train_args = {k: (list(v) if isinstance(v, tuple) else v) for k, v in s.items()}
    em.start("train", total=total_steps, data=str(data_dir), out=str(out), device=str(pd.device),
             processes=pd.world, epochs=epochs, steps_per_epoch=steps_per_epoch,
             train_images=len(train_idx), val_images=len(val_idx), classes=class_names,
             amp=use_amp, start_epoch=start_epoch)
    em.log(f"train: {len(train_idx)} training / {len(val_idx)} validation images, classes "
           f"{'/'.join(class_names)}, {epochs} epochs x {steps_per_epoch} steps, device "
           f"{pd.device}{' (AMP)' if use_amp else ''}, {pd.world} process(es)")
    if len(val_idx) == 0:
        em.log("no validation images (too few per class): best.pth follows training accuracy",
               "warning")
    if given["init"] and ckpt is None and start_epoch == 0 and len(val_idx):
        val_loss, val_acc, _ = _validate(model, val_store, val_idx, labels, pd, len(class_names))
        em.metric(scope="init", epoch=0, val_loss=val_loss, val_acc=val_acc)
        em.log(f"init model: validation accuracy {val_acc:.4f}")

    out.mkdir(parents=True, exist_ok=True)
    stop = _StopFlag()
    line = ProgressLine("train", stream=None if pd.main else open(os.devnull, "w"))
    step_times: list[float] = []
    done_steps = start_epoch * steps_per_epoch + start_step
    last_epoch_metrics = history[-1] if history else {}

    def all_finite(finite: bool) -> bool:
        return finite if pd.world == 1 else pd.sum([0.0 if finite else 1.0])[0] == 0

    with stop.installed():
        for epoch in range(start_epoch, epochs):
            model.train()
            batches = D.epoch_batches(len(train_idx), per_rank, epoch, s["seed"], pd.rank, pd.world)
            first = start_step if epoch == start_epoch else 0
            acc_loss, acc_correct, acc_n = (partial or (0.0, 0.0, 0.0)) if first else (0.0, 0.0, 0.0)
            epoch_started = time.monotonic()
            upcoming = train_store.prefetch(train_idx[batches[first]]) if first < len(batches) else None
            for step in range(first, len(batches)):
                t0 = time.monotonic()
                rows = train_idx[batches[step]]
                crops = upcoming.result()
                if step + 1 < len(batches):  # read the next batch while this one trains
                    upcoming = train_store.prefetch(train_idx[batches[step + 1]])
                x = D.tensor_batch(crops).to(
                    pd.device, non_blocking=True, memory_format=torch.channels_last)
                y = torch.from_numpy(labels[rows]).to(pd.device)
                loss, logits = train_step(net, x, y, aug_gen, optimizer, scaler, ft_size,
                                          s["ft_weight"], use_amp, all_finite)
                finite = bool(torch.isfinite(loss))
                correct = (logits.argmax(1) == y).sum().item()
                loss_sum, n_correct, n_seen, bad, stopping = pd.sum(
                    [loss.item() * len(y) if finite else 0.0, correct, len(y),
                     0.0 if finite else 1.0, 1.0 if stop.requested else 0.0])
                if bad:
                    raise TrainError(
                        f"the loss became NaN/inf at epoch {epoch + 1} step {step + 1}; stopped. "
                        f"The last good checkpoint is {out / LATEST if (out / LATEST).is_file() else 'none (first epoch)'}; "
                        f"try a lower --lr (now {optimizer.param_groups[0]['lr']:g})")
                acc_loss += loss_sum
                acc_correct += n_correct
                acc_n += n_seen
                done_steps += 1
                dt = time.monotonic() - t0
                step_times.append(dt)
                recent = statistics.median(step_times[-20:])
                lr_now = optimizer.param_groups[0]["lr"]
                em.progress(done_steps, total_steps, recent * (total_steps - done_steps),
                            epoch=epoch + 1, epochs=epochs, step=step + 1, steps=len(batches),
                            loss=loss_sum / n_seen, acc=n_correct / n_seen, lr=lr_now,
                            images_s=n_seen / dt if dt > 0 else None)
                line.update(done_steps, total_steps,
                            f"epoch {epoch + 1}/{epochs} loss {acc_loss / acc_n:.4f} "
                            f"acc {acc_correct / acc_n:.3f} {n_seen / max(dt, 1e-9):.0f} img/s")
                if stopping and step + 1 < len(batches):
                    ck = _checkpoint(model, optimizer, scheduler, scaler, config, train_args,
                                     epoch, step + 1, history, best_acc, aug_gen, pd,
                                     partial=(acc_loss, acc_correct, acc_n))
                    if pd.main:
                        save_checkpoint(ck, out / LATEST)
                        em.artifact(out / LATEST, "checkpoint")
                    raise Stopped(f"stopped at epoch {epoch + 1} step {step + 1}; saved "
                                  f"{out / LATEST}; continue with --resume auto")

            # End of epoch: BatchNorm statistics, validate, checkpoint.
            scheduler.step()
            if s["precise_bn"]:
                _precise_bn(model, train_store, train_idx, batches[:int(s["precise_bn"])], pd)
            val_loss, val_acc, per_class = _validate(model, val_store, val_idx, labels, pd,
                                                     len(class_names))
            train_acc = acc_correct / max(acc_n, 1)
            score = val_acc if val_acc is not None else train_acc
            is_best = best_acc is None or score > best_acc
            if is_best:
                best_acc = score
            last_epoch_metrics = {
                "epoch": epoch + 1, "train_loss": acc_loss / max(acc_n, 1), "train_acc": train_acc,
                "val_loss": val_loss, "val_acc": val_acc,
                "val_per_class": dict(zip(class_names, per_class)) if per_class is not None else None,
                "lr": optimizer.param_groups[0]["lr"], "best": is_best,
                "seconds": time.monotonic() - epoch_started}
            history.append(last_epoch_metrics)
            ck = _checkpoint(model, optimizer, scheduler, scaler, config, train_args, epoch + 1,
                             0, history, best_acc, aug_gen, pd, val_acc=val_acc)
            if pd.main:
                save_checkpoint(ck, out / LATEST)
                em.artifact(out / LATEST, "checkpoint")
                if is_best:
                    save_checkpoint(ck, out / BEST)
                    em.artifact(out / BEST, "best")
                tmp = out / (HISTORY + ".tmp")
                tmp.write_text(json.dumps(history, indent=1), encoding="utf-8")
                os.replace(tmp, out / HISTORY)
            em.metric(scope="epoch", epochs=epochs, **last_epoch_metrics)
            em.log(f"epoch {epoch + 1}/{epochs}: train loss {last_epoch_metrics['train_loss']:.4f} "
                   f"acc {train_acc:.4f}, val "
                   + (f"loss {val_loss:.4f} acc {val_acc:.4f}" if val_acc is not None else "n/a")
                   + (" (best)" if is_best else ""))
            partial = None
            if pd.sum([1.0 if stop.requested else 0.0])[0] and epoch + 1 < epochs:
                raise Stopped(f"stopped after epoch {epoch + 1}; saved {out / LATEST}; "
                              "continue with --resume auto")
    summary = {"epochs": epochs, "best_val_acc": best_acc, "best": str(out / BEST),
               "latest": str(out / LATEST), "history": str(out / HISTORY),
               "images_s": (per_rank * pd.world / statistics.median(step_times)) if step_times else None,
               **{k: last_epoch_metrics.get(k) for k in ("train_loss", "train_acc", "val_loss", "val_acc")}}
    em.done(**summary)
    return summary


def train_step(net, x, y, aug_gen, optimizer, scaler, ft_size: int, ft_weight: float,
               use_amp: bool, all_finite=bool):
    """One optimisation step on a batch x (RGB [B,3,S,S] in [0,1]) with labels y:
    augmentation, Fourier target, forward, loss, backward and update. The update is skipped
    when the loss is not finite; under DDP `all_finite` makes every process agree first (one
    process skipping the backward pass would leave the others waiting for its gradients).
    Returns (loss, logits), both still on the device."""
    x = D.augment(x, aug_gen)
    target = fourier_target(x, ft_size)
    with torch.autocast(x.device.type, dtype=torch.float16, enabled=use_amp):
        logits, ft = net(x)
        ce = nn.functional.cross_entropy(logits.float(), y)
        mse = nn.functional.mse_loss(ft.float(), target)
        loss = (1 - ft_weight) * ce + ft_weight * mse
    optimizer.zero_grad(set_to_none=True)
    if all_finite(bool(torch.isfinite(loss))):
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
    return loss.detach(), logits.detach()


def _load_init(model, path, em: Emitter) -> None:
    try:
        ckpt = read_checkpoint(path)
    except CheckpointError as exc:
        raise TrainError(f"--init: {exc}") from None
    state = ckpt["model_state_dict"]
    own = model.state_dict()
    mismatched = [k for k, v in state.items() if k in own and own[k].shape != v.shape]
    unknown = [k for k in state if k not in own]
    missing = [k for k in own if k not in state]
    if unknown or missing or any(not k.startswith("model.logits") for k in mismatched):
        raise TrainError(f"--init {path}: not a MiniFASNetV2-SE checkpoint of this input size "
                         f"({len(unknown)} unknown, {len(missing)} missing, "
                         f"{len(mismatched)} mismatched tensors)")
    if mismatched:
        state = {k: v for k, v in state.items() if k not in mismatched}
        em.log(f"--init: the checkpoint has a different number of classes; its last layer "
               f"is not used", "warning")
    model.load_state_dict(state, strict=not mismatched)
    em.log(f"initialised from {path}")


@torch.no_grad()
def _precise_bn(model, store, train_idx, batches, pd: Dist) -> None:
    """Recompute the BatchNorm running statistics as the plain average over `batches`
    (un-augmented training crops) with the weights as they are now.

    The running averages that training keeps (momentum 0.1) trail the weights; after few
    steps (small datasets, short fine-tuning runs) they are far from the real statistics and
    the model in eval mode is much worse than in training. No randomness is used.
    """
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [m.momentum for m in norms]
    model.eval()
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average
        m.train()
    for batch in batches:
        x = D.tensor_batch(store.batch(train_idx[batch])).to(pd.device, memory_format=torch.channels_last)
        model(x)
    for m, momentum in zip(norms, saved):
        m.momentum = momentum
    if pd.world > 1:  # every process gets the average of all processes' statistics
        for m in norms:
            for buf in (m.running_mean, m.running_var):
                dist.all_reduce(buf)
                buf /= pd.world
    model.train()


@torch.no_grad()
def _validate(model, store, idx, labels, pd: Dist, num_classes: int, batch: int = 128):
    """(loss, accuracy, per-class accuracy) on this rank's share, summed over ranks."""
    if len(idx) == 0:
        return None, None, None
    model.eval()
    mine = idx[pd.rank::pd.world]
    loss_sum = 0.0
    correct = np.zeros(num_classes)
    count = np.zeros(num_classes)
    for i in range(0, len(mine), batch):
        rows = mine[i:i + batch]
        x = D.tensor_batch(store.batch(rows)).to(pd.device)
        y = torch.from_numpy(labels[rows]).to(pd.device)
        logits = model(x).float()
        loss_sum += nn.functional.cross_entropy(logits, y, reduction="sum").item()
        hit = (logits.argmax(1) == y).cpu().numpy()
        np.add.at(correct, labels[rows], hit)
        np.add.at(count, labels[rows], 1)
    total = pd.sum([loss_sum, *correct.tolist(), *count.tolist()])
    loss_sum, correct, count = total[0], np.array(total[1:1 + num_classes]), np.array(total[1 + num_classes:])
    model.train()
    per_class = [float(c / n) if n else None for c, n in zip(correct, count)]
    return loss_sum / count.sum(), float(correct.sum() / count.sum()), per_class


def _checkpoint(model, optimizer, scheduler, scaler, config, train_args, epoch, step,
                history, best_acc, aug_gen, pd: Dist, val_acc=None, partial=None) -> dict:
    states = pd.gather(_rng_state(aug_gen))  # every rank's, so a resume is exact for all
    return {
        "model_state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "config": config,
        "validation_accuracy": val_acc,
        "epoch": epoch,
        "step": step,
        "partial": partial,
        "optimizer_state_dict": optimizer.state_dict(),
        "scheduler_state_dict": scheduler.state_dict(),
        "scaler_state_dict": scaler.state_dict() if scaler.is_enabled() else None,
        "rng_states": states,
        "best_val_acc": best_acc,
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
