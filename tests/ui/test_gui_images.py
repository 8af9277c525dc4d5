"""The Images tab driven like a user would: real models, real files, offscreen Qt."""
from __future__ import annotations

import csv
import json
import shutil
import threading
import warnings

import cv2
import numpy as np
import pytest

pytest.importorskip("pytestqt")

from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl  # noqa: E402
from PySide6.QtGui import QDragEnterEvent, QDropEvent, QPixmap  # noqa: E402
from PySide6.QtWidgets import QApplication, QMainWindow  # noqa: E402

from fasdesk.core.decision.verdict import verdict  # noqa: E402
from fasdesk.ui import workers  # noqa: E402
from fasdesk.ui.images_model import ResultsModel  # noqa: E402
from fasdesk.ui.images_tab import ImagesTab  # noqa: E402

GOOD = {"real_T1.jpg": "real", "spoof_F1.jpg": "spoof", "spoof_F2.jpg": "spoof"}
# Read fine but no verdict: (image verdict, number of faces); stays so at any threshold.
UNJUDGED = {"small_face.png": ("unsure", 1), "no_face.png": ("no face", 0)}
BAD = {"empty.jpg": "empty file", "notes.jpg": "not an image",
       "truncated.jpg": "truncated"}
BATCH_TIMEOUT_MS = 30_000

# Any Qt warning (a thread destroyed while running, a bad connection) fails the test; the
# offscreen platform's note about size hints is not about this code.
pytestmark = [pytest.mark.qt_log_level_fail("WARNING"),
              pytest.mark.qt_log_ignore("propagateSizeHints")]


