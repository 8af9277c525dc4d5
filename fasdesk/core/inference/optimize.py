"""The exact rewrite that makes MiniFAS-style liveness models fast on onnxruntime's CPU.

Two things made the pretrained MiniFASNetV2-SE slow on x86 CPUs, and neither is the
arithmetic (about 104 M multiply-adds per face):

- Channel counts like 13, 26, 103, 231 (the model was pruned). onnxruntime's fast
  convolutions work on channels in blocks of 16 (NCHWc, AVX-512); a depthwise convolution
  with 103 channels falls back to a generic path that is ~10x slower per multiply-add.
  We pad each expand -> depthwise -> project block to a multiple of 16 channels with
  all-zero filters: the extra channels stay exactly 0 and add nothing to the projection.
- PRelu with per-channel slopes: onnxruntime has no blocked PRelu and no Conv+PRelu fusion,
  so every PRelu converts the tensor out of the blocked layout and back. We write
  PRelu(y) = s*y + (1-s)*relu(y); folding (1-s) > 0 into the producing convolution
  (z = (1-s)*y) leaves relu(z) + k*z with k = s/(1-s), which onnxruntime runs in the
  blocked layout (the per-channel scale becomes a fused 1x1 depthwise step, and relu(z)
  an identity 1x1 depthwise convolution with a fused Relu, which unlike a lone Relu node
  is split across threads).

Both rewrites are algebraically exact, so the fast model gives the original's logits up
to float rounding (~1e-6). Every liveness model the app loads on the CPU runs rewritten
(`runtime_model`, used by fasdesk.core.inference.liveness.LivenessEngine): the shipped one, pulled,
trained and exported, opened from a file. The rewrite is built once per model file,
checked against the original on random inputs, and kept in the user cache folder under
the file's SHA-256 (fasdesk.core.inference.modelcache); a model it does not apply to (quantized,
nothing to rewrite, onnx missing) runs as it is, with one log line saying why.
`fasdesk models optimize` (fasdesk.core.inference.compare) builds it ahead of time and measures verdict agreement on
jittered face crops.
"""
from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

import numpy as np

from fasdesk.core.inference import modelcache

from fasdesk.core.io.errors import one_line

log = logging.getLogger(__name__)

# The cache key of the rewrite: change the version when the rewrite changes.
RECIPE = "minifas-fast-v1"
CHANNEL_BLOCK = 16  # onnxruntime's NCHWc block on AVX-512 (a multiple of the AVX2 block, 8)
# Largest |logit difference| on random inputs accepted as "the same model" (float rounding).
EQUIVALENCE_TOLERANCE = 1e-3
EQUIVALENCE_INPUTS = 4
# Ops of quantized graphs: the exact rewrite is for float32 models and would only get in
# the way of onnxruntime's own quantized-kernel fusions.
QUANTIZED_OPS = frozenset({"QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear",
                           "QLinearConv", "ConvInteger", "MatMulInteger", "QLinearMatMul"})


class OptimizeError(Exception):
    """One line for the user."""


# ----------------------------------------------------------------------------- graph rewrite

def _attr(node, name: str, default=None):
    from onnx import helper

    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return default


def _set_attr(node, name: str, value) -> None:
    from onnx import helper

    for a in list(node.attribute):
        if a.name == name:
            node.attribute.remove(a)
    node.attribute.append(helper.make_attribute(name, value))


class _Graph:
    """Initializer access and use counts for in-place rewriting of one onnx graph."""

    def __init__(self, model):
        self.graph = model.graph
        self.inits = {i.name: i for i in self.graph.initializer}
        self.refresh()

    def refresh(self) -> None:
        self.consumers: dict[str, list] = {}
        self.producer = {}
        for node in self.graph.node:
            for name in node.input:
                self.consumers.setdefault(name, []).append(node)
            for name in node.output:
                self.producer[name] = node
        outputs = {o.name for o in self.graph.output}
        for name in outputs:
            self.consumers.setdefault(name, []).append(None)  # graph outputs count as uses

    def only_consumer(self, name: str):
        users = self.consumers.get(name, [])
        return users[0] if len(users) == 1 else None

    def private_weight(self, name: str) -> bool:
        """An initializer used by exactly one node (safe to change in place)."""
        return name in self.inits and len(self.consumers.get(name, [])) == 1

    def array(self, name: str) -> np.ndarray:
        from onnx import numpy_helper

        return numpy_helper.to_array(self.inits[name])

    def put(self, name: str, value: np.ndarray) -> None:
        from onnx import numpy_helper

        self.inits[name].CopyFrom(numpy_helper.from_array(value.astype(np.float32), name))

    def add(self, name: str, value: np.ndarray) -> str:
        from onnx import numpy_helper

        tensor = numpy_helper.from_array(value.astype(np.float32), name)
        self.graph.initializer.append(tensor)
        self.inits[name] = self.graph.initializer[-1]
        return name


