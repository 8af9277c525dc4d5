"""Shared test fixtures: the real models and samples that come with the project.

Tests never mock the models: they use the bundled defaults in models/ and the sample
photos in samples/ (or $FASDESK_MODELS_DIR first, when set). Upstream's quantized model
is not bundled: the tests that compare against it look for it in $FASDESK_MODELS_DIR and
../shared/models and are skipped without it. A missing bundled model or sample is a
skip, unless FASDESK_REQUIRE_MODELS=1 (CI), where it is a failure.
"""
from __future__ import annotations

import contextlib
import gc
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

PROJECT_ROOT = Path(__file__).resolve().parents[1]
BUNDLED_MODELS = PROJECT_ROOT / "models"
SAMPLES_DIR = PROJECT_ROOT / "samples"
SAMPLE_NAMES = ("real_T1.jpg", "spoof_F1.jpg", "spoof_F2.jpg")
# Optional extra data beside the clone (read-only when present; never required).
SHARED = Path(os.environ.get("FASDESK_SHARED_DIR", PROJECT_ROOT.parent / "shared"))
QUANTIZED = "best_model_quantized.onnx"


def _extra_models_dir() -> Path | None:
    """The folder tests put first in the model search: $FASDESK_MODELS_DIR, else
    ../shared/models when it holds the quantized model; None: the bundled models only."""
    env = os.environ.get("FASDESK_MODELS_DIR")
    if env:
        # Absolute, so subprocesses that run elsewhere (the packaging build) find it too.
        return Path(env).resolve()
    shared = SHARED / "models"
    return shared.resolve() if (shared / QUANTIZED).is_file() else None


EXTRA_MODELS = _extra_models_dir()


def _models_dir() -> Path:
    return EXTRA_MODELS or BUNDLED_MODELS


def require_file(path: Path) -> Path:
    if path.is_file():
        return path
    message = f"real model/sample not found: {path}"
    if os.environ.get("FASDESK_REQUIRE_MODELS") == "1":
        pytest.fail(message + " (FASDESK_REQUIRE_MODELS=1)")
    pytest.skip(message)


@pytest.fixture(autouse=True)
def _collect_earlier_garbage(request):
    """Before a Qt test, collect the earlier tests' garbage (windows, dialogs in reference
    cycles) here, on the main thread. Left alone, Python may collect it inside a worker
    thread of that test, and destroying a main-thread Qt object there makes Qt warn
    ("Timers cannot be started from another thread"), which pytest-qt turns into a failure."""
    if "qtbot" in request.fixturenames:
        gc.collect()


@pytest.fixture(autouse=True)
def _isolated_user_dirs(tmp_path_factory, monkeypatch):
    """Keep tests out of the real user's config, data and cache folders. (The fast model
    copies this process already made stay remembered: tests of the cache itself call
    modelcache.forget_memory().)"""
    home = tmp_path_factory.mktemp("userdirs")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / "config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(home / "data"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / "cache"))
    if EXTRA_MODELS is not None:
        monkeypatch.setenv("FASDESK_MODELS_DIR", str(EXTRA_MODELS))
    else:
        monkeypatch.delenv("FASDESK_MODELS_DIR", raising=False)


@pytest.fixture(scope="session")
def models_dir() -> Path:
    return _models_dir()


@pytest.fixture(scope="session")
def fp32_model() -> Path:
    return require_file(_models_dir() / "best_model.onnx")


@pytest.fixture(scope="session")
def quantized_model() -> Path:
    path = _models_dir() / QUANTIZED
    if not path.is_file():  # not bundled, so never required
        pytest.skip(f"{QUANTIZED} (not bundled) not found in $FASDESK_MODELS_DIR or "
                    f"{SHARED / 'models'}")
    return path


@pytest.fixture(scope="session")
def detector_model() -> Path:
    return require_file(_models_dir() / "detector.onnx")


@pytest.fixture(scope="session")
def checkpoint() -> Path:
    return require_file(_models_dir() / "best_model.pth")


@pytest.fixture(scope="session")
def samples_dir() -> Path:
    for name in SAMPLE_NAMES:
        require_file(SAMPLES_DIR / name)
    return SAMPLES_DIR


@pytest.fixture(scope="session")
def pipeline(fp32_model, detector_model):
    from fasdesk.core.inference.pipeline import build_pipeline

    return build_pipeline(fp32_model, detector_model)


