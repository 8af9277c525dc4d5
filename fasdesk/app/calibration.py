"""The camera calibration, as one flow both front ends drive. No Qt.

record each stage -> score the saved faces -> pick the threshold (the report) ->
optionally fine-tune (the training backend as child processes) and compare -> save the
profile. `fasdesk calibrate` calls the steps one after another; the Calibrate... dialog
calls the same steps from workers, one step per button, and shows what the flow holds.
The measuring itself is fasdesk.core.calibration.session's; this module keeps the state
between the steps (the session, scores, reports, the fine-tuned model) and runs the
backend (fasdesk.app.backend).
"""
from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from fasdesk.app.backend import CANCELLED, BackendError, BackendProcess
from fasdesk.core.calibration import defaults
from fasdesk.core.calibration import session as C
from fasdesk.core.calibration.naming import model_display_name
from fasdesk.core.calibration.profiles import Profile, save_profile
from fasdesk.core.live.sources import SourceSpec
from fasdesk.core.models.cards import CardError, register_model_file
from training import layout

CalibrationError = C.CalibrationError


@dataclass
class FlowSettings:
    """How to record and what to aim for (defaults: fasdesk.core.calibration.defaults)."""
    seconds: float = defaults.SECONDS
    every: int = defaults.EVERY
    target_bpcer: float = defaults.TARGET_BPCER
    max_apcer: float = defaults.MAX_APCER

    def to_json(self) -> dict:
        return {"seconds": self.seconds, "every": self.every,
                "target_bpcer": self.target_bpcer, "max_apcer": self.max_apcer}


@dataclass
class FineTunePlan:
    """The training backend runs that fine-tune the model on a session's train segments."""
    train_data: Path  # the train-segment samples, a folders-layout dataset
    prepared: Path
    run: Path
    model_out: Path
    model_id: str
    checkpoint: Path
    steps: list[tuple[str, list[str]]]  # (title, backend arguments)
    display_name: str = ""  # what people see: "Front door, calibrated 3 Dec"

    @property
    def best(self) -> Path:
        return layout.best_checkpoint(self.run)


def fine_tune_plan(session: C.Session, model_path: Path, name: str, epochs: int | None = None,
                   batch_size: int | None = None, lr: float | None = None,
                   device: str = "auto") -> FineTunePlan:
    """Lay out the train-segment samples as their own dataset and list the backend runs:
    prep, train --init, export. Epochs, batch size and learning rate are the training
    backend's own choice for the data size unless given.
    Raises CalibrationError when there is no checkpoint to start from."""
    import shutil

    from fasdesk.core.io.paths import user_models_dir

    train_data, checkpoint = C.fine_tune_data(session, model_path)
    work = C.fine_tune_dir(session)
    prepared, run = work / "prepared", work / "run"
    for folder in (prepared, run):
        if folder.exists():
            shutil.rmtree(folder)
    model_id = f"calibrated-{C.slug(name) or 'camera'}-{time.strftime('%Y%m%d-%H%M%S')}"
    model_out = user_models_dir() / f"{model_id}.onnx"
    steps = [("Preparing the face crops", layout.prep_args(train_data, prepared)),
             ("Fine-tuning", layout.train_args(prepared, run, init=checkpoint, device=device,
                                               epochs=epochs, batch_size=batch_size, lr=lr)),
             ("Exporting the model", layout.export_args(layout.best_checkpoint(run), model_out))]
    return FineTunePlan(train_data, prepared, run, model_out, model_id, checkpoint, steps,
                        model_display_name(name))


def same_source(real: SourceSpec, attack: SourceSpec) -> bool:
    """Whether an attack would re-read the real stage's recording: the same video file, image
    or folder. A camera is never "the same": each stage is a new take in front of it (the
    usual way to calibrate one camera)."""
    if real.kind == "camera" or attack.kind == "camera":
        return False
    return os.path.realpath(real.target) == os.path.realpath(attack.target)


def attack_source_problem(real: SourceSpec, attacks: list[tuple[str, SourceSpec]]) -> str | None:
    """One line when an attack's source is the real faces' file or folder (its report would
    measure real faces as attacks and fine-tuning would learn to reject them), else None."""
    same = [name for name, spec in attacks if spec is not None and same_source(real, spec)]
    if not same:
        return None
    names = ", ".join(C.attack_title(n).lower() for n in same)
    return (f"the {names} source is the real faces' recording ({real.target}): record each "
            f"attack from its own video file or image folder (or a camera)")