def _pad(a: np.ndarray, axis: int, extra: int) -> np.ndarray:
    widths = [(0, 0)] * a.ndim
    widths[axis] = (0, extra)
    return np.pad(a, widths)


def pad_channels(model, block: int = CHANNEL_BLOCK) -> int:
    """Zero-pad the middle width of each Conv-PRelu-depthwise Conv-PRelu-Conv block to a
    multiple of `block`. Exact: padded channels are 0 after every step. Returns the count."""
    g = _Graph(model)
    padded = 0
    for expand in list(g.graph.node):
        if expand.op_type != "Conv" or _attr(expand, "group", 1) != 1:
            continue
        act1 = g.only_consumer(expand.output[0])
        dw = act1 is not None and g.only_consumer(act1.output[0])
        act2 = dw and g.only_consumer(dw.output[0])
        project = act2 and g.only_consumer(act2.output[0])
        chain = (act1, dw, act2, project)
        if not all(chain) or [n.op_type for n in chain] != ["PRelu", "Conv", "PRelu", "Conv"]:
            continue
        width = g.array(expand.input[1]).shape[0]
        if width % block == 0 or _attr(dw, "group", 1) != width or _attr(project, "group", 1) != 1:
            continue
        per_channel = [expand.input[1], act1.input[1], dw.input[1], act2.input[1]]
        per_channel += [n.input[2] for n in (expand, dw) if len(n.input) > 2 and n.input[2]]
        if not all(g.private_weight(n) for n in per_channel + [project.input[1]]):
            continue
        if any(g.array(n).shape[0] != width for n in per_channel) or any(
                g.array(a.input[1]).shape != (width, 1, 1) for a in (act1, act2)):
            continue  # slopes not one per channel: leave the block alone
        extra = -width % block
        for name in per_channel:
            g.put(name, _pad(g.array(name), 0, extra))
        g.put(project.input[1], _pad(g.array(project.input[1]), 1, extra))
        _set_attr(dw, "group", width + extra)
        padded += 1
    return padded


