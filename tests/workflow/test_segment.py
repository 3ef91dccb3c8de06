"""Segment use cases headless: tools, strokes, derived segments, save, import and export, each
checked by role and audited without patient data."""

from __future__ import annotations

import json

import numpy as np
import pydicom
import pytest

from app.errors import AccessDenied, SegmentationError
from app.security import audit
from app.tools.segmentation import exchange
from app.workflow import intake, segment

from .conftest import sphere_volume

ABDOMEN = "ct-abdomen-tcia-pancreas-134"


def records(actor, action: str) -> list[dict]:
    return [r for r in audit.read_records(actor.paths) if r["action"] == action]


def sphere_ml(radius_mm: float = 12.0) -> float:
    return 4 / 3 * np.pi * radius_mm**3 / 1000


def test_bone_tool_on_the_sphere_saved_reloaded_and_audited(people, sphere_case):
    tess = people["tess"]
    case = intake.open_case(tess, sphere_case.pseudonym)
    volume = case.load_volume()
    assert segment.load(tess, case, volume) is None
    seg = segment.new(volume)
    result = segment.run_tool(
        tess, case, seg, volume, "bone", params={"remove_couch": False, "keep_largest": 1}
    )
    assert result.changed_voxels > 0
    [stats] = seg.statistics(volume)
    assert stats.volume_ml == pytest.approx(sphere_ml(), rel=0.05)
    segment.save(tess, case, seg)

    again = segment.load(tess, intake.open_case(tess, case.pseudonym), volume)
    assert [s.name for s in again.segments] == [s.name for s in seg.segments]
    assert np.array_equal(again.labels, seg.labels)

    [applied] = records(tess, "segmentation.apply")
    assert applied["user"] == "tess" and applied["case"] == case.pseudonym
    assert applied["facts"]["tool"] == "bone"
    assert json.loads(applied["facts"]["params"])["keep_largest"] == 1
    [saved] = records(tess, "segmentation.save")
    assert saved["facts"] == {
        "segments": 1,
        "voxels": stats.voxels,
        "sha256": case.segmentation_sha256(),
    }
    log = b"".join(f.read_bytes() for f in tess.paths.audit.iterdir() if f.is_file())
    assert b"JANE" not in log  # the patient name stays in the vault's index


@pytest.mark.parametrize("who", ["rafael", "nemo"])
def test_only_makers_segment_save_and_export(people, sphere_case, who, tmp_path):
    actor = people[who]
    volume = sphere_case.load_volume()
    seg = segment.new(volume)
    with pytest.raises(AccessDenied, match="segment"):
        segment.run_tool(actor, sphere_case, seg, volume, "bone")
    assert not seg.segments  # refused before anything changed
    seg.add_segment("bone")
    with pytest.raises(AccessDenied):
        segment.save(actor, sphere_case, seg)
    with pytest.raises(AccessDenied):
        segment.export_file(actor, sphere_case, seg, tmp_path / "x.seg.nrrd")
    assert not sphere_case.has_segmentation()
    assert not (tmp_path / "x.seg.nrrd").exists()
    denied = records(actor, "access.denied")
    assert [r["facts"]["attempted"] for r in denied] == ["segment", "segment", "segment.export"]
    assert all(r["user"] == who and r["case"] == sphere_case.pseudonym for r in denied)
    assert not records(actor, "segmentation.apply") and not records(actor, "segmentation.save")


def test_administrator_may_segment_too(people, sphere_case):
    ada = people["ada"]
    volume = sphere_case.load_volume()
    seg = segment.new(volume)
    segment.run_tool(ada, sphere_case, seg, volume, "threshold", params={"preset": "bone"})
    segment.save(ada, sphere_case, seg)
    assert records(ada, "segmentation.save")[0]["user"] == "ada"


def test_brush_stroke_and_derived_segment_are_audited(people, sphere_case):
    tess = people["tess"]
    volume = sphere_case.load_volume()
    seg = segment.new(volume)
    seg.add_segment("marks")
    segment.begin_stroke(tess, sphere_case, seg)
    from app.tools.segmentation import get_tool

    paint = get_tool("paint")
    paint.apply(seg, volume, paint.default_params(segment="marks", points=[(24, 24, 24)]))
    segment.end_stroke(tess, sphere_case, seg, segment="marks", radius_mm=5.0, erase=False)
    assert seg.voxel_count("marks") > 0 and seg.history.undo_description

    mask = sphere_volume().array > 0
    part = segment.add_segment_from_mask(tess, sphere_case, seg, "sphere", mask, colour=(1, 0, 0))
    assert part.name == "sphere" and seg.voxel_count("sphere") == int(mask.sum())
    tools = [r["facts"]["tool"] for r in records(tess, "segmentation.apply")]
    assert tools == ["paint", "mask"]
    with pytest.raises(SegmentationError, match="grid"):
        segment.add_segment_from_mask(tess, sphere_case, seg, "bad", mask[:-1])
    with pytest.raises(AccessDenied):
        segment.begin_stroke(people["rafael"], sphere_case, seg)


