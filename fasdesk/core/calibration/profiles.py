"""Camera profiles: what a calibration decided for one camera (or video / image folder).

One JSON file per profile in `<user config folder>/profiles/`, named after the profile.
A profile holds the source it is for (kind, target = camera index or path, and the
camera's OS name), the model (registry id or file, with its SHA-256), the threshold and
confirmation N, the target it was picked for, the date, the metrics and the recordings.
Every file is validated when read: a corrupt or hand-broken one is reported and left
out, never a crash. No Qt.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from fasdesk.core.io.files import read_json, set_aside, write_atomic
from fasdesk.core.io.paths import config_dir
from fasdesk.core.live.sources import SourceSpec

PROFILE_FORMAT = 1
MAX_NAME = 80
SOURCE_KINDS = ("camera", "video", "folder", "image")


class ProfileError(Exception):
    """A profile that cannot be read, saved or renamed; one line for the user."""


def profiles_dir() -> Path:
    return config_dir() / "profiles"


def file_stem(name: str) -> str:
    """The file name of a profile: its name with anything unsafe in a file name replaced."""
    stem = "".join(c if c.isalnum() or c in "-_. " else "_" for c in name).strip(" .")
    return stem.replace(" ", "_")[:MAX_NAME] or "profile"


@dataclass
class Profile:
    name: str
    source: dict  # {"kind", "target", "name"}
    model: str  # registry id or .onnx path
    model_sha256: str
    threshold: float
    confirm_frames: int = 3
    target_bpcer: float = 0.05
    max_apcer: float = 0.10
    fine_tuned: bool = False
    created: str = field(default_factory=lambda: time.strftime("%Y-%m-%d %H:%M:%S"))
    metrics: dict = field(default_factory=dict)
    recordings: list = field(default_factory=list)  # [{"stage", "source", "folder", "samples"}]
    session: str = ""  # the calibration's folder (recordings, reports)
    path: Path | None = field(default=None, compare=False)  # the file it was read from

    @property
    def spec(self) -> SourceSpec:
        return SourceSpec(self.source["kind"], str(self.source["target"]))

    @property
    def source_label(self) -> str:
        name = self.source.get("name") or ""
        if self.source["kind"] == "camera":
            return f"{name} (camera {self.source['target']})" if name else f"Camera {self.source['target']}"
        return str(self.source["target"])

    def to_json(self) -> dict:
        data = asdict(self)
        data.pop("path")
        return {"format": PROFILE_FORMAT, **data}

    def matches(self, spec: SourceSpec, camera_name: str | None = None) -> bool:
        """Whether this profile is for `spec`: the same camera index with the same OS name
        (when both are known: another device on that index is not this camera), or the
        same file or folder."""
        if spec.kind != self.source["kind"]:
            return False
        if spec.kind == "camera":
            if str(spec.target) != str(self.source["target"]):
                return False
            ours = self.source.get("name") or ""
            return not (ours and camera_name and camera_name != ours)
        return _same_path(spec.target, str(self.source["target"]))


def _same_path(a: str, b: str) -> bool:
    try:
        return Path(a).expanduser().resolve() == Path(b).expanduser().resolve()
    except OSError:
        return a == b


def _check(data) -> list[str]:
    """What is wrong with a profile's JSON (empty when nothing)."""
    if not isinstance(data, dict):
        return ["not a JSON object"]
    problems = []

    def need(key, kinds, test=None, what=""):
        kinds = kinds if isinstance(kinds, tuple) else (kinds,)
        value = data.get(key)
        if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
            problems.append(f"{key} missing or not {what}")
        elif test is not None and not test(value):
            problems.append(f"{key}={value!r} is not {what}")

    need("name", str, lambda v: 0 < len(v.strip()) <= MAX_NAME, f"a name of 1-{MAX_NAME} characters")
    need("model", str, lambda v: 0 < len(v) <= 4096, "a model id or file")
    need("model_sha256", str, None, "a SHA-256")
    need("threshold", (int, float), lambda v: 0.0 <= v <= 1.0, "a number from 0 to 1")
    need("confirm_frames", int, lambda v: 1 <= v <= 30, "a whole number from 1 to 30")
    need("target_bpcer", (int, float), lambda v: 0.0 <= v <= 1.0, "a number from 0 to 1")
    need("max_apcer", (int, float), lambda v: 0.0 <= v <= 1.0, "a number from 0 to 1")
    need("fine_tuned", bool, None, "true or false")
    need("created", str, None, "a date")
    need("metrics", dict, None, "an object")
    need("recordings", list, None, "a list")
    need("session", str, None, "a folder")
    source = data.get("source")
    if (not isinstance(source, dict) or source.get("kind") not in SOURCE_KINDS
            or not isinstance(source.get("target"), str) or not source["target"]
            or not isinstance(source.get("name", ""), str)
            or (source.get("kind") == "camera" and not source["target"].isdigit())):
        problems.append("source is not {kind: camera|video|folder|image, target, name}")
    if data.get("format") != PROFILE_FORMAT:
        problems.append(f"format {data.get('format')!r} is not {PROFILE_FORMAT}")
    return problems


