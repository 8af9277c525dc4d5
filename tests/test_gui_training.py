"""The Training tab driven like a user would, with the real backend as child processes.

A tiny synthetic dataset (tests/training_data.py) goes through prep -> train (cancelled
mid-run, then resumed) -> eval -> export, and the exported model ends up in the live view.
Set FASDESK_SCREENSHOTS=DIR to save a screenshot of every step.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

pytest.importorskip("pytestqt")

from PySide6.QtWidgets import QMessageBox  # noqa: E402

from fasdesk.core import registry  # noqa: E402
from fasdesk.core.paths import data_dir, user_models_dir  # noqa: E402
from fasdesk.core.settings import Settings  # noqa: E402
from fasdesk.ui.training_tab import TrainingTab  # noqa: E402
from training_data import make_dataset  # noqa: E402

# Child processes load torch on a shared, busy machine: generous, never a speed check.
RUN_TIMEOUT_MS = 180_000

pytestmark = [pytest.mark.qt_log_level_fail("WARNING"),
              pytest.mark.qt_log_ignore("propagateSizeHints")]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory, samples_dir, pipeline) -> Path:
    return make_dataset(tmp_path_factory.mktemp("raw") / "office cam", samples_dir, pipeline)


def _shot(widget, name: str) -> None:
    folder = os.environ.get("FASDESK_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        widget.grab().save(str(Path(folder) / f"training_{name}.png"))


def _run(qtbot, tab, button, timeout=RUN_TIMEOUT_MS) -> tuple[bool, str]:
    with qtbot.waitSignal(tab.run.finished, timeout=timeout) as blocker:
        button.click()
    return tuple(blocker.args)


def _events(tab) -> list[dict]:
    seen: list[dict] = []
    tab.run.event.connect(seen.append)
    return seen


@pytest.fixture
def tab(qtbot, checkpoint):
    settings = Settings()
    widget = TrainingTab(settings=settings, save_settings=lambda: None)
    widget.resize(1100, 760)
    qtbot.addWidget(widget)
    widget.show()
    yield widget
    widget.shutdown()


def test_dataset_to_exported_model_with_cancel_and_resume(qtbot, tab, dataset):
    applied, used = [], []
    tab.threshold_requested.connect(applied.append)
    tab.use_model_requested.connect(used.append)

    # 1. Dataset: layout, counts per type, examples, nothing wrong.
    tab.dataset.set_folder(str(dataset))
    info = tab.dataset.info
    assert info.ok and info.layout == "folders"
    assert info.counts == {0: 6, 7: 6, 11: 2}
    assert tab.dataset.table.rowCount() == 3 and tab.dataset.thumbs.count() >= 3
    assert tab.dataset.next_button.isEnabled()
    _shot(tab, "1_dataset")

    # 2. Prepare into the user data dir.
    tab.dataset.next_button.click()
    assert tab.stack.currentWidget() is tab.prepare
    prepared = tab.prepare.out.path()
    assert prepared.is_relative_to(data_dir())
    ok, message = _run(qtbot, tab, tab.prepare.start_button)
    assert ok, message
    assert (prepared / "labels.csv").is_file()
    assert tab.prepare.progress.bar.value() == tab.prepare.progress.bar.maximum() == 14
    assert "14</b> crops" in tab.prepare.summary.text()
    assert tab.prepare.skipped.rowCount() == 0
    _shot(tab, "2_prepare")

    # 3. Train: 2 epochs, cancelled at its first step, then resumed where it stopped.
    tab.prepare.next_button.click()
    train = tab.train
    assert train.data.path() == prepared and train.pretrained.isChecked()
    train.epochs.setValue(2)
    train.batch.setValue(4)
    train.lr.setValue(0.001)
    events = _events(tab)

    def cancel_at_first_step(event):
        if event["event"] == "progress" and tab.run.running and not tab.run.stopping:
            train.cancel_button.click()

    tab.run.event.connect(cancel_at_first_step)
    ok, message = _run(qtbot, tab, train.start_button)
    tab.run.event.disconnect(cancel_at_first_step)
    assert (ok, message) == (False, "cancelled")
    run_dir = train.run_dir.path()
    assert (run_dir / "latest.pth").is_file()
    assert train.resume_button.isEnabled()
    assert "Resume" in train.message.text()
    first_steps = [e["done"] for e in events if e["event"] == "progress"]
    assert first_steps and max(first_steps) < 6  # stopped before the end (2 x 3 steps)

    events.clear()
    ok, message = _run(qtbot, tab, train.resume_button)
    assert ok, message
    resumed = [e["done"] for e in events if e["event"] == "progress"]
    assert resumed[0] == max(first_steps) + 1  # continued, not started over
    assert resumed[-1] == 6
    assert (run_dir / "best.pth").is_file()
    xs, ys = train.series["val_acc"]
    # The pretrained model's own score (0), then both epochs.
    assert xs == [0.0, 1.0, 2.0] and all(0.0 <= y <= 1.0 for y in ys)
    assert len(train.series["step_loss"][0]) >= 6
    _shot(tab, "3_train")

    # 4. Evaluate the best checkpoint on every crop; threshold for 10% BPCER to the live view.
    train.next_button.click()
    evaluate = tab.evaluate
    assert evaluate.model.path() == run_dir / "best.pth"
    evaluate.split.setCurrentIndex(evaluate.split.findData("all"))
    ok, message = _run(qtbot, tab, evaluate.start_button)
    assert ok, message
    report = evaluate.report
    assert sum(map(sum, report.confusion)) == 14 and report.class_names == ["real", "spoof"]
    names = [evaluate.metrics.item(r, 0).text() for r in range(evaluate.metrics.rowCount())]
    assert {"accuracy", "ROC-AUC", "average precision", "EER"} <= set(names)
    assert any(n.startswith("APCER @") for n in names) and any(n.startswith("ACER @") for n in names)
    assert len(report.roc_bpcer) >= 2 and len(report.pr_recall) >= 1
    evaluate.target_kind.setCurrentIndex(evaluate.target_kind.findData("bpcer"))
    evaluate.target_rate.setValue(20.0)
    assert evaluate.apply_button.isEnabled()
    point = report.threshold_for("bpcer", 0.20)
    assert point.bpcer <= 0.20
    evaluate.apply_button.click()
    assert applied == [pytest.approx(point.threshold)]
    _shot(tab, "4_evaluate")

    # 5. Export, register, hand to the live view.
    tab.go_to("export")
    export = tab.export
    assert export.checkpoint.path() == run_dir / "best.pth"
    export.name.setText("office-cam")
    ok, message = _run(qtbot, tab, export.start_button)
    assert ok, message
    model = user_models_dir() / "office-cam.onnx"
    assert registry.resolve("office-cam") == model
    assert registry.get_entry("office-cam").extra["source"] == "training"
    assert export.use_button.isEnabled()
    export.use_button.click()
    assert used == ["office-cam"]
    _shot(tab, "5_export")


def test_closing_mid_run_keeps_a_run_that_a_new_window_resumes(qtbot, tab, dataset, monkeypatch,
                                                              tmp_path):
    prepared = tmp_path / "prepared"
    tab.prepare.source.set_text(dataset)
    tab.prepare.out.set_text(prepared)
    ok, message = _run(qtbot, tab, tab.prepare.start_button)
    assert ok, message
    train = tab.train
    train.epochs.setValue(3)
    train.batch.setValue(4)
    with qtbot.waitSignal(tab.run.event, timeout=RUN_TIMEOUT_MS,
                          check_params_cb=lambda e: e["event"] == "progress"):
        train.start_button.click()
    # Closing asks first; "No" keeps the run going.
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: QMessageBox.No)
    assert tab.confirm_close() is False and tab.run.running
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: QMessageBox.Yes)
    assert tab.confirm_close() is True
    assert not tab.run.running
    run_dir = train.run_dir.path()
    assert (run_dir / "latest.pth").is_file()

    # The next start of the app remembers the run and offers to resume it.
    again = TrainingTab(settings=tab.memory.settings, save_settings=lambda: None)
    qtbot.addWidget(again)
    assert again.train.run_dir.path() == run_dir
    assert again.train.resume_button.isEnabled()
    assert again.train.epochs.value() == 3


def test_broken_dataset_is_explained_before_and_by_prep(qtbot, tab, dataset, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(dataset / "real", broken / "real")
    (broken / "spoof").mkdir()
    tab.dataset.set_folder(str(broken))
    assert tab.dataset.message.isVisible()
    assert "spoof class is empty" in tab.dataset.message.text()
    assert not tab.dataset.next_button.isEnabled()
    _shot(tab, "1_dataset_broken")

    # Prepare on its own still runs the backend, which refuses with the same reason.
    tab.go_to("prepare")
    tab.prepare.source.set_text(broken)
    tab.prepare.out.set_text(tmp_path / "out")
    ok, message = _run(qtbot, tab, tab.prepare.start_button)
    assert not ok and "spoof class is empty" in message
    assert tab.prepare.message.isVisible()
    assert "spoof class is empty" in tab.prepare.message.text()


def test_a_crashing_backend_shows_its_last_lines(qtbot, tab, dataset, tmp_path):
    prepared = tmp_path / "prepared"
    tab.prepare.source.set_text(dataset)
    tab.prepare.out.set_text(prepared)
    assert _run(qtbot, tab, tab.prepare.start_button)[0]
    bad = tmp_path / "broken.onnx"
    bad.write_bytes(b"this is not a model")
    tab.go_to("evaluate")
    tab.evaluate.data.set_text(prepared)
    tab.evaluate.model.set_text(bad)
    ok, message = _run(qtbot, tab, tab.evaluate.start_button)
    assert not ok
    text = tab.evaluate.message.text()
    assert "Evaluate failed" in text and "broken.onnx" in text
    assert "press the button again" in text
    assert tab.evaluate.start_button.isEnabled()