def decompose_prelu(model) -> int:
    """Replace each PRelu by Relu/Mul/Add that onnxruntime runs in its blocked layout.

    PRelu(y) = s*y + (1-s)*relu(y). When y comes from a Conv used only here and every
    slope is below 1, (1-s) is folded into that Conv (z = (1-s)*y), leaving
    relu(z) + (s/(1-s))*z, with relu(z) computed by an identity depthwise Conv + Relu.
    Otherwise the two terms are computed as written. Returns the number of PRelu nodes
    replaced.
    """
    from onnx import helper

    g = _Graph(model)
    nodes = []
    replaced = 0
    for node in g.graph.node:
        if node.op_type != "PRelu" or node.input[1] not in g.inits:
            nodes.append(node)
            continue
        x, slope_name = node.input
        y = node.output[0]
        slope = g.array(slope_name).astype(np.float64)
        conv = g.producer.get(x)
        foldable = (conv is not None and conv.op_type == "Conv" and g.only_consumer(x) is node
                    and bool((slope < 1).all()) and g.private_weight(conv.input[1])
                    and (len(conv.input) < 3 or not conv.input[2] or g.private_weight(conv.input[2]))
                    # one slope, or one per output channel ([C, 1, 1]; ONNX broadcasting
                    # would apply a [C] slope along the width, which a Conv cannot absorb)
                    and (slope.size == 1 or slope.shape == (g.array(conv.input[1]).shape[0], 1, 1)))
        if foldable:
            w = g.array(conv.input[1])
            scale = np.broadcast_to((1.0 - slope).reshape(-1), (w.shape[0],))
            g.put(conv.input[1], w * scale.reshape(-1, 1, 1, 1))
            if len(conv.input) > 2 and conv.input[2]:
                g.put(conv.input[2], g.array(conv.input[2]) * scale)
            k = g.add(f"{slope_name}_k", slope / (1.0 - slope))
            # relu(z) as Relu(1*z) with a 1x1 depthwise Conv of ones: onnxruntime fuses it
            # into one blocked, multi-threaded convolution, where a lone Relu node runs on
            # one thread (15% of the kernel time at 2 threads). Multiplying by 1 is exact.
            ones = g.add(f"{y}_ones", np.ones((w.shape[0], 1, 1, 1)))
            nodes += [helper.make_node("Conv", [x, ones], [f"{y}_same"], group=int(w.shape[0]),
                                       kernel_shape=[1, 1]),
                      helper.make_node("Relu", [f"{y}_same"], [f"{y}_relu"]),
                      helper.make_node("Mul", [x, k], [f"{y}_lin"]),
                      helper.make_node("Add", [f"{y}_relu", f"{y}_lin"], [y])]
        else:
            one_minus = g.add(f"{slope_name}_1ms", 1.0 - slope)
            nodes += [helper.make_node("Relu", [x], [f"{y}_relu"]),
                      helper.make_node("Mul", [f"{y}_relu", one_minus], [f"{y}_pos"]),
                      helper.make_node("Mul", [x, slope_name], [f"{y}_lin"]),
                      helper.make_node("Add", [f"{y}_pos", f"{y}_lin"], [y])]
        replaced += 1
    del g.graph.node[:]
    g.graph.node.extend(nodes)
    used = {name for n in g.graph.node for name in n.input}
    keep = [i for i in g.graph.initializer if i.name in used]
    del g.graph.initializer[:]
    g.graph.initializer.extend(keep)
    return replaced


def rewrite(model) -> dict:
    """Apply both exact rewrites to an onnx ModelProto in place; returns what changed."""
    padded = pad_channels(model)
    prelu = decompose_prelu(model)
    if padded or prelu:
        del model.graph.value_info[:]  # shapes of padded tensors changed; onnxruntime re-infers
    return {"padded_blocks": padded, "prelu_rewritten": prelu}


def looks_rewritten(model) -> bool:
    """A graph already in the fast form: no PRelu, and depthwise widths in whole blocks."""
    depthwise = [_attr(n, "group", 1) for n in model.graph.node
                 if n.op_type == "Conv" and _attr(n, "group", 1) > 1]
    return (bool(depthwise) and all(g % CHANNEL_BLOCK == 0 for g in depthwise)
            and not any(n.op_type == "PRelu" for n in model.graph.node))


def _session(model: str | os.PathLike | bytes, threads: int | None = None):
    import onnxruntime as ort

    from fasdesk.core.inference.runtime import session_options

    return ort.InferenceSession(model if isinstance(model, bytes) else str(model),
                                session_options(threads), providers=["CPUExecutionProvider"])


def max_logit_difference(reference: str | os.PathLike | bytes,
                         candidate: str | os.PathLike | bytes, count: int = EQUIVALENCE_INPUTS,
                         seed: int = 0, threads: int | None = 1) -> float:
    """Largest |logit difference| of two models (files or serialized bytes) on random
    inputs in [0, 1] (inf when their inputs or outputs do not match)."""
    reference, candidate = _session(reference, threads), _session(candidate, threads)
    ref_in, cand_in = reference.get_inputs()[0], candidate.get_inputs()[0]
    shape = ref_in.shape
    if (shape != cand_in.shape or len(shape) != 4 or not all(isinstance(d, int) for d in shape[1:])):
        return float("inf")
    rng = np.random.default_rng(seed)
    x = rng.random((count, *shape[1:]), dtype=np.float32)
    if isinstance(shape[0], int):
        x = x[:shape[0]]
    a = reference.run(None, {ref_in.name: x})[0]
    b = candidate.run(None, {cand_in.name: x})[0]
    return float(np.abs(a - b).max()) if a.shape == b.shape else float("inf")