def read_profile(path: str | os.PathLike) -> Profile:
    """A profile file, validated. Raises ProfileError saying what is wrong."""
    path = Path(path)
    try:
        data = read_json(path, 4_000_000)
    except OSError as exc:
        reason = exc.strerror or str(exc).splitlines()[0]
        raise ProfileError(f"profile {path.name} cannot be read ({reason}); it is ignored") from None
    except ValueError as exc:  # JsonError: not UTF-8, not JSON, nested too deep
        error = ProfileError(f"profile {path.name} cannot be read ({exc}); it is ignored")
        error.bad_content = True
        raise error from None
    problems = _check(data)
    if problems:
        error = ProfileError(f"profile {path.name} is not valid ({'; '.join(problems)}); "
                             f"it is ignored")
        error.bad_content = True
        raise error
    fields = {k: data[k] for k in Profile.__dataclass_fields__ if k in data and k != "path"}
    fields["threshold"] = float(fields["threshold"])
    fields["name"] = fields["name"].strip()
    return Profile(**fields, path=path)


def list_profiles(folder: Path | None = None) -> tuple[list[Profile], list[str]]:
    """(valid profiles sorted by name, one line per file that is not one)."""
    folder = folder or profiles_dir()
    try:
        files = sorted(p for p in folder.glob("*.json") if p.is_file())
    except OSError:
        return [], []
    profiles, problems = [], []
    for path in files:
        try:
            profiles.append(read_profile(path))
        except ProfileError as exc:
            # A file that is not a profile is set aside (name.json.bad) so it is reported
            # once, not at every start; one that could not be read stays for next time.
            moved = set_aside(path) if getattr(exc, "bad_content", False) else None
            problems.append(f"{exc} (moved to {Path(moved).name})" if moved else str(exc))
    profiles.sort(key=lambda p: p.name.lower())
    return profiles, problems


def find_profile(name: str, folder: Path | None = None) -> Profile | None:
    profiles, _ = list_profiles(folder)
    return next((p for p in profiles if p.name == name), None)


def profile_for_source(spec: SourceSpec, camera_name: str | None = None,
                       folder: Path | None = None) -> tuple[Profile | None, list[str]]:
    """(the newest valid profile for this camera or file, or None; one line per profile
    file that is not valid, as list_profiles gives them)."""
    profiles, problems = list_profiles(folder)
    matching = [p for p in profiles if p.matches(spec, camera_name)]
    return max(matching, key=lambda p: p.created, default=None), problems


def save_profile(profile: Profile, folder: Path | None = None,
                 replaces: str | None = None) -> Path:
    """Write a profile (replacing the one of the same name, or the profile `replaces` when
    it is being renamed) atomically; returns its path. Raises ProfileError when it is not
    valid or cannot be written."""
    folder = folder or profiles_dir()
    data = profile.to_json()
    problems = _check(data)
    if problems:
        raise ProfileError(f"profile '{profile.name}' is not valid: {'; '.join(problems)}")
    path = folder / f"{file_stem(profile.name)}.json"
    other = _owner_of(path)
    if other is not None and other not in (profile.name, replaces):
        raise ProfileError(f"the profile '{other}' already uses the file {path.name}; "
                           f"choose another name")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        write_atomic(path, json.dumps(data, indent=1))
    except OSError as exc:
        raise ProfileError(f"cannot save the profile into {folder}: {exc.strerror or exc}") from None
    profile.path = path
    return path


def _owner_of(path: Path) -> str | None:
    """The name of the valid profile stored at `path`, if any."""
    if not path.is_file():
        return None
    try:
        return read_profile(path).name
    except ProfileError:
        return None


def rename_profile(profile: Profile, new_name: str, folder: Path | None = None) -> Profile:
    new_name = new_name.strip()
    if not new_name:
        raise ProfileError("a profile needs a name")
    if new_name == profile.name:
        return profile
    folder = folder or profiles_dir()
    if find_profile(new_name, folder) is not None:
        raise ProfileError(f"there is already a profile named '{new_name}'")
    old_path = profile.path
    renamed = Profile(**{**asdict(profile), "name": new_name, "path": None})
    save_profile(renamed, folder, replaces=profile.name)
    if old_path is not None and old_path != renamed.path:
        delete_file(old_path)
    return renamed


