"""De-identification (PS3.15 Annex E) on real CT/MR files with planted identifiers.

Marker strings are planted in every identifying attribute, in sequences nested three deep, in
private blocks and in the file meta of real slices; after ``deid_folder`` none may appear in any
output byte, and the output must load with the same pixels and geometry.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, RLELossless, UltrasoundImageStorage

from app.imaging.deface import deface, deface_mask
from app.imaging.volume import Volume
from app.security import deid
from app.security.deid import (
    BurnedInAnnotationBlocked,
    DeidOptions,
    IdentifierLeak,
    Profile,
    Rect,
    batch,
    burned_in_risk,
    deid_folder,
    deidentify,
    load_table,
    mask_rectangles,
    remap_uid,
)

KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))
UID_ROOT = "1.2.826.0.1.3680043.10.54321"
TEXT = {
    "PatientName": "MKRPATNAME^MKRGIVEN",
    "PatientID": "MKRPATID01",
    "OtherPatientIDs": "MKROTHERID",
    "OtherPatientNames": "MKROTHERNAME^X",
    "PatientBirthName": "MKRBIRTHNAME",
    "PatientMotherBirthName": "MKRMOTHER",
    "PatientAddress": "MKRADDRESS STREET 1",
    "PatientTelephoneNumbers": "MKRPHONE555",
    "MilitaryRank": "MKRRANK",
    "Occupation": "MKROCCUP",
    "AdditionalPatientHistory": "MKRHISTORY",
    "PatientComments": "MKRPATCOMMENT",
    "InstitutionName": "MKRINSTITUTION",
    "InstitutionAddress": "MKRINSTADDRESS",
    "InstitutionalDepartmentName": "MKRDEPARTMENT",
    "ReferringPhysicianName": "MKRREFERRING^DR",
    "PerformingPhysicianName": "MKRPERFORMING^DR",
    "PhysiciansOfRecord": "MKRRECORD^DR",
    "NameOfPhysiciansReadingStudy": "MKRREADING^DR",
    "OperatorsName": "MKROPERATOR^X",
    "RequestingPhysician": "MKRREQUESTING^DR",
    "AccessionNumber": "MKRACCESSION",
    "StudyID": "MKRSTUDYID",
    "StudyDescription": "MKRSTUDYDESC",
    "SeriesDescription": "MKRSERIESDESC",
    "ProtocolName": "MKRPROTOCOL",
    "ImageComments": "MKRIMAGECOMMENT",
    "StationName": "MKRSTATION",
    "DeviceSerialNumber": "MKRSERIAL",
    "RequestedProcedureDescription": "MKRREQPROC",
    "PerformedProcedureStepDescription": "MKRPPSDESC",
}
DATES = {
    "PatientBirthDate": "18230917",
    "StudyDate": "18330918",
    "SeriesDate": "18430919",
    "AcquisitionDate": "18530920",
    "ContentDate": "18630921",
}
TIMES = {
    "StudyTime": "071931.482915",
    "SeriesTime": "081931.482916",
    "AcquisitionTime": "091931.482917",
    "ContentTime": "101931.482918",
}
DATETIMES = {"AcquisitionDateTime": "18730922101010.123456"}
NESTED = {
    "RequestedProcedureID": "MKRREQPROCID",
    "ScheduledProcedureStepID": "MKRSPSID",
    "deep_institution": "MKRDEEPINST",
    "deep_physician": "MKRDEEPDOC^X",
    "deep_date": "18930924",
    "private": "MKRPRIVATEVAL",
    "private_creator": "MKRCREATOR",
    "private_nested": "MKRPRIVNESTED^X",
    "meta_ae": "MKRSRCAE",
}


def all_markers() -> list[str]:
    values = [*TEXT.values(), *DATES.values(), *TIMES.values(), *DATETIMES.values()]
    values += list(NESTED.values())
    values += [p for v in TEXT.values() for p in v.split("^") if len(p) > 3]
    return [*values, UID_ROOT]


def plant(ds: Dataset, index: int) -> None:
    """Put a marker in every identifying attribute of ``ds`` (slice ``index`` of a series)."""
    for keyword, value in {**TEXT, **DATES, **TIMES, **DATETIMES}.items():
        setattr(ds, keyword, value)
    ds.StudyInstanceUID = f"{UID_ROOT}.1"
    ds.SeriesInstanceUID = f"{UID_ROOT}.2"
    ds.FrameOfReferenceUID = f"{UID_ROOT}.4"
    ds.SOPInstanceUID = f"{UID_ROOT}.3.{index}"
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.SourceApplicationEntityTitle = NESTED["meta_ae"]
    # Removed sequences (ReferencedStudySequence X/Z, RequestAttributesSequence X).
    ref_study = Dataset()
    ref_study.ReferencedSOPClassUID = "1.2.840.10008.3.1.2.3.1"
    ref_study.ReferencedSOPInstanceUID = f"{UID_ROOT}.9.{index}"
    ds.ReferencedStudySequence = Sequence([ref_study])
    request = Dataset()
    request.RequestedProcedureID = NESTED["RequestedProcedureID"]
    request.ScheduledProcedureStepID = NESTED["ScheduledProcedureStepID"]
    request.ReferencedStudySequence = Sequence([ref_study])
    ds.RequestAttributesSequence = Sequence([request])
    # A kept chain three levels deep, with identifiers at the bottom.
    deep = Dataset()
    deep.CodeValue = "121311"
    deep.CodingSchemeDesignator = "DCM"
    deep.CodeMeaning = "Localizer"
    deep.InstitutionName = NESTED["deep_institution"]
    deep.ReferringPhysicianName = NESTED["deep_physician"]
    deep.StudyDate = NESTED["deep_date"]
    deep.add_new(0x00310010, "LO", NESTED["private_creator"])
    deep.add_new(0x00311001, "LO", NESTED["private"])
    instance = Dataset()
    instance.ReferencedSOPClassUID = ds.SOPClassUID
    instance.ReferencedSOPInstanceUID = f"{UID_ROOT}.3.{index + 1}"
    instance.PurposeOfReferenceCodeSequence = Sequence([deep])
    series = Dataset()
    series.SeriesInstanceUID = f"{UID_ROOT}.2"
    series.ReferencedInstanceSequence = Sequence([instance])
    ds.ReferencedSeriesSequence = Sequence([series])
    # Private blocks: a value and a private sequence holding a name.
    ds.add_new(0x00290010, "LO", NESTED["private_creator"])
    ds.add_new(0x00291010, "LO", NESTED["private"])
    inner = Dataset()
    inner.PatientName = NESTED["private_nested"]
    ds.add_new(0x00291020, "SQ", Sequence([inner]))


def planted_copy(src_files: list[Path], folder: Path) -> list[Path]:
    folder.mkdir(parents=True)
    out = []
    for index, src in enumerate(src_files):
        ds = pydicom.dcmread(src)
        plant(ds, index)
        path = folder / f"in{index:03d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        out.append(path)
    return out


def dicom_files(folder: Path, count: int, start: int = 0) -> list[Path]:
    files = sorted(p for p in folder.iterdir() if p.suffix == ".dcm")
    return files[start : start + count]


def output_files(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*.dcm"))


def by_instance(files: list[Path]) -> list[pydicom.Dataset]:
    datasets = [pydicom.dcmread(f) for f in files]
    return sorted(datasets, key=lambda d: int(d.InstanceNumber))


# --------------------------------------------------------------------------- the table


def test_table_is_the_whole_standard_table() -> None:
    rows = load_table()
    by_tag = {r.tag: r for r in rows}
    assert len(rows) == 647
    assert len(by_tag) == 647
    codes = {r.actions["basic"] for r in rows}
    assert codes == {"D", "Z", "X", "U", "Z/D", "X/Z", "X/D", "X/Z/D", "X/Z/U*"}
    assert by_tag["(0010,0010)"].actions["basic"] == "Z"
    assert by_tag["(0010,0020)"].actions["basic"] == "Z/D"
    assert by_tag["(0020,000D)"].actions | {} == by_tag["(0020,000D)"].actions
    assert by_tag["(0020,000D)"].actions["basic"] == "U"
    assert by_tag["(0020,000D)"].actions["retain_uids"] == "K"
    study_date = by_tag["(0008,0020)"].actions
    assert (study_date["basic"], study_date["retain_long_full_dates"]) == ("Z", "K")
    assert study_date["retain_long_modified_dates"] == "C"
    assert by_tag["(0018,1000)"].actions["basic"] == "X/Z/D"
    assert by_tag["(0018,1000)"].actions["retain_device_identity"] == "K"
    assert by_tag["(0008,1030)"].actions["clean_descriptors"] == "C"
    assert by_tag["(0008,0080)"].actions["retain_institution_identity"] == "K"
    assert by_tag["(0008,1140)"].actions["basic"] == "X/Z/U*"
    assert by_tag["(50xx,xxxx)"].actions["basic"] == "X"
    assert by_tag["(50xx,xxxx)"].actions["clean_graphics"] == "C"
    assert by_tag["(60xx,4000)"].name == "Overlay Comments"
    assert by_tag["(60xx,3000)"].actions["basic"] == "X"
    assert by_tag["(gggg,eeee)"].actions["retain_safe_private"] == "C"
    assert by_tag["(0010,0011)"].name == "Person Names to Use Sequence"
    assert sum(r.actions["basic"] == "U" for r in rows) == 55


def test_profile_applies_the_options() -> None:
    basic = Profile(DeidOptions())
    dates = Profile(DeidOptions(retain_longitudinal_temporal=True))
    device = Profile(DeidOptions(retain_device_identity=True))
    described = Profile(DeidOptions(clean_descriptors=True))
    tag = pydicom.tag.Tag
    assert basic.action(tag("StudyDate"), "DA") == "Z"
    assert dates.action(tag("StudyDate"), "DA") == "C"
    assert basic.action(tag("DeviceSerialNumber"), "LO") == "D"  # Type 1 in enhanced IODs
    assert device.action(tag("DeviceSerialNumber"), "LO") == "K"
    assert basic.action(tag("StationName"), "SH") == "X"
    assert basic.action(tag("SeriesDescription"), "LO") == "X"
    assert described.action(tag("SeriesDescription"), "LO") == "C"
    assert basic.action(tag("ContentDate"), "DA") == "D"
    assert basic.action(tag("SourceImageSequence"), "SQ") == "U"
    assert basic.action(tag(0x60024000), "LT") == "X"
    assert basic.action(tag(0x50100030), "SH") == "X"
    assert basic.action(tag(0x00291010), "LO") == "X"  # private
    assert basic.action(tag("Modality"), "CS") == "K"
    assert basic.action(tag("ReferencedSOPClassUID"), "UI") == "U"  # unlisted UI: remapped,
    assert remap_uid("1.2.840.10008.5.1.4.1.1.2", KEY) == "1.2.840.10008.5.1.4.1.1.2"  # not root
    assert basic.action(tag("DateOfLastCalibration"), "DA") == "X"


def test_uid_remap_is_keyed_and_deterministic() -> None:
    uid = "1.3.12.2.1107.5.1.4.1234.30000012345678901234567890123"
    first, again, other = remap_uid(uid, KEY), remap_uid(uid, KEY), remap_uid(uid, OTHER_KEY)
    assert first == again != other
    assert first.startswith("2.25.") and len(first) <= 64
    assert int(first[5:]) < 2**128
    assert remap_uid(uid + "1", KEY) != first


def test_dates_shift_by_whole_days() -> None:
    assert deid.shift_date("20240301", -1) == "20240229"
    assert deid.shift_date("2024.03.01", 10) == "20240311"
    assert deid.shift_date("2024", 3) is None
    assert deid.shift_datetime("20240301120000.5+0100", -1) == "20240229120000.5+0100"
    shift = deid.date_shift_for(KEY, "PID")
    assert -3650 <= shift <= -30 and shift == deid.date_shift_for(KEY, "PID")


# --------------------------------------------------------------------------- planted markers


@pytest.fixture(scope="module")
def planted(dicom_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("planted")
    inputs = root / "in"
    ct = dicom_files(dicom_dir / "ct-abdomen-tcia-pancreas-134", 3, start=60)
    mr = dicom_files(dicom_dir / "mr-brain-t1-sagittal-philips-170", 3, start=84)
    planted_copy(ct, inputs / "ct")
    planted_copy(mr, inputs / "mr")
    return {"root": root, "ct": inputs / "ct", "mr": inputs / "mr"}


@pytest.mark.parametrize("series", ["ct", "mr"])
def test_planted_identifiers_leave_no_trace(planted: dict[str, Path], series: str) -> None:
    out = planted["root"] / f"out-{series}"
    report = deid_folder(
        planted[series], out, options=DeidOptions(), uid_key=KEY, pseudonym="C-TEST-01"
    )
    files = output_files(out)
    assert len(files) == 3 and [f.name for f in files] == ["0001.dcm", "0002.dcm", "0003.dcm"]
    assert all(f.parent.name == "series-01" and f.parent.parent.name == "study-01" for f in files)
    assert report.checked_values > 40
    markers = all_markers()
    for path in files:
        data = path.read_bytes()
        left = [m for m in markers if m.encode() in data]
        assert left == [], f"{path.name} still holds {left}"
        ds = pydicom.dcmread(path)
        assert not [e for e in ds.iterall() if e.tag.is_private]
        assert ds.PatientName == "C-TEST-01" and ds.PatientID == "C-TEST-01"
        assert ds.PatientIdentityRemoved == "YES"
        assert ds.LongitudinalTemporalInformationModified == "REMOVED"
        assert "113100" in [i.CodeValue for i in ds.DeidentificationMethodCodeSequence]
        assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
        assert "SourceApplicationEntityTitle" not in ds.file_meta
        assert "RequestAttributesSequence" not in ds and "ReferencedStudySequence" not in ds
        instance = ds.ReferencedSeriesSequence[0].ReferencedInstanceSequence[0]
        deep = instance.PurposeOfReferenceCodeSequence[0]
        assert instance.ReferencedSOPInstanceUID.startswith("2.25.")
        assert deep.CodeValue == "121311" and "InstitutionName" not in deep
        assert not deep.get("StudyDate") and not deep.get("ReferringPhysicianName")


@pytest.mark.parametrize("series", ["ct", "mr"])
def test_output_keeps_pixels_and_geometry(planted: dict[str, Path], series: str) -> None:
    out = planted["root"] / f"geometry-{series}"
    deid_folder(planted[series], out, options=DeidOptions(), uid_key=KEY, pseudonym="C-TEST-01")
    before = by_instance(sorted(planted[series].glob("*.dcm")))
    after = by_instance(output_files(out))
    for a, b in zip(before, after, strict=True):
        assert np.array_equal(a.pixel_array, b.pixel_array)
        for keyword in (
            "ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing", "SliceThickness",
            "RescaleSlope", "RescaleIntercept", "Rows", "Columns", "BitsStored",
        ):  # fmt: skip
            assert a.get(keyword) == b.get(keyword), keyword
    reader = sitk.ImageSeriesReader()
    images = []
    for folder in (planted[series], out / "study-01" / "series-01"):
        reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(folder)))
        images.append(reader.Execute())
    original, cleaned = images
    assert np.array_equal(sitk.GetArrayFromImage(original), sitk.GetArrayFromImage(cleaned))
    assert np.allclose(original.GetOrigin(), cleaned.GetOrigin(), atol=1e-6)
    assert np.allclose(original.GetSpacing(), cleaned.GetSpacing(), atol=1e-6)
    assert np.allclose(original.GetDirection(), cleaned.GetDirection(), atol=1e-9)


def test_uids_are_consistent_and_keyed(planted: dict[str, Path]) -> None:
    runs = {}
    for name, key in (("a", KEY), ("b", KEY), ("c", OTHER_KEY)):
        out = planted["root"] / f"uids-{name}"
        deid_folder(planted["ct"], out, options=DeidOptions(), uid_key=key, pseudonym="C-TEST-01")
        runs[name] = by_instance(output_files(out))
    a, b, c = runs["a"], runs["b"], runs["c"]
    assert [d.SOPInstanceUID for d in a] == [d.SOPInstanceUID for d in b]
    assert not {d.SOPInstanceUID for d in a} & {d.SOPInstanceUID for d in c}
    assert len({d.StudyInstanceUID for d in a}) == len({d.SeriesInstanceUID for d in a}) == 1
    assert len({d.FrameOfReferenceUID for d in a}) == 1
    assert a[0].StudyInstanceUID != c[0].StudyInstanceUID
    # Slice 0 refers to slice 1: the reference follows the new UID of slice 1.
    ref = a[0].ReferencedSeriesSequence[0].ReferencedInstanceSequence[0].ReferencedSOPInstanceUID
    assert ref == a[1].SOPInstanceUID
    assert a[0].ReferencedSeriesSequence[0].SeriesInstanceUID == a[0].SeriesInstanceUID


def test_options_change_the_outcome(planted: dict[str, Path]) -> None:
    ds = pydicom.dcmread(sorted(planted["mr"].glob("*.dcm"))[0])
    ds.SeriesDescription = "T1 MPRAGE MKRPATNAME 18330918 sagittal"
    options = DeidOptions(
        retain_longitudinal_temporal=True, clean_descriptors=True, retain_device_identity=True
    )
    out = deidentify(ds, options=options, uid_key=KEY, pseudonym="C-TEST-02", date_shift_days=-10)
    assert out.StudyDate == "18330908"
    assert out.AcquisitionDateTime == "18730912101010.123456"
    assert out.StudyTime == TIMES["StudyTime"]
    assert "PatientBirthDate" not in out or not out.PatientBirthDate
    assert out.SeriesDescription == "T1 MPRAGE sagittal"
    assert out.DeviceSerialNumber == TEXT["DeviceSerialNumber"]
    assert out.StationName == TEXT["StationName"]
    assert out.LongitudinalTemporalInformationModified == "MODIFIED"
    codes = [i.CodeValue for i in out.DeidentificationMethodCodeSequence]
    assert {"113100", "113107", "113105", "113109"} <= set(codes)
    assert ds.PatientName == TEXT["PatientName"]  # the input was not touched
    with pytest.raises(deid.DeidError, match="date shift"):
        deidentify(ds, options=options, uid_key=KEY, pseudonym="C-TEST-02")


def test_verification_stops_a_leak(planted: dict[str, Path], monkeypatch) -> None:
    real = deid.deidentify

    def leaky(ds, **kwargs):
        out = real(ds, **kwargs)
        out.InstitutionName = TEXT["InstitutionName"]  # as if the profile had missed it
        return out

    monkeypatch.setattr(batch, "deidentify", leaky)
    out = planted["root"] / "leak"
    with pytest.raises(IdentifierLeak, match="InstitutionName") as error:
        deid_folder(planted["ct"], out, options=DeidOptions(), uid_key=KEY, pseudonym="C-TEST-03")
    assert TEXT["InstitutionName"] not in str(error.value)
    assert not out.exists()
    assert not list(planted["root"].glob(".deid-*"))


PREAMBLE_MARKER = b"MKRPREAMBLE DOE^JANE 19800501"


def test_preamble_is_zeroed(planted: dict[str, Path], tmp_path: Path) -> None:
    src = tmp_path / "in"
    shutil.copytree(planted["ct"], src)
    for path in src.glob("*.dcm"):
        ds = pydicom.dcmread(path)
        ds.preamble = PREAMBLE_MARKER.ljust(128, b"\0")
        ds.save_as(path, enforce_file_format=True)
    assert PREAMBLE_MARKER in next(src.glob("*.dcm")).read_bytes()
    out = tmp_path / "out"
    deid_folder(src, out, options=DeidOptions(), uid_key=KEY, pseudonym="C-TEST-04")
    for path in output_files(out):
        assert path.read_bytes()[:132] == bytes(128) + b"DICM"


def test_verification_stops_a_preamble_leak(planted: dict[str, Path], monkeypatch) -> None:
    real = deid.deidentify

    def leaky(ds, **kwargs):
        out = real(ds, **kwargs)
        out.preamble = PREAMBLE_MARKER.ljust(128, b"\0")  # as if the preamble were kept
        return out

    monkeypatch.setattr(batch, "deidentify", leaky)
    out = planted["root"] / "preamble-leak"
    with pytest.raises(IdentifierLeak, match="preamble") as error:
        deid_folder(planted["ct"], out, options=DeidOptions(), uid_key=KEY, pseudonym="C-TEST-05")
    assert "MKRPREAMBLE" not in str(error.value)
    assert not out.exists()


def test_one_pseudonym_for_one_patient_only(planted: dict[str, Path], tmp_path: Path) -> None:
    mixed = tmp_path / "mixed"
    shutil.copytree(planted["ct"], mixed / "a")
    other = pydicom.dcmread(sorted(planted["mr"].glob("*.dcm"))[0])
    other.PatientID = "MKRSECONDPATIENT"
    other.StudyInstanceUID, other.SeriesInstanceUID = f"{UID_ROOT}.5", f"{UID_ROOT}.6"
    other.save_as(mixed / "b.dcm")
    with pytest.raises(deid.DeidError, match="2 patients"):
        deid_folder(mixed, tmp_path / "o1", options=DeidOptions(), uid_key=KEY, pseudonym="C-X")
    report = deid_folder(mixed, tmp_path / "o2", options=DeidOptions(), uid_key=KEY)
    assert len(report.pseudonyms) == 2 and report.studies == 2
    assert report.patients[report.pseudonyms[1]]["patient_id"] == "MKRSECONDPATIENT"


# --------------------------------------------------------------------------- burned-in text


def ultrasound(compressed: bool) -> Dataset:
    ds = Dataset()
    ds.file_meta = pydicom.dataset.FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = UltrasoundImageStorage
    ds.SOPInstanceUID = f"{UID_ROOT}.7.1"
    ds.StudyInstanceUID, ds.SeriesInstanceUID = f"{UID_ROOT}.7.2", f"{UID_ROOT}.7.3"
    ds.Modality = "US"
    ds.PatientName, ds.PatientID = "MKRUSNAME^X", "MKRUSID"
    rng = np.random.default_rng(0)
    image = rng.integers(40, 200, size=(64, 80, 3), dtype=np.uint8)
    image[2:10, 4:40] = 255  # the "burned-in" name
    ds.set_pixel_data(image, "RGB", 8, generate_instance_uid=False)
    if compressed:
        ds.compress(RLELossless, generate_instance_uid=False)
    return ds


def test_burned_in_risk_rules() -> None:
    us = ultrasound(compressed=False)
    assert "ultrasound" in burned_in_risk(us)
    us.BurnedInAnnotation = "NO"
    assert burned_in_risk(us) is None
    us.Modality, us.BurnedInAnnotation = "CT", "YES"
    assert burned_in_risk(us) == "Burned In Annotation is YES"
    del us.BurnedInAnnotation
    assert burned_in_risk(us) is None
    us.Modality, us.SOPClassUID = "OT", "1.2.840.10008.5.1.4.1.1.7"
    assert "secondary capture" in burned_in_risk(us)
    del us.PixelData
    assert burned_in_risk(us) is None


def test_burned_in_blocks_until_masked_or_confirmed(tmp_path: Path) -> None:
    source = tmp_path / "us"
    source.mkdir()
    ultrasound(compressed=True).save_as(source / "us.dcm", enforce_file_format=True)
    with pytest.raises(BurnedInAnnotationBlocked, match="burned-in"):
        deid_folder(source, tmp_path / "blocked", options=DeidOptions(), uid_key=KEY)
    assert not (tmp_path / "blocked").exists()
    rect = Rect(x=4, y=2, width=36, height=8)
    report = deid_folder(
        source, tmp_path / "masked", options=DeidOptions(), uid_key=KEY, masks={"*": [rect]}
    )
    assert report.masked_files == 1
    (masked_path,) = output_files(tmp_path / "masked")
    masked = pydicom.dcmread(masked_path)
    original = pydicom.dcmread(source / "us.dcm").pixel_array
    assert masked.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    assert masked.BurnedInAnnotation == "NO"
    assert "113101" in [i.CodeValue for i in masked.DeidentificationMethodCodeSequence]
    pixels = masked.pixel_array
    assert (pixels[2:10, 4:40] == 0).all()
    outside = np.ones(pixels.shape[:2], bool)
    outside[2:10, 4:40] = False
    assert np.array_equal(pixels[outside], original[outside])
    report = deid_folder(  # one file as input works too
        source / "us.dcm",
        tmp_path / "confirmed",
        options=DeidOptions(),
        uid_key=KEY,
        confirm_burned_in=True,
    )
    (kept_path,) = output_files(tmp_path / "confirmed")
    assert np.array_equal(pydicom.dcmread(kept_path).pixel_array, original)


def test_mask_rectangles_on_monochrome_frames() -> None:
    ds = ultrasound(compressed=False)
    frames = np.arange(2 * 16 * 20, dtype=np.uint16).reshape(2, 16, 20) + 100
    ds.set_pixel_data(frames, "MONOCHROME1", 12, generate_instance_uid=False)
    mask_rectangles(ds, [Rect(-5, -5, 10, 8), Rect(18, 14, 50, 50)])
    out = ds.pixel_array
    assert (out[:, :3, :5] == frames.max()).all()  # MONOCHROME1: black is the maximum
    assert (out[:, 14:, 18:] == frames.max()).all()
    assert np.array_equal(out[:, 5:10, 6:15], frames[:, 5:10, 6:15])


# --------------------------------------------------------------------------- defacing


def native_volume(folder: Path) -> Volume:
    """The slices of a folder as a Volume in their own grid (no resampling), values rescaled."""
    datasets = [pydicom.dcmread(p) for p in sorted(folder.glob("*.dcm"))]
    iop = np.array([float(v) for v in datasets[0].ImageOrientationPatient])
    normal = np.cross(iop[:3], iop[3:])
    datasets.sort(key=lambda d: float(np.dot([float(v) for v in d.ImagePositionPatient], normal)))
    positions = [np.dot([float(v) for v in d.ImagePositionPatient], normal) for d in datasets]
    array = np.stack(
        [d.pixel_array * float(d.RescaleSlope) + float(d.RescaleIntercept) for d in datasets]
    ).astype(np.float32)
    row, col = (float(v) for v in datasets[0].PixelSpacing)
    return Volume(
        array,
        origin=tuple(float(v) for v in datasets[0].ImagePositionPatient),
        spacing=(col, row, float(np.median(np.diff(positions)))),
        direction=np.column_stack([iop[:3], iop[3:], normal]),
        modality=str(datasets[0].Modality),
    )


def check_defacing(volume: Volume, mask: np.ndarray, tissue: np.ndarray) -> None:
    """Face tissue gone; the back half of the head and a brain core untouched."""
    k, j, i = np.nonzero(tissue)
    lps = volume.index_to_lps(np.column_stack([i, j, k]).astype(float))
    centre = lps.mean(axis=0)
    y_front, y_back = lps[:, 1].min(), lps[:, 1].max()
    # The back of the cranium (not the neck, ears or head holder at the sides) is untouched;
    # 25 mm behind the centre, since near the vertex the scalp in front of the skull is there.
    medial = np.abs(lps[:, 0] - centre[0]) < 40.0
    back = (lps[:, 1] > centre[1] + 25.0) & (lps[:, 2] > centre[2]) & medial
    assert not mask[k[back], j[back], i[back]].any(), "tissue behind the head centre was blanked"
    core = np.linalg.norm(lps - centre, axis=1) < 40.0
    assert core.sum() > 1000 and not mask[k[core], j[core], i[core]].any(), "brain core blanked"
    lower = lps[:, 2] < centre[2]
    front = lower & (lps[:, 1] < y_front + 12.0)  # the first 12 mm of the lower face
    assert front.sum() > 200
    assert mask[k[front], j[front], i[front]].mean() > 0.6, "face surface not removed"
    nose = np.argmin(np.where(lower, lps[:, 1], np.inf))
    assert mask[k[nose], j[nose], i[nose]], "the most anterior point of the face is kept"
    assert y_back > y_front


def test_deface_ct_head_keeps_skull_and_brain(dicom_dir: Path) -> None:
    volume = native_volume(dicom_dir / "ct-head-ge-gantry-tilt-28")
    mask = deface_mask(volume, modality="CT")
    assert mask.shape == volume.shape
    bone = volume.array >= 300
    assert mask[bone].mean() < 0.001, "skull voxels were blanked"
    check_defacing(volume, mask, volume.array > -300)
    defaced = deface(volume)
    assert (defaced.array[mask] == -1000).all() and "defaced" in defaced.warnings[-1]


def test_deface_mr_head_keeps_brain(dicom_dir: Path) -> None:
    volume = native_volume(dicom_dir / "mr-brain-t1-sagittal-philips-170")
    mask = deface_mask(volume, modality="MR")
    threshold = np.percentile(volume.array, 99) * 0.15
    check_defacing(volume, mask, volume.array > threshold)


def test_deid_folder_defaces_head_series_only(dicom_dir: Path, tmp_path: Path) -> None:
    head = dicom_dir / "ct-head-ge-gantry-tilt-28"
    report = deid_folder(
        head, tmp_path / "head", options=DeidOptions(deface=True), uid_key=KEY, pseudonym="C-H"
    )
    assert report.defaced_series == 1
    outputs = by_instance(output_files(tmp_path / "head"))
    inputs = by_instance(dicom_files(head, 28))
    changed = [
        not np.array_equal(a.pixel_array, b.pixel_array)
        for a, b in zip(inputs, outputs, strict=True)
    ]
    assert sum(changed) >= 10
    assert "113102" in [i.CodeValue for i in outputs[0].DeidentificationMethodCodeSequence]
    body = tmp_path / "body"
    body.mkdir()
    for path in dicom_files(dicom_dir / "ct-abdomen-tcia-pancreas-134", 2, start=60):
        shutil.copy(path, body / path.name)
    report = deid_folder(
        body, tmp_path / "body-out", options=DeidOptions(deface=True), uid_key=KEY, pseudonym="C-B"
    )
    assert report.defaced_series == 0 and "not a head series" in report.notes[0]
    out = by_instance(output_files(tmp_path / "body-out"))
    src = by_instance(sorted(body.glob("*.dcm")))
    assert all(np.array_equal(a.pixel_array, b.pixel_array) for a, b in zip(src, out, strict=True))


# --------------------------------------------------------------------------- bad input, CLI


@pytest.mark.slow
def test_odd_corpus_never_crashes(dicom_dir: Path, tmp_path: Path) -> None:
    odd = dicom_dir / "odd"
    files = [p for p in odd.rglob("*") if p.is_file()]
    report = deid_folder(
        odd, tmp_path / "out", options=DeidOptions(), uid_key=KEY, confirm_burned_in=True
    )
    assert len(report.written) + len(report.rejected) == len(files)
    assert len(report.written) >= 250
    assert all(reason and "\n" not in reason for _, reason in report.rejected)
    reasons = {reason for _, reason in report.rejected}
    assert any("DICOMDIR" in r for r in reasons)
    for path in report.written:
        ds = pydicom.dcmread(path)
        assert ds.PatientIdentityRemoved == "YES"
        assert not [e for e in ds if e.tag.is_private]


def test_cli_deid_uses_the_keystore_key(
    planted: dict[str, Path], tmp_path: Path, data_dir: Path, keystore_service: str, capsys
) -> None:
    from app.cli import main
    from app.security.keystore import Keystore
    from app.workflow import users
    from app.workflow.actor import Actor

    assert main(["deid", str(planted["ct"]), str(tmp_path / "none")]) == 2
    assert "medprint vault init" in capsys.readouterr().err  # de-identifying needs a role
    actor = Actor.current()
    users.init_vault(actor)
    assert main(["deid", str(planted["ct"]), str(tmp_path / "one"), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["files"] == 3 and summary["options"] == ["113100"]
    assert summary["uid_map_in_vault"] is True
    key = Keystore().get("deid-uid-key")
    assert key is not None and len(key) == 32
    assert main(["deid", str(planted["ct"]), str(tmp_path / "two"), "--retain-dates"]) == 0
    assert "verified" in capsys.readouterr().out
    one = by_instance(output_files(tmp_path / "one"))
    two = by_instance(output_files(tmp_path / "two"))
    assert [d.SOPInstanceUID for d in one] == [d.SOPInstanceUID for d in two]
    assert [d.SOPInstanceUID for d in one] == [
        remap_uid(f"{UID_ROOT}.3.{i}", key) for i in range(3)
    ]
    assert two[0].StudyDate != DATES["StudyDate"] and two[0].StudyDate
    assert main(["deid", str(planted["ct"]), str(tmp_path / "one")]) == 2  # not empty
    assert "not empty" in capsys.readouterr().err
    uid_map = json.loads(actor.vault.get_record("deid-uid-map"))
    assert uid_map[f"{UID_ROOT}.3.0"] == one[0].SOPInstanceUID
    assert uid_map[f"{UID_ROOT}.1"] == one[0].StudyInstanceUID


def test_output_loads_like_the_input_in_medprint(dicom_dir: Path, tmp_path: Path) -> None:
    """The tilted, irregular GE head CT loads to the same Volume before and after deid."""
    from app.imaging.load import load_series

    source = tmp_path / "head"
    source.mkdir()
    for path in dicom_files(dicom_dir / "ct-head-ge-gantry-tilt-28", 28):
        shutil.copy(path, source / path.name)
    deid_folder(source, tmp_path / "out", options=DeidOptions(), uid_key=KEY, pseudonym="C-L")
    before = load_series(source)
    after = load_series(tmp_path / "out" / "study-01" / "series-01")
    assert np.array_equal(before.array, after.array)
    assert np.allclose(before.origin, after.origin, atol=1e-6)
    assert np.allclose(before.spacing, after.spacing, atol=1e-6)
    assert np.allclose(before.direction, after.direction, atol=1e-9)
    assert before.warnings == after.warnings


def test_progress_and_cancel_leave_nothing_behind(planted: dict[str, Path], tmp_path: Path) -> None:
    from app.errors import Cancelled
    from app.progress import CancelToken, Progress

    seen: list[float] = []
    token = CancelToken()

    def on_progress(fraction: float, message: str) -> None:
        seen.append(fraction)
        if message == "de-identifying" and fraction > 0.3:
            token.cancel()

    out = tmp_path / "cancelled"
    with pytest.raises(Cancelled):
        deid_folder(
            planted["mr"], out, options=DeidOptions(), uid_key=KEY, pseudonym="C-P",
            progress=Progress(on_progress), cancel=token,
        )  # fmt: skip
    assert not out.exists() and not list(tmp_path.glob(".deid-*"))
    assert seen and seen == sorted(seen)
    done: list[float] = []
    deid_folder(
        planted["mr"], out, options=DeidOptions(), uid_key=KEY, pseudonym="C-P",
        progress=Progress(lambda f, m: done.append(f)),
    )  # fmt: skip
    assert done[-1] == 1.0 and len(output_files(out)) == 3


def test_clean_descriptors_keep_descriptions_without_names(
    planted: dict[str, Path], tmp_path: Path
) -> None:
    source = tmp_path / "in"
    source.mkdir()
    for n, path in enumerate(sorted(planted["mr"].glob("*.dcm"))):
        ds = pydicom.dcmread(path)
        ds.SeriesDescription = ds.ProtocolName = "T1 MPRAGE MKRPATNAME sag"
        ds.StudyDescription = f"Head {DATES['StudyDate']} for MKRGIVEN"
        ds.save_as(source / f"{n}.dcm")
    options = DeidOptions(clean_descriptors=True)
    deid_folder(source, tmp_path / "out", options=options, uid_key=KEY, pseudonym="C-D")
    for path in output_files(tmp_path / "out"):
        ds = pydicom.dcmread(path)
        assert ds.SeriesDescription == ds.ProtocolName == "T1 MPRAGE sag"
        assert ds.StudyDescription == "Head for"
        assert "113105" in [i.CodeValue for i in ds.DeidentificationMethodCodeSequence]
        data = path.read_bytes()
        for identifier in ("MKRPATNAME", "MKRGIVEN", DATES["StudyDate"], TEXT["PatientID"]):
            assert identifier.encode() not in data
        assert b"MKRIMAGECOMMENT" in data  # a description with no identifier in it stays


def test_pydicom_messages_stay_out_of_the_logs(tmp_path: Path, caplog) -> None:
    """pydicom's warnings quote element values (PHI): none may reach the log or the console."""
    import logging
    import warnings

    source = tmp_path / "in"
    source.mkdir()
    ds = ultrasound(compressed=False)
    ds.ReferencedSOPInstanceUID = "MKRNOTAUID.1"  # pydicom warns, quoting the value
    ds.PatientAge = "MKRAGE1"
    ds.save_as(source / "a.dcm", enforce_file_format=True)
    caplog.clear()  # the lines above warned, in the test's own code
    logger = logging.getLogger("pydicom")
    state = (logger.level, logger.propagate)
    with caplog.at_level(logging.DEBUG), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        deid_folder(
            source, tmp_path / "out", options=DeidOptions(), uid_key=KEY, confirm_burned_in=True
        )
    assert not [r for r in caplog.records if "MKR" in r.getMessage()]
    assert not [w for w in caught if "MKR" in str(w.message)]
    assert (logger.level, logger.propagate) == state  # restored afterwards
