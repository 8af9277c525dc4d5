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
