"""What calibration leaves on disk: sessions and user models listed with size, date and
the profiles that use them; deleting them, never silently what a profile needs."""
from __future__ import annotations

import json

import pytest

from fasdesk.core.calibration import profiles as P
from fasdesk.core.calibration import session as C
from fasdesk.core.calibration import storage as S
from fasdesk.core.io.paths import user_models_dir
from fasdesk.core.models import registry


def make_storage(tmp_path):
    """Two sessions (one a profile was made from), a calibrated model a profile uses, and
    an orphan model left behind by a calibration that was never saved."""
    used = C.Session.create("front door")
    (used.root / "dataset" / "real").mkdir(parents=True)
    (used.root / "dataset" / "real" / "real_000001.jpg").write_bytes(b"x" * 5000)
    orphan_session = C.Session.create("hall")
    (orphan_session.root / "fine-tune").mkdir()
    (orphan_session.root / "fine-tune" / "best.pth").write_bytes(b"y" * 20000)
    models = user_models_dir()
    models.mkdir(parents=True, exist_ok=True)
    kept = models / "calibrated-front-door-20261203-075114.onnx"
    kept.write_bytes(b"m" * 3000)
    kept.with_name(kept.stem + ".card.json").write_text(json.dumps(
        {"display_name": "Front door, calibrated 3 Dec", "created": "2026-12-03T07:51:14Z"}))
    registry.register_user_model(registry.ModelEntry(
        id=kept.stem, kind="liveness", file=kept.name, sha256=registry.sha256_of(kept),
        extra={"display_name": "Front door, calibrated 3 Dec"}))
    orphan = models / "calibrated-hall-20261203-080000.onnx"
    orphan.write_bytes(b"o" * 1000)
    registry.register_user_model(registry.ModelEntry(id=orphan.stem, kind="liveness",
                                                     file=orphan.name))
    P.save_profile(P.Profile(name="Front door", source={"kind": "camera", "target": "0", "name": ""},
                             model=kept.stem, model_sha256=registry.sha256_of(kept),
                             threshold=0.9, session=str(used.root)))
    return used, orphan_session, kept, orphan


def test_the_overview_lists_sizes_dates_and_users(tmp_path):
    used, orphan_session, kept, orphan = make_storage(tmp_path)
    items = {(i.kind, i.id): i for i in S.overview()}
    assert set(items) == {("session", used.root.name), ("session", orphan_session.root.name),
                          ("model", kept.stem), ("model", orphan.stem)}
    s_used = items["session", used.root.name]
    assert s_used.used_by == ["Front door"] and s_used.size >= 5000
    assert s_used.name == "front door (no recordings)"
    assert S.session_title("20261203-075114-front-door-avi", {"recordings": [{}, {}]}) == \
        "front door avi: 2 recording(s)"
    assert items["session", orphan_session.root.name].used_by == []
    assert items["session", orphan_session.root.name].size >= 20000
    m = items["model", kept.stem]
    assert m.name == "Front door, calibrated 3 Dec" and m.used_by == ["Front door"]
    assert m.created == "2026-12-03 07:51"
    assert m.size == 3000 + kept.with_name(kept.stem + ".card.json").stat().st_size
    assert items["model", orphan.stem].used_by == [] and items["model", orphan.stem].size == 1000
    assert S.human_size(1234567) == "1.2 MB" and S.human_size(999) == "999 bytes"


def test_deleting_refuses_what_a_profile_uses_unless_forced(tmp_path):
    used, orphan_session, kept, orphan = make_storage(tmp_path)
    items = {(i.kind, i.id): i for i in S.overview()}
    with pytest.raises(S.StorageInUse) as refused:
        S.delete(items["model", kept.stem])
    assert refused.value.profiles == ["Front door"] and "'Front door'" in str(refused.value)
    assert kept.is_file() and registry.get_entry(kept.stem) is not None
    with pytest.raises(S.StorageInUse):
        S.delete(items["session", used.root.name])
    assert used.root.is_dir()
    # Unused: gone, files, card and model-list entry.
    S.delete(items["model", orphan.stem])
    S.delete(items["session", orphan_session.root.name])
    assert not orphan.exists() and registry.get_entry(orphan.stem) is None
    assert not orphan_session.root.exists()
    # Forced: the profile's model goes too (the caller was told who uses it).
    S.delete(items["model", kept.stem], force=True)
    assert not kept.exists() and not kept.with_name(kept.stem + ".card.json").exists()
    assert {(i.kind, i.id) for i in S.overview()} == {("session", used.root.name)}


def test_nothing_outside_the_data_folders_is_deleted(tmp_path):
    outside = tmp_path / "precious"
    outside.mkdir()
    item = S.StoredItem(S.SESSION, "x", "x", outside, 0, "", [], [outside])
    with pytest.raises(S.StorageError, match="not in"):
        S.delete(item)
    assert outside.is_dir()
