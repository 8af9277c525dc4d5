"""Model registry resolution and the downloader, against a real HTTP server on 127.0.0.1
serving the shared model files (good, corrupted, dropped mid-body) and a port where
nothing listens (offline)."""
from __future__ import annotations

import shutil
import socket
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from fasdesk.cli import main
from fasdesk.core.models import registry
from fasdesk.core.models.download import (URL_BASE_ENV, DownloadCancelled, DownloadError,
                                   ProgressLine, download_model, model_url)
from fasdesk.core.io.paths import user_models_dir
from conftest import PROJECT_ROOT, serving, tampered_models


def _handler(models_dir: Path):
    class Handler(BaseHTTPRequestHandler):
        """/good/F serves F; /corrupt/F one flipped byte; /drop/F half, then hangs up."""

        def log_message(self, *args):  # keep test output clean
            pass

        def do_GET(self):
            mode, _, name = self.path.strip("/").partition("/")
            path = models_dir / name
            if mode not in ("good", "corrupt", "drop") or not path.is_file():
                self.send_error(404)
                return
            data = bytearray(path.read_bytes())
            if mode == "corrupt":
                data[len(data) // 2] ^= 0xFF
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if mode == "drop":
                self.wfile.write(data[: len(data) // 2])
                self.wfile.flush()
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            self.wfile.write(data)

    return Handler


@pytest.fixture(scope="module")
def server(models_dir):
    with serving(_handler(models_dir)) as url:
        yield url


def _unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


@pytest.fixture
def detector_entry(detector_model):
    return registry.get_entry(registry.DEFAULT_DETECTOR)


def test_good_download_is_verified_and_complete(server, detector_entry, detector_model, tmp_path):
    calls = []
    path = download_model(detector_entry, tmp_path, url_base=f"{server}/good",
                          progress=lambda done, total: calls.append((done, total)))
    assert path == tmp_path / "detector.onnx"
    assert path.read_bytes() == detector_model.read_bytes()
    assert registry.sha256_of(path) == detector_entry.sha256
    assert _leftovers(tmp_path) == ["detector.onnx"]
    assert calls[0] == (0, detector_entry.size) and calls[-1] == (detector_entry.size,) * 2
    assert [c[0] for c in calls] == sorted(c[0] for c in calls)


def test_corrupted_download_leaves_nothing(server, detector_entry, tmp_path):
    with pytest.raises(DownloadError, match="SHA-256") as err:
        download_model(detector_entry, tmp_path, url_base=f"{server}/corrupt")
    assert "\n" not in str(err.value)
    assert _leftovers(tmp_path) == []


def test_corrupted_download_keeps_the_previous_good_file(server, detector_entry,
                                                         detector_model, tmp_path):
    shutil.copy(detector_model, tmp_path / "detector.onnx")
    with pytest.raises(DownloadError):
        download_model(detector_entry, tmp_path, url_base=f"{server}/corrupt")
    assert _leftovers(tmp_path) == ["detector.onnx"]
    assert registry.sha256_of(tmp_path / "detector.onnx") == detector_entry.sha256


def test_dropped_connection_leaves_nothing(server, detector_entry, tmp_path):
    with pytest.raises(DownloadError, match="connection dropped") as err:
        download_model(detector_entry, tmp_path, url_base=f"{server}/drop")
    assert f"of {detector_entry.size} bytes" in str(err.value)
    assert _leftovers(tmp_path) == []


def test_offline_says_so(detector_entry, tmp_path):
    base = f"http://127.0.0.1:{_unused_port()}"
    with pytest.raises(DownloadError, match="offline") as err:
        download_model(detector_entry, tmp_path / "models", url_base=base)
    assert "connection refused" in str(err.value) and "\n" not in str(err.value)
    assert _leftovers(tmp_path / "models") == []


def test_missing_file_on_server(server, tmp_path):
    entry = registry.ModelEntry(id="ghost", kind="liveness", file="ghost.onnx", url="x")
    with pytest.raises(DownloadError, match="HTTP 404"):
        download_model(entry, tmp_path, url_base=f"{server}/good")
    assert _leftovers(tmp_path) == []


def test_cancel_leaves_nothing(server, detector_entry, tmp_path):
    seen = []
    with pytest.raises(DownloadCancelled):
        download_model(detector_entry, tmp_path, url_base=f"{server}/good",
                       progress=lambda done, total: seen.append(done),
                       cancelled=lambda: len(seen) > 1)
    assert _leftovers(tmp_path) == []


def test_url_base_from_environment(monkeypatch, detector_entry):
    assert model_url(detector_entry) == detector_entry.url
    monkeypatch.setenv(URL_BASE_ENV, "http://mirror.example/models/")
    assert model_url(detector_entry) == "http://mirror.example/models/detector.onnx"


def test_progress_line_text():
    class Tty:
        text = ""

        def isatty(self):
            return True

        def write(self, s):
            self.text += s

        def flush(self):
            pass

    stream = Tty()
    line = ProgressLine("detector.onnx", stream)
    line(116_294, 232_589)
    line(232_589, 232_589)
    line.finish()
    assert "detector.onnx: 0.2/0.2 MB 100.0%" in stream.text and "MB/s" in stream.text
    assert stream.text.endswith("\n")


def test_models_pull_command(server, monkeypatch, tmp_path, capsys, without_bundled_models):
    # Nothing found anywhere: pull downloads the defaults into the user models folder.
    monkeypatch.setenv("FASDESK_MODELS_DIR", str(tmp_path / "empty"))
    monkeypatch.setenv(URL_BASE_ENV, f"{server}/good")
    assert main(["models", "pull"]) == 0
    out = capsys.readouterr().out
    assert "minifasnet-v2se: downloaded and verified" in out
    assert _leftovers(user_models_dir()) == ["best_model.onnx", "detector.onnx"]
    assert registry.resolve(None) == user_models_dir() / "best_model.onnx"
    # A second pull finds them and downloads nothing.
    assert main(["models", "pull"]) == 0
    assert out.count("downloaded") == 2 and "already present" in capsys.readouterr().out
    # Offline: one line on stderr, non-zero exit, nothing written.
    monkeypatch.setenv(URL_BASE_ENV, f"http://127.0.0.1:{_unused_port()}")
    assert main(["models", "pull", "minifasnet-v2se-dynq"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "offline" in err
    assert _leftovers(user_models_dir()) == ["best_model.onnx", "detector.onnx"]
    assert main(["models", "pull", "no-such-model"]) == 1
    assert "unknown model" in capsys.readouterr().err


def test_resolution_order(monkeypatch, tmp_path, fp32_model, without_bundled_models):
    first = tmp_path / "first"
    first.mkdir()
    user_models_dir().mkdir(parents=True)
    shutil.copy(fp32_model, user_models_dir() / "best_model.onnx")
    monkeypatch.setenv("FASDESK_MODELS_DIR", str(first))
    assert registry.resolve("minifasnet-v2se") == user_models_dir() / "best_model.onnx"
    shutil.copy(fp32_model, first / "best_model.onnx")
    assert registry.resolve("minifasnet-v2se") == first / "best_model.onnx"
    assert registry.resolve(str(fp32_model)) == fp32_model  # an explicit path wins
    with pytest.raises(registry.MissingModelError, match="not found"):
        registry.resolve(str(tmp_path / "nope.onnx"))
    with pytest.raises(registry.MissingModelError, match="unknown model 'nope'"):
        registry.resolve("nope")
    with pytest.raises(registry.MissingModelError, match="fasdesk models pull"):
        registry.resolve(None, kind="detector")  # detector.onnx is nowhere here


def test_manifest_matches_the_bundled_files(models_dir, fp32_model, detector_model):
    entries = {e.id: e for e in registry.load_manifest()}
    bundled = {i for i, e in entries.items() if e.extra.get("bundled")}
    assert bundled == {registry.DEFAULT_LIVENESS, registry.DEFAULT_DETECTOR,
                       registry.PRETRAINED_CHECKPOINT}
    for entry in entries.values():
        assert entry.url.startswith("https://") and entry.license, entry.id
        # The bundled ones in the project's models/; others where the tests find them.
        path = (PROJECT_ROOT / "models" if entry.id in bundled else models_dir) / entry.file
        if not path.is_file():
            assert entry.id not in bundled
            continue
        assert path.stat().st_size == entry.size, entry.id
        assert registry.sha256_of(path) == entry.sha256, entry.id


def test_bundled_models_are_found_and_checked_by_default(monkeypatch):
    monkeypatch.delenv("FASDESK_MODELS_DIR", raising=False)
    models = PROJECT_ROOT / "models"
    assert registry.resolve(None) == models / "best_model.onnx"
    assert registry.resolve(None, kind="detector") == models / "detector.onnx"
    assert registry.pretrained_checkpoint() == models / "best_model.pth"
    # Its hash is checked like any model's: a damaged copy is not used.
    bad = registry.ModelEntry.from_json({**registry.get_entry(
        registry.PRETRAINED_CHECKPOINT).to_json(), "sha256": "0" * 64})
    monkeypatch.setattr(registry, "get_entry", lambda model_id: bad)
    assert registry.pretrained_checkpoint() is None


def test_offline_pull_names_every_missing_file_and_the_offline_route(monkeypatch, tmp_path,
                                                                     capsys, without_bundled_models):
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("FASDESK_MODELS_DIR", str(empty))
    monkeypatch.setenv(URL_BASE_ENV, f"http://127.0.0.1:{_unused_port()}")
    assert main(["models", "pull"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "offline?" in err
    # The offline route: which files, where they go, and the other way.
    for words in ("best_model.onnx and detector.onnx", str(user_models_dir()),
                  "FASDESK_MODELS_DIR"):
        assert words in err, words
    assert _leftovers(user_models_dir()) == []


def test_models_dir_that_is_no_folder_is_ignored_with_one_warning(monkeypatch, tmp_path, capsys):
    gone = tmp_path / "gone"
    monkeypatch.setenv("FASDESK_MODELS_DIR", str(gone))
    assert gone not in registry.search_dirs()
    assert main(["models", "list"]) == 0  # many lookups, one warning
    err = capsys.readouterr().err
    assert err.startswith(f"fasdesk: warning: FASDESK_MODELS_DIR={gone} ") and err.count("\n") == 1
    for words in ("not a folder", "ignored", "export FASDESK_MODELS_DIR=",
                  "unset FASDESK_MODELS_DIR"):
        assert words in err, words
    # A real folder is searched first, without a word.
    gone.mkdir()
    assert registry.search_dirs()[0] == gone
    assert main(["models", "list"]) == 0 and capsys.readouterr().err == ""


# ------------------------------------------------------------------ hash check on load

def test_tampered_registry_model_is_refused_by_classify(tmp_path, samples_dir, fp32_model,
                                                        detector_model, monkeypatch):
    import os
    import subprocess
    import sys

    tampered = tampered_models(tmp_path / "models", fp32_model, detector_model)
    env = {**os.environ, "FASDESK_MODELS_DIR": str(tampered.parent)}

    def classify(*extra):
        return subprocess.run([sys.executable, "-m", "fasdesk", "classify", str(samples_dir),
                               "--json", *extra], capture_output=True, text=True, env=env,
                              timeout=120)

    refused = classify()
    assert refused.returncode == 1 and refused.stdout == ""
    assert refused.stderr.count("\n") == 1  # one line, no traceback
    assert "'minifasnet-v2se'" in refused.stderr and "does not match its SHA-256" in refused.stderr
    assert "fasdesk models pull minifasnet-v2se" in refused.stderr
    assert classify("--model", registry.DEFAULT_LIVENESS).returncode == 1
    # Named by its path (or through a link, or with '..'), a registry file is the
    # registry model and gets the same check (issue 22, item 3a).
    assert classify("--model", str(tampered)).returncode == 1
    assert classify("--model", str(tampered.parent / ".." / "models" / tampered.name)).returncode == 1
    # A copy outside the searched folders has no registry hash to match: the user's choice.
    own = tmp_path / "mine" / "own.onnx"
    own.parent.mkdir()
    shutil.copy(tampered, own)
    assert classify("--model", str(own)).returncode == 0
    monkeypatch.setenv("FASDESK_MODELS_DIR", str(tampered.parent))
    assert main(["models", "verify", registry.DEFAULT_LIVENESS]) == 1  # verify agrees


def test_hash_is_remembered_while_size_and_mtime_stay(tmp_path, fp32_model, detector_model,
                                                      monkeypatch):
    import os

    tampered = tampered_models(tmp_path / "models", fp32_model, detector_model)
    monkeypatch.setenv("FASDESK_MODELS_DIR", str(tampered.parent))
    reads = []
    real_sha256_of = registry.sha256_of
    monkeypatch.setattr(registry, "sha256_of", lambda path: reads.append(path) or real_sha256_of(path))
    with pytest.raises(registry.ModelIntegrityError, match="models pull minifasnet-v2se"):
        registry.resolve(None)
    with pytest.raises(registry.ModelIntegrityError):
        registry.resolve(registry.DEFAULT_LIVENESS)
    assert len(reads) == 1  # checked twice, read once
    # Repaired in place (same size, new content and mtime): read again, and accepted.
    tampered.write_bytes(fp32_model.read_bytes())
    os.utime(tampered, ns=(1, 1))  # a different mtime in any case
    assert registry.resolve(None) == tampered
    assert len(reads) == 2
    assert registry.resolve(registry.DEFAULT_LIVENESS, verify=False) == tampered
