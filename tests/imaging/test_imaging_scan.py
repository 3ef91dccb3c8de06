"""Scanning: grouping, DICOMDIR, identity kept out of the JSON, thumbnails, the CLI."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest

from app.cli import main
from app.imaging.grouping import JSON_FORMAT
from app.imaging.load import load_image_file, load_series
from app.imaging.scan import scan
from app.imaging.thumbnail import thumbnail


def test_scan_groups_the_tcia_ct_and_lists_the_text_files(dicom_dir: Path) -> None:
    result = scan(dicom_dir / "ct-abdomen-tcia-pancreas-134")
    assert len(result.patients) == 1 and len(result.series) == 1
    series = result.series[0]
    assert series.modality == "CT"
    assert series.slice_count == 134 and len(series.sources) == 134
    assert (series.rows, series.columns) == (512, 512)
    assert series.spacing == pytest.approx((1.07421875, 1.07421875, 3.0))
    assert series.thickness == pytest.approx(3.0)
    assert {r.reason for r in result.rejected} == {"not a DICOM file"}
    assert sorted(Path(r.file).name for r in result.rejected) == [
        "CITATION.txt",
        "LICENSE.TCIA.txt",
        "SOURCE.txt",
    ]
    identity = series.identity
    assert identity["patient_id"] == "Pancreas-CT-CB_001"
    assert set(identity) >= {
        "patient_name",
        "patient_id",
        "birth_date",
        "sex",
        "study_date",
        "study_description",
        "series_description",
        "institution",
    }


def test_json_is_stable_and_carries_no_identity_unless_asked(dicom_dir: Path) -> None:
    folders = [
        dicom_dir / "ct-head-ge-gantry-tilt-28",
        dicom_dir / "mr-brain-t1-sagittal-philips-170",
    ]
    first = scan(folders)
    text = json.dumps(first.to_json(), sort_keys=True)
    assert text == json.dumps(scan(folders).to_json(), sort_keys=True)
    data = json.loads(text)
    assert data["format"] == JSON_FORMAT
    assert data["summary"]["series"] == 2
    for series in first.series:
        for key in (
            "patient_name",
            "patient_id",
            "birth_date",
            "study_date",
            "series_instance_uid",
            "study_instance_uid",
            "institution",
        ):
            value = series.identity[key]
            if len(value) > 3:
                assert value not in text, key
    with_identity = json.dumps(first.to_json(identity=True))
    assert first.series[0].series_uid in with_identity
    keys = [s["key"] for p in data["patients"] for st in p["studies"] for s in st["series"]]
    assert first.find(keys[0]).key == keys[0]
    assert first.find(first.series[1].series_uid) is first.series[1]


def test_a_dicomdir_alone_brings_in_the_files_it_references(dicom_dir: Path) -> None:
    folder = dicom_dir / "odd" / "pydicom-wheel-test_files" / "dicomdirtests"
    result = scan(folder / "DICOMDIR")
    assert result.dicomdirs == [str(folder / "DICOMDIR")]
    sources = {src.path for s in result.series for src in s.sources}
    assert len(sources) > 30
    assert all(Path(p).is_relative_to(folder) for p in sources)
    assert {p.key for p in result.patients} == {"P1", "P2"}


def test_a_dicomdir_reports_files_missing_from_the_media(dicom_dir: Path) -> None:
    result = scan(dicom_dir / "odd" / "nema-wg04-compsamples" / "DICOMDIR")
    reasons = [r.reason for r in result.rejected if r.file.endswith("DICOMDIR")]
    assert len(reasons) == 1 and "not on the media" in reasons[0]
    assert len(result.series) >= 3


def test_dicomdir_references_resolve_case_insensitively(dicom_dir: Path, tmp_path: Path) -> None:
    source = dicom_dir / "odd" / "pydicom-wheel-test_files" / "dicomdirtests"
    target = tmp_path / "cd"
    shutil.copytree(source, target)
    for path in sorted(target.rglob("*"), key=lambda p: -len(p.parts)):
        if path.name != "DICOMDIR" and path.name != path.name.lower():
            path.rename(path.with_name(path.name.lower()))
    result = scan(target / "DICOMDIR")
    assert sum(s.slice_count for s in result.series) == sum(
        s.slice_count for s in scan(source / "DICOMDIR").series
    )


def test_copies_of_one_slice_keep_the_uncompressed_encoding(dicom_dir: Path) -> None:
    root = dicom_dir / "odd" / "nema-wg04-compsamples" / "IMAGES"
    result = scan(root)
    ct1 = next(s for s in result.series if any(src.path.endswith("CT1_J2KI") for src in s.sources))
    assert any("share a position" in note for note in ct1.notes)
    volume = load_series(ct1)
    assert volume.shape[0] == 1
    assert any("already-used position" in w for w in volume.warnings)
    reference = load_series(root / "REF" / "CT1_UNC")
    assert np.array_equal(volume.array, reference.array)


def test_thumbnail_is_a_small_uint8_image_of_the_middle_slice(dicom_dir: Path) -> None:
    series = scan(dicom_dir / "ct-abdomen-tcia-pancreas-134").series[0]
    thumb = thumbnail(series)
    assert thumb.dtype == np.uint8 and max(thumb.shape) <= 128 and min(thumb.shape) >= 64
    assert thumb.std() > 20  # anatomy, not a flat image
    assert thumbnail(series) is thumb


def test_cli_scan_json_and_text(dicom_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = dicom_dir / "ct-head-ge-gantry-tilt-28"
    assert main(["scan", str(folder), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["summary"]["series"] == 1
    series = data["patients"][0]["studies"][0]["series"][0]
    assert series["slices"] == 28 and series["modality"] == "CT"
    assert any("gantry tilt" in n for n in series["notes"])
    assert main(["scan", str(folder)]) == 0
    text = capsys.readouterr().out
    assert series["key"] in text and "REMOVED" not in text


def test_cli_convert_writes_the_corrected_volume(
    dicom_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = dicom_dir / "ct-head-ge-gantry-tilt-28"
    key = scan(folder).series[0].key
    out = tmp_path / "head.nrrd"
    assert main(["convert", str(folder), str(out), "--series", key]) == 0
    assert "gantry tilt" in capsys.readouterr().out
    written = load_image_file(out)
    direct = load_series(folder)
    assert written.same_grid(direct, tol=1e-4)
    assert np.array_equal(written.array, direct.array)
    assert main(["convert", str(folder), str(tmp_path / "x.stl")]) == 2
    assert main(["convert", str(folder), str(tmp_path / "y.nrrd"), "--series", "nope"]) == 2


def test_identity_fields_read_from_the_header(dicom_dir: Path) -> None:
    folder = dicom_dir / "mr-brain-t1-sagittal-philips-170"
    series = scan(folder).series[0]
    ds = pydicom.dcmread(sorted(folder.glob("*.dcm"))[0], stop_before_pixels=True)
    assert series.identity["birth_date"] == str(ds.get("PatientBirthDate", ""))
    assert series.identity["sex"] == str(ds.get("PatientSex", ""))
    assert series.identity["series_instance_uid"] == ds.SeriesInstanceUID


def test_unreadable_and_missing_paths_are_listed_not_fatal(tmp_path: Path) -> None:
    import os

    locked = tmp_path / "locked.dcm"
    locked.write_bytes(b"\0" * 128 + b"DICM")
    locked.chmod(0)
    try:
        result = scan([tmp_path, tmp_path / "absent"])
    finally:
        locked.chmod(0o600)
    reasons = {Path(r.file).name: r.reason for r in result.rejected}
    assert reasons["absent"] == "does not exist"
    if os.geteuid() != 0:  # root reads anything
        assert reasons["locked.dcm"].startswith("cannot be read")
    assert result.series == []


@pytest.mark.filterwarnings("ignore:Invalid value for VR CS")  # the test writes '..' on purpose
def test_a_dicomdir_cannot_point_outside_its_folder(dicom_dir: Path, tmp_path: Path) -> None:
    source = dicom_dir / "odd" / "pydicom-wheel-test_files" / "dicomdirtests" / "DICOMDIR"
    media = tmp_path / "media"
    media.mkdir()
    shutil.copy(dicom_dir / "ct-abdomen-tcia-pancreas-134" / "1-001.dcm", tmp_path / "outside.dcm")
    ds = pydicom.dcmread(source)
    for record in ds.DirectoryRecordSequence:
        if "ReferencedFileID" in record:
            record.ReferencedFileID = ["..", "outside.dcm"]
    ds.save_as(media / "DICOMDIR")
    result = scan(media / "DICOMDIR")
    assert result.series == []
    assert any("not on the media" in r.reason for r in result.rejected)


def test_a_scout_in_the_same_series_becomes_its_own_stack(dicom_dir: Path, tmp_path: Path) -> None:
    source = dicom_dir / "ct-abdomen-tcia-pancreas-134"
    for n in (1, 2, 3):
        shutil.copy(source / f"1-00{n}.dcm", tmp_path / f"ax{n}.dcm")
    scout = pydicom.dcmread(source / "1-004.dcm")
    scout.ImageOrientationPatient = [0, 1, 0, 0, 0, -1]  # sagittal localizer
    scout.ImageType = ["ORIGINAL", "PRIMARY", "LOCALIZER"]
    scout.SOPInstanceUID = pydicom.uid.generate_uid()
    scout.save_as(tmp_path / "scout.dcm")
    result = scan(tmp_path)
    assert sorted(s.slice_count for s in result.series) == [1, 3]
    assert len({s.series_uid for s in result.series}) == 1
    axial = next(s for s in result.series if s.slice_count == 3)
    volume = load_series(axial)
    assert volume.warnings == [] and volume.shape == (3, 512, 512)
