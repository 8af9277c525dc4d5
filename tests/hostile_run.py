"""A hostile run: the cases of docs/hostile-input.md against the command line and the
training backend, each in its own process, with the totals at the end.

    python tests/hostile_run.py [--keep] [-k WORD]

Not part of the test suite (it takes a few minutes); tests/core/test_hostile_input.py holds
one regression test per defect. Each case is run with a time limit and sorted into:
clean (the expected exit status, no traceback), traceback (a traceback or a crash
signal), hang (still running at the limit), data loss (a file the run must not touch
changed or vanished), unexpected (no traceback, but another exit status than expected).
Exit status 1 when any case is a traceback, hang or data loss.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import stat
import struct
import subprocess
import sys
import tempfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
# The clone's own bundled models and sample photos: a fresh clone runs it alone.
MODELS = Path(os.environ.get("FASDESK_MODELS_DIR", ROOT / "models"))
SAMPLES = ROOT / "samples"


@dataclass
class Case:
    name: str
    argv: list[str]  # after `python -m`
    expect: tuple[int, ...] = (1,)  # exit statuses that count as handled
    timeout: float = 120
    stdout: str | None = None  # "full" -> /dev/full, "closed" -> fd 1 closed
    keep: list[Path] = field(default_factory=list)  # files whose bytes must not change
    check: Callable[[], bool] | None = None  # extra: True when nothing was lost
    env: dict = field(default_factory=dict)
    before: Callable[[], None] | None = None


def digest(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def run_case(case: Case, base_env: dict) -> tuple[str, str]:
    if case.before:
        case.before()
    kept = {p: digest(p) for p in case.keep}
    env = {**base_env, **case.env}
    stdout = subprocess.PIPE
    pre = None
    full = None
    if case.stdout == "full":
        full = open("/dev/full", "w")
        stdout = full
    elif case.stdout == "closed":
        stdout = subprocess.DEVNULL
        pre = lambda: os.close(1)  # noqa: E731
    try:
        proc = subprocess.run([sys.executable, "-m", *case.argv], stdout=stdout,
                              stderr=subprocess.PIPE, env=env, timeout=case.timeout,
                              preexec_fn=pre, text=True, errors="replace")
    except subprocess.TimeoutExpired:
        return "hang", f"still running after {case.timeout:.0f} s"
    finally:
        if full:
            full.close()
    err = proc.stderr.strip()
    last = err.splitlines()[-1] if err else ""
    if "Traceback (most recent call last)" in err or proc.returncode < 0 or proc.returncode == 134:
        return "traceback", f"rc {proc.returncode}: {last}"
    lost = [str(p) for p, h in kept.items() if digest(p) != h]
    if lost or (case.check and not case.check()):
        return "data loss", f"changed: {', '.join(lost) or 'check failed'}"
    if proc.returncode not in case.expect:
        return "unexpected", f"rc {proc.returncode} (expected {case.expect}): {last}"
    return "clean", f"rc {proc.returncode}: {last[:150]}"


# -- hostile files -------------------------------------------------------------------------

def png_header(width: int, height: int, depth: int, colour: int) -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, depth,
                                                             colour, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))


def loop_model(path: Path) -> Path:
    from core.test_hostile_input import _loop_model

    return _loop_model(path)


def big_header_video(path: Path) -> Path:
    from core.test_hostile_input import big_header_video as make

    return make(path)


def build(work: Path) -> list[Case]:
    from robustcases import nan_model
    from training_synth import make_folders

    samples = [SAMPLES / n for n in ("real_T1.jpg", "spoof_F1.jpg", "spoof_F2.jpg")]
    photos = work / "photos"
    photos.mkdir()
    for s in samples:
        shutil.copy(s, photos / s.name)
    originals = sorted(photos.iterdir())
    models_dir = work / "user" / "data" / "fasdesk" / "models"
    models_dir.mkdir(parents=True)
    config = work / "user" / "config" / "fasdesk"
    config.mkdir(parents=True)
    (config / "profiles").mkdir()

    # tampered registry copy, a link to it, a FIFO model, a loop model, a NaN model
    tampered_dir = work / "tampered"
    tampered_dir.mkdir()
    data = bytearray((MODELS / "best_model.onnx").read_bytes())
    data[-10] ^= 0xFF
    (tampered_dir / "best_model.onnx").write_bytes(bytes(data))
    shutil.copy(MODELS / "detector.onnx", tampered_dir / "detector.onnx")
    (work / "link.onnx").symlink_to(tampered_dir / "best_model.onnx")
    fifo_dir = work / "fifomodels"
    fifo_dir.mkdir()
    os.mkfifo(fifo_dir / "best_model.onnx")
    shutil.copy(MODELS / "detector.onnx", fifo_dir / "detector.onnx")
    loop = loop_model(work / "loop.onnx")
    nan = nan_model(work / "nan.onnx")
    strict = work / "strict.onnx"
    shutil.copy(MODELS / "best_model.onnx", strict)
    (work / "strict.card.json").write_text(json.dumps(
        {"sha256": hashlib.sha256(strict.read_bytes()).hexdigest(),
         "threshold": {"value": 0.99999}}))
    deep = "[" * 50_000
    deep_card_model = work / "deepcard.onnx"
    shutil.copy(MODELS / "best_model.onnx", deep_card_model)
    (work / "deepcard.card.json").write_text(deep)
    typed_card_model = work / "typedcard.onnx"
    shutil.copy(MODELS / "best_model.onnx", typed_card_model)
    (work / "typedcard.card.json").write_text(json.dumps({"classes": 5, "split": [1],
                                                          "threshold": {"value": "x"}}))
    (work / "deep.json").write_text(deep)

    # images: a 16-bit PNG bomb within the pixel limit, odd names, FIFO, /dev/zero link
    odd = work / "odd"
    odd.mkdir()
    (odd / "bomb16.png").write_bytes(png_header(14_000, 14_000, 16, 6))
    shutil.copy(samples[0], odd / "new\nline.jpg")
    shutil.copy(samples[0], os.fsencode(odd) + b"/caf\xe9.jpg")
    os.mkfifo(odd / "pipe.jpg")
    (odd / "zero.jpg").symlink_to("/dev/zero")
    # a path over PATH_MAX
    longdir = work / "long"
    longdir.mkdir()
    here = os.getcwd()
    os.chdir(longdir)
    for _ in range(25):
        os.mkdir("d" * 200)
        os.chdir("d" * 200)
    shutil.copy(samples[0], "x.jpg")
    os.chdir(here)
    shutil.copy(samples[0], longdir / "ok.jpg")
    video = big_header_video(work / "big.avi")

    # datasets: a small raw one, its prep output, a CelebA one with a deep label file
    raw = make_folders(work / "raw", SAMPLES, per_class=4)
    celeba = work / "celeba"
    (celeba / "metas" / "labels").mkdir(parents=True)
    (celeba / "Data" / "train").mkdir(parents=True)
    (celeba / "metas" / "labels" / "train_label.json").write_text(deep)
    prepared = work / "prepared"
    subprocess.run([sys.executable, "-m", "training", "prep", str(raw), str(prepared)],
                   capture_output=True, timeout=300, cwd=ROOT)
    ckpt = MODELS / "best_model.pth"

    def fasdesk(*a):
        return ["fasdesk", *map(str, a)]

    def training(*a):
        return ["training", *map(str, a)]

    cases: list[Case] = []
    add = cases.append
    # 1. annotate
    add(Case("annotate into the photos' parent", fasdesk("classify", "photos", "--annotate", "."),
             expect=(0,), keep=originals))
    add(Case("annotate a photo into its own folder",
             fasdesk("classify", photos / "real_T1.jpg", "--annotate", photos), expect=(0,),
             keep=originals))
    add(Case("annotate into the photos folder itself",
             fasdesk("classify", photos, "--annotate", photos), expect=(0,), keep=originals))
    # 2. bad files at start
    manifests = [b'{"models":[1]}', b"[1]", b'{"models":[{"kind":"liveness"}]}',
                 b'{"models":[{"id":"x","kind":"liveness","file":"x","classes":5}]}',
                 deep.encode(), b"\xff\xfe", b'{"models":{"a":1}}',
                 b'{"models":[{"id":"x","kind":"liveness","file":"x","size":"big"}]}']
    for i, content in enumerate(manifests):
        def put(content=content):
            (models_dir / "manifest.json").write_bytes(content)
        for argv in (fasdesk("models", "list"), fasdesk("models", "list", "--json"),
                     fasdesk("models", "verify"), fasdesk("doctor", "--no-cameras")):
            add(Case(f"user manifest #{i} {content[:20]!r}: {' '.join(argv[1:])}", argv,
                     expect=(0, 1), before=put))
    for label, setup in (
            ("deep settings", lambda: (config / "settings.json").write_text(deep)),
            ("typed settings", lambda: (config / "settings.json").write_text(
                json.dumps({"threshold": "x", "recent_sources": 5, "training": [1]}))),
            ("deep profile", lambda: (config / "profiles" / "p.json").write_text(deep)),
            ("bad manifest", lambda: (models_dir / "manifest.json").write_bytes(b"[1]"))):
        add(Case(f"GUI starts with a {label}", fasdesk("--quit-after", "0.5"), expect=(0,),
                 before=setup, timeout=180, env={"QT_QPA_PLATFORM": "offscreen"}))
    # 3. tampering
    tenv = {"FASDESK_MODELS_DIR": str(tampered_dir)}
    for label, model in (("by id", "minifasnet-v2se"), ("by path", tampered_dir / "best_model.onnx"),
                         ("through a link", work / "link.onnx"),
                         ("through ..", tampered_dir / ".." / "tampered" / "best_model.onnx")):
        add(Case(f"tampered registry model {label}",
                 fasdesk("classify", samples[1], "--model", model), env=tenv))
    add(Case("models verify on a tampered model", fasdesk("models", "verify"), env=tenv))
    # 4. stored threshold (must judge the real face spoof at 0.99999)
    add(Case("classify uses the model's stored threshold",
             fasdesk("classify", samples[0], "--model", strict, "--json"), expect=(0,)))
    # 5. control flow
    add(Case("Loop model: classify", fasdesk("classify", samples[0], "--model", loop), timeout=60))
    add(Case("Loop model as detector", fasdesk("classify", samples[0], "--detector", loop), timeout=60))
    add(Case("Loop model: training eval", training("eval", prepared, loop), timeout=120))
    add(Case("Loop model: calibrate", fasdesk("calibrate", "--real", photos, "--attack",
                                              f"print={photos}", "--model", loop), timeout=120))
    # 6. memory
    add(Case("16-bit PNG within the pixel limit", fasdesk("classify", odd / "bomb16.png"),
             expect=(2,)))
    add(Case("video header claims 15000x14000: calibrate",
             fasdesk("calibrate", "--real", video, "--attack", f"print={video}"), timeout=120))
    add(Case("video header claims 15000x14000: bench",
             fasdesk("bench", "--source", video, "--repeats", "1", "--folder-images", "0")))
    # 7. deep / mistyped JSON
    add(Case("deep CelebA label file: prep", training("prep", celeba, work / "celeba-out")))
    # eval refuses a bad card (it reads the split from it: evaluating on a guessed split could
    # score the training crops); classify warns and judges at the default threshold.
    add(Case("deep model card: eval", training("eval", prepared, deep_card_model), expect=(1,)))
    add(Case("mistyped model card: eval", training("eval", prepared, typed_card_model),
             expect=(1,)))
    add(Case("deep model card: classify", fasdesk("classify", samples[0], "--model",
                                                  deep_card_model), expect=(0,)))
    add(Case("mistyped card: classify", fasdesk("classify", samples[0], "--model",
                                                typed_card_model), expect=(0,)))
    add(Case("export --report deep", training("export", ckpt, work / "exp" / "m.onnx",
                                              "--report", work / "deep.json"), timeout=180))
    # 8. skipped paths
    add(Case("a path over PATH_MAX in a folder", fasdesk("classify", longdir), expect=(2,)))
    # 9-. odd names, special files
    add(Case("odd names, FIFO, /dev/zero", fasdesk("classify", odd), expect=(2,)))
    add(Case("odd names --json", fasdesk("classify", odd, "--json"), expect=(2,)))
    # 10. prep nesting
    add(Case("prep output inside the source", training("prep", raw, raw / "real" / "out"),
             check=lambda: not (raw / "real" / "out" / "labels.csv").exists()))
    add(Case("prep source inside a prep output", training("prep", prepared / "crops", work / "o2")))
    # 11. NaN model
    add(Case("NaN model: training eval", training("eval", prepared, nan)))
    # 12. arguments and output
    for argv in (fasdesk("--quit-after", "3000000"), fasdesk("--quit-after", "nan"),
                 fasdesk("models", "optimize", "--crops", "100000000"),
                 fasdesk("classify", samples[0], "--threshold", "nan"),
                 fasdesk("bench", "--repeats", "-1"),
                 training("train", prepared, work / "t", "--threads", "-3"),
                 training("train", prepared, work / "t", "--dropout", "2"),
                 training("train", prepared, work / "t", "--seed", "-5"),
                 training("train", prepared, work / "t", "--epochs", "-1"),
                 training("train", prepared, work / "t", "--lr", "nan"),
                 training("train", prepared, work / "t", "--batch-size", "0"),
                 training("eval", prepared, MODELS / "best_model.onnx", "--target-bpcer", "-1"),
                 training("eval", prepared, MODELS / "best_model.onnx", "--target-bpcer", "nan"),
                 training("eval", prepared, MODELS / "best_model.onnx", "--batch-size", "0"),
                 training("eval", prepared, MODELS / "best_model.onnx", "--batch-size", "-4"),
                 training("eval", prepared, MODELS / "best_model.onnx", "--threshold", "nan"),
                 training("export", ckpt, work / "e.onnx", "--calibration-size", "0"),
                 training("prep", raw, work / "p", "--size", "100000")):
        add(Case("arguments: " + " ".join(a for a in argv if not a.startswith("/")), argv,
                 expect=(1, 2)))
    for argv in (fasdesk("classify", samples[0]), fasdesk("classify", samples[0], "--json"),
                 fasdesk("doctor", "--no-cameras"), fasdesk("models", "list"),
                 fasdesk("models", "list", "--json")):
        add(Case(f"{' '.join(argv[1:2])} > /dev/full", argv, stdout="full"))
        add(Case(f"{' '.join(argv[1:2])} >&-", argv, stdout="closed"))
    # 13. two instances (in one process: the module's own API)
    add(Case("two instances keep each other's settings", ["fasdesk.core.io.settings"],
             expect=(0,), check=lambda: two_instances(work / "two.json")))
    # 14. leftovers
    add(Case("FIFO named best_model.onnx", fasdesk("classify", samples[0], "--model",
                                                   fifo_dir / "best_model.onnx"), timeout=30))
    add(Case("FIFO best_model.onnx in the models dir", fasdesk("models", "verify"),
             env={"FASDESK_MODELS_DIR": str(fifo_dir)}, timeout=30))
    add(Case("write_atomic over a FIFO", ["fasdesk.core.io.settings"], expect=(0,),
             check=lambda: fifo_survives(work / "fifo-target")))
    return cases


def two_instances(path: Path) -> bool:
    from fasdesk.core.io.settings import load_settings, save_settings

    a, _ = load_settings(path)
    b, _ = load_settings(path)
    a.threshold = 0.8
    save_settings(a, path)
    b.mirror = False
    save_settings(b, path)
    final, _ = load_settings(path)
    return final.threshold == 0.8 and final.mirror is False


def fifo_survives(path: Path) -> bool:
    from fasdesk.core.io.files import FileRefused, write_atomic

    os.mkfifo(path)
    try:
        write_atomic(path, "x")
    except FileRefused:
        pass
    return stat.S_ISFIFO(os.lstat(path).st_mode)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    parser.add_argument("-k", metavar="WORD", help="only cases whose name holds WORD")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="fasdesk-hostile-"))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "FASDESK_MODELS_DIR": str(MODELS),
           "XDG_CONFIG_HOME": str(work / "user" / "config"),
           "XDG_DATA_HOME": str(work / "user" / "data"),
           "XDG_CACHE_HOME": str(work / "user" / "cache"), "OMP_NUM_THREADS": "1",
           "QT_QPA_PLATFORM": "offscreen"}
    os.environ.update({k: env[k] for k in ("XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_CACHE_HOME")})
    here = os.getcwd()
    try:
        cases = build(work)
        os.chdir(work)
        totals: dict[str, int] = {}
        for case in cases:
            if args.k and args.k not in case.name:
                continue
            outcome, detail = run_case(case, env)
            totals[outcome] = totals.get(outcome, 0) + 1
            print(f"{outcome:10s} {case.name}: {detail}", flush=True)
    finally:
        os.chdir(here)
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    tried = sum(totals.values())
    print(f"\ncases tried {tried}, clean errors/successes {totals.get('clean', 0)}, "
          f"tracebacks {totals.get('traceback', 0)}, hangs {totals.get('hang', 0)}, "
          f"data loss {totals.get('data loss', 0)}, unexpected exit {totals.get('unexpected', 0)}")
    return 1 if any(totals.get(k) for k in ("traceback", "hang", "data loss")) else 0


if __name__ == "__main__":
    raise SystemExit(main())
