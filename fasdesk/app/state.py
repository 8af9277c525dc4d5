"""AppState: the one owner of what the app is set to. No Qt.

It holds the user's settings (`fasdesk.core.io.settings.Settings`, saved as before) and
the active camera profile. The three values the views judge faces with are derived:

    model, threshold, confirm_frames = the profile's   while a profile is active
                                     = the user's      otherwise

A change made while a profile is active (the slider, the Model menu) holds for that
profile's session and is not saved: the settings file keeps the user's own values, which
come back when the profile is left. Every change is announced by an event (psygnal) only
when the value really changed, so a view can set what it shows on every event without
an echo guard. Views subscribe; dialogs get the state, not the window.

Decisions that used to live in the main window are here: switching models (a model
brings its own stored threshold), applying and leaving profiles, reloading a model whose
file was written over, the model check (missing or refused files) and saving settings.
"""
from __future__ import annotations

import functools
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from psygnal import Signal

from fasdesk.core.calibration.profiles import Profile, profile_for_source
from fasdesk.core.decision.thresholds import format_threshold
from fasdesk.core.models.cards import card_problem, stored_threshold
from fasdesk.core.decision.verdict import DEFAULT_THRESHOLD, clamp_threshold
from fasdesk.core.inference.liveness import LivenessEngine, ModelError
from fasdesk.core.inference.pipeline import Pipeline, build_pipeline
from fasdesk.core.io.settings import Settings, load_settings, save_settings
from fasdesk.core.live.sources import SourceSpec
from fasdesk.core.models import registry

log = logging.getLogger(__name__)

ERROR, WARNING, INFO = "error", "warning", "info"
DERIVED = ("model", "threshold", "confirm_frames")


@dataclass
class ModelCheck:
    """What the model check found: files that fail their SHA-256 (refused), kinds with no
    file at all (missing: kind -> message) and the registry models a download would get."""
    refused: list[str] = field(default_factory=list)
    missing: dict[str, str] = field(default_factory=dict)
    downloadable: list[registry.ModelEntry] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.refused and not self.missing

    def missing_text(self) -> str:
        what = {"liveness": "the liveness model", "detector": "the face detector"}
        return (" and ".join(what[k] for k in self.missing).capitalize()
                + " could not be found on this computer.")


def missing_models(model: str | None) -> list[registry.ModelEntry]:
    """Registry models the app needs (this liveness model, the detector) with no file here."""
    missing = []
    for wanted in (model or registry.DEFAULT_LIVENESS, registry.DEFAULT_DETECTOR):
        entry = registry.get_entry(wanted)  # None for a model given as a file path
        if entry is not None and registry.find_file(entry.file) is None:
            missing.append(entry)
    return missing


