"""The INT8 gate: an INT8 model is kept only when it gives fp32's verdicts on >= 99.5% of
held-out crops and is faster than the optimized fp32 model; otherwise one line says why.
(The export that applies it to a trained checkpoint is tested in test_training_train.py.)"""
from __future__ import annotations

import pytest

from fasdesk.core.inference.quantize import MIN_AGREEMENT, gate_decision


@pytest.mark.parametrize("agreement, int8_ms, fp32_ms, kept, why", [
    (1.0, 0.9, 1.0, True, "INT8 kept"),
    (MIN_AGREEMENT, 0.9, 1.0, True, "INT8 kept"),
    (0.99, 0.9, 1.0, False, "changes verdicts"),  # one flip in a hundred
    (0.85, 4.5, 3.5, False, "changes verdicts and is not faster"),  # issue 11's run
    (1.0, 1.0, 1.0, False, "not faster"),
    (1.0, 1.2, 1.0, False, "not faster"),
])
def test_gate_keeps_int8_only_when_it_agrees_and_is_faster(agreement, int8_ms, fp32_ms, kept, why):
    decided, line = gate_decision(agreement, int8_ms, fp32_ms, crops=128)
    assert decided is kept
    assert why in line and "\n" not in line
    # The line carries the figures behind the decision.
    assert f"{100 * agreement:.2f}% identical verdicts on 128 held-out crops" in line
    assert f"{int8_ms:.2f} ms per face vs {fp32_ms:.2f} ms" in line