class CalibrationFlow:
    """One calibration from the first recording to the saved profile.

    `model` is what the user chose (registry id or file; None: the default model) and
    `model_path` its file. The steps raise CalibrationError (one line for the person)."""

    def __init__(self, name: str, model: str | None, model_path: Path,
                 settings: FlowSettings | None = None, confirm_frames: int = 3):
        self.settings = settings or FlowSettings()
        self.model, self.model_path = model, Path(model_path)
        self.confirm_frames = int(confirm_frames)
        self.session = C.Session.create(name)
        self.session.settings = self.settings.to_json()
        self.scores: dict = {}
        self.tuned_scores: dict | None = None
        self.before: dict | None = None
        self.after: dict | None = None
        self.plan: FineTunePlan | None = None
        self.tuned_model: dict | None = None  # model_summary of the registered fine-tuned model
        # The user's confirmation that a fine-tuned model that keeps fewer real faces real
        # when darker / moving / tinted may still be used (the never-worse rule, issue 24).
        self.accept_robustness_loss = False
        self.pipeline = None  # the live pipeline the first recording built, reused
        self._registered: float | None = None  # the threshold stored with the tuned model
        self._process: BackendProcess | None = None
        self._cancelled = False
        self._lock = threading.Lock()

    # -- record --------------------------------------------------------------------------
    def record(self, stage: str, source: str, pipeline_factory: Callable | None = None,
               should_stop=None, on_frame=None, camera_names: dict | None = None) -> C.Recording:
        """Record one stage (replacing an earlier take of it); the first recording builds
        the pipeline with `pipeline_factory`, later ones reuse it."""
        if self.pipeline is None:
            self.pipeline = pipeline_factory()
        try:
            return C.record_stage(self.session, stage, source, self.pipeline,
                                  self.settings.seconds, self.settings.every,
                                  should_stop=should_stop, on_frame=on_frame,
                                  camera_names=camera_names)
        except C.SourceError as exc:
            raise CalibrationError(f"{stage} recording: {exc}") from None

    # -- score and report ----------------------------------------------------------------
    def score(self, engine=None) -> dict:
        """Score the saved faces with the current model, then the report; returns it."""
        self.scores = C.score_session(self.session, self.model_path, engine)
        return self.evaluate()

    def evaluate(self, target_bpcer: float | None = None, max_apcer: float | None = None) -> dict:
        """(Re)make the reports from the stored scores, for a new target if given; returns
        the current model's report. On an error both reports are cleared."""
        if target_bpcer is not None:
            self.settings.target_bpcer = target_bpcer
        if max_apcer is not None:
            self.settings.max_apcer = max_apcer
        target, limit = self.settings.target_bpcer, self.settings.max_apcer
        self.before = self.after = None
        before = C.evaluate(self.session, self.scores, target, limit)
        after = (C.evaluate(self.session, self.tuned_scores, target, limit, fine_tuned=True)
                 if self.tuned_scores else None)
        self.before, self.after = before, after
        return before

    @property
    def kept(self) -> bool:
        """Whether the fine-tuned model did better and is the one the profile uses: better
        on the held-out frames and, unless the user accepted the loss, accepting as many
        changed real faces (darker / moving / tinted) as the current model."""
        return self.tuned_model is not None and C.fine_tune_kept(
            self.before, self.after, self.accept_robustness_loss)

    @property
    def robustness_loss(self) -> bool:
        """Whether the fine-tuned model keeps fewer changed real faces real than the current
        one under any condition."""
        return self.tuned_model is not None and C.robustness_loss(self.before, self.after)

    @property
    def needs_robustness_confirmation(self) -> bool:
        """Whether the fine-tuned model would be used but for its robustness loss: the
        front end asks the user (--accept-robustness-loss, the dialog's tick)."""
        return (self.robustness_loss
                and C.fine_tune_kept(self.before, self.after, accept_robustness_loss=True))

    # -- fine-tune -----------------------------------------------------------------------
    def fine_tune(self, name: str, epochs: int | None = None, batch_size: int | None = None,
                  lr: float | None = None, on_step: Callable[[int, int, str], None] | None = None,
                  on_event: Callable[[dict], None] | None = None) -> dict:
        """Fine-tune on the train segments (backend: prep, train, export), score the new
        model, compare, and add it to the model list; returns its report. `on_step` hears
        (step, of steps, title), `on_event` the backend's events. Raises CalibrationError
        (its message "cancelled" after `cancel()`)."""
        try:
            return self._fine_tune(name, epochs, batch_size, lr, on_step, on_event)
        finally:
            with self._lock:  # a cancel counts for this run (even one before it started)
                self._cancelled = False

    def _fine_tune(self, name, epochs, batch_size, lr, on_step, on_event) -> dict:
        problem = C.fine_tune_counts_problem(self.session, self.settings.target_bpcer)
        if problem:
            raise CalibrationError(problem)
        self.tuned_scores = self.tuned_model = self._registered = None
        self.accept_robustness_loss = False  # a new model needs its own confirmation
        self.plan = plan = fine_tune_plan(self.session, self.model_path, name, epochs=epochs,
                                          batch_size=batch_size, lr=lr)
        total = len(plan.steps) + 1
        for i, (title, args) in enumerate(plan.steps):
            with self._lock:
                if self._cancelled:
                    raise CalibrationError(CANCELLED)
                self._process = BackendProcess(args, on_event)
            if on_step is not None:
                on_step(i + 1, total, title)
            try:
                self._process.run()
            except BackendError as exc:
                raise CalibrationError(CANCELLED if exc.cancelled else
                                       f"fine-tuning failed while {title.lower()}: {exc}") from None
            finally:
                self._process = None
        if on_step is not None:
            on_step(total, total, "Scoring the fine-tuned model")
        self.tuned_scores = C.score_session(self.session, plan.model_out)
        self.evaluate()
        self._register(self.after["threshold"])
        self.tuned_model = C.model_summary(plan.model_id, plan.model_out)
        return self.after

    def cancel(self, wait: bool = False) -> None:
        """Stop a fine-tuning run (from any thread); its step raises "cancelled". `wait`:
        also wait for the child to end (killed if it must; the app is closing)."""
        with self._lock:
            self._cancelled = True
            process = self._process
        if process is not None:
            process.stop_and_wait() if wait else process.stop()

    def _register(self, threshold: float) -> None:
        """Add the fine-tuned model to the model list with `threshold` stored with it."""
        plan = self.plan
        if threshold == self._registered:
            return
        if not plan.model_out.is_file():
            raise CalibrationError(f"the fine-tuned model was not written ({plan.model_out})")
        try:
            register_model_file(
                plan.model_out, plan.model_id, source="calibration",
                description=f"fine-tuned by camera calibration ({self.session.root.name})",
                threshold=threshold,
                threshold_note={"from": "calibration", "session": str(self.session.root)},
                extra={"checkpoint": str(plan.best), "session": str(self.session.root),
                       **({"display_name": plan.display_name} if plan.display_name else {})})
        except CardError as exc:
            raise CalibrationError(str(exc)) from None
        except OSError as exc:
            raise CalibrationError(f"the fine-tuned model could not be added to the model "
                                   f"list: {exc.strerror or exc}") from None
        self._registered = threshold

    # -- conclude and save ---------------------------------------------------------------
    def conclude(self, source: dict, profile_name: str | None = None) -> tuple[dict, Profile | None]:
        """The result (what `fasdesk calibrate --json` prints) and the profile it makes
        (None without a name). A kept fine-tuned model gets the threshold picked for the
        target as it is now (the target may have changed since it was fine-tuned)."""
        if self.before is None:
            raise CalibrationError("nothing measured yet: score the recordings first")
        after = self.after if self.tuned_model is not None else None
        if self.kept:
            self._register(after["threshold"])
        model = C.model_summary(self.model, self.model_path)
        return C.conclude(self.session, source, model, self.before, after,
                          self.tuned_model if after else None, profile_name,
                          self.confirm_frames, self.accept_robustness_loss)

    def save(self, source: dict, profile_name: str) -> tuple[dict, Profile, Path]:
        """Conclude and save the profile; returns (result, profile, its file)."""
        if not profile_name.strip():
            raise CalibrationError("give the profile a name")
        result, profile = self.conclude(source, profile_name)
        path = save_profile(profile)
        result["profile"] = {"name": profile.name, "path": str(path)}
        return result, profile, path


def profile_shortfall(result: dict) -> str | None:
    """One line when the profile a calibration result makes misses its target, else None."""
    return C.shortfall(result["after"] if result["chosen"]["fine_tuned"] else result["before"])


def rescore_profile(profile: Profile, model: str, threshold: float | None = None) -> dict:
    """A profile's recordings scored again with `model` (registry id or file), at
    `threshold` (None: picked for the profile's target); returns the report. A model that
    was fine-tuned on the recordings is measured as such (threshold on the pick segments).
    Raises CalibrationError or MissingModelError (one line each)."""
    from fasdesk.core.models import registry

    path = registry.resolve(model, kind="liveness")
    session = C.Session.load(profile.session)
    tuned = bool(profile.fine_tuned and model == profile.model)
    scores = C.score_session(session, path)
    return C.evaluate(session, scores, profile.target_bpcer, profile.max_apcer,
                      fine_tuned=tuned, threshold=threshold)