class AppState:
    """See the module's docstring. Every method runs on the caller's thread (the UI's)."""

    threshold_changed = Signal(float)
    confirm_frames_changed = Signal(int)
    model_changed = Signal(str)  # the model spec in use ("" = the default model)
    model_reloaded = Signal()  # same spec, new file (written over, downloaded): reload it
    profile_changed = Signal(object)  # the active Profile, or None
    models_checked = Signal(object)  # a ModelCheck
    setting_changed = Signal(str, object)  # a user setting other than the derived three
    notice = Signal(str, str)  # text, level (error, warning, info): a visible message
    status = Signal(str)  # a passing status line

    def __init__(self, settings: Settings | None = None, settings_warning: str | None = None,
                 *, save: bool = True, settings_file: str | os.PathLike | None = None):
        if settings is None:
            settings, settings_warning = load_settings(settings_file)
        self.settings = settings
        self.settings_warning = settings_warning
        self.save_enabled = save
        self.settings_file = settings_file
        self.profile: Profile | None = None
        self._session: dict[str, Any] | None = None  # the profile's values, while active
        self._reported_profiles: set[str] = set()

    # -- the derived values ---------------------------------------------------------------
    def _get(self, name: str):
        return self._session[name] if self._session is not None else getattr(self.settings, name)

    @property
    def model(self) -> str:
        """The liveness model in use: registry id or .onnx path, "" for the default."""
        return self._get("model")

    @property
    def threshold(self) -> float:
        return self._get("threshold")

    @property
    def confirm_frames(self) -> int:
        return self._get("confirm_frames")

    def _put(self, name: str, value) -> bool:
        """Set a derived value where it lives now; True when it changed."""
        if self._get(name) == value:
            return False
        if self._session is not None:
            self._session[name] = value
        else:
            setattr(self.settings, name, value)
        return True

    def _announce(self, before: dict) -> None:
        signals = {"model": self.model_changed, "threshold": self.threshold_changed,
                   "confirm_frames": self.confirm_frames_changed}
        for name in DERIVED:
            if self._get(name) != before[name]:
                signals[name].emit(self._get(name))

    def _values(self) -> dict:
        return {name: self._get(name) for name in DERIVED}

    def set_threshold(self, value: float) -> None:
        """The threshold in use (clamped to 0..1); announced only when it changed."""
        if self._put("threshold", clamp_threshold(value)):
            self.threshold_changed.emit(self.threshold)

    def set_confirm_frames(self, n: int) -> None:
        if self._put("confirm_frames", int(n)):
            self.confirm_frames_changed.emit(self.confirm_frames)
            self.save()

    # -- other user settings --------------------------------------------------------------
    def update(self, **values) -> None:
        """Set user settings (mirror, loop_playback, smoothing, source, ...); each that
        changed is announced by setting_changed(name, value). Not saved here."""
        for name, value in values.items():
            if name in DERIVED:
                raise ValueError(f"{name} is derived: use its own setter")
            if not hasattr(self.settings, name):
                raise AttributeError(f"no setting {name!r}")
            if getattr(self.settings, name) != value:
                setattr(self.settings, name, value)
                self.setting_changed.emit(name, value)

    def last_folder(self, purpose: str, default: str | None = None) -> str:
        return self.settings.last_folders.get(purpose) or default or str(Path.home())

    def remember_folder(self, purpose: str, folder: str | os.PathLike) -> None:
        self.settings.last_folders[purpose] = str(folder)

    def save(self) -> bool:
        """Write the user's settings (never a profile's session values); a failure is
        said on the status line. True when written (or saving is off)."""
        if not self.save_enabled:
            return True
        try:
            save_settings(self.settings, self.settings_file)
        except OSError as exc:
            self.status.emit(f"Settings not saved: {exc}")
            return False
        return True

    # -- models ---------------------------------------------------------------------------
    def model_path(self) -> Path | None:
        try:
            return registry.resolve(self.model or None, kind="liveness")
        except registry.MissingModelError:
            return None

    def model_sha256(self) -> str:
        """The SHA-256 of the model file in use ("" when there is none or it cannot be
        read): what result exports record next to the model's name."""
        path = self.model_path()
        try:
            return registry.file_sha256(path) if path is not None else ""
        except OSError:
            return ""

    def model_name(self) -> str:
        """The model's short name: its registry id, or its file name."""
        model = self.model
        if not model:
            return registry.default_liveness_id()
        return model if registry.get_entry(model) else Path(model).name

    def pipeline_factory(self, live: bool = False) -> Callable[[], Pipeline]:
        """Builds a pipeline for the model in use (live=True: detection sized for camera
        frames; False: single-threaded for photos, the first of the Images tab's parallel
        workers). The pipeline reports scores; labels come from `threshold` when shown."""
        return functools.partial(build_pipeline, self.model or None, None, live=live,
                                 threads=None if live else 1)

    def use_model(self, model: str | os.PathLike, threshold: float | None = None) -> bool:
        """Switch to a registry id or an .onnx path; False (with a notice) when it cannot
        be loaded. A threshold belongs to its model: the new one brings `threshold`, else
        the one stored with it (export, calibration), else the default."""
        model = str(model)
        try:
            path = registry.resolve(model, kind="liveness")
            LivenessEngine(path)  # refuse a broken or wrong-shaped model before switching
        except (registry.MissingModelError, ModelError) as exc:
            self.notice.emit(f"Model not changed: {exc}", ERROR)
            return False
        entry = registry.get_entry(model)
        unreadable_card = None
        if threshold is None:
            stored = stored_threshold(path, entry)
            threshold = DEFAULT_THRESHOLD if stored is None else stored
            unreadable_card = card_problem(path) if stored is None else None
        before = self._values()
        self._put("model", model if entry is not None else str(path))
        self._put("threshold", clamp_threshold(threshold))
        self._announce(before)
        self.check_models()
        self.status.emit(f"Model: {entry.id if entry else path.name}, threshold "
                         f"{format_threshold(threshold)}")
        if unreadable_card:
            self.notice.emit(f"{unreadable_card[0].upper()}{unreadable_card[1:]}: judging at "
                             f"{format_threshold(threshold)} (default).", WARNING)
        self.save()
        return True

    def reload_model_files(self, paths: list[str]) -> bool:
        """Files were written over (a Training export): when the model in use is one of
        them, it is loaded again with its own stored threshold (or the default), so the
        views never run on the old weights. True when it was reloaded."""
        current = self.model_path()
        if current is None or not any(Path(p).resolve() == current.resolve() for p in paths):
            return False
        stored = stored_threshold(current, registry.get_entry(self.model) if self.model else None)
        self.set_threshold(DEFAULT_THRESHOLD if stored is None else stored)
        self.model_reloaded.emit()
        self.check_models()
        self.status.emit(f"Model file replaced: {current.name} reloaded")
        return True

    def check_models(self) -> ModelCheck:
        """Whether the model in use and the detector are here and intact; announced by
        models_checked (the window shows the banner or the refusal from it)."""
        check = ModelCheck()
        for model, kind in ((self.model or None, "liveness"), (None, "detector")):
            try:
                registry.resolve(model, kind=kind)
            except registry.ModelIntegrityError as exc:
                check.refused.append(str(exc))
            except registry.MissingModelError as exc:
                check.missing[kind] = str(exc)
        if check.missing:
            check.downloadable = missing_models(self.model or None)
        self.models_checked.emit(check)
        return check

    def models_downloaded(self) -> None:
        """Missing models arrived: when the app now has what it needs, views reload."""
        if self.check_models().ok:
            self.model_reloaded.emit()
            self.status.emit("Models downloaded and verified")

    # -- camera profiles ------------------------------------------------------------------
    def select_source(self, spec: SourceSpec, camera_name: str | None = None) -> None:
        """A source is about to run live: apply its profile, or leave the last one."""
        profile, problems = profile_for_source(spec, camera_name)
        new = [p for p in problems if p not in self._reported_profiles]
        if new:
            self._reported_profiles.update(new)
            self.notice.emit(" ".join(new), WARNING)
        applied = profile is not None and self.apply_profile(profile)
        if not applied and self.profile is not None:
            self.leave_profile()  # the last source's profile is not this source's

    def apply_profile(self, profile: Profile) -> bool:
        """Use a profile's model, threshold and confirmation N. Not applied (a warning
        says why) when its model is gone or is no longer the file it was calibrated with
        (its threshold would not fit)."""
        try:
            path = registry.resolve(profile.model, kind="liveness")
            same = registry.file_sha256(path) == profile.model_sha256
            if same and path != self.model_path():
                LivenessEngine(path)  # a broken file is refused before anything changes
        except (registry.MissingModelError, OSError, ModelError) as exc:
            self.notice.emit(f"Profile '{profile.name}' not applied: {exc}", WARNING)
            return False
        if not same:
            self.notice.emit(
                f"Profile '{profile.name}' not applied: its model {profile.model} has changed "
                f"since the calibration; calibrate again (Tools > Camera profiles > Re-run).",
                WARNING)
            return False
        before = self._values()
        # The model in use already (the default named by its id, say): kept as it is
        # spelled, so the views need not load it again.
        model = self.model if self.model_path() == path else profile.model
        self._session = {"model": model, "threshold": clamp_threshold(profile.threshold),
                         "confirm_frames": int(profile.confirm_frames)}
        changed = self.profile != profile
        self.profile = profile
        self._announce(before)
        if changed:
            self.profile_changed.emit(profile)
        if before["model"] != self.model:
            self.check_models()
        self.status.emit(f"Profile '{profile.name}': model {profile.model}, threshold "
                         f"{format_threshold(profile.threshold)}")
        missed = (profile.metrics or {}).get("shortfall")
        if changed and isinstance(missed, str) and missed:
            self.notice.emit(f"Profile '{profile.name}' applied. {missed}", WARNING)
        return True

    def leave_profile(self) -> None:
        """Back to the user's own model, threshold and confirmation N."""
        if self.profile is None:
            return
        before = self._values()
        self.profile, self._session = None, None
        self._announce(before)
        self.profile_changed.emit(None)
        if before["model"] != self.model:
            self.check_models()

    def profile_renamed(self, old_name: str, renamed: Profile) -> None:
        """A profile was renamed (same values): the active one keeps running under its
        new name."""
        if self.profile is not None and self.profile.name == old_name:
            self.profile = renamed
            self.profile_changed.emit(renamed)

    def profile_saved(self, profile: Profile, spec: SourceSpec | None,
                      camera_name: str | None = None) -> None:
        """A calibration saved `profile`: it applies at once when it is for the source
        running live."""
        if spec is not None and profile.matches(spec, camera_name):
            self.apply_profile(profile)
