"""What `fasdesk doctor` reports: versions, execution providers, models, cameras.

Versions come from the installed packages' metadata, so nothing heavy (torch above all)
is imported to learn its version.
"""
from __future__ import annotations

import platform
import sys
import threading
import time
from dataclasses import dataclass
from importlib import metadata

from fasdesk import __version__
from fasdesk.core import registry

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

    from fasdesk.core.liveness import best_providers

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
    from fasdesk.core.liveness import LivenessEngine, ModelError
    from fasdesk.core.optimize import describe

    model = registry.default_liveness_id()
    try:
        engine = LivenessEngine(registry.resolve(model, kind="liveness"))
    except (registry.MissingModelError, ModelError) as exc:
        return {"model": model, "optimized": None, "note": str(exc)}
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
            from fasdesk.core.sources import probe_cameras as list_cameras

            found.extend(list_cameras())
        except Exception as exc:  # a broken camera stack is reported, not raised
            state["error"] = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
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


def report(cameras: bool = True) -> dict:
    data = {"versions": versions(), "platform": platform.platform(),
            "executable": sys.executable}
    try:
        data["providers"] = providers()
    except Exception as exc:  # a broken onnxruntime install is exactly what doctor is for
        data["providers"] = {"available": [], "chosen": None, "error": str(exc).splitlines()[0]}
    data["models"] = [c.to_json() for c in check_models()]
    data["liveness_runtime"] = liveness_runtime()
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
    for model in data["models"]:
        if model["status"] in ("hash mismatch", "unreadable"):
            out.append(f"model {model['id']} at {model['path']}: {model['status']}; "
                       f"remove it and run 'fasdesk models pull {model['id']}'")
        elif model["default"] and model["status"] == "missing":
            out.append(f"model {model['id']} not found; run 'fasdesk models pull'")
    return out
