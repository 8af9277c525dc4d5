"""Options for every onnxruntime session the app makes (one place, so they agree).

Threads: a session with more than one thread owns a pool whose workers keep spinning for
a few milliseconds after each run, waiting for the next one. Two such sessions taking
turns on a 2-core laptop (say a detector and a liveness model) each lose a core to the
other's spinning worker: on the 2-core test machine a batch-1 liveness run took 3.3 ms
right after another session had run and 1.8 ms on its own. So the live pipeline gives
its multi-threaded pool to the liveness model only, and the benchmark measures each
configuration in blocks of runs (see fasdesk.core.diagnostics.benchmark).
"""
from __future__ import annotations


def session_options(threads: int | None = None):
    """SessionOptions with full graph optimization and quiet logs. `threads`: the size of
    the session's own thread pool (None: onnxruntime's default, one per core; 1: no pool,
    the run stays on the calling thread)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    if threads:
        options.intra_op_num_threads = threads
    return options


# Operators that repeat or branch at run time. A liveness model or face detector is a
# straight feed-forward graph; a Loop with a huge trip count (or a Scan over a huge
# input) runs until killed, so a model holding one is refused when it is loaded.
CONTROL_FLOW_OPS = frozenset({"Loop", "If", "Scan"})
_checked: dict[tuple, str | None] = {}


def refuse_control_flow(path, what: str, error: type[Exception]) -> None:
    """Raise `error` naming the model (`what`: "liveness model", "detector model") when it
    cannot be read or holds a control-flow operator (a Loop can run for ever)."""
    import os

    try:
        problem = control_flow_problem(path)
    except OSError as exc:
        raise error(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    if problem:
        raise error(f"{what} {os.path.basename(path)} {problem}")


def control_flow_problem(path) -> str | None:
    """Why the ONNX model at `path` is refused (it holds a control-flow operator), or None.
    Looked at once per file version (path, size, mtime, ctime, inode)."""
    import os

    real = os.path.realpath(path)
    st = os.stat(real)
    key = (real, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)
    if key in _checked:
        return _checked[key]
    try:
        import onnx
    except ImportError:  # only with the onnx package missing; onnxruntime still loads it
        return None
    try:
        model = onnx.load(real, load_external_data=False)
    except Exception:  # not parseable: onnxruntime's own load gives the message
        return None
    graphs = [model.graph]
    found = set()
    nodes = [n for f in model.functions for n in f.node]
    while graphs:
        graph = graphs.pop()
        nodes.extend(graph.node)
    for node in nodes:
        if node.op_type in CONTROL_FLOW_OPS:
            found.add(node.op_type)
    problem = (f"holds control-flow operators ({', '.join(sorted(found))}), which a face "
               f"model never needs and which can make it run forever; not loaded"
               if found else None)
    _checked[key] = problem
    return problem