# ----------------------------------------------------------------------------- at load time

def _build_fast(source: Path) -> tuple[bytes | None, dict]:
    """The modelcache recipe: the rewritten model's bytes, or None and why not."""
    try:
        import onnx
    except ImportError:
        return None, {"optimized": False, "note": "the onnx package is not installed", "cache": False}
    try:
        model = onnx.load(str(source))
    except Exception as exc:  # protobuf and onnx raise several types
        return None, {"optimized": False, "note": f"the graph cannot be read ({one_line(exc)})",
                      "cache": False}
    quantized = sorted({n.op_type for n in model.graph.node} & QUANTIZED_OPS)
    if quantized:
        return None, {"optimized": False,
                      "note": f"a quantized model ({', '.join(quantized)}); the exact rewrite is "
                              "for float32 graphs"}
    stats = rewrite(model)
    if not (stats["padded_blocks"] or stats["prelu_rewritten"]):
        if looks_rewritten(model):
            return None, {"optimized": True, "note": "already in the fast form (no PRelu, "
                                                     "channel widths in blocks of 16)"}
        return None, {"optimized": False,
                      "note": "nothing to rewrite (no PRelu and no channel widths to pad)"}
    try:
        onnx.checker.check_model(model)
        data = model.SerializeToString()
        diff = max_logit_difference(source, data)
    except Exception as exc:  # an invalid rewrite, or a model onnxruntime cannot run
        return None, {"optimized": False, "note": f"the rewrite could not be checked "
                                                  f"({one_line(exc)})", "cache": False}
    if not diff <= EQUIVALENCE_TOLERANCE:
        return None, {"optimized": False, "note": f"the rewrite changed the logits by {diff:.2g} "
                                                  "on random inputs, so the original runs"}
    return data, {"optimized": True, "max_abs_logit_delta_random": diff, **stats,
                  "note": f"exact rewrite for onnxruntime's CPU kernels: "
                          f"{stats['prelu_rewritten']} PRelu rewritten, {stats['padded_blocks']} "
                          f"blocks padded to a multiple of 16 channels, max |logit delta| {diff:.1g}"}


def runtime_model(path: str | os.PathLike) -> modelcache.Derived:
    """The fast copy of the liveness model `path` (built now if needed), or nothing
    derived (run `path` as it is; info["note"] says why). info["optimized"] says whether
    the model runs in the fast form. Raises OSError when `path` cannot be read."""
    return modelcache.derive(path, RECIPE, _build_fast)


def check_cached(path: str | os.PathLike) -> str | None:
    """Why the cached fast copy of `path` is not its rewrite (tampered), or None."""
    return modelcache.check(path, RECIPE, _build_fast)


_logged: set[str] = set()
_logged_lock = threading.Lock()


def log_not_optimized(path: str | os.PathLike, note: str) -> None:
    """The one log line (once per file and process) for a model that runs as it is."""
    with _logged_lock:
        first = str(path) not in _logged
        _logged.add(str(path))
    if first:
        log.warning("fasdesk: %s runs as it is, not optimized: %s", Path(path).name,
                    note or "unknown reason")


def plan(path: str | os.PathLike, provider: str = "CPUExecutionProvider"
         ) -> tuple[str | bytes, bool, str]:
    """(what onnxruntime should load, optimized, why) for the liveness model `path` run by
    `provider`: the fast copy on the CPU when the rewrite applies, else `path` itself.
    Raises OSError when `path` cannot be read."""
    if provider != "CPUExecutionProvider":
        return str(path), False, f"runs on {provider}; the rewrite is for onnxruntime's CPU kernels"
    derived = runtime_model(path)
    load = str(derived.path) if derived.path else (derived.data or str(path))
    return load, bool(derived.info.get("optimized")), str(derived.info.get("note", ""))


def describe(optimized: bool, note: str) -> str:
    """'yes (why)' / 'no (why)', as Model info, doctor and bench show it."""
    return f"{'yes' if optimized else 'no'} ({note})" if note else ("yes" if optimized else "no")
