"""Encapsulated STL objects (DICOM Supplement 205, SOP Class 1.2.840.10008.5.1.4.1.1.104.3):
one per mesh part, in a new M3D series of the source study, same Frame of Reference, the source
instances referenced, units mm; and reading one back."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from app import __version__
from app.imaging.pacs.nodes import PacsError
from app.imaging.pacs.query import STL_SOP_CLASS

MANUFACTURER = "MedPrint"
MODEL_NAME = "MedPrint workstation"
# Patient, General Study and Frame of Reference attributes copied from the source series.
_PATIENT_STUDY = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "StudyInstanceUID",
    "StudyDate",
    "StudyTime",
    "ReferringPhysicianName",
    "StudyID",
    "AccessionNumber",
    "StudyDescription",
    "FrameOfReferenceUID",
    "PositionReferenceIndicator",
)


@dataclass(frozen=True)
class SourceSeries:
    """What a model object takes from its source series: its first instance's patient, study
    and frame of reference, and every instance's SOP class and instance UID."""

    header: Dataset
    instances: list[tuple[str, str]]

    @classmethod
    def of(cls, encoded: Iterable[bytes]) -> SourceSeries:
        headers = [_header(data) for data in encoded]
        if not headers:
            msg = "the case has no original DICOM to take the patient and study from"
            raise PacsError(msg)
        if "FrameOfReferenceUID" not in headers[0]:
            msg = "the source series has no Frame of Reference UID; a model cannot be placed in it"
            raise PacsError(msg)
        refs = [(str(h.SOPClassUID), str(h.SOPInstanceUID)) for h in headers]
        return cls(headers[0], refs)


def _header(data: bytes) -> Dataset:
    return pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True, force=True)


def _code(value: str, scheme: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value, scheme, meaning
    return item


def encapsulated_stl(
    stl: bytes,
    source: SourceSeries,
    *,
    series_uid: str,
    number: int,
    title: str,
    serial: str,
) -> Dataset:
    """One Encapsulated STL instance of ``stl`` (a binary STL in mm, patient LPS space)."""
    now = datetime.now(UTC)
    ds = Dataset()
    for keyword in _PATIENT_STUDY:
        if keyword in source.header:
            setattr(ds, keyword, source.header.data_element(keyword).value)
    ds.SOPClassUID = STL_SOP_CLASS
    ds.SOPInstanceUID = generate_uid()
    ds.Modality = "M3D"
    ds.SeriesInstanceUID = series_uid
    ds.SeriesNumber = 3000
    ds.SeriesDescription = "MedPrint 3D model"
    ds.InstanceNumber = number
    ds.ContentDate, ds.ContentTime = now.strftime("%Y%m%d"), now.strftime("%H%M%S")
    ds.AcquisitionDateTime = now.strftime("%Y%m%d%H%M%S")
    ds.Manufacturer, ds.ManufacturerModelName = MANUFACTURER, MODEL_NAME
    ds.DeviceSerialNumber, ds.SoftwareVersions = serial, __version__
    ds.BurnedInAnnotation = "NO"
    ds.DocumentTitle = title
    ds.ConceptNameCodeSequence = Sequence()
    ds.MeasurementUnitsCodeSequence = Sequence([_code("mm", "UCUM", "millimeter")])
    ds.SourceInstanceSequence = Sequence([_reference(c, i) for c, i in source.instances])
    ds.MIMETypeOfEncapsulatedDocument = "model/stl"
    ds.EncapsulatedDocument = stl
    ds.EncapsulatedDocumentLength = len(stl)
    ds.file_meta = _meta(ds)
    return ds


def _reference(sop_class: str, sop_instance: str) -> Dataset:
    item = Dataset()
    item.ReferencedSOPClassUID, item.ReferencedSOPInstanceUID = sop_class, sop_instance
    return item


def _meta(ds: Dataset) -> FileMetaDataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    return meta


def encode(ds: Dataset) -> bytes:
    buffer = io.BytesIO()
    pydicom.dcmwrite(buffer, ds, enforce_file_format=True)
    return buffer.getvalue()


@dataclass(frozen=True)
class ModelObject:
    """An Encapsulated STL read back: its title, the STL bytes and their SHA-256."""

    title: str
    stl: bytes
    frame_of_reference: str
    series_uid: str

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.stl).hexdigest()


def read_stl_object(data: bytes) -> ModelObject:
    """The STL inside an Encapsulated STL instance (trailing pad byte removed)."""
    ds = pydicom.dcmread(io.BytesIO(data), force=True)
    if str(ds.get("SOPClassUID", "")) != STL_SOP_CLASS or "EncapsulatedDocument" not in ds:
        msg = "this instance is not an Encapsulated STL"
        raise PacsError(msg)
    stl = bytes(ds.EncapsulatedDocument)
    length = ds.get("EncapsulatedDocumentLength")
    if length is not None and int(length) <= len(stl):
        stl = stl[: int(length)]
    return ModelObject(
        title=str(ds.get("DocumentTitle", "") or "model"),
        stl=stl,
        frame_of_reference=str(ds.get("FrameOfReferenceUID", "")),
        series_uid=str(ds.get("SeriesInstanceUID", "")),
    )
