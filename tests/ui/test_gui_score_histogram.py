"""The report's histograms widget: one log-odds scale for before and after, the legend
outside the data, the threshold labelled on both plots."""
from __future__ import annotations

import numpy as np
from PySide6.QtWidgets import QApplication

from fasdesk.core.calibration import session as C
from fasdesk.ui.score_histogram import BeforeAfterHistograms


def _reports(tmp_path):
    session = C.Session.create("hist", tmp_path)
    for stage in (C.REAL, "replay", "print"):
        session.recordings.append(C.Recording(
            stage=stage, source="x", duration=10.0,
            samples=[C.Sample(f"f{i}", i, i / 10, [0, 0, 9, 9]) for i in range(100)]))
    rng = np.random.default_rng(3)
    # The current model: real faces and replays both crowd near 1 (the case calibration is for).
    before = C.evaluate(session, {C.REAL: 1 - rng.uniform(1e-4, 3e-3, 100),
                                  "replay": 1 - rng.uniform(1e-3, 5e-2, 100),
                                  "print": rng.uniform(0.0, 0.2, 100)}, target_bpcer=0.05)
    after = C.evaluate(session, {C.REAL: 1 - rng.uniform(1e-3, 2e-2, 100),
                                 "replay": rng.uniform(1e-4, 1e-2, 100),
                                 "print": rng.uniform(0.0, 1e-3, 100)},
                       target_bpcer=0.05, fine_tuned=True)
    return before, after


def test_before_and_after_share_one_scale_and_label_the_threshold(qtbot, tmp_path):
    before, after = _reports(tmp_path)
    widget = BeforeAfterHistograms()
    qtbot.addWidget(widget)
    widget.resize(1366, 768)
    widget.show()
    titles = {C.REAL: "Real faces", "replay": "Phone or tablet screen (replay)",
              "print": "Printed photo"}
    widget.show_reports(before, after, titles)
    QApplication.processEvents()  # the layout requests showing them posted
    assert widget.after.isVisible()
    ranges = [w.plot.getViewBox().viewRange() for w in (widget.before, widget.after)]
    assert np.allclose(ranges[0], ranges[1])  # one scale, x and y
    for w, report in ((widget.before, before), (widget.after, after)):
        assert w.line.isVisible() and w.line.label.toPlainText().startswith("threshold 0.")
        # The legend is a line above the plot, not drawn over the bars.
        assert w.legend.geometry().bottom() <= w.plot.geometry().top()
        shown = sum(report["histogram_log_odds"]["counts"][C.REAL])
        assert f"Real faces ({shown})" in w.legend.text()
    # Real faces near 1 are spread over several bins, not one.
    real = before["histogram_log_odds"]["counts"][C.REAL]
    assert sum(n > 0 for n in real) >= 3
    widget.grab().save(str(tmp_path / "histograms.png"))
    assert (tmp_path / "histograms.png").stat().st_size > 0
    # Without a fine-tuned model only the current one shows.
    widget.show_reports(before, None, titles)
    assert not widget.after.isVisible()
