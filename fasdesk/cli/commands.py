"""What `fasdesk classify`, `fasdesk models` and `fasdesk doctor` do.

cli.py registers the arguments and calls these lazily, so starting the GUI does not pay
for their imports. Each returns the exit status. Expected failures (a missing model, an
unreadable file, no network) print one line on stderr, never a traceback.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

# Exit statuses.
OK = 0
FAILED = 1  # the command could not do its job (no model, bad arguments, offline...)
UNREADABLE = 2  # classify: some files could not be read

PROG = "fasdesk"


def _err(message: str) -> None:
    print(f"{PROG}: {message}", file=sys.stderr)


def _tolerant_output() -> None:
    """Never die on a file name the console's encoding cannot show (Windows code pages):
    JSON output is ASCII-escaped anyway; human text gets backslash escapes instead."""
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            try:
                reconfigure(errors="backslashreplace")
            except (ValueError, OSError):
                pass


# ---------------------------------------------------------------------------- classify

class _Progress:
    """'[12/340] folder/file.jpg' on one stderr line while a folder is classified."""

    def __init__(self, stream, enabled: bool):
        self.stream = stream
        self.enabled = enabled
        self.width = 0

    def __call__(self, done: int, total: int, path: Path) -> None:
        if not self.enabled:
            return
        text = f"[{done}/{total}] {path}"
        if len(text) > 100:
            text = text[:40] + "..." + text[-57:]
        self.stream.write("\r" + text + " " * max(self.width - len(text), 0))
        self.stream.flush()
        self.width = len(text)

    def clear(self) -> None:
        if self.enabled and self.width:
            self.stream.write("\r" + " " * self.width + "\r")
            self.stream.flush()
            self.width = 0


_THRESHOLD_WORDS = {"given": "--threshold", "model": "stored with the model",
                    "default": "default"}


def _annotated_name(path: Path, folders: list[Path]) -> Path:
    """Where under --annotate DIR a file's annotated copy goes.

    Files from a folder argument keep their place under that folder's name; files named
    directly go to the top. JPEG-like formats stay JPEG, everything else becomes PNG.
    """
    rel = Path(path.name)
    path = Path(os.path.abspath(path))
    for folder in folders:
        folder = Path(os.path.abspath(folder))  # '.' and '..' get their real names
        try:
            rel = Path(folder.name or "root") / path.relative_to(folder)
            break
        except ValueError:
            continue
    suffix = path.suffix.lower()
    if suffix not in (".jpg", ".jpeg", ".png"):
        rel = rel.with_name(rel.name + ".png")
    return rel


def _table_rows(result) -> list[str]:
    from fasdesk.core.images.report import display_name

    name = display_name(result.path)  # one row, even for a name with a newline
    if result.error:
        return [f"{name}  ERROR: {result.error}"]
    size = f"{result.width}x{result.height}"
    if not result.faces:
        return [f"{name}  {size}  no face found"]
    rows = []
    for i, face in enumerate(result.faces):
        x, y, w, h = face.box
        score = "  -  " if face.p_real is None else f"{face.p_real:.3f}"
        why = f"  ({face.reason})" if face.reason else ""
        prefix = f"{name}  {size}" if i == 0 else " " * len(f"{name}  {size}")
        rows.append(f"{prefix}  face {i + 1}: {face.label.upper():6s} p_real {score}  "
                    f"box {x},{y},{w},{h}{why}")
    return rows


def classify(args: argparse.Namespace) -> int:
    from fasdesk.core.images.batch import classify_paths, collect_files
    from fasdesk.core.inference.detector import DetectorError
    from fasdesk.core.io.files import is_dir
    from fasdesk.core.calibration.profiles import ProfileError
    from fasdesk.core.inference.liveness import ModelError
    from fasdesk.core.inference.pipeline import INVALID_OUTPUT, build_pipeline
    from fasdesk.core.models.registry import MissingModelError

    _tolerant_output()
    if any(not p.strip() for p in args.paths):
        _err("an empty PATH was given; name image files or folders")
        return FAILED
    if args.threshold is not None and not 0.0 <= args.threshold <= 1.0:
        _err(f"--threshold must be between 0 and 1, got {args.threshold}")
        return FAILED
    model, threshold = args.model, args.threshold
    if getattr(args, "profile", None):
        if model:
            _err("--profile and --model both name a model; give one of them")
            return FAILED
        try:
            model, profile_threshold = _profile_model(args.profile)
        except ProfileError as exc:
            _err(str(exc))
            return FAILED
        threshold = profile_threshold if threshold is None else threshold
    try:
        # Single-threaded: it is the first of the folder's parallel workers.
        # threshold None: the model's stored threshold, else the default (build_pipeline).
        pipeline = build_pipeline(model, args.detector, threshold=threshold, threads=1)
    except (MissingModelError, ModelError, DetectorError) as exc:
        _err(str(exc))
        return FAILED
    from_profile = bool(getattr(args, "profile", None)) and args.threshold is None
    words = f"profile '{args.profile}'" if from_profile else _THRESHOLD_WORDS[pipeline.threshold_source]
    used_threshold = f"threshold {pipeline.threshold:g} ({words})"
    if pipeline.card_problem:
        _err(f"warning: {pipeline.card_problem}: judging at {pipeline.threshold:g} (default)")

    inputs = [Path(p) for p in args.paths]
    folders = [p for p in inputs if is_dir(p)]
    files = collect_files(inputs)  # walked once; classify_paths takes the list as is
    if not files:
        _err("no image files found in " + ", ".join(str(p) for p in inputs))
        return FAILED
    annotate_dir = Path(args.annotate) if args.annotate else None
    if annotate_dir is not None:
        from fasdesk.core.images.annotate import draw_faces, save_image
        used: set[Path] = set()

    progress = _Progress(sys.stderr, enabled=bool(folders) and sys.stderr.isatty())
    counts = {"real": 0, "spoof": 0, "unsure": 0}
    images = unreadable = model_errors = 0
    try:
        for result in classify_paths(files, pipeline, progress=progress,
                                     keep_images=annotate_dir is not None):
            if sys.stdout.isatty():  # same screen: keep result lines clear of the progress line
                progress.clear()
            images += 1
            if result.error:
                unreadable += 1
            for face in result.faces:
                counts[face.label] = counts.get(face.label, 0) + 1
                model_errors += face.reason == INVALID_OUTPUT
            if args.json:
                # "threshold": an extension of the fixed record, the value the labels used.
                print(json.dumps({**result.to_json(), "threshold": pipeline.threshold}),
                      flush=True)
            else:
                print("\n".join(_table_rows(result)), flush=True)
            if annotate_dir is not None and result.image is not None:
                rel = _annotated_name(Path(result.path), folders)
                stem, n = rel, 1
                while rel in used:  # two inputs with the same name
                    rel = stem.with_name(f"{stem.stem}_{n}{stem.suffix}")
                    n += 1
                used.add(rel)
                try:
                    written = save_image(annotate_dir / rel,
                                         draw_faces(result.image, result.faces))
                    if written != annotate_dir / rel:
                        _err(f"note: {annotate_dir / rel} exists and was kept; the annotated "
                             f"copy is {written}")
                except OSError as exc:
                    _err(f"cannot write annotated copy {annotate_dir / rel}: "
                         f"{getattr(exc, 'strerror', None) or exc}")
                    return FAILED
    finally:
        progress.clear()
    if model_errors:
        _err(f"the liveness model gave invalid scores (NaN or infinite) for {model_errors} "
             f"face(s), reported as unsure with no verdict: the model file is probably broken")
    if not args.json:
        faces = sum(counts.values())
        print(f"{images} image(s), {faces} face(s): {counts['real']} real, {counts['spoof']} "
              f"spoof, {counts['unsure']} unsure; {unreadable} unreadable; {used_threshold}")
    elif pipeline.threshold_source == "model" or from_profile:
        _err(f"note: {used_threshold}")
    return UNREADABLE if unreadable else OK


def _profile_model(name: str):
    """(model file, threshold) of the profile NAME, its model checked; ProfileError else."""
    from fasdesk.core.calibration.profiles import ProfileError, find_profile, list_profiles, profile_model

    profile = find_profile(name)
    if profile is None:
        names = ", ".join(f"'{p.name}'" for p in list_profiles()[0]) or "none saved yet"
        raise ProfileError(f"no profile named '{name}' (profiles: {names}; "
                           f"'fasdesk profiles list' shows them)")
    return str(profile_model(profile)), profile.threshold


# ---------------------------------------------------------------------------- profiles

def profiles_list(args: argparse.Namespace) -> int:
    from fasdesk.core.calibration.profiles import list_entry, list_profiles
    from fasdesk.core.decision.thresholds import format_threshold

    _tolerant_output()
    profiles, problems = list_profiles()
    for problem in problems:
        _err(problem)
    if args.json:
        print(json.dumps([list_entry(p) for p in profiles]))
        return OK
    if not profiles:
        print("no camera profiles yet: 'fasdesk calibrate' makes one")
    for p in profiles:
        print(f"{p.name}: {p.source_label}; model {p.model}, threshold "
              f"{format_threshold(p.threshold)}, confirm after {p.confirm_frames} frames; "
              f"made {p.created}")
    return OK


def profiles_export(args: argparse.Namespace) -> int:
    from fasdesk.core.calibration.profiles import ProfileError, export_package, find_profile

    profile = find_profile(args.name)
    try:
        if profile is None:
            _profile_model(args.name)  # raises with the list of names
        written = export_package(profile, args.file)
    except ProfileError as exc:
        _err(str(exc))
        return FAILED
    print(f"profile '{profile.name}' with its model written to {written}")
    return OK


def profiles_import(args: argparse.Namespace) -> int:
    from fasdesk.core.calibration.profiles import ProfileError, import_package

    try:
        profile = import_package(args.file, replace=args.replace)
    except ProfileError as exc:
        _err(str(exc))
        return FAILED
    print(f"profile '{profile.name}' imported: model {profile.model}, threshold "
          f"{profile.threshold:g}, confirm after {profile.confirm_frames} frames")
    return OK


# ------------------------------------------------------------------------------ models

def _entries_for(ids: list[str]):
    from fasdesk.core.models import registry

    entries = registry.load_manifest()
    if not ids:
        return entries, []
    by_id = {e.id: e for e in entries}
    unknown = [i for i in ids if i not in by_id]
    return [by_id[i] for i in ids if i in by_id], unknown


def models_list(args: argparse.Namespace) -> int:
    from fasdesk.core.models import registry

    defaults = (registry.default_liveness_id(), registry.DEFAULT_DETECTOR)
    rows = []
    for entry in registry.load_manifest():
        path = registry.find_file(entry.file)
        rows.append({"id": entry.id, "kind": entry.kind,
                     "path": str(path) if path else None,
                     "sha256": entry.sha256 or None, "default": entry.id in defaults})
    if args.json:
        print(json.dumps(rows, indent=2))
        return OK
    width = max((len(r["id"]) for r in rows), default=2)
    print(f"{'id':{width}s}  kind      default  file")
    for row in rows:
        where = row["path"] or "not found (fasdesk models pull " + row["id"] + ")"
        print(f"{row['id']:{width}s}  {row['kind']:8s}  {'yes' if row['default'] else '':7s}  {where}")
    print("searched: " + os.pathsep.join(str(d) for d in registry.search_dirs()))
    return OK


def models_verify(args: argparse.Namespace) -> int:
    from fasdesk.core.models import registry

    entries, unknown = _entries_for(args.ids)
    for model_id in unknown:
        _err(f"unknown model '{model_id}'")
    bad = len(unknown)
    # Named models must be there; without names, the ones the app needs (the defaults).
    needed = set(args.ids) or {registry.default_liveness_id(), registry.DEFAULT_DETECTOR}
    missing = []
    for entry in entries:
        path = registry.find_file(entry.file)
        if path is None and registry.find_problem(entry.file):
            print(f"{entry.id}: {registry.find_problem(entry.file)}")
            bad += 1
            continue
        if path is None:
            print(f"{entry.id}: not found (run 'fasdesk models pull {entry.id}')")
            if entry.id in needed:
                missing.append(entry)
            continue
        if not entry.sha256:
            print(f"{entry.id}: {path}: no SHA-256 recorded, not checked")
            continue
        try:
            actual = registry.sha256_of(path)
        except OSError as exc:
            print(f"{entry.id}: {path}: cannot read ({exc.strerror or exc})")
            bad += 1
            continue
        cache_problem = _cache_problem(entry, path) if actual == entry.sha256.lower() else None
        if cache_problem:
            bad += 1
            print(f"{entry.id}: {cache_problem}")
        elif actual == entry.sha256.lower():
            print(f"{entry.id}: ok ({path})")
        else:
            bad += 1
            print(f"{entry.id}: HASH MISMATCH {path}: SHA-256 {actual[:16]}..., expected "
                  f"{entry.sha256[:16]}...; the file is corrupt or a different model: remove it "
                  f"and run 'fasdesk models pull {entry.id}'")
    if bad:
        _err(f"{bad} model(s) failed verification")
    if missing:
        from fasdesk.core.models.download import manual_copy_hint

        _err(f"not found: {', '.join(e.id for e in missing)}; run 'fasdesk models pull"
             f"{''.join(' ' + e.id for e in missing) if args.ids else ''}', or offline "
             f"{manual_copy_hint([e.file for e in missing])}")
    return FAILED if bad or missing else OK


def _cache_problem(entry, path: Path) -> str | None:
    """Why the fast copy a liveness model runs as is not its rewrite, or None."""
    if entry.kind != "liveness":
        return None
    from fasdesk.core.inference.optimize import check_cached

    try:
        return check_cached(path)
    except Exception as exc:  # the rebuild failed: report it, do not stop the list
        return f"cached copy cannot be checked ({exc})"


def _hash_ok(path: Path, entry) -> bool:
    from fasdesk.core.models import registry

    try:
        return registry.sha256_of(path) == entry.sha256.lower()
    except OSError:
        return False


def models_pull(args: argparse.Namespace) -> int:
    from fasdesk.core.models import registry
    from fasdesk.core.models.download import DownloadError, ProgressLine, download_model
    from fasdesk.core.io.paths import user_models_dir

    if args.ids:
        entries, unknown = _entries_for(args.ids)
        if unknown:
            known = ", ".join(e.id for e in registry.load_manifest())
            _err(f"unknown model(s) {', '.join(unknown)} (known: {known})")
            return FAILED
    elif args.all:
        entries = [e for e in registry.load_manifest() if e.url]
    else:
        entries = [e for e in (registry.get_entry(registry.DEFAULT_LIVENESS),
                               registry.get_entry(registry.DEFAULT_DETECTOR)) if e]
    dest = Path(args.dest) if args.dest else user_models_dir()
    todo = []
    for entry in entries:
        # With --dest only that folder counts; otherwise a verified copy anywhere will do.
        existing = dest / entry.file if args.dest else registry.find_file(entry.file)
        if existing is not None and existing.is_file() and entry.sha256 and _hash_ok(existing, entry):
            print(f"{entry.id}: already present and verified ({existing})")
            continue
        todo.append(entry)
    for i, entry in enumerate(todo):
        line = ProgressLine(entry.file, sys.stderr)
        try:
            # Offline, the message names every file still to get, not just this one.
            path = download_model(entry, dest, progress=line,
                                  also_missing=[e.file for e in todo[i + 1:]])
        except DownloadError as exc:
            line.finish()
            _err(str(exc))
            return FAILED
        finally:
            line.finish()
        print(f"{entry.id}: downloaded and verified ({path.stat().st_size} bytes, "
              f"SHA-256 ok) -> {path}")
        shadow = registry.find_file(entry.file)
        if shadow is not None and shadow.resolve() != path.resolve():
            _err(f"note: {shadow} is found before {path}; remove it if it is damaged")
    return OK


# ------------------------------------------------------------------------------ doctor

def doctor(args: argparse.Namespace) -> int:
    from fasdesk.core.diagnostics import doctor as checks

    data = checks.report(cameras=not args.no_cameras)
    found = checks.problems(data)
    if args.json:
        data["problems"] = found
        print(json.dumps(data, indent=2))
        return FAILED if found else OK
    print("versions:")
    for name, version in data["versions"].items():
        print(f"  {name:13s} {version or 'not installed'}")
    print(f"  {'platform':13s} {data['platform']}")
    prov = data["providers"]
    print("execution providers: " + (", ".join(prov["available"]) or "none")
          + (f" (using {prov['chosen']})" if prov.get("chosen") else ""))
    qt = data["qt"]
    print(f"Qt platform: {qt['platform'] or 'unknown'} "
          + ("(starts)" if qt["ok"] else "(cannot start: see problems)"))
    if data["models_dir"]["env"]:
        print(f"FASDESK_MODELS_DIR: {data['models_dir']['env']}")
    print("models:")
    for model in data["models"]:
        mark = " (default)" if model["default"] else ""
        where = f" {model['path']}" if model["path"] else ""
        print(f"  {model['id']}{mark}: {model['status']}{where}")
    runtime = data["liveness_runtime"]
    if runtime["optimized"] is not None:
        print(f"liveness model {runtime['model']} optimized: {runtime['note']}")
    cams = data["cameras"]
    if cams is not None:
        if cams["cameras"]:
            print("cameras: " + ", ".join(f"{c['index']}: {c['name']}" for c in cams["cameras"]))
        else:
            print("cameras: no cameras found" + (f" ({cams['note']})" if cams["note"] else ""))
    if found:
        print("problems:")
        for line in found:
            print(f"  {line}")
        return FAILED
    print("no problems found")
    return OK