def _shared_listing() -> dict[str, tuple[int, int]]:
    if not SHARED.is_dir():
        return {}
    return {str(p.relative_to(SHARED)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in SHARED.rglob("*")}


@pytest.fixture(scope="session", autouse=True)
def _shared_stays_untouched():
    """../shared (when present) is read-only by contract; as root the permission bits don't stop a
    stray write (a report saved next to a model, say), so check it did not change."""
    before = _shared_listing()
    yield
    after = _shared_listing()
    changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    assert not changed, f"tests wrote into {SHARED}: {changed}"


@pytest.fixture
def without_bundled_models(tmp_path_factory, monkeypatch) -> Path:
    """This process's model search without the bundled models (a project folder holding
    only the manifest), for tests of what happens when no model is found. Returns it.
    The one way tests isolate the registry: with FASDESK_MODELS_DIR set to a folder of
    the test's, the search is that folder and the (isolated) user folder, nothing else."""
    from fasdesk.core.models import registry

    project = tmp_path_factory.mktemp("project")
    (project / "models").mkdir()
    (project / "models" / "manifest.json").write_bytes(registry.manifest_path().read_bytes())
    monkeypatch.setattr(registry, "app_root", lambda: project)
    return project


@pytest.fixture
def make_window(qtbot):
    """The one MainWindow factory: make_window(size=(w, h) or None, **MainWindow kwargs).

    The windows are closed by this fixture's teardown (not qtbot's, which comes first),
    after the fixtures requested later (e.g. `fifos`): so if a regression leaves a worker
    stuck on a FIFO, it is woken before the window waits for it. The windows' Python-side
    garbage is collected here, on the UI thread: left to a later collection it may run in
    a worker thread, and Qt objects must not die there."""
    import shiboken6
    from PySide6.QtCore import QEvent
    from PySide6.QtWidgets import QApplication

    from fasdesk.ui.app import create_app
    from fasdesk.ui.main_window import MainWindow

    create_app()
    windows = []

    def make(size=(1100, 700), **kwargs):
        window = MainWindow(**kwargs)
        if size:
            window.resize(*size)
        window.show()
        windows.append(window)
        return window

    yield make
    for window in windows:
        if shiboken6.isValid(window):
            window.close()
            window.deleteLater()
    windows.clear()
    # Deleted now, with the dialogs they own: widgets left behind make every later
    # application-wide change (a style, a theme) re-polish them all, test after test.
    QApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    gc.collect()


@contextlib.contextmanager
def serving(handler):
    """The one local HTTP server of the tests: `handler` (a BaseHTTPRequestHandler class)
    on 127.0.0.1 at a free port, in a thread; yields its base URL, shuts it down after."""
    from http.server import ThreadingHTTPServer

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture
def local_server():
    """local_server(handler) -> base URL; the servers stop when the test ends."""
    with contextlib.ExitStack() as stack:
        yield lambda handler: stack.enter_context(serving(handler))


def run_fasdesk(*args, env: dict | None = None, timeout: float = 120,
                **kwargs) -> subprocess.CompletedProcess:
    """The one way tests run the command line: `python -m fasdesk ARGS` with this
    environment plus `env`, its output captured as text."""
    return subprocess.run([sys.executable, "-m", "fasdesk", *map(str, args)],
                          capture_output=True, text=True, encoding="utf-8", timeout=timeout,
                          env={**os.environ, **(env or {})}, **kwargs)


def run_until_first_frame(argv: list, env: dict, timeout: float = 300):
    """Start the GUI (`argv`, with FASDESK_REPORT_FIRST_FRAME=1 in `env`), wait for its
    first-frame line however long the machine takes, then close it with SIGTERM as a
    session manager would. Returns (the line's match, seconds waited for it, exit status,
    stderr). No clock decides whether the frame came in time; `timeout` only stops a hang."""
    import re
    import time

    pattern = re.compile(r"^fasdesk: first live frame ([0-9.]+) s after (process start|fasdesk start)$")
    launched = time.monotonic()
    proc = subprocess.Popen([str(a) for a in argv], stderr=subprocess.PIPE, text=True,
                            encoding="utf-8", errors="replace", env=env)
    watchdog = threading.Timer(timeout, proc.kill)
    watchdog.start()
    lines, found, waited = [], None, None
    try:
        for line in proc.stderr:  # ends when the app does
            lines.append(line)
            match = pattern.match(line.rstrip("\n"))
            if match and found is None:
                found, waited = match, time.monotonic() - launched
                proc.terminate()
        status = proc.wait()
    finally:
        watchdog.cancel()
        proc.stderr.close()
    return found, waited, status, "".join(lines)


def tampered(path: Path) -> Path:
    """Flip one bit in the middle of `path` (a model: one weight a little off, so it still
    loads and runs; only its SHA-256 tells). Returns it."""
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    return path


def tampered_models(folder: Path, fp32_model: Path, detector_model: Path) -> Path:
    """A models folder: the detector as shipped, the liveness model tampered; returns the
    liveness model's path."""
    folder.mkdir(parents=True)
    shutil.copy(detector_model, folder / detector_model.name)
    return tampered(Path(shutil.copy(fp32_model, folder / fp32_model.name)))


def shot(widget, name: str) -> None:
    """A screenshot of `widget` as $FASDESK_SCREENSHOTS/NAME.png, when that is set."""
    folder = os.environ.get("FASDESK_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        widget.grab().save(str(Path(folder) / f"{name}.png"))
