"""What `fasdesk doctor` reports: versions, execution providers, models, cameras, and
whether Qt's platform plugin can start (with the system libraries it lacks).

Versions come from the installed packages' metadata, so nothing heavy (torch above all)
is imported to learn its version; Qt is tried in a child process (it aborts the process
whose platform plugin cannot load), so this module never imports Qt.
"""
from __future__ import annotations

import json
import os
import platform
import re
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from fasdesk import __version__
from fasdesk.core.models import registry
from fasdesk.core.models.download import manual_copy_hint
from fasdesk.core.io.paths import BACKEND_FLAG, is_frozen
from fasdesk.core.io.errors import one_line

# Distribution names to report, in order; the first installed alternative is shown.
PACKAGES = (
    ("numpy", ("numpy",)),
    ("opencv", ("opencv-python-headless", "opencv-python", "opencv-contrib-python",
                "opencv-contrib-python-headless")),
    ("onnxruntime", ("onnxruntime", "onnxruntime-gpu", "onnxruntime-directml",
                     "onnxruntime-silicon")),
    ("PySide6", ("PySide6-Essentials", "PySide6")),
    ("pyqtgraph", ("pyqtgraph",)),
    ("Pillow", ("Pillow", "pillow")),
    ("platformdirs", ("platformdirs",)),
    ("torch", ("torch",)),
)
CAMERA_TIMEOUT_S = 5.0


def versions() -> dict[str, str | None]:
    """fasdesk, Python and each dependency's version (None when not installed)."""
    found: dict[str, str | None] = {"fasdesk": __version__,
                                    "python": platform.python_version()}
    for label, dists in PACKAGES:
        found[label] = None
        for dist in dists:
            try:
                found[label] = metadata.version(dist)
                break
            except metadata.PackageNotFoundError:
                continue
    return found


def providers() -> dict:
    import onnxruntime as ort

    from fasdesk.core.inference.liveness import best_providers

    available = ort.get_available_providers()
    return {"available": available, "chosen": best_providers(available)[0]}


@dataclass
class ModelCheck:
    id: str
    kind: str
    path: str | None
    status: str  # "ok", "hash mismatch", "no hash recorded", "missing", "unreadable"
    default: bool

    @property
    def problem(self) -> bool:
        return self.status in ("hash mismatch", "unreadable")

    def to_json(self) -> dict:
        return {"id": self.id, "kind": self.kind, "path": self.path, "status": self.status,
                "default": self.default}


def check_models() -> list[ModelCheck]:
    """Every manifest model: where it was found and whether its SHA-256 matches."""
    checks = []
    for entry in registry.load_manifest():
        path = registry.find_file(entry.file)
        default = entry.id in (registry.default_liveness_id(), registry.DEFAULT_DETECTOR)
        if path is None:
            status = "missing"
        elif not entry.sha256:
            status = "no hash recorded"
        else:
            try:
                ok = registry.sha256_of(path) == entry.sha256.lower()
                status = "ok" if ok else "hash mismatch"
            except OSError:
                status = "unreadable"
        checks.append(ModelCheck(entry.id, entry.kind, str(path) if path else None,
                                 status, default))
    return checks


def liveness_runtime() -> dict:
    """How the default liveness model runs here: {"model", "optimized", "note"}."""
    from fasdesk.core.inference.liveness import LivenessEngine, ModelError
    from fasdesk.core.inference.optimize import describe

    model = registry.default_liveness_id()
    try:
        engine = LivenessEngine(registry.resolve(model, kind="liveness"))
    except (registry.MissingModelError, ModelError) as exc:
        return {"model": model, "optimized": None, "note": str(exc)}
    except Exception as exc:  # onnxruntime itself does not load: the report still comes
        first = one_line(exc)
        return {"model": model, "optimized": None, "note": f"cannot run it here: {first}"}
    return {"model": model, "optimized": engine.optimized, "provider": engine.provider,
            "note": describe(engine.optimized, engine.optimization)}


