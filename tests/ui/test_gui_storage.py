"""Tools > Manage storage: the table of sessions and models with sizes and the profiles
that use them; Delete asks first and says what a profile would lose."""
from __future__ import annotations

from PySide6.QtCore import Qt

from fasdesk.core.models import registry
from fasdesk.ui.storage_dialog import StorageDialog
from core.test_storage import make_storage  # tests/core, through the tests folder on the path


def _click_row(qtbot, dialog, name):
    row = next(r for r in range(dialog.table.rowCount()) if dialog.table.item(r, 1).text() == name)
    rect = dialog.table.visualItemRect(dialog.table.item(row, 1))
    qtbot.mouseClick(dialog.table.viewport(), Qt.LeftButton, pos=rect.center())
    assert dialog.selected().name == name


def test_the_storage_dialog_lists_and_deletes(qtbot, tmp_path):
    used, orphan_session, kept, orphan = make_storage(tmp_path)
    dialog = StorageDialog()
    qtbot.addWidget(dialog)
    dialog.resize(1366, 768)
    dialog.show()
    qtbot.waitExposed(dialog)
    names = [dialog.table.item(r, 1).text() for r in range(dialog.table.rowCount())]
    assert set(names) == {"front door (no recordings)", "hall (no recordings)",
                          "Front door, calibrated 3 Dec", orphan.stem}
    assert "2 calibration session(s) and 2 model(s)" in dialog.summary.text()
    assert not dialog.delete_button.isEnabled()

    # A model a profile uses: the confirmation names the profile; Cancel keeps it.
    _click_row(qtbot, dialog, "Front door, calibrated 3 Dec")
    row = dialog.table.currentRow()
    assert dialog.table.item(row, 4).text() == "Front door"
    qtbot.mouseClick(dialog.delete_button, Qt.LeftButton)
    assert dialog.confirm_box.isVisible()
    assert "'Front door'" in dialog.confirm_text.text()
    assert dialog.confirm_button.text() == "Delete anyway"
    dialog.grab().save(str(tmp_path / "storage.png"))
    qtbot.mouseClick(dialog.cancel_button, Qt.LeftButton)
    assert not dialog.confirm_box.isVisible() and kept.is_file()

    # An orphan session: deleted after the confirmation, the table follows.
    _click_row(qtbot, dialog, "hall (no recordings)")
    qtbot.mouseClick(dialog.delete_button, Qt.LeftButton)
    assert dialog.confirm_button.text() == "Delete"
    with qtbot.waitSignal(dialog.changed):
        qtbot.mouseClick(dialog.confirm_button, Qt.LeftButton)
    assert not orphan_session.root.exists()
    assert dialog.table.rowCount() == 3 and "Deleted" in dialog.message.text()

    # The profile's model, confirmed anyway: file and model-list entry gone.
    _click_row(qtbot, dialog, "Front door, calibrated 3 Dec")
    qtbot.mouseClick(dialog.delete_button, Qt.LeftButton)
    qtbot.mouseClick(dialog.confirm_button, Qt.LeftButton)
    assert not kept.exists() and registry.get_entry(kept.stem) is None
    qtbot.mouseClick(dialog.refresh_button, Qt.LeftButton)
    assert dialog.table.rowCount() == 2
    qtbot.mouseClick(dialog.close_button, Qt.LeftButton)
    assert not dialog.isVisible()
