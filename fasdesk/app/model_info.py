"""What Model info shows about a liveness model file, latency measured included. No Qt:
the dialog runs `model_info` in a worker (loading and timing a model takes a while)."""
from __future__ import annotations

import statistics
import time
from pathlib import Path

from fasdesk.core.inference.liveness import LivenessEngine
from fasdesk.core.models import registry

LATENCY_RUNS = 20


def measure_latency(engine: LivenessEngine, runs: int = LATENCY_RUNS) -> float:
    """Median seconds for one face (batch of 1), after a warm-up run."""
    import numpy as np

    batch = np.random.default_rng(0).random((1, 3, engine.input_size, engine.input_size),
                                            dtype=np.float32)
    engine.logits(batch)
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        engine.logits(batch)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def model_info(model_path: Path) -> dict[str, str]:
    """What the info dialog shows, as label -> text (raises ModelError, OSError)."""
    from fasdesk.core.inference.optimize import describe

    model_path = Path(model_path)
    engine = LivenessEngine(model_path)
    entry = next((e for e in registry.load_manifest() if e.kind == "liveness"
                  and e.file == model_path.name), None)
    digest = registry.file_sha256(model_path)
    shown = f"{digest[:32]}\n{digest[32:]}"  # 64 hex digits do not word-wrap
    if entry and entry.sha256:
        check = "matches the registry" if digest == entry.sha256.lower() else "DIFFERS from the registry"
        shown += f"\n({check})"
    classes = ", ".join(entry.classes) if entry and entry.classes else f"{engine.num_classes} (class 0 = real)"
    return {
        "Model": entry.id if entry else "(not in the registry)",
        "File": str(model_path),
        "Size": f"{model_path.stat().st_size / 1e6:.2f} MB",
        "SHA-256": shown,
        "Input": f"{engine.input_size} x {engine.input_size} RGB",
        "Classes": classes,
        "License": entry.license if entry and entry.license else "unknown",
        "Execution provider": engine.provider,
        "Optimized": describe(engine.optimized, engine.optimization),
        "Latency (1 face)": f"{measure_latency(engine) * 1000:.2f} ms (median of {LATENCY_RUNS})",
    }
