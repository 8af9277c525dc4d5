"""Hostile inputs for the robustness tests: FIFOs, sparse giants, decoder bombs, a liveness
model that answers NaN. Each is the real thing (os.mkfifo, a real sparse file, a real ONNX
graph), not a stand-in."""
from __future__ import annotations

import contextlib
import os
import threading
from pathlib import Path

import numpy as np
import pytest

needs_fifo = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this system")

# A Radiance HDR of 15000 x 14000 = 210 MP: over the 200 MP limit, and unknown to Pillow.
HDR_WIDTH, HDR_HEIGHT = 15000, 14000


# What a subprocess may map in all (the CLI needs under 1 GB): a regression that reads a
# device or a sparse file to its end then fails with MemoryError, instead of taking the
# memory of this shared machine.
SUBPROCESS_MEMORY = 4 << 30


def _vm_size() -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


@contextlib.contextmanager
def memory_cap(extra: int = 2 << 30):
    """While the block runs, this process may map at most `extra` more bytes (Linux;
    elsewhere a no-op). See SUBPROCESS_MEMORY for why."""
    size = _vm_size()
    if size is None:
        yield
        return
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    cap = size + extra if hard == resource.RLIM_INFINITY else min(size + extra, hard)
    resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def _cap_subprocess_memory() -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (SUBPROCESS_MEMORY, SUBPROCESS_MEMORY))


# subprocess.run(..., preexec_fn=CAPPED): at most SUBPROCESS_MEMORY of address space.
CAPPED = _cap_subprocess_memory if os.name == "posix" else None


def fifo(path: Path) -> Path:
    """A named pipe at `path`: open() for reading blocks until a writer comes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    os.mkfifo(path)
    return path


def unblock(path: Path) -> None:
    """Wake a reader stuck opening the FIFO `path` (it then reads an empty file)."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
    except OSError:  # no reader waiting: nothing to do
        pass


@pytest.fixture
def fifos():
    """make(path) creates a FIFO; at teardown, any reader still stuck on one is woken, so
    a regression fails its test instead of hanging the whole run."""
    made = []

    def make(path: Path) -> Path:
        made.append(fifo(path))
        return path

    yield make
    for path in made:
        # Wake a reader waiting now, and take the path away from the next one.
        try:
            writer = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
        except OSError:  # no reader waiting
            writer = None
        path.unlink(missing_ok=True)
        if writer is not None:
            os.close(writer)


def sparse(path: Path, size: int = 6 << 30) -> Path:
    """A file of `size` bytes that takes no disk space (a hole)."""
    with open(path, "wb") as fh:
        fh.truncate(size)
    return path


def radiance_bomb(path: Path, width: int = HDR_WIDTH, height: int = HDR_HEIGHT) -> Path:
    """A Radiance HDR whose run-length-encoded scanlines are all valid and tiny (a few
    hundred bytes each), so a decoder would really allocate width x height float pixels."""
    header = b"#?RADIANCE\nFORMAT=32-bit_rle_rgbe\n\n-Y %d +X %d\n" % (height, width)
    runs = bytearray()
    for _channel in range(4):
        left = width
        while left:
            n = min(127, left)
            runs += bytes((128 + n, 128))  # a run of n equal bytes
            left -= n
    scanline = bytes((2, 2, width >> 8, width & 0xFF)) + bytes(runs)
    with open(path, "wb") as fh:
        fh.write(header)
        for _row in range(height):
            fh.write(scanline)
    return path


def nan_model(path: Path, size: int = 128, weights=(np.nan, np.nan)) -> Path:
    """A liveness model with the real interface ([N,3,S,S] -> [N,2] logits) whose logits
    are NaN: global average pool, then a matrix product with NaN weights (`weights`: the
    weight of each logit instead; (0, -inf) gives logits [0, -inf] for a non-black image,
    which a softmax turns into a finite p_real of 1.0)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        [helper.make_node("GlobalAveragePool", ["input"], ["pooled"]),
         helper.make_node("Flatten", ["pooled"], ["flat"]),
         helper.make_node("MatMul", ["flat", "weights"], ["logits"])],
        "nan_liveness",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, size, size])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 2])],
        [numpy_helper.from_array(np.tile(np.array(weights, np.float32), (3, 1)), "weights")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def finishes(call, timeout: float = 20.0, fifos: tuple[Path, ...] = ()):
    """Run `call` in a thread; its result, or a test failure if it is still running after
    `timeout` (then the FIFOs are opened for writing, so a reader stuck on them wakes up
    and the test run can go on)."""
    outcome = {}

    def run():
        try:
            outcome["value"] = call()
        except BaseException as exc:  # handed to the test thread
            outcome["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        for path in fifos:
            unblock(path)
        thread.join(5)
        pytest.fail(f"still running after {timeout} s (blocked on a FIFO or device?)")
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")
