"""Shared test fixtures: the real models and samples from ../shared.

Tests never mock the models: they use the reference copies that CI lays out in
../shared (found through FASDESK_MODELS_DIR). Without them a test is skipped, unless
FASDESK_REQUIRE_MODELS=1 (CI), where a missing model is a failure.
"""
from __future__ import annotations

import gc
import os
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("FASDESK_SHARED_DIR", PROJECT_ROOT.parent / "shared"))
SAMPLES_DIR = SHARED / "samples"
SAMPLE_NAMES = ("real_T1.jpg", "spoof_F1.jpg", "spoof_F2.jpg")


def _models_dir() -> Path:
    env = os.environ.get("FASDESK_MODELS_DIR")
    # Absolute, so subprocesses that run elsewhere (the packaging build) find it too.
    return Path(env).resolve() if env else SHARED / "models"


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
    monkeypatch.setenv("FASDESK_MODELS_DIR", str(_models_dir()))


@pytest.fixture(scope="session")
def models_dir() -> Path:
    return _models_dir()


@pytest.fixture(scope="session")
def fp32_model() -> Path:
    return require_file(_models_dir() / "best_model.onnx")


@pytest.fixture(scope="session")
def quantized_model() -> Path:
    return require_file(_models_dir() / "best_model_quantized.onnx")


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
    """../shared is read-only by contract; as root the permission bits don't stop a
    stray write (a report saved next to a model, say), so check it did not change."""
    before = _shared_listing()
    yield
    after = _shared_listing()
    changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    assert not changed, f"tests wrote into {SHARED}: {changed}"


@pytest.fixture
def make_window(qtbot):
    """The one MainWindow factory: make_window(size=(w, h) or None, **MainWindow kwargs).

    The windows are closed by this fixture's teardown (not qtbot's, which comes first),
    after the fixtures requested later (e.g. `fifos`): so if a regression leaves a worker
    stuck on a FIFO, it is woken before the window waits for it. The windows' Python-side
    garbage is collected here, on the UI thread: left to a later collection it may run in
    a worker thread, and Qt objects must not die there."""
    import shiboken6

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
    windows.clear()
    gc.collect()