def delete_profile(profile: Profile) -> None:
    if profile.path is not None:
        delete_file(profile.path)


def delete_file(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise ProfileError(f"cannot delete {path}: {exc.strerror or exc}") from None


def export_profile(profile: Profile, destination: str | os.PathLike) -> Path:
    """Write the profile's JSON to `destination` (any file the user picks)."""
    destination = Path(destination)
    try:
        destination.write_text(json.dumps(profile.to_json(), indent=1), encoding="utf-8")
    except OSError as exc:
        raise ProfileError(f"cannot write {destination}: {exc.strerror or exc}") from None
    return destination


def source_of(spec: SourceSpec, camera_name: str | None = None) -> dict:
    """The `source` field of a profile for a spec (paths made absolute)."""
    target = spec.target if spec.kind == "camera" else str(Path(spec.target).expanduser().resolve())
    return {"kind": spec.kind, "target": target, "name": camera_name or ""}


# -- profiles that deploy: one file with the profile, its model and the model's card ----

PACKAGE_FORMAT = 1
PACKAGE_SUFFIX = ".fasprofile"  # a zip file; the name the GUI suggests
PACKAGE_PROFILE = "profile.json"
PACKAGE_MODEL = "model.onnx"
PACKAGE_CARD = "model.card.json"
PACKAGE_INFO = "package.json"  # {"format", "model_id", "display_name", "model_sha256"}
MAX_PACKAGE_MODEL = 512 * 1024 * 1024
MAX_PACKAGE_TEXT = 4_000_000


def profile_model(profile: Profile) -> Path:
    """The model file a profile judges with, checked against the SHA-256 the profile was
    made with. Raises ProfileError (model missing, or changed since the calibration)."""
    from fasdesk.core.models import registry

    try:
        path = registry.resolve(profile.model, kind="liveness")
        same = registry.file_sha256(path) == profile.model_sha256
    except (registry.MissingModelError, OSError) as exc:
        raise ProfileError(f"profile '{profile.name}': its model {profile.model} cannot be "
                           f"used ({exc}); calibrate again or import the profile's file") from None
    if not same:
        raise ProfileError(f"profile '{profile.name}': its model {profile.model} has changed "
                           f"since the calibration (SHA-256 differs); calibrate again")
    return path


def list_entry(profile: Profile) -> dict:
    """What `fasdesk profiles list --json` prints for a profile."""
    return {"name": profile.name, "source": dict(profile.source), "model": profile.model,
            "threshold": profile.threshold, "confirm_frames": profile.confirm_frames,
            "created": profile.created}


def export_package(profile: Profile, destination: str | os.PathLike) -> Path:
    """Write `profile` as one file (a zip: profile.json, model.onnx, the model's card when
    it has one, package.json) that `import_package` installs on another machine.
    Raises ProfileError (model missing or changed, destination not writable)."""
    import zipfile

    from fasdesk.core.models import cards
    from fasdesk.core.models.cards import model_card_path
    from fasdesk.core.models import registry

    model_path = profile_model(profile)
    entry = registry.get_entry(profile.model)
    card = model_card_path(model_path)
    info = {"format": PACKAGE_FORMAT, "model_id": entry.id if entry else None,
            "display_name": cards.display_name(entry, model_path),
            "model_sha256": profile.model_sha256}
    destination = Path(destination)
    tmp = destination.with_name(destination.name + ".part")
    try:
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
            zf.writestr(PACKAGE_INFO, json.dumps(info, indent=1))
            zf.writestr(PACKAGE_PROFILE, json.dumps(profile.to_json(), indent=1))
            zf.write(model_path, PACKAGE_MODEL)
            if card.is_file():
                zf.write(card, PACKAGE_CARD)
        os.replace(tmp, destination)
    except OSError as exc:
        try:
            tmp.unlink()
        except OSError:
            pass
        raise ProfileError(f"cannot write {destination}: {exc.strerror or exc}") from None
    return destination


def _read_member(zf, name: str, limit: int, where: Path) -> bytes:
    try:
        info = zf.getinfo(name)
    except KeyError:
        raise ProfileError(f"{where.name} is not a fasdesk profile file ({name} missing); "
                           f"nothing was imported") from None
    if info.file_size > limit:
        raise ProfileError(f"{where.name}: {name} is too large; nothing was imported")
    return zf.read(info)


def read_package(path: str | os.PathLike) -> tuple[Profile, bytes, bytes | None, dict]:
    """(profile, model bytes, card bytes or None, package info) of a profile file, with
    the model's SHA-256 checked against the profile's. Raises ProfileError."""
    import hashlib
    import zipfile

    path = Path(path)
    try:
        with zipfile.ZipFile(path) as zf:
            info = json.loads(_read_member(zf, PACKAGE_INFO, MAX_PACKAGE_TEXT, path))
            data = json.loads(_read_member(zf, PACKAGE_PROFILE, MAX_PACKAGE_TEXT, path))
            model = _read_member(zf, PACKAGE_MODEL, MAX_PACKAGE_MODEL, path)
            card = (_read_member(zf, PACKAGE_CARD, MAX_PACKAGE_TEXT, path)
                    if PACKAGE_CARD in zf.namelist() else None)
    except (OSError, zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, UnicodeDecodeError,
            RecursionError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ProfileError(f"{path.name} is not a fasdesk profile file ({reason}); "
                           f"nothing was imported") from None
    problems = _check(data) or ([] if isinstance(info, dict) else ["package.json is not an object"])
    if problems:
        raise ProfileError(f"{path.name}: the profile in it is not valid "
                           f"({'; '.join(problems)}); nothing was imported")
    profile = Profile(**{k: data[k] for k in Profile.__dataclass_fields__
                         if k in data and k != "path"})
    profile.name = profile.name.strip()
    profile.threshold = float(profile.threshold)
    if hashlib.sha256(model).hexdigest() != profile.model_sha256.lower():
        raise ProfileError(f"{path.name}: its model does not match the profile's SHA-256 "
                           f"(damaged or changed), so nothing was imported")
    return profile, model, card, info


def import_package(path: str | os.PathLike, replace: bool = False,
                   folder: Path | None = None) -> Profile:
    """Install a profile file written by `export_package`: check its model's SHA-256, put
    the model (unless one with that SHA-256 is already known) and its card into the user
    models folder and the model list, and save the profile pointing at it.

    A profile of the same name is replaced only with `replace`. Raises ProfileError with
    one line (not a profile file, model tampered with, name taken, cannot write)."""
    from fasdesk.core.calibration.naming import slug
    from fasdesk.core.io.paths import user_models_dir
    from fasdesk.core.models import registry

    profile, model, card, info = read_package(path)
    folder = folder or profiles_dir()
    existing = find_profile(profile.name, folder)
    if existing is not None and not replace:
        raise ProfileError(f"there is already a profile named '{profile.name}'; import with "
                           f"--replace to replace it (or rename that one first)")
    other = _owner_of(folder / f"{file_stem(profile.name)}.json")
    if other is not None and other != profile.name:
        raise ProfileError(f"the profile '{other}' already uses the file name of "
                           f"'{profile.name}'; rename it first; nothing was imported")
    model_id = _known_model(profile.model_sha256)
    if model_id is None:
        stem = slug(str(info.get("model_id") or "")) or f"profile-{slug(profile.name) or 'model'}"
        models = user_models_dir()
        model_id, n = stem, 1
        while registry.get_entry(model_id) is not None or (models / f"{model_id}.onnx").exists():
            n += 1
            model_id = f"{stem}-{n}"
        out = models / f"{model_id}.onnx"
        try:
            models.mkdir(parents=True, exist_ok=True)
            write_atomic(out, model)
            card_data = _card_of(card)
            display = str(info.get("display_name") or card_data.get("display_name") or "")
            if card is not None:
                card_data.update(file=out.name, display_name=display or model_id)
                write_atomic(out.with_name(f"{model_id}.card.json"), json.dumps(card_data, indent=1))
            registry.register_user_model(registry.ModelEntry(
                id=model_id, kind="liveness", file=out.name, sha256=profile.model_sha256,
                size=len(model), input_size=int((card_data.get("input") or {}).get("size", 128)),
                classes=tuple(card_data.get("classes") or ("real", "spoof")),
                description=f"imported with the profile '{profile.name}'",
                extra={"source": "profile import", "threshold": profile.threshold,
                       "display_name": display or model_id}))
        except (OSError, ValueError) as exc:
            raise ProfileError(f"cannot install the model of {Path(path).name}: "
                               f"{getattr(exc, 'strerror', None) or exc}") from None
    profile.model = model_id
    profile.session = ""  # the recordings stay on the machine that made them
    save_profile(profile, folder, replaces=profile.name if replace else None)
    return profile


def _card_of(card: bytes | None) -> dict:
    try:
        data = json.loads(card) if card else {}
    except (ValueError, UnicodeDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def _known_model(sha256: str) -> str | None:
    """The id of a liveness model in the model list whose file is here and has this
    SHA-256, or None."""
    from fasdesk.core.models import registry

    for entry in registry.load_manifest():
        if entry.kind != "liveness" or entry.sha256.lower() != sha256.lower():
            continue
        found = registry.find_file(entry.file)
        try:
            if found is not None and registry.file_sha256(found) == entry.sha256.lower():
                return entry.id
        except OSError:
            continue
    return None