@pytest.fixture
def mixed_folder(tmp_path, samples_dir):
    """The three samples (one in a sub-folder), a face too small to judge, a photo
    without a face, and three files that are not images."""
    folder = tmp_path / "drop me"
    (folder / "sub").mkdir(parents=True)
    shutil.copy(samples_dir / "real_T1.jpg", folder)
    shutil.copy(samples_dir / "spoof_F1.jpg", folder)
    shutil.copy(samples_dir / "spoof_F2.jpg", folder / "sub")
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "notes.jpg").write_text("a text file with a .jpg name\n")
    jpeg = (samples_dir / "real_T1.jpg").read_bytes()
    (folder / "truncated.jpg").write_bytes(jpeg[: len(jpeg) // 4])
    real = cv2.imread(str(samples_dir / "real_T1.jpg"))
    small = cv2.resize(real, None, fx=0.2, fy=0.2, interpolation=cv2.INTER_AREA)
    cv2.imwrite(str(folder / "small_face.png"), small)  # face about 43 px: below the minimum
    cv2.imwrite(str(folder / "no_face.png"), np.full((240, 320, 3), 128, np.uint8))
    (folder / "readme.txt").write_text("skipped inside folders: not an image extension")
    return folder


@pytest.fixture
def tab(qtbot, pipeline):
    widget = ImagesTab()
    qtbot.addWidget(widget)
    widget.set_pipeline_factory(lambda: pipeline)
    widget.resize(1100, 650)
    widget.show()
    yield widget
    widget.cancel()
    assert workers.stop_all()


def drop(widget, paths) -> QDropEvent:
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    with warnings.catch_warnings():  # PySide 6.12 marks its only constructor deprecated
        warnings.simplefilter("ignore", DeprecationWarning)
        enter = QDragEnterEvent(QPoint(50, 50), Qt.DropAction.CopyAction, mime,
                                Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(widget, enter)
    assert enter.isAccepted(), "the tab must accept dragged files"
    event = QDropEvent(QPointF(50, 50), Qt.DropAction.CopyAction, mime,
                       Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(widget, event)
    return event


def wait_done(qtbot, tab):
    qtbot.waitUntil(lambda: not tab.is_running(), timeout=BATCH_TIMEOUT_MS)


def table(tab) -> dict[str, list]:
    """File name -> the row's displayed cells, as the user sees them (through the proxy)."""
    view = tab.table.model()
    rows = {}
    for r in range(view.rowCount()):
        cells = [view.index(r, c).data() for c in range(view.columnCount())]
        rows[cells[ResultsModel.FILE].rsplit("/", 1)[-1]] = cells
    return rows


def table_tooltip(tab, name: str, column: int) -> str:
    return tab.model.index(source_row(tab, name), column).data(Qt.ItemDataRole.ToolTipRole)


def source_row(tab, name: str) -> int:
    for r in range(tab.model.rowCount()):
        if tab.model.result(r).path.endswith(name):
            return r
    raise AssertionError(f"{name} not in the table")


def select(tab, name: str) -> None:
    proxy_index = tab.proxy.mapFromSource(tab.model.index(source_row(tab, name), 0))
    tab.table.setCurrentIndex(proxy_index)


def test_dropped_folder_is_classified_and_bad_files_become_error_rows(qtbot, tab, mixed_folder):
    messages = []
    tab.status_message.connect(messages.append)
    on_ui_thread = set()  # rows must be added by the UI thread, never by the worker
    tab.model.rowsInserted.connect(
        lambda *_: on_ui_thread.add(threading.current_thread() is threading.main_thread()))
    event = drop(tab, [mixed_folder])
    assert event.isAccepted()
    wait_done(qtbot, tab)

    assert on_ui_thread == {True}
    rows = table(tab)
    assert set(rows) == set(GOOD) | set(UNJUDGED) | set(BAD)  # recursive, no readme.txt
    for name, expected in GOOD.items():
        cells = rows[name]
        assert cells[ResultsModel.VERDICT] == expected, name
        assert cells[ResultsModel.FACES] == "1"
        assert cells[ResultsModel.ERROR] == ""
    for name, (expected, faces) in UNJUDGED.items():
        assert rows[name][ResultsModel.VERDICT] == expected, name
        assert rows[name][ResultsModel.FACES] == str(faces)
    assert "too small" in table_tooltip(tab, "small_face.png", ResultsModel.VERDICT)
    for name, words in BAD.items():
        cells = rows[name]
        assert cells[ResultsModel.VERDICT] == "error"
        assert words in cells[ResultsModel.ERROR], cells
    # A thumbnail for each file that could be read (made when the table shows the row,
    # shown at the table's icon size), a warning icon for the rest.
    qtbot.waitUntil(lambda: tab.model.thumbnails.requested == 5 and tab.model.thumbnails.idle())
    for r in range(tab.model.rowCount()):
        thumb = tab.model.index(r, ResultsModel.THUMB).data(Qt.ItemDataRole.DecorationRole)
        if tab.model.result(r).error:
            assert isinstance(thumb, QPixmap) and 0 < thumb.width() < 64
        else:
            pixmap = thumb.pixmap(tab.table.iconSize())
            assert max(pixmap.width(), pixmap.height()) == 64
    # Sorting by p_real puts the least real face first; images without a score go last.
    tab.table.sortByColumn(ResultsModel.P_REAL, Qt.SortOrder.AscendingOrder)
    order = [tab.proxy.index(r, ResultsModel.FILE).data().rsplit("/", 1)[-1]
             for r in range(tab.proxy.rowCount())]
    p = {n: tab.model.result(source_row(tab, n)).faces[0].p_real for n in GOOD}
    assert order[:3] == sorted(GOOD, key=p.get)
    assert set(order[3:]) == set(UNJUDGED) | set(BAD)
    assert any("Classified 8 image(s)" in m and "3 could not be read" in m for m in messages)
    assert tab.summary.text() == ("8 image(s) at threshold 0.50: "
                                  "1 real, 2 spoof, 1 unsure, 1 no face, 3 error")
    assert not tab.progress_row.isVisible()


def test_threshold_relabels_table_without_new_inference(qtbot, tab, mixed_folder):
    tab.add_paths([str(mixed_folder)])
    wait_done(qtbot, tab)
    batches = []
    tab.batch_started.connect(batches.append)
    p = {name: tab.model.result(source_row(tab, name)).faces[0].p_real for name in GOOD}
    assert p["real_T1.jpg"] > 0.5 > max(p["spoof_F1.jpg"], p["spoof_F2.jpg"])

    # Between the two spoof scores: the higher-scored spoof now passes as real.
    low, high = sorted((p["spoof_F1.jpg"], p["spoof_F2.jpg"]))
    threshold = (low + high) / 2
    tab.state.set_threshold(threshold)
    rows = table(tab)
    for name in GOOD:
        assert rows[name][ResultsModel.VERDICT] == verdict(p[name], threshold), name
    assert sorted(rows[n][ResultsModel.VERDICT] for n in GOOD) == ["real", "real", "spoof"]
    assert all(rows[n][ResultsModel.VERDICT] == v for n, (v, _) in UNJUDGED.items())

    # Above the real photo's score: everything is spoof, and the cell colour follows.
    tab.state.set_threshold(min(1.0, p["real_T1.jpg"] + 1e-5))
    rows = table(tab)
    assert all(rows[n][ResultsModel.VERDICT] == "spoof" for n in GOOD)
    r = source_row(tab, "real_T1.jpg")
    colour = tab.model.index(r, ResultsModel.VERDICT).data(Qt.ItemDataRole.BackgroundRole)
    assert colour.red() > colour.green()
    assert "3 spoof" in tab.summary.text()
    # (relabelling runs in set_threshold itself, and a batch would start there too)
    assert batches == [] and not tab.is_running()


def _box_edge_colour(image, box):
    """The most saturated pixel on the left edge of a face box (anti-aliased lines)."""
    x, y, w, h = box
    pixels = [image.pixelColor(xx, y + h // 2) for xx in range(max(0, x - 2), x + 3)]
    return max(pixels, key=lambda c: max(c.red(), c.green(), c.blue())
               - min(c.red(), c.green(), c.blue()))


def test_selecting_a_row_shows_the_annotated_image_and_follows_the_threshold(
        qtbot, tab, mixed_folder):
    tab.add_paths([str(mixed_folder)])
    wait_done(qtbot, tab)
    select(tab, "real_T1.jpg")
    qtbot.waitUntil(tab.preview.has_image, timeout=10_000)
    result = tab.model.result(source_row(tab, "real_T1.jpg"))
    image = tab.preview.pixmap().toImage()
    assert (image.width(), image.height()) == (result.width, result.height)
    edge = _box_edge_colour(image, result.faces[0].box)
    assert edge.green() > 150 and edge.red() < 100, edge.name()  # green: real
    assert "face 1: real" in tab.details.text()

    tab.state.set_threshold(min(1.0, result.faces[0].p_real + 1e-5))
    qtbot.waitUntil(lambda: _box_edge_colour(tab.preview.pixmap().toImage(),
                                             result.faces[0].box).red() > 150,
                    timeout=10_000)
    assert "face 1: spoof" in tab.details.text()

    select(tab, "notes.jpg")
    qtbot.waitUntil(lambda: not tab.preview.has_image(), timeout=5_000)
    assert "not an image" in tab.details.text() and "not an image" in tab.preview.text()

    # A file removed since it was classified: the preview says so, the row stays.
    (mixed_folder / "spoof_F1.jpg").unlink()
    select(tab, "spoof_F1.jpg")
    qtbot.waitUntil(lambda: "file not found" in tab.preview.text(), timeout=5_000)
    assert table(tab)["spoof_F1.jpg"][ResultsModel.VERDICT] == "spoof"


def test_export_csv_and_json_match_the_command_line(qtbot, tab, mixed_folder, tmp_path,
                                                    fp32_model, detector_model, capsys):
    from fasdesk.cli import main

    tab.add_paths([str(mixed_folder)])
    wait_done(qtbot, tab)
    assert tab.export_json(str(tmp_path / "out.json"))
    assert tab.export_json(str(tmp_path / "out.jsonl"))
    assert tab.export_csv(str(tmp_path / "out.csv"))

    capsys.readouterr()
    status = main(["classify", str(mixed_folder), "--json", "--model", str(fp32_model),
                   "--detector", str(detector_model)])
    assert status == 2  # some files unreadable
    cli = {r["path"]: r for r in map(json.loads, capsys.readouterr().out.splitlines())}

    exported = json.loads((tmp_path / "out.json").read_text(encoding="utf-8"))
    lines = [json.loads(line) for line in
             (tmp_path / "out.jsonl").read_text(encoding="utf-8").splitlines()]
    assert lines == exported
    assert {r["path"] for r in exported} == set(cli)
    for record in exported:
        expected = cli[record["path"]]
        # The classify record, plus its verdict and what judged it.
        assert record.keys() == expected.keys() | {"verdict", "model", "model_sha256", "threshold"}
        assert record["threshold"] == 0.5 and len(record["model_sha256"]) == 64
        assert (record["width"], record["height"], record["error"]) == (
            expected["width"], expected["height"], expected["error"])
        assert len(record["faces"]) == len(expected["faces"])
        for face, cli_face in zip(record["faces"], expected["faces"]):
            assert face.keys() == cli_face.keys()
            assert face["box"] == cli_face["box"]
            assert face["label"] == cli_face["label"]
            assert face["p_real"] == pytest.approx(cli_face["p_real"], abs=1e-5)

    with open(tmp_path / "out.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    # One row per face, and one for each image without a face or unreadable.
    assert len(rows) == 8
    by_path = {row["path"]: row for row in rows}
    for record in exported:
        row = by_path[record["path"]]
        assert row["error"] == (record["error"] or "")
        assert [int(row["width"]), int(row["height"])] == [record["width"], record["height"]]
        if not record["faces"]:
            assert row["face"] == row["label"] == row["p_real"] == ""
            continue
        face = record["faces"][0]
        assert row["label"] == face["label"] and row["reason"] == (face["reason"] or "")
        assert [int(row[k]) for k in "xywh"] == face["box"]
        if face["p_real"] is None:
            assert row["p_real"] == ""
        else:
            assert float(row["p_real"]) == pytest.approx(face["p_real"])

    # The export follows the threshold the user set.
    tab.state.set_threshold(0.0)
    assert tab.export_json(str(tmp_path / "all_real.json"))
    relabelled = json.loads((tmp_path / "all_real.json").read_text(encoding="utf-8"))
    assert {f["label"] for r in relabelled for f in r["faces"]} == {"real", "unsure"}


def test_export_to_an_unwritable_place_says_so(qtbot, tab, mixed_folder, tmp_path):
    tab.add_paths([str(mixed_folder / "real_T1.jpg")])
    wait_done(qtbot, tab)
    target = tmp_path / "no such folder" / "out.csv"
    assert not tab.export_csv(str(target))
    assert not target.exists()
    assert tab.error_banner.isVisible() and "Could not write CSV" in tab.error_banner.text()


@pytest.fixture
def many_folder(tmp_path, samples_dir):
    """60 copies of the samples: a batch long enough to interrupt."""
    folder = tmp_path / "many"
    folder.mkdir()
    for i in range(60):
        name = ("real_T1.jpg", "spoof_F1.jpg", "spoof_F2.jpg")[i % 3]
        shutil.copy(samples_dir / name, folder / f"{i:02d}_{name}")
    return folder


def test_cancel_stops_a_long_batch(qtbot, tab, samples_dir, many_folder, tmp_path):
    folder = many_folder
    messages = []
    tab.status_message.connect(messages.append)
    tab.add_paths([str(folder)])
    assert tab.progress_row.isVisible()
    qtbot.waitUntil(lambda: tab.model.rowCount() >= 3, timeout=BATCH_TIMEOUT_MS)
    assert tab.progress.maximum() == 60 and " / 60" in tab.progress.format()
    assert "left" in tab.progress.format()  # the time-left estimate
    assert not tab.export_csv_button.isEnabled() and not tab.clear_button.isEnabled()
    tab.grab().save(str(tmp_path / "progress.png"))
    tab.cancel()
    wait_done(qtbot, tab)
    done = tab.model.rowCount()
    assert 3 <= done < 60
    assert any(f"Cancelled after {done} of 60" in m for m in messages)
    assert not tab.progress_row.isVisible() and tab.clear_button.isEnabled()
    # What was classified before the cancel is kept and right.
    for r in range(done):
        result = tab.model.result(r)
        assert tab.model.verdict(r) == ("real" if "real_T1" in result.path else "spoof")
    # The tab works again after a cancel.
    tab.add_paths([str(samples_dir / "real_T1.jpg")])
    wait_done(qtbot, tab)
    assert tab.model.rowCount() == done + 1


def test_model_switch_and_missing_model(qtbot, tab, pipeline, mixed_folder, tmp_path):
    from fasdesk.core.inference.pipeline import build_pipeline

    built = []

    def counting_factory():
        built.append(1)
        return pipeline

    tab.set_pipeline_factory(counting_factory)
    tab.add_paths([str(mixed_folder / "real_T1.jpg")])
    tab.add_paths([str(mixed_folder / "spoof_F1.jpg")])  # queued behind the first
    wait_done(qtbot, tab)
    qtbot.waitUntil(lambda: tab.model.rowCount() == 2 and not tab.is_running())
    assert len(built) == 1  # one pipeline for both batches

    tab.set_pipeline_factory(lambda: build_pipeline(model=tmp_path / "missing.onnx"))
    tab.add_paths([str(mixed_folder / "spoof_F1.jpg")])
    wait_done(qtbot, tab)
    assert tab.error_banner.isVisible()
    assert "missing.onnx" in tab.error_banner.text()
    assert tab.model.rowCount() == 2  # earlier results stay

    tab.set_pipeline_factory(counting_factory)
    tab.add_paths([str(mixed_folder / "sub" / "spoof_F2.jpg")])
    wait_done(qtbot, tab)
    assert len(built) == 2 and tab.model.rowCount() == 3
    assert not tab.error_banner.isVisible()

    # A file classified again replaces its row rather than adding a second one.
    tab.add_paths([str(mixed_folder / "real_T1.jpg")])
    wait_done(qtbot, tab)
    assert tab.model.rowCount() == 3 and table(tab)["real_T1.jpg"][ResultsModel.VERDICT] == "real"


def test_closing_the_window_mid_batch_stops_the_batch(qtbot, pipeline, many_folder):
    window = QMainWindow()
    qtbot.addWidget(window)
    tab = ImagesTab()
    tab.set_pipeline_factory(lambda: pipeline)
    window.setCentralWidget(tab)
    window.show()
    tab.add_paths([str(many_folder)])
    qtbot.waitUntil(lambda: tab.model.rowCount() >= 1, timeout=BATCH_TIMEOUT_MS)
    window.close()
    assert tab.worker.is_cancelled()
    assert tab.worker.wait(BATCH_TIMEOUT_MS / 1000)  # stops at the next file
    qtbot.waitUntil(lambda: not tab.is_running())
    assert tab.model.rowCount() < 60


# -- everyday polish (issue 23) -------------------------------------------------------------
def test_rows_show_paths_from_the_dropped_folder_sorted_naturally_and_filtered(
        qtbot, tab, mixed_folder, samples_dir, tmp_path):
    from gui_helpers import click

    numbered = tmp_path / "numbered"
    numbered.mkdir()
    for n in (10, 2, 1):
        shutil.copy(samples_dir / "spoof_F1.jpg", numbered / f"r{n}.jpg")
    messages = []
    tab.status_message.connect(messages.append)
    tab.resize(1366, 700)
    drop(tab, [mixed_folder])
    wait_done(qtbot, tab)
    # The first row is selected when the batch is done: its preview shows at once.
    assert tab.table.selectionModel().currentIndex().row() == 0
    names = {tab.proxy.index(r, ResultsModel.FILE).data() for r in range(tab.proxy.rowCount())}
    assert "sub/spoof_F2.jpg" in names and "real_T1.jpg" in names
    # The whole error, wherever the pointer rests on an unreadable file's row.
    assert "truncated" in table_tooltip(tab, "truncated.jpg", ResultsModel.FILE)
    # A second batch: its counts are its own, not the table's.
    drop(tab, [numbered])
    wait_done(qtbot, tab)
    assert "Classified 3 image(s)" in messages[-1] and "could not be read" not in messages[-1]
    tab.table.sortByColumn(ResultsModel.FILE, Qt.SortOrder.AscendingOrder)
    order = [tab.proxy.index(r, ResultsModel.FILE).data() for r in range(tab.proxy.rowCount())]
    assert [n for n in order if n.startswith("r") and n[1].isdigit()] == ["r1.jpg", "r2.jpg",
                                                                         "r10.jpg"]
    # Filter by verdict: the combo box a person picks from.
    combo = tab.verdict_filter
    combo.setCurrentIndex(combo.findData("error"))
    shown = {tab.proxy.index(r, ResultsModel.FILE).data() for r in range(tab.proxy.rowCount())}
    assert shown == set(BAD)
    combo.setCurrentIndex(combo.findData("spoof"))
    assert tab.proxy.rowCount() == 2 + 3
    # Moving the threshold refilters: at 0.0 every judged face is real.
    tab.state.set_threshold(0.0)
    assert tab.proxy.rowCount() == 0
    tab.state.set_threshold(0.5)
    combo.setCurrentIndex(0)
    assert tab.proxy.rowCount() == 11
    # The compact list: many more rows on screen.
    tall = tab.table.rowHeight(0)
    click(qtbot, tab.compact_box)
    assert tab.table.rowHeight(0) < tall / 2
    qtbot.waitUntil(lambda: all_thumbnails_shown(tab, tab.table))  # the rows now on screen
    tab.grab().save("/tmp/fasdesk-shots/images_compact.png")
    click(qtbot, tab.compact_box)


@pytest.fixture
def two_thousand(tmp_path, samples_dir):
    """2,000 small JPEGs: every tenth big enough to judge (real or spoof), the rest too
    small for a verdict (unsure or no face), so the batch is quick."""
    folder = tmp_path / "thousands"
    folder.mkdir()
    photos = [cv2.imread(str(samples_dir / name)) for name in GOOD]
    sizes = {200: [], 64: []}
    for side in sizes:
        for photo in photos:
            scale = side / max(photo.shape[:2])
            small = cv2.resize(photo, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
            sizes[side].append(cv2.imencode(".jpg", small)[1].tobytes())
    for i in range(2000):
        data = sizes[200 if i % 10 == 0 else 64][i % 3]
        (folder / f"p{i}.jpg").write_bytes(data)
    return folder


def visible_rows(view) -> set[int]:
    """Proxy rows with a cell on screen in a table or grid."""
    rect = view.viewport().rect()
    return {r for r in range(view.model().rowCount())
            if view.visualRect(view.model().index(r, ResultsModel.FILE)).intersects(rect)}


def all_thumbnails_shown(tab, view) -> bool:
    """Every readable file on screen in `view` has its thumbnail (asking for one that is
    missing starts reading it)."""
    return all(view.model().index(r, ResultsModel.THUMB).data(Qt.ItemDataRole.DecorationRole)
               is not None for r in visible_rows(view))


def test_grid_shows_thumbnails_of_visible_rows_only_and_shares_selection_and_filter(
        qtbot, tab, two_thousand):
    messages = []
    tab.status_message.connect(messages.append)
    inserts = []
    tab.model.rowsInserted.connect(lambda _p, first, last: inserts.append(last - first + 1))
    drop(tab, [two_thousand])
    wait_done(qtbot, tab)
    assert tab.model.rowCount() == 2000 and "Classified 2000 image(s)" in messages[-1]
    assert len(inserts) < 2000 / 5  # rows arrive in batches, not one insert per file

    # The real control: the Grid button beside the filter.
    assert tab.views.currentWidget() is tab.table
    qtbot.mouseClick(tab.view_switch.buttons["grid"], Qt.MouseButton.LeftButton)
    grid = tab.grid
    assert tab.views.currentWidget() is grid and grid.isVisible()
    assert tab.state.settings.images_view == "grid"  # remembered
    assert not tab.compact_box.isVisible()  # a list option
    thumbnails = tab.model.thumbnails
    qtbot.waitUntil(lambda: thumbnails.idle() and thumbnails.requested > 0)
    on_screen = visible_rows(grid)
    assert 4 <= len(on_screen) < 100
    # Only what the views painted was read: a screenful of the table and of the grid.
    assert thumbnails.requested <= len(on_screen) + len(visible_rows(tab.table)) + 20
    for r in on_screen:
        icon = tab.proxy.index(r, ResultsModel.THUMB).data(Qt.ItemDataRole.DecorationRole)
        assert icon is not None and not icon.isNull()
    tab.grab().save("/tmp/fasdesk-shots/images_grid.png")

    # Scrolling to the end reads the rows that come on screen, still a screenful.
    before = thumbnails.requested
    grid.scrollToBottom()
    qtbot.waitUntil(lambda: thumbnails.requested > before and thumbnails.idle())
    assert thumbnails.requested - before < 100
    assert max(visible_rows(grid)) == 1999

    # Clicking a cell selects its row: the details pane and the table follow.
    grid.scrollToTop()
    index = tab.proxy.index(12, ResultsModel.FILE)
    qtbot.mouseClick(grid.viewport(), Qt.MouseButton.LeftButton,
                     pos=grid.visualRect(index).center())
    assert tab.table.selectionModel().currentIndex().row() == 12
    assert tab.table.selectionModel().isRowSelected(12)
    name = index.data()
    assert name in tab.details.text()

    # The verdict filter applies to the grid: only spoof cells are left.
    combo = tab.verdict_filter
    combo.setCurrentIndex(combo.findData("spoof"))
    spoofs = sum(tab.model.verdict(r) == "spoof" for r in range(tab.model.rowCount()))
    assert 0 < grid.model().rowCount() == spoofs < 2000
    assert {grid.model().index(r, ResultsModel.VERDICT).data()
            for r in visible_rows(grid)} == {"spoof"}
    qtbot.waitUntil(lambda: all_thumbnails_shown(tab, grid))
    tab.grab().save("/tmp/fasdesk-shots/images_grid_spoof.png")

    # Back to the list, by its button.
    qtbot.mouseClick(tab.view_switch.buttons["list"], Qt.MouseButton.LeftButton)
    assert tab.views.currentWidget() is tab.table and tab.state.settings.images_view == "list"