def probe_cameras(timeout: float = CAMERA_TIMEOUT_S) -> dict:
    """{"cameras": [{"index", "name"}], "note": str | None, "seconds": float}.

    The probe (sources.probe_cameras) runs on a daemon thread: some drivers block for a
    long time on an absent device, and the report must not hang on them.
    """
    found: list = []
    state: dict = {"done": False, "error": None}

    def probe():
        try:
            from fasdesk.core.live.sources import probe_cameras as list_cameras

            found.extend(list_cameras())
        except Exception as exc:  # a broken camera stack is reported, not raised
            state["error"] = one_line(exc)
        state["done"] = True

    thread = threading.Thread(target=probe, name="fasdesk-camera-probe", daemon=True)
    start = time.monotonic()
    thread.start()
    thread.join(timeout)
    note = state["error"]
    if not state["done"]:
        note = f"camera probe stopped after {timeout:.0f} s (a driver did not answer)"
    return {"cameras": [{"index": c.index, "name": c.name} for c in list(found)], "note": note,
            "seconds": round(time.monotonic() - start, 2)}


# ------------------------------------------------------------------ Qt platform plugin

QT_PROBE_MODULE = "fasdesk.ui.qt_probe"
QT_PROBE_BACKEND = "qt-probe"  # `fasdesk --backend qt-probe` in the packaged app
QT_PROBE_TIMEOUT_S = 30.0

# System libraries Qt's Linux platform plugins (xcb for X11, wayland) and QtGui load, with
# the package that has each: (Debian/Ubuntu, Fedora). README's Quick start lists the
# Debian/Ubuntu ones of the xcb plugin (tests/test_readme.py checks it stays complete).
QT_SYSTEM_LIBRARIES = {
    "libxcb-cursor.so.0": ("libxcb-cursor0", "xcb-util-cursor"),
    "libxcb-icccm.so.4": ("libxcb-icccm4", "xcb-util-wm"),
    "libxcb-keysyms.so.1": ("libxcb-keysyms1", "xcb-util-keysyms"),
    "libxcb-image.so.0": ("libxcb-image0", "xcb-util-image"),
    "libxcb-render-util.so.0": ("libxcb-render-util0", "xcb-util-renderutil"),
    "libxcb-util.so.1": ("libxcb-util1", "xcb-util"),
    "libxcb-randr.so.0": ("libxcb-randr0", "libxcb"),
    "libxcb-render.so.0": ("libxcb-render0", "libxcb"),
    "libxcb-shape.so.0": ("libxcb-shape0", "libxcb"),
    "libxcb-shm.so.0": ("libxcb-shm0", "libxcb"),
    "libxcb-sync.so.1": ("libxcb-sync1", "libxcb"),
    "libxcb-xfixes.so.0": ("libxcb-xfixes0", "libxcb"),
    "libxcb-xkb.so.1": ("libxcb-xkb1", "libxcb"),
    "libxcb.so.1": ("libxcb1", "libxcb"),
    "libxkbcommon-x11.so.0": ("libxkbcommon-x11-0", "libxkbcommon-x11"),
    "libxkbcommon.so.0": ("libxkbcommon0", "libxkbcommon"),
    "libX11-xcb.so.1": ("libx11-xcb1", "libX11-xcb"),
    "libX11.so.6": ("libx11-6", "libX11"),
    "libGL.so.1": ("libgl1", "mesa-libGL"),
    "libEGL.so.1": ("libegl1", "mesa-libEGL"),
    "libfontconfig.so.1": ("libfontconfig1", "fontconfig"),
    "libfreetype.so.6": ("libfreetype6", "freetype"),
    "libdbus-1.so.3": ("libdbus-1-3", "dbus-libs"),
    "libglib-2.0.so.0": ("libglib2.0-0", "glib2"),
    "libgthread-2.0.so.0": ("libglib2.0-0", "glib2"),
    "libwayland-client.so.0": ("libwayland-client0", "libwayland-client"),
    "libwayland-cursor.so.0": ("libwayland-cursor0", "libwayland-cursor"),
    "libwayland-egl.so.1": ("libwayland-egl1", "libwayland-egl"),
}
# Qt's own words when a plugin fails: 'Could not load the Qt platform plugin "xcb" in ""'.
_QT_PLUGIN_FAILED = re.compile(r'Could not (?:load|find) the Qt platform plugin "([^"]+)" in "([^"]*)"')


