"""Intake: import real DICOM as a case, open it, list, show identity, delete, de-identify.

Each use case by role: allowed, or refused with a clear error and an ``access.denied`` record.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from app.case import PREVIEW_FILE, Case
from app.errors import AccessDenied, Cancelled, VaultError
from app.imaging.volume import Volume
from app.progress import CancelToken, Progress
from app.security import audit
from app.security.deid.profile import DeidOptions
from app.workflow import intake
from app.workflow.actor import Actor

HEAD = "ct-head-ge-gantry-tilt-28"


def _records(actor: Actor) -> list[dict]:
    return audit.read_records(actor.paths)


def _denied(actor: Actor, attempted: str) -> None:
    rec = _records(actor)[-1]
    assert rec["action"] == "access.denied" and rec["user"] == actor.user
    assert rec["facts"]["attempted"] == attempted


@pytest.fixture
def head(dicom_dir: Path) -> Path:
    return dicom_dir / HEAD


def test_import_stores_volume_originals_and_identity(people, head):
    tess = people["tess"]
    case = intake.import_path(tess, str(head))
    entry = tess.vault.case_entry(case.pseudonym)
    assert entry.identity.get("patient_id")
    volume = case.load_volume()
    assert volume.modality == "CT" and volume.array.dtype == np.int16
    assert np.allclose(np.abs(np.linalg.det(volume.direction)), 1.0)
    originals = case.original_names()
    assert len(originals) == 28
    first = next(p for p in sorted(head.iterdir()) if p.is_file() and p.suffix != ".txt")
    assert first.read_bytes() in [case.load_original(name) for name in originals]
    facts = case.series_facts()
    assert any("tilt" in w.lower() for w in facts["warnings"])
    assert "patient_id" not in json.dumps(facts)
    rec = _records(tess)[-1]
    assert rec["action"] == "case.import" and rec["case"] == case.pseudonym
    assert rec["user"] == "tess" and rec["facts"]["slices"] == 28
    assert rec["facts"]["modality"] == "CT" and rec["facts"]["shape"] == list(volume.shape)
    assert entry.identity["patient_id"] not in json.dumps(_records(tess))


def test_cancelled_import_leaves_no_case_and_a_retry_gives_one(people, head):
    tess = people["tess"]
    token = CancelToken()

    def cancel_late(fraction: float, _message: str) -> None:
        if fraction > 0.7:  # while the originals are being stored
            token.cancel()

    with pytest.raises(Cancelled):
        intake.import_path(tess, str(head), progress=Progress(cancel_late), cancel=token)
    assert tess.vault.list_cases() == []
    assert not list((tess.paths.vault / "cases").glob("*/*"))
    intake.import_path(tess, str(head))
    assert len(tess.vault.list_cases()) == 1


@pytest.mark.parametrize("who", ["rafael", "nemo"])
def test_import_is_refused_without_a_maker_role(people, head, who):
    with pytest.raises(AccessDenied, match="administrator or technician role"):
        intake.import_path(people[who], str(head))
    _denied(people[who], "case.import")
    assert people[who].vault.list_cases() == []


def test_scan_and_preview_need_no_vault(data_dir, head):
    actor = Actor.current()
    result = intake.scan(actor, [str(head)])
    assert [s.slice_count for s in result.series] == [28]
    shown = intake.preview(actor, [str(head)], size=32)
    (series,) = shown.result.series
    thumb = shown.thumbnails[series.key]
    assert thumb.dtype == np.uint8 and max(thumb.shape) <= 32 and thumb.std() > 5
    assert not (data_dir / "vault").exists()


@pytest.mark.parametrize("who", ["tess", "rafael", "ada"])
def test_open_and_load_are_audited_for_every_role(people, sphere_case, who):
    actor = people[who]
    case = intake.open_case(actor, sphere_case.pseudonym)
    assert case.pseudonym == sphere_case.pseudonym
    rec = _records(actor)[-1]
    assert (rec["action"], rec["case"], rec["user"]) == ("case.open", case.pseudonym, who)
    loaded = intake.load_case(actor, sphere_case.pseudonym)
    assert loaded.volume.shape == (48, 48, 48) and loaded.segmentation is None
    assert _records(actor)[-1]["facts"]["shape"] == [48, 48, 48]


def test_load_shows_the_stored_preview_before_the_full_image(admin):
    volume = Volume(np.arange(600 * 40 * 30, dtype=np.int16).reshape(600, 40, 30),
                    origin=(1.0, 2.0, 3.0), spacing=(0.5, 0.6, 0.7), modality="CT")  # fmt: skip
    case = Case(admin.vault, admin.vault.create_case({}))
    case.save_volume(volume)
    shown: list[Volume] = []
    loaded = intake.load_case(admin, case.pseudonym, preview=shown.append)
    (preview,) = shown
    assert preview.shape == (200, 40, 30)  # every 3rd slice: at most 256 a side
    assert np.allclose(preview.spacing, (0.5, 0.6, 2.1)) and preview.origin == volume.origin
    assert np.array_equal(preview.array, volume.array[::3])
    assert np.array_equal(loaded.volume.array, volume.array)


def test_a_case_without_a_preview_opens_and_gets_one(admin, sphere_case):
    path = admin.vault.root / "cases" / sphere_case.pseudonym / PREVIEW_FILE
    path.unlink()  # as stored before previews
    shown: list[Volume] = []
    loaded = intake.load_case(admin, sphere_case.pseudonym, preview=shown.append)
    assert shown == [] and loaded.volume.shape == (48, 48, 48)
    assert path.exists() and sphere_case.load_preview().shape == (48, 48, 48)


def test_loading_the_image_can_be_cancelled_part_way(admin, sphere_case, monkeypatch):
    monkeypatch.setattr("app.imaging.volume._READ_STEP", 4096)  # 54 steps for the sphere
    token = CancelToken()
    steps: list[float] = []

    def progress(fraction: float, _message: str) -> None:
        steps.append(fraction)
        if fraction > 0.2:
            token.cancel()

    with pytest.raises(Cancelled):
        intake.load_case(admin, sphere_case.pseudonym, progress=Progress(progress), cancel=token)
    assert 0.2 < max(steps) < 0.3


def test_open_is_refused_without_a_role_and_a_missing_case_is_named(people, sphere_case):
    with pytest.raises(AccessDenied):
        intake.load_case(people["nemo"], sphere_case.pseudonym)
    _denied(people["nemo"], "case.open")
    with pytest.raises(VaultError, match="no case C-ZZZZ-ZZ"):
        intake.load_case(people["tess"], "C-ZZZZ-ZZ")


def test_view_state_is_kept_with_the_case(people, sphere_case):
    case = intake.open_case(people["rafael"], sphere_case.pseudonym)
    intake.save_view(people["rafael"], case, {"layout": "axial", "window": [400, 40]})
    assert sphere_case.view_state() == {"layout": "axial", "window": [400, 40]}


def test_case_list_hides_identity_unless_asked_and_audits_showing_it(people, sphere_case):
    tess = people["tess"]
    (entry,) = intake.list_cases(tess)
    assert entry.pseudonym == sphere_case.pseudonym and entry.identity == {}
    assert [e.pseudonym for e in intake.list_cases(tess, "jane")] == [sphere_case.pseudonym]
    assert intake.list_cases(tess, "nobody-like-this") == []
    assert "cases.identity_shown" not in [r["action"] for r in _records(tess)]
    (shown,) = intake.list_cases(tess, with_identity=True)
    assert shown.identity == {"PatientName": "DOE^JANE"}
    rec = _records(tess)[-1]
    assert rec["action"] == "cases.identity_shown" and rec["facts"] == {"count": 1}
    assert "JANE" not in json.dumps(_records(tess))
    with pytest.raises(AccessDenied):
        intake.list_cases(people["nemo"], with_identity=True)
    _denied(people["nemo"], "case.list")


@pytest.mark.parametrize("who", ["tess", "rafael", "nemo"])
def test_only_an_administrator_deletes_a_case(people, sphere_case, who):
    with pytest.raises(AccessDenied, match="administrator role"):
        intake.delete_case(people[who], sphere_case.pseudonym)
    _denied(people[who], "case.delete")
    assert [e.pseudonym for e in intake.list_cases(people["ada"])] == [sphere_case.pseudonym]


def test_administrator_deletes_a_case_for_good(people, sphere_case):
    ada = people["ada"]
    intake.delete_case(ada, sphere_case.pseudonym)
    rec = _records(ada)[-1]
    assert (rec["action"], rec["case"], rec["user"]) == (
        "case.delete",
        sphere_case.pseudonym,
        "ada",
    )
    assert intake.list_cases(ada) == []
    assert not (ada.paths.vault / "cases" / sphere_case.pseudonym).exists()
    with pytest.raises(VaultError, match="not in this vault"):
        intake.delete_case(ada, sphere_case.pseudonym)


def _three_slices(head: Path, folder: Path) -> Path:
    folder.mkdir()
    for path in sorted(p for p in head.iterdir() if p.suffix != ".txt")[:3]:
        shutil.copy(path, folder / path.name)
    return folder


def test_deidentify_keeps_the_uid_map_in_the_vault_and_audits(people, head, tmp_path):
    tess = people["tess"]
    source = _three_slices(head, tmp_path / "in")
    done = intake.deidentify(tess, source, tmp_path / "out", DeidOptions(), pseudonym="C-RES-01")
    assert len(done.report.written) == 3 and done.uid_map_in_vault
    assert done.codes == ["113100"]
    uid_map = json.loads(tess.vault.get_record(intake.UID_MAP_RECORD))
    assert len(uid_map) >= 5  # study, series, frame of reference, three instances
    rec = _records(tess)[-1]
    assert rec["action"] == "deid.export" and rec["case"] == "C-RES-01"
    assert rec["facts"]["files"] == 3 and rec["facts"]["uid_map_in_vault"] is True
    log = json.dumps(_records(tess))
    assert not any(uid in log for uid in uid_map)


def test_deidentify_is_refused_to_a_reviewer_and_writes_nothing(people, head, tmp_path):
    source = _three_slices(head, tmp_path / "in")
    with pytest.raises(AccessDenied):
        intake.deidentify(people["rafael"], source, tmp_path / "out", DeidOptions())
    _denied(people["rafael"], "deid")
    assert not (tmp_path / "out").exists()


def test_sample_case_is_imported_once(admin):
    if not intake.sample_available():
        pytest.skip("the bundled sample is produced by scripts/make_sample.py")
    first = intake.open_sample(admin)
    again = intake.load_sample(admin)
    assert again.case.pseudonym == first.pseudonym
    assert [e.pseudonym for e in intake.list_cases(admin)] == [first.pseudonym]
    assert again.volume.modality == "CT" and (again.volume.array > 300).any()
    opened = [r for r in _records(admin) if r["action"] == "case.open"]
    assert len(opened) == 2 and all(r["facts"]["sample"] for r in opened)
