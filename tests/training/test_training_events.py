"""The JSON-lines protocol the Training tab parses (training/events.py)."""
import io
import subprocess
import sys

import numpy as np
import pytest

from training import events


def test_emitter_writes_parseable_lines_in_order():
    out, err = io.StringIO(), io.StringIO()
    em = events.Emitter(enabled=True, stream=out, text_stream=err)
    em.start("train", total=10, out="/tmp/x")
    em.progress(3, 10, eta_s=1.5, loss=np.float32(0.25), epoch=1)
    em.metric(scope="epoch", val_acc=float("nan"), cm=np.array([[1, 2], [3, 4]]))
    em.log("hello", level="warning")
    em.artifact(events.__file__, "checkpoint")
    em.done(images=5)
    em.error("bad\nthing")
    lines = out.getvalue().splitlines()
    parsed = [events.parse_line(l) for l in lines]
    assert [p["event"] for p in parsed] == ["start", "progress", "metric", "log",
                                             "artifact", "done", "error"]
    assert parsed[0]["command"] == "train" and parsed[0]["total"] == 10
    assert parsed[1]["done"] == 3 and parsed[1]["total"] == 10 and parsed[1]["eta_s"] == 1.5
    assert parsed[1]["loss"] == pytest.approx(0.25)
    assert parsed[2]["val_acc"] is None and parsed[2]["cm"] == [[1, 2], [3, 4]]
    assert parsed[3] == {**parsed[3], "message": "hello", "level": "warning"}
    assert parsed[6]["message"] == "bad thing"
    assert all(isinstance(p["time"], float) for p in parsed)
    # human text goes to stderr: the log line and the error line
    assert err.getvalue().splitlines() == ["hello", "error: bad thing"]


def test_disabled_emitter_writes_no_stdout():
    out, err = io.StringIO(), io.StringIO()
    em = events.Emitter(enabled=False, stream=out, text_stream=err)
    em.progress(1, 2)
    em.error("x")
    assert out.getvalue() == "" and err.getvalue() == "error: x\n"


@pytest.mark.parametrize("line", ["", "hello", "{not json", "[1,2]", '{"event":"bogus"}',
                                  '{"no_event":1}'])
def test_parse_line_rejects_non_events(line):
    assert events.parse_line(line) is None


def test_parse_line_accepts_bytes_and_whitespace():
    assert events.parse_line(b'  {"event":"done","n":1}\n') == {"event": "done", "n": 1}


def test_unknown_event_type_is_a_programming_error():
    with pytest.raises(ValueError):
        events.encode("finished")


def test_events_module_does_not_import_torch():
    code = "import sys, training.events; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    assert result.stdout.strip() == "False"


def test_eta():
    assert events.eta(0, 10, 5.0) is None
    assert events.eta(5, 10, 5.0) == pytest.approx(5.0)
    assert events.eta(10, 10, 5.0) == 0.0