def test_import_and_export_round_trip_audited_without_the_path(people, sphere_case, tmp_path):
    tess = people["tess"]
    volume = sphere_case.load_volume()
    seg = segment.new(volume)
    segment.run_tool(tess, sphere_case, seg, volume, "threshold", params={"preset": "bone"})
    for name in ("secret-folder-name.seg.nrrd", "labels.nii.gz"):
        out = segment.export_file(tess, sphere_case, seg, tmp_path / name)
        assert out.path.is_file() and out.format == exchange.format_of(name)
        back = segment.import_file(tess, sphere_case, out.path, volume)
        assert np.array_equal(back.mask(back.segments[0]), seg.mask("bone"))
    exports = records(tess, "segmentation.export")
    assert [r["facts"]["format"] for r in exports] == ["seg.nrrd", "nifti"]
    assert exports[0]["facts"]["sha256"] == exchange_sha(tmp_path / "secret-folder-name.seg.nrrd")
    assert "secret-folder-name" not in json.dumps(audit.read_records(tess.paths))
    assert [r["facts"]["format"] for r in records(tess, "segmentation.import")] == [
        "seg.nrrd",
        "nifti",
    ]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp left
    with pytest.raises(SegmentationError, match="keeps no original DICOM"):
        segment.export_file(tess, sphere_case, seg, tmp_path / "seg.dcm")
    with pytest.raises(SegmentationError, match="segmentation file name"):
        segment.export_file(tess, sphere_case, seg, tmp_path / "seg.txt")


def exchange_sha(path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_without_a_case_nothing_is_checked_or_recorded(admin, tmp_path):
    volume = sphere_volume()
    seg = segment.new(volume)
    segment.run_tool(None, None, seg, volume, "threshold", params={"preset": "bone"})
    out = segment.export_file(None, None, seg, tmp_path / "s.seg.nrrd")
    assert segment.import_file(None, None, out.path, volume).segments[0].name == "bone"
    actions = {r["action"] for r in audit.read_records(admin.paths)}
    assert not actions & {"segmentation.apply", "segmentation.export", "segmentation.import"}
    with pytest.raises(SegmentationError, match="case"):
        segment.export_file(None, None, seg, tmp_path / "s.dcm")


@pytest.fixture
def abdomen_case(people, dicom_dir):
    return intake.import_path(people["tess"], str(dicom_dir / ABDOMEN))


def test_dicom_seg_export_is_deidentified_unless_an_administrator_asks(
    people, abdomen_case, dicom_dir, tmp_path
):
    tess, ada = people["tess"], people["ada"]
    source = pydicom.dcmread(next((dicom_dir / ABDOMEN).glob("*.dcm")), stop_before_pixels=True)
    volume = abdomen_case.load_volume()
    seg = segment.new(volume)
    segment.run_tool(tess, abdomen_case, seg, volume, "threshold", params={"preset": "bone"})

    out = segment.export_file(tess, abdomen_case, seg, tmp_path / "bone.dcm")
    ds = pydicom.dcmread(out.path)
    assert ds.Modality == "SEG"
    assert str(ds.PatientName) == abdomen_case.pseudonym != str(source.PatientName)
    assert ds.PatientID == abdomen_case.pseudonym != source.PatientID
    assert not ds.get("PatientBirthDate") and ds.PatientIdentityRemoved == "YES"
    assert ds.StudyInstanceUID != source.StudyInstanceUID
    back = segment.import_file(tess, abdomen_case, out.path, volume)
    assert np.array_equal(back.mask(back.segments[0]), seg.mask("bone"))

    with pytest.raises(AccessDenied):
        segment.export_file(tess, abdomen_case, seg, tmp_path / "named.dcm", identified=True)
    named = segment.export_file(ada, abdomen_case, seg, tmp_path / "named.dcm", identified=True)
    assert str(pydicom.dcmread(named.path).PatientName) == str(source.PatientName)
    exports = records(tess, "segmentation.export")
    assert [(r["user"], r["facts"]["identified"]) for r in exports] == [
        ("tess", False),
        ("ada", True),
    ]
    assert exports[0]["facts"]["sha256"] == out.sha256
    assert records(tess, "access.denied")[-1]["facts"]["attempted"] == "segment.export_identified"


def test_a_dicom_seg_header_naming_the_patient_is_never_written(
    people, abdomen_case, monkeypatch, tmp_path
):
    import app.security.deid

    tess = people["tess"]
    volume = abdomen_case.load_volume()
    seg = segment.new(volume)
    segment.run_tool(tess, abdomen_case, seg, volume, "threshold", {"preset": "bone"})
    monkeypatch.setattr(app.security.deid, "deidentify", lambda ds, **_: ds)  # a broken profile
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(SegmentationError, match=r"patient_id, patient_name.*nothing was exported"):
        segment.export_file(tess, abdomen_case, seg, out / "bone.dcm")
    assert list(out.iterdir()) == []
    assert not records(tess, "segmentation.export")