def qt_probe_command() -> list[str]:
    """The child process that tries Qt's platform plugin (see fasdesk.ui.qt_probe)."""
    if is_frozen():
        return [sys.executable, BACKEND_FLAG, QT_PROBE_BACKEND]
    return [sys.executable, "-m", QT_PROBE_MODULE]


def plugin_file(folder: Path, name: str) -> Path:
    """Where the platform plugin `name` lies in a Qt `platforms` folder, per OS."""
    if sys.platform == "win32":
        return folder / f"q{name}.dll"
    return folder / (f"libq{name}.dylib" if sys.platform == "darwin" else f"libq{name}.so")


def missing_libraries(library: Path) -> list[str]:
    """The shared libraries `library` needs that the dynamic linker cannot find (Linux,
    through ldd; an empty list where ldd is not available)."""
    ldd = shutil.which("ldd")
    if not sys.platform.startswith("linux") or ldd is None or not library.is_file():
        return []
    try:
        done = subprocess.run([ldd, str(library)], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return []
    missing = []
    for line in done.stdout.splitlines():
        name, _, where = line.strip().partition(" => ")
        if where.strip() == "not found" and name not in missing:
            missing.append(name)
    return missing


def install_hint(libraries: list[str]) -> str:
    """The commands that install these libraries, e.g. "sudo apt-get install ... (Debian/
    Ubuntu) or sudo dnf install ... (Fedora)"; unknown ones get a way to look them up."""
    known = [QT_SYSTEM_LIBRARIES[lib] for lib in libraries if lib in QT_SYSTEM_LIBRARIES]
    unknown = [lib for lib in libraries if lib not in QT_SYSTEM_LIBRARIES]
    parts = []
    if known:
        debian = " ".join(dict.fromkeys(d for d, _ in known))
        fedora = " ".join(dict.fromkeys(f for _, f in known))
        parts.append(f"install them: 'sudo apt-get install {debian}' (Debian/Ubuntu) or "
                     f"'sudo dnf install {fedora}' (Fedora)")
    for lib in unknown:
        parts.append(f"find the package that has {lib} with 'apt-file search {lib}' "
                     f"(Debian/Ubuntu) or 'dnf provides \"*/{lib}\"' (Fedora) and install it")
    return "; ".join(parts)


def check_qt(timeout: float = QT_PROBE_TIMEOUT_S) -> dict:
    """Try Qt's platform plugin the GUI would use, in a child process, with this
    environment (QT_QPA_PLATFORM, DISPLAY, WAYLAND_DISPLAY as they are).

    {"platform": name or None, "ok": bool, "plugin": file or None, "missing": [library
    names], "error": Qt's message or None}.
    """
    result = {"platform": None, "ok": False, "plugin": None, "missing": [], "error": None}
    try:
        done = subprocess.run(qt_probe_command(), capture_output=True, text=True,
                              timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        result["error"] = f"the Qt check did not finish in {timeout:.0f} s"
        return result
    except OSError as exc:
        result["error"] = f"cannot start the Qt check: {exc.strerror or exc}"
        return result
    plugins = None
    for line in done.stdout.splitlines():
        try:
            said = json.loads(line)
        except ValueError:
            continue
        plugins = said.get("plugins", plugins)
        result["platform"] = said.get("platform", result["platform"])
    if done.returncode == 0 and result["platform"]:
        result["ok"] = True
        return result
    failed = _QT_PLUGIN_FAILED.search(done.stderr)
    if failed:
        result["platform"] = failed.group(1)
        folders = [Path(failed.group(2))] if failed.group(2) else []
        env_folder = os.environ.get("QT_QPA_PLATFORM_PLUGIN_PATH")
        folders += [Path(env_folder)] if env_folder else []
        # QT_PLUGIN_PATH: where the packaged app's start-up hook may point Qt.
        folders += [Path(p) / "platforms"
                    for p in os.environ.get("QT_PLUGIN_PATH", "").split(os.pathsep) if p]
        folders += [Path(plugins) / "platforms"] if plugins else []
        plugin = next((plugin_file(f, failed.group(1)) for f in folders
                       if plugin_file(f, failed.group(1)).is_file()), None)
        if plugin is not None:
            result["plugin"] = str(plugin)
            result["missing"] = missing_libraries(plugin)
    lines = [ln.strip() for ln in done.stderr.splitlines() if ln.strip()]
    # Qt's first line is the cause ("could not connect to display", ...), except its
    # stock xcb-cursor hint, printed whenever the xcb plugin fails to load for any reason.
    lines = [ln for ln in lines if "xcb-cursor0 or libxcb-cursor0 is needed" not in ln]
    if lines and lines[0].startswith("Traceback"):  # Python failed (no PySide6?): its last line
        lines = lines[-1:]
    result["error"] = lines[0] if lines else f"exit status {done.returncode}"
    return result


def qt_problem(qt: dict) -> str | None:
    """One line saying why the GUI cannot start and what to do, or None when it can."""
    if qt["ok"]:
        return None
    name = f"Qt's {qt['platform']} platform plugin" if qt["platform"] else "Qt"
    if qt["missing"]:
        return (f"the GUI cannot start: {name} needs {', '.join(qt['missing'])}, not installed; "
                + install_hint(qt["missing"]))
    if "connect to display" in (qt["error"] or ""):
        shown = os.environ.get("DISPLAY")
        return (f"the GUI cannot start: {name} found no display "
                f"({'DISPLAY=' + shown if shown else 'DISPLAY is not set'}); start fasdesk "
                f"in a desktop session, or set QT_QPA_PLATFORM=offscreen to run it without a "
                f"window (the command-line tools need no display)")
    return f"the GUI cannot start: {name} failed: {qt['error']}"


def report(cameras: bool = True) -> dict:
    data = {"versions": versions(), "platform": platform.platform(),
            "executable": sys.executable}
    try:
        data["providers"] = providers()
    except Exception as exc:  # a broken onnxruntime install is exactly what doctor is for
        data["providers"] = {"available": [], "chosen": None, "error": one_line(exc)}
    data["models"] = [c.to_json() for c in check_models()]
    data["liveness_runtime"] = liveness_runtime()
    data["models_dir"] = {"env": os.environ.get(registry.MODELS_DIR_ENV),
                          "problem": registry.models_dir_problem(),
                          "searched": [str(d) for d in registry.search_dirs()]}
    data["qt"] = check_qt()
    data["cameras"] = probe_cameras() if cameras else None
    return data


def problems(data: dict) -> list[str]:
    """What stops fasdesk from working, one line each (empty when all is well)."""
    out = []
    for label in ("numpy", "opencv", "onnxruntime"):
        if not data["versions"].get(label):
            out.append(f"{label} is not installed")
    if data["providers"].get("error"):
        out.append(f"onnxruntime does not load: {data['providers']['error']}")
    qt = qt_problem(data["qt"])
    if qt:
        out.append(qt)
    if data["models_dir"]["problem"]:
        out.append(data["models_dir"]["problem"])
    for model in data["models"]:
        if model["status"] in ("hash mismatch", "unreadable"):
            out.append(f"model {model['id']} at {model['path']}: {model['status']}; "
                       f"remove it and run 'fasdesk models pull {model['id']}'")
    missing = [m for m in data["models"] if m["default"] and m["status"] == "missing"]
    if missing:
        files = [registry.get_entry(m["id"]).file for m in missing]
        out.append(f"model{'s' if len(missing) > 1 else ''} "
                   f"{', '.join(m['id'] for m in missing)} not found in "
                   f"{', '.join(data['models_dir']['searched'])}; run 'fasdesk models pull', "
                   f"or offline {manual_copy_hint(files)}")
    return out
