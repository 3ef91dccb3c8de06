"""Scan folders, DICOMDIRs and zip files for DICOM images; group them patient → study → series.

Only headers are read (``stop_before_pixels``, ``defer_size`` and only the elements grouping
needs): pixel data is never touched,
but the position and length of its element are noted, so the loader can check a declared frame
size against the bytes really present before it allocates anything, and can read uncompressed
frames straight into the output array.

A *series* here is what a technician picks to print: the images of one ``SeriesInstanceUID``
that form one stack (same orientation, matrix, echo, temporal position and stack).  A DICOM
series holding a scout and an axial stack therefore yields two entries.  Each series knows its
slices (:class:`SliceInfo`: the source file — a plain path or a zip member — the frame number
inside a multi-frame file, position, orientation and rescale).

Everything that is not a grayscale image, or cannot be read, is listed in
:attr:`ScanResult.rejected` with a one-line reason; the scan never raises for a bad file.

JSON (``ScanResult.to_json()``, ``medprint scan --json``), format ``medprint-scan/1``::

    {
      "format": "medprint-scan/1",
      "summary": {"files": 311,         # files looked at (zip members count one each)
                  "images": 240,        # 2D images in all series (frames of multi-frame count)
                  "series": 41, "rejected": 70, "dicomdirs": 3},
      "patients": [
        {
          "key": "P1",                       # order of discovery, stable for the same input
          "identity": {...},                  # identity=True only: patient_name, patient_id,
                                              #   birth_date, sex
          "studies": [
            {
              "key": "P1.S1",
              "identity": {...},              # identity=True only: study_date,
                                              #   study_description, accession_number,
                                              #   institution, uid
              "series": [
                {
                  "key": "3fa9c2d01b7e",      # stable: hash of series UID + stack signature
                  "number": 3,                # SeriesNumber or null
                  "modality": "CT",
                  "body_part": "ABDOMEN",     # or null
                  "slices": 134,              # 2D images in the stack (frames count)
                  "files": 134,
                  "rows": 512, "columns": 512,
                  "spacing": [0.742, 0.742, 3.0],   # mm: column, row, median slice step
                                                    #   (null when unknown)
                  "thickness": 3.0,           # SliceThickness or null
                  "transfer_syntaxes": ["Implicit VR Little Endian"],
                  "notes": ["..."],           # e.g. uneven spacing, gantry tilt
                  "identity": {...}           # identity=True only: uid, description, date
                }
              ]
            }
          ]
        }
      ],
      "rejected": [{"file": "path/or/archive.zip!member", "reason": "not an image: ..."}],
      "dicomdirs": ["path/to/DICOMDIR"]
    }

Identity fields (names, IDs, dates, descriptions, institution, UIDs) are left out unless asked
for: they go to the encrypted case index (:attr:`Series.identity`: patient_name, patient_id,
birth_date, sex, study_date, study_description, series_description, series_date, description,
institution, accession_number, study_instance_uid, series_instance_uid), never to logs.
Patient and study keys follow the sorted file paths, series keys are content hashes, and lists
are sorted, so the same input gives byte-identical JSON. New fields may be added to objects;
existing ones keep their meaning while the format string stays ``medprint-scan/1``.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import struct
import threading
import warnings
import zipfile
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np

from app.errors import DicomError
from app.progress import CancelToken, Progress, check_cancel, ensure

JSON_FORMAT = "medprint-scan/1"
DEFER_SIZE = 64 * 1024  # values larger than this are skipped, not read, during a header scan
MAX_MEMBER_BYTES = 4 << 30  # zip members larger than this are not opened

# The only elements a scan reads; the others are skipped with a seek, not parsed.
HEADER_TAGS = [
    "AccessionNumber", "AcquisitionNumber", "BitsAllocated", "BitsStored", "BodyPartExamined",
    "Columns", "DirectoryRecordSequence", "EchoNumbers", "FrameIncrementPointer",
    "GantryDetectorTilt", "HighBit", "ImageOrientationPatient", "ImagePositionPatient",
    "ImageType", "ImagerPixelSpacing", "InstanceNumber", "InstitutionName",
    "LossyImageCompression", "Modality", "ModalityLUTSequence", "NumberOfFrames",
    "PatientBirthDate", "PatientID", "PatientName", "PatientSex",
    "PerFrameFunctionalGroupsSequence", "PhotometricInterpretation", "PixelPaddingValue",
    "PixelRepresentation", "PixelSpacing", "RescaleIntercept", "RescaleSlope", "Rows",
    "SOPClassUID", "SOPInstanceUID", "SamplesPerPixel", "SeriesDate", "SeriesDescription",
    "SeriesInstanceUID", "SeriesNumber", "SharedFunctionalGroupsSequence", "SliceThickness",
    "SpacingBetweenSlices", "StudyDate", "StudyDescription", "StudyInstanceUID",
    "TemporalPositionIdentifier", "WindowCenter", "WindowWidth",
]  # fmt: skip
_DEFLATED = b"1.2.840.10008.1.2.1.99"
_DIRECTORY_SOP = "1.2.840.10008.1.3.10"
_SEG_SOP = "1.2.840.10008.5.1.4.1.1.66.4"
_RTDOSE_SOP = "1.2.840.10008.5.1.4.1.1.481.2"
_GRAYSCALE = ("MONOCHROME1", "MONOCHROME2")
_PIXEL_TAGS = (0x7FE00010, 0x7FE00008, 0x7FE00009)
_LONG_VRS = {
    b"OB",
    b"OW",
    b"OF",
    b"OD",
    b"OL",
    b"OV",
    b"SQ",
    b"UN",
    b"UC",
    b"UR",
    b"UT",
    b"SV",
    b"UV",
}
_TIME_POINTERS = {0x00181063, 0x00181065}  # Frame Time, Frame Time Vector: cine frames
_LOSSY_TS = {
    "1.2.840.10008.1.2.4.50",
    "1.2.840.10008.1.2.4.51",
    "1.2.840.10008.1.2.4.81",
    "1.2.840.10008.1.2.4.91",
    "1.2.840.10008.1.2.4.203",
    "1.2.840.10008.1.2.4.111",
    "1.2.840.10008.1.2.4.112",
}
_NATIVE_TS = {"1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.2"}


# --------------------------------------------------------------------------- data model


@dataclass(frozen=True)
class SourceRef:
    """Where a DICOM file lives: a plain path, or a member of a zip archive."""

    path: str
    member: str | None = None

    @property
    def label(self) -> str:
        """``path`` or ``archive.zip!member``, for listings shown to the user."""
        return self.path if self.member is None else f"{self.path}!{self.member}"

    @contextlib.contextmanager
    def open(self) -> Iterator[BinaryIO]:
        """A seekable binary stream of the file's bytes."""
        if self.member is None:
            with open(self.path, "rb") as handle:
                yield handle
            return
        with zipfile.ZipFile(self.path) as archive, archive.open(self.member) as handle:
            yield handle  # type: ignore[misc]

    def size(self) -> int:
        if self.member is None:
            return os.path.getsize(self.path)
        with zipfile.ZipFile(self.path) as archive:
            return archive.getinfo(self.member).file_size


@dataclass
class FileInfo:
    """Per-file facts from the header: pixel format and where the pixel data sits."""

    source: SourceRef
    transfer_syntax: str
    rows: int
    columns: int
    samples: int
    bits_allocated: int
    bits_stored: int
    high_bit: int
    signed: bool
    photometric: str
    frames: int
    file_size: int
    pixel_tag: int | None = None  # 7FE0,0010 / 0008 / 0009, None when unknown (deflate)
    pixel_offset: int | None = None  # byte offset of the pixel value in the stream
    pixel_length: int | None = None  # None: undefined length (encapsulated)
    little_endian: bool = True
    modality_lut: bool = False
    padding: float | None = None
    window: tuple[float, float] | None = None
    gantry_tilt: float | None = None
    rank: int = 0  # 0 uncompressed, 1 lossless, 2 lossy: which copy of a slice to prefer

    @property
    def frame_bytes(self) -> int:
        """Bytes of one decoded frame as declared by the header."""
        bits = self.rows * self.columns * self.samples * self.bits_allocated
        return (bits + 7) // 8

    @property
    def native(self) -> bool:
        return self.transfer_syntax in _NATIVE_TS


@dataclass
class SliceInfo:
    """One 2D image: a single-frame file, or one frame of a multi-frame file."""

    file: FileInfo
    frame: int | None
    position: tuple[float, float, float] | None
    orientation: tuple[float, ...] | None
    pixel_spacing: tuple[float, float] | None  # (row spacing, column spacing) in mm
    slope: float = 1.0
    intercept: float = 0.0
    instance: int | None = None
    thickness: float | None = None
    spacing_between: float | None = None
    stack: tuple[str, str] = ("", "")  # enhanced: (StackID, TemporalPositionIndex)


@dataclass
class Series:
    """One loadable stack of slices, with what a technician needs to recognise it."""

    key: str
    series_uid: str
    modality: str
    number: int | None
    body_part: str | None
    rows: int
    columns: int
    slices: list[SliceInfo]
    identity: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    study_key: str = ""
    patient_key: str = ""
    _thumbnail: np.ndarray | None = field(default=None, repr=False)

    @property
    def slice_count(self) -> int:
        return len(self.slices)

    @property
    def sources(self) -> list[SourceRef]:
        """The distinct source files, in slice order of the scan."""
        seen: dict[SourceRef, None] = {}
        for s in self.slices:
            seen.setdefault(s.file.source, None)
        return list(seen)

    @property
    def thickness(self) -> float | None:
        return self.slices[0].thickness

    @property
    def slice_step(self) -> float | None:
        """Median distance between neighbouring slice positions along the normal, in mm."""
        distances = _normal_distances(self.slices)
        if distances is None or len(distances) < 2:
            return self.slices[0].spacing_between or self.thickness
        steps = np.diff(np.sort(distances))
        steps = steps[steps > 1e-4]
        return float(np.median(steps)) if len(steps) else None

    @property
    def spacing(self) -> tuple[float | None, float | None, float | None]:
        """(column, row, slice) spacing in mm as declared; the loader may resample."""
        ps = self.slices[0].pixel_spacing
        col, row = (ps[1], ps[0]) if ps else (None, None)
        return (col, row, self.slice_step)

    @property
    def transfer_syntaxes(self) -> list[str]:
        return sorted({_ts_name(s.file.transfer_syntax) for s in self.slices})

    def to_json(self, *, identity: bool = False) -> dict:
        out = {
            "key": self.key,
            "number": self.number,
            "modality": self.modality,
            "body_part": self.body_part,
            "slices": self.slice_count,
            "files": len(self.sources),
            "rows": self.rows,
            "columns": self.columns,
            "spacing": [None if v is None else round(v, 6) for v in self.spacing],
            "thickness": None if self.thickness is None else round(self.thickness, 6),
            "transfer_syntaxes": self.transfer_syntaxes,
            "notes": list(self.notes),
        }
        if identity:
            out["identity"] = {
                "uid": self.series_uid,
                "description": self.identity.get("series_description", ""),
                "date": self.identity.get("series_date", ""),
            }
        return out


@dataclass
class Study:
    key: str
    study_uid: str
    identity: dict[str, str]
    series: list[Series] = field(default_factory=list)


@dataclass
class Patient:
    key: str
    identity: dict[str, str]
    studies: list[Study] = field(default_factory=list)


@dataclass
class Rejected:
    """A file that is not part of any series, and why (one line)."""

    file: str
    reason: str


@dataclass
class ScanResult:
    patients: list[Patient] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    dicomdirs: list[str] = field(default_factory=list)
    files: int = 0

    @property
    def series(self) -> list[Series]:
        """Every series, patient by patient, study by study."""
        return [s for p in self.patients for st in p.studies for s in st.series]

    @property
    def image_count(self) -> int:
        return sum(s.slice_count for s in self.series)

    def find(self, key_or_uid: str) -> Series:
        """The series with this key or SeriesInstanceUID; DicomError when absent or ambiguous."""
        matches = [s for s in self.series if key_or_uid in (s.key, s.series_uid)]
        if len(matches) == 1:
            return matches[0]
        if not matches:
            msg = "no series with that key or UID in the scanned files; run `medprint scan` to list them"
        else:
            msg = "that UID names several stacks; pick one by its key from `medprint scan`"
        raise DicomError(msg)

    def to_json(self, *, identity: bool = False) -> dict:
        patients = []
        for p in self.patients:
            studies = []
            for st in p.studies:
                entry: dict = {"key": st.key}
                if identity:
                    entry["identity"] = dict(st.identity, uid=st.study_uid)
                entry["series"] = [s.to_json(identity=identity) for s in st.series]
                studies.append(entry)
            pat: dict = {"key": p.key}
            if identity:
                pat["identity"] = dict(p.identity)
            pat["studies"] = studies
            patients.append(pat)
        return {
            "format": JSON_FORMAT,
            "summary": {
                "files": self.files,
                "images": self.image_count,
                "series": len(self.series),
                "rejected": len(self.rejected),
                "dicomdirs": len(self.dicomdirs),
            },
            "patients": patients,
            "rejected": [{"file": r.file, "reason": r.reason} for r in self.rejected],
            "dicomdirs": list(self.dicomdirs),
        }


# --------------------------------------------------------------------------- scanning


@dataclass
class _Header:
    """What the grouping needs from one file; the dataset itself is not kept (memory)."""

    info: FileInfo
    slices: list[SliceInfo]
    signature: tuple
    rank: int  # 0 native, 1 lossless compressed, 2 lossy: which duplicate to keep
    keys: dict[str, str] = field(default_factory=dict)  # grouping keys, raw text
    modality: str = "OT"
    number: int | None = None
    body_part: str | None = None
    identity: dict[str, str] | None = None  # only for the first file of each series UID


def scan(
    paths: str | os.PathLike | Iterable[str | os.PathLike],
    *,
    progress: Progress | None = None,
    cancel: CancelToken | None = None,
) -> ScanResult:
    """Scan files, folders (recursively), DICOMDIRs and zip files; group what is found.

    Parameters
    ----------
    paths
        One path or several: files, folders, DICOMDIR files or ``.zip`` archives.
    progress, cancel
        Progress is reported per file; ``cancel`` is checked per file.

    Returns
    -------
    ScanResult
        Patients → studies → series, plus every rejected file with its reason.
    """
    progress = ensure(progress)
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    result = ScanResult()
    progress.update(0.0, "listing files")
    sources = _list_sources([Path(p) for p in paths], result, cancel)
    headers: list[_Header] = []
    total = max(len(sources), 1)
    identified: set[str] = set()
    with _quiet():
        for i, (source, handle_zip) in enumerate(sources):
            check_cancel(cancel)
            if i % 16 == 0:
                progress.update(i / total, f"reading headers ({i}/{len(sources)})")
            header = _read_one(source, handle_zip, result, sources, identified)
            if header is not None:
                headers.append(header)
            total = max(len(sources), 1)
        archives = {s.path for s, _ in sources if s.member is not None}
        result.files = sum(1 for s, _ in sources if s.member is not None or s.path not in archives)
        _group(_dedupe(headers, result), result)
    progress.update(1.0, f"found {len(result.series)} series")
    return result


def _list_sources(
    paths: list[Path], result: ScanResult, cancel: CancelToken | None
) -> list[tuple[SourceRef, zipfile.ZipFile | None]]:
    """Every candidate file, sorted and de-duplicated; zip archives are expanded to members."""
    files: list[str] = []
    for root in paths:
        if root.is_dir():
            for folder, dirs, names in os.walk(root):
                check_cancel(cancel)
                dirs.sort()
                files.extend(os.path.join(folder, n) for n in sorted(names))
        elif root.exists():
            files.append(str(root))
        else:
            result.rejected.append(Rejected(str(root), "does not exist"))
    out: list[tuple[SourceRef, zipfile.ZipFile | None]] = []
    seen: set = set()
    for name in files:
        try:
            stat = os.stat(name)
            identity: object = (stat.st_dev, stat.st_ino)
        except OSError:
            identity = name
        if identity not in seen:  # the same file reached twice (links, overlapping roots)
            seen.add(identity)
            out.append((SourceRef(name), None))
    return out


class _IsZip(Exception):  # a signal: this "file" is a zip archive to expand
    pass


def _zip_members(path: str, result: ScanResult) -> list[tuple[SourceRef, zipfile.ZipFile | None]]:
    try:
        archive = zipfile.ZipFile(path)
        infos = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        result.rejected.append(Rejected(path, f"unreadable zip archive ({type(exc).__name__})"))
        return []
    members = []
    for info in sorted(infos, key=lambda i: i.filename):
        ref = SourceRef(path, info.filename)
        if info.is_dir():
            continue
        if info.flag_bits & 0x1:
            result.rejected.append(Rejected(ref.label, "encrypted zip member; extract it first"))
        elif info.file_size > MAX_MEMBER_BYTES:
            result.rejected.append(
                Rejected(ref.label, "zip member larger than 4 GiB; extract it first")
            )
        elif info.filename.lower().endswith(".zip"):
            result.rejected.append(
                Rejected(ref.label, "zip inside a zip is not followed; extract it first")
            )
        else:
            members.append((ref, archive))
    return members


@contextlib.contextmanager
def _open_source(source: SourceRef, archive: zipfile.ZipFile | None) -> Iterator[BinaryIO]:
    if archive is not None and source.member is not None:
        with archive.open(source.member) as handle:
            yield handle  # type: ignore[misc]
    else:
        with source.open() as handle:
            yield handle


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence pydicom's warnings and log records: they can quote element values (PHI).

    ``warnings.catch_warnings`` saves and restores process-wide state, which is only safe on
    the main thread; a worker thread (the GUI runs scans in one) gets a permanent filter for
    pydicom's modules instead.
    """
    logger = logging.getLogger("pydicom")
    logger.setLevel(logging.CRITICAL + 1)
    logger.propagate = False
    if threading.current_thread() is not threading.main_thread():
        warnings.filterwarnings("ignore", module=r"pydicom(\.|$)")
        yield
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _read_one(
    source: SourceRef,
    archive: zipfile.ZipFile | None,
    result: ScanResult,
    sources: list[tuple[SourceRef, zipfile.ZipFile | None]],
    identified: set[str],
) -> _Header | None:
    try:
        with _open_source(source, archive) as handle:
            ds, pixel = _read_header(handle, source)
            if archive is None:
                size = os.fstat(handle.fileno()).st_size
            else:
                size = archive.getinfo(source.member).file_size
    except _IsZip:
        if source.member is None:
            sources.extend(_zip_members(source.path, result))
        else:
            result.rejected.append(
                Rejected(source.label, "zip inside a zip is not followed; extract it first")
            )
        return None
    except _Reject as exc:
        result.rejected.append(Rejected(source.label, str(exc)))
        return None
    except RecursionError:
        result.rejected.append(Rejected(source.label, "sequences nested too deeply to read safely"))
        return None
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        result.rejected.append(Rejected(source.label, f"cannot be read ({reason})"))
        return None
    except Exception as exc:  # any parse failure of a bad file becomes a rejection
        result.rejected.append(Rejected(source.label, f"unreadable DICOM ({_brief(exc)})"))
        return None
    try:
        sop = str(_get(ds, "SOPClassUID", ""))
        if sop == _DIRECTORY_SOP or "DirectoryRecordSequence" in ds:
            _follow_dicomdir(source, archive, ds, result, sources)
            return None
        header = _classify(source, ds, pixel, size)
        _summarise(header, ds, identified)
        return header
    except _Reject as exc:
        result.rejected.append(Rejected(source.label, str(exc)))
    except RecursionError:
        result.rejected.append(Rejected(source.label, "sequences nested too deeply to read safely"))
    except Exception as exc:  # a header with impossible values is rejected, not fatal
        result.rejected.append(Rejected(source.label, f"invalid image header ({_brief(exc)})"))
    return None


class _Reject(Exception):
    pass


def _brief(exc: BaseException) -> str:
    """Exception class and a short, value-free hint (messages may quote PHI)."""
    return type(exc).__name__


def _looks_headerless(head: bytes) -> bool:
    """A file without preamble that starts with a plausible group 0002/0008 element."""
    if len(head) < 8:
        return False
    group_le, elem_le = struct.unpack("<HH", head[:4])
    group_be = struct.unpack(">H", head[:2])[0]
    return (group_le in (0x0002, 0x0008) or group_be in (0x0002, 0x0008)) and elem_le < 0x2000


def _read_header(handle: BinaryIO, source: SourceRef) -> tuple[object, tuple | None]:
    """Header only; returns (dataset, (tag, value offset, length, little endian) or None)."""
    import pydicom  # noqa: PLC0415 (keep `import app` light)

    head = handle.read(132)
    handle.seek(0)
    if head[:4] == b"PK\x03\x04":
        raise _IsZip
    force = False
    if head[128:132] != b"DICM":
        if not _looks_headerless(head):
            msg = "not a DICOM file"
            raise _Reject(msg)
        force = True
    if _DEFLATED in _meta_bytes(handle, head):
        return _read_deflated(handle, source), None
    # Deferred values are re-read from the path on access, which a zip member does not have.
    defer = DEFER_SIZE if source.member is None else None
    ds = pydicom.dcmread(
        handle, stop_before_pixels=True, defer_size=defer, force=force, specific_tags=_header_tags()
    )
    if force and not any(k in ds for k in ("SOPClassUID", "Modality", "Rows", "StudyInstanceUID")):
        msg = "not a DICOM file"
        raise _Reject(msg)
    return ds, _pixel_element(handle, ds)


_HEADER_TAG_CACHE: list = []


def _header_tags() -> list:
    """HEADER_TAGS as pydicom tags, converted once (dcmread converts keywords on every call)."""
    if not _HEADER_TAG_CACHE:
        from pydicom.tag import Tag  # noqa: PLC0415

        _HEADER_TAG_CACHE.extend(Tag(k) for k in HEADER_TAGS)
    return _HEADER_TAG_CACHE


def _meta_bytes(handle: BinaryIO, head: bytes) -> bytes:
    """The file meta group's bytes (empty without a standard meta group); rewinds."""
    if head[128:132] != b"DICM":
        return b""
    handle.seek(132)
    first = handle.read(12)
    data = b""
    if len(first) == 12 and first[:4] == b"\x02\x00\x00\x00":
        (length,) = struct.unpack("<L", first[8:12])
        data = first + handle.read(min(length, 1 << 16))
    handle.seek(0)
    return data


def _read_deflated(handle: BinaryIO, source: SourceRef) -> object:
    """Deflated datasets are inflated in memory by pydicom; measure the inflated size first."""
    import pydicom  # noqa: PLC0415

    handle.seek(0)
    _check_inflated_size(handle)
    handle.seek(0)
    return pydicom.dcmread(handle)


def _check_inflated_size(handle: BinaryIO) -> None:
    """Refuse a deflate bomb: inflate in bounded chunks, counting, before pydicom inflates it all."""
    import psutil  # noqa: PLC0415

    head = handle.read(144)
    if head[128:132] != b"DICM" or head[132:136] != b"\x02\x00\x00\x00":
        return  # no standard meta group: let pydicom decide
    (meta_length,) = struct.unpack("<L", head[140:144])
    handle.seek(144 + meta_length)
    limit = min(psutil.virtual_memory().available // 4, 2 << 30)
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    total = 0
    while chunk := handle.read(1 << 16):
        data = inflater.decompress(chunk, 1 << 20)
        total += len(data)
        while inflater.unconsumed_tail and total <= limit:
            data = inflater.decompress(inflater.unconsumed_tail, 1 << 20)
            total += len(data)
        if total > limit:
            msg = f"deflated data expands beyond {_size(limit)}"
            raise _Reject(msg)


def _pixel_element(handle: BinaryIO, ds) -> tuple | None:
    """Read the pixel data element header where pydicom stopped (it rewinds to the tag)."""
    little = ds.original_encoding[1] if ds.original_encoding[1] is not None else True
    implicit = ds.original_encoding[0] if ds.original_encoding[0] is not None else True
    start = handle.tell()
    raw = handle.read(12)
    if len(raw) < 8:
        return None
    endian = "<" if little else ">"
    group, elem = struct.unpack(endian + "HH", raw[:4])
    tag = group << 16 | elem
    if tag not in _PIXEL_TAGS:
        return None
    if implicit:
        (length,) = struct.unpack(endian + "L", raw[4:8])
        offset = start + 8
    elif raw[4:6] in _LONG_VRS:
        (length,) = struct.unpack(endian + "L", raw[8:12])
        offset = start + 12
    else:
        (length,) = struct.unpack(endian + "H", raw[6:8])
        offset = start + 8
    return (tag, offset, None if length == 0xFFFFFFFF else length, little)


def _follow_dicomdir(
    source: SourceRef,
    archive: zipfile.ZipFile | None,
    ds,
    result: ScanResult,
    sources: list[tuple[SourceRef, zipfile.ZipFile | None]],
) -> None:
    """Add the files a DICOMDIR references (when not already listed); count missing ones."""
    result.dicomdirs.append(source.label)
    known = {
        (os.path.realpath(s.path), s.member) if s.member else (os.path.realpath(s.path), None)
        for s, _ in sources
    }
    base = os.path.dirname(source.member if source.member else source.path)
    missing = 0
    for record in ds.get("DirectoryRecordSequence", []):
        parts = record.get("ReferencedFileID")
        if not parts:
            continue
        parts = [parts] if isinstance(parts, str) else list(parts)
        ref = _resolve_reference(source, archive, base, parts)
        if ref is None:
            missing += 1
            continue
        key = (os.path.realpath(ref.path), ref.member)
        if key not in known:
            known.add(key)
            sources.append((ref, archive if ref.member else None))
    if missing:
        result.rejected.append(
            Rejected(source.label, f"DICOMDIR lists {missing} file(s) that are not on the media")
        )


def _resolve_reference(
    source: SourceRef, archive: zipfile.ZipFile | None, base: str, parts: list[str]
) -> SourceRef | None:
    if any(not p or p in (".", "..") or "/" in p or "\\" in p or ":" in p for p in parts):
        return None  # a DICOMDIR may only point below its own folder
    if source.member is not None and archive is not None:
        wanted = "/".join([base, *parts]).strip("/").lower() if base else "/".join(parts).lower()
        for name in archive.namelist():
            if name.lower() == wanted:
                return SourceRef(source.path, name)
        return None
    path = os.path.join(base, *parts)
    if os.path.isfile(path):
        return SourceRef(path)
    # CDs are often written upper-case while the copy on disk is lower-case (or the reverse).
    folder = base
    for part in parts:
        try:
            names = {n.lower(): n for n in os.listdir(folder)}
        except OSError:
            return None
        actual = names.get(part.lower())
        if actual is None:
            return None
        folder = os.path.join(folder, actual)
    return SourceRef(folder) if os.path.isfile(folder) else None


def _non_image_reason(ds) -> str:
    sop = ds.get("SOPClassUID")
    if not sop:
        return "not an image: no SOP Class and no pixel data"
    name = getattr(sop, "name", None) or str(sop)
    return f"not an image: {name}"


def _classify(source: SourceRef, ds, pixel: tuple | None, size: int) -> _Header:
    """Turn one header into slices, or raise _Reject with the reason."""
    sop = str(_get(ds, "SOPClassUID", ""))
    has_pixels = pixel is not None or any(t in ds for t in _PIXEL_TAGS)
    if not has_pixels or "Rows" not in ds:
        raise _Reject(_non_image_reason(ds))
    if sop == _SEG_SOP:
        msg = "segmentation object (SEG), not a source image"
        raise _Reject(msg)
    if sop == _RTDOSE_SOP or _get(ds, "Modality") == "RTDOSE":
        msg = "RT dose grid, not an anatomical image"
        raise _Reject(msg)
    info = _file_info(source, ds, pixel, size)
    _check_format(info)
    slices = _slices(ds, info)
    spacing = slices[0].pixel_spacing
    signature = (
        _orientation_key(slices[0].orientation),
        info.rows,
        info.columns,
        None if spacing is None else tuple(round(v, 4) for v in spacing),
        str(_get(ds, "EchoNumbers", "")),
        str(_get(ds, "TemporalPositionIdentifier", "")),
        str(_get(ds, "AcquisitionNumber", "")) if "LOCALIZER" in _image_type(ds) else "",
    )
    ts = info.transfer_syntax
    lossy = ts in _LOSSY_TS or str(_get(ds, "LossyImageCompression", "00")) == "01"
    rank = 0 if info.native else (2 if lossy else 1)
    info.rank = rank
    return _Header(info, slices, signature, rank)


def _summarise(header: _Header, ds, identified: set[str]) -> None:
    """Copy what grouping needs out of the dataset, so the dataset can be dropped."""
    header.keys = {name: _raw_text(ds, name) for name in _GROUPING}
    header.keys["SOPInstanceUID"] = _raw_text(ds, "SOPInstanceUID")
    header.modality = _text(ds, "Modality") or "OT"
    header.number = _maybe_int(_get(ds, "SeriesNumber"))
    header.body_part = _text(ds, "BodyPartExamined") or None
    series_uid = header.keys["SeriesInstanceUID"]
    if series_uid not in identified:
        identified.add(series_uid)
        header.identity = _identity(ds)


def _image_type(ds) -> str:
    value = _get(ds, "ImageType", "")
    return "\\".join(value) if not isinstance(value, str) else value


def _file_info(source: SourceRef, ds, pixel: tuple | None, size: int) -> FileInfo:
    ts = str(ds.file_meta.get("TransferSyntaxUID", "")) if hasattr(ds, "file_meta") else ""
    if not ts:
        little, implicit = ds.original_encoding
        ts = (
            "1.2.840.10008.1.2"
            if implicit
            else ("1.2.840.10008.1.2.1" if little else "1.2.840.10008.1.2.2")
        )
    bits_allocated = int(_get(ds, "BitsAllocated") or 0)
    if pixel is not None and pixel[0] == 0x7FE00008:
        bits_allocated = 32
    elif pixel is not None and pixel[0] == 0x7FE00009:
        bits_allocated = 64
    bits_stored = int(_get(ds, "BitsStored") or bits_allocated)
    frames = _int_or_reject(_get(ds, "NumberOfFrames", 1) or 1, "Number of Frames")
    window = None
    with contextlib.suppress(Exception):
        center, width = _get(ds, "WindowCenter"), _get(ds, "WindowWidth")
        if center is not None and width is not None:
            center = center[0] if not isinstance(center, (int, float)) else center
            width = width[0] if not isinstance(width, (int, float)) else width
            window = (float(center), float(width))
    padding = _get(ds, "PixelPaddingValue")
    return FileInfo(
        source=source,
        transfer_syntax=ts,
        rows=_int_or_reject(_get(ds, "Rows", 0), "Rows"),
        columns=_int_or_reject(_get(ds, "Columns", 0), "Columns"),
        samples=_int_or_reject(_get(ds, "SamplesPerPixel", 1) or 1, "Samples per Pixel"),
        bits_allocated=bits_allocated,
        bits_stored=bits_stored,
        high_bit=int(
            _get(ds, "HighBit", bits_stored - 1)
            if _get(ds, "HighBit") is not None
            else bits_stored - 1
        ),
        signed=int(_get(ds, "PixelRepresentation", 0) or 0) == 1,
        photometric=str(_get(ds, "PhotometricInterpretation", "MONOCHROME2")).strip().upper(),
        frames=frames,
        file_size=size,
        pixel_tag=pixel[0] if pixel else None,
        pixel_offset=pixel[1] if pixel else None,
        pixel_length=pixel[2] if pixel else None,
        little_endian=pixel[3] if pixel else True,
        modality_lut="ModalityLUTSequence" in ds,
        padding=float(padding) if isinstance(padding, (int, float)) else None,
        window=window,
        gantry_tilt=_float(_get(ds, "GantryDetectorTilt"), None),
    )


def _int_or_reject(value, name: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        msg = f"invalid {name} value in the header"
        raise _Reject(msg) from None


def _check_format(info: FileInfo) -> None:
    """Refuse what cannot become a grayscale volume, and absurd or truncated pixel data."""
    if info.photometric not in _GRAYSCALE or info.samples != 1:
        msg = f"colour image ({info.photometric}), not a grayscale volume to print"
        raise _Reject(msg)
    if info.rows <= 0 or info.columns <= 0 or info.frames <= 0:
        msg = "image has no rows, columns or frames"
        raise _Reject(msg)
    if info.bits_allocated not in (1, 8, 16, 32, 64):
        msg = f"unsupported Bits Allocated ({info.bits_allocated})"
        raise _Reject(msg)
    declared = info.frame_bytes * info.frames
    if info.pixel_offset is not None:
        available = info.file_size - info.pixel_offset
        if info.pixel_length is not None:
            if info.pixel_length > available:
                msg = f"pixel data truncated: element says {_size(info.pixel_length)}, file holds {_size(available)}"
                raise _Reject(msg)
            if info.pixel_length < declared:
                msg = f"pixel data truncated: {_size(info.pixel_length)} of {_size(declared)} declared"
                raise _Reject(msg)
        else:
            check_declared_size(
                info.rows, info.columns, info.frames, info.bits_allocated, available
            )


def check_declared_size(rows: int, columns: int, frames: int, bits: int, stored: int) -> None:
    """Refuse a compressed image whose declared size is absurd for the bytes that hold it.

    Lossless medical images compress roughly 2–4:1 and even lossy or blank frames rarely go
    past a few hundred to one; a 65535×65535 frame in a few kilobytes is an attack or damage,
    and decoding it would allocate gigabytes first.
    """
    import psutil  # noqa: PLC0415

    declared = (rows * columns * bits + 7) // 8 * frames
    budget = psutil.virtual_memory().available // 2
    if declared > budget:
        msg = (
            f"declares {rows}×{columns}×{frames} frames ({_size(declared)}), more than half of "
            f"the free memory ({_size(budget)})"
        )
        raise _Reject(msg)
    if declared > (64 << 20) and declared > 2000 * max(stored, 1):
        msg = (
            f"declares {rows}×{columns}×{frames} frames ({_size(declared)}) but holds only "
            f"{_size(stored)} of compressed pixel data"
        )
        raise _Reject(msg)


def _size(n: int) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def _floats(value, count: int) -> tuple[float, ...] | None:
    try:
        out = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        return None
    return out if len(out) == count and all(np.isfinite(out)) else None


def _orientation_key(iop: tuple[float, ...] | None) -> tuple | None:
    return None if iop is None else tuple(round(v, 3) + 0.0 for v in iop)


def _slices(ds, info: FileInfo) -> list[SliceInfo]:
    if "PerFrameFunctionalGroupsSequence" in ds or "SharedFunctionalGroupsSequence" in ds:
        return _enhanced_slices(ds, info)
    iop = _floats(_get(ds, "ImageOrientationPatient"), 6)
    ipp = _floats(_get(ds, "ImagePositionPatient"), 3)
    spacing = _floats(_get(ds, "PixelSpacing"), 2) or _floats(_get(ds, "ImagerPixelSpacing"), 2)
    common = {
        "orientation": iop,
        "pixel_spacing": spacing,
        "slope": _float(_get(ds, "RescaleSlope"), 1.0) or 1.0,
        "intercept": _float(_get(ds, "RescaleIntercept"), 0.0),
        "instance": _maybe_int(_get(ds, "InstanceNumber")),
        "thickness": _float(_get(ds, "SliceThickness"), None),
        "spacing_between": _float(_get(ds, "SpacingBetweenSlices"), None),
    }
    if info.frames == 1:
        return [SliceInfo(info, None, ipp, **common)]
    pointers = _get(ds, "FrameIncrementPointer")
    pointers = (
        []
        if pointers is None
        else ([pointers] if not isinstance(pointers, list) else list(pointers))
    )
    if any(int(p) in _TIME_POINTERS for p in pointers):
        msg = "cine multi-frame (frames are time points, not slices)"
        raise _Reject(msg)
    step = common["spacing_between"] or common["thickness"]
    if ipp is None or iop is None or not step:
        msg = "multi-frame image without slice positions (frames may be time points)"
        raise _Reject(msg)
    normal = np.cross(iop[:3], iop[3:])
    return [
        SliceInfo(info, f, tuple(float(v) for v in np.asarray(ipp) + f * step * normal), **common)
        for f in range(info.frames)
    ]


def _float(value, default):
    try:
        out = float(value)
    except (TypeError, ValueError):
        return default
    return out if np.isfinite(out) else default


def _maybe_int(value) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _group_item(groups, name: str):
    if groups is None or name not in groups:
        return None
    seq = groups.get(name)
    return seq[0] if seq else None


def _enhanced_slices(ds, info: FileInfo) -> list[SliceInfo]:
    """Per-frame geometry and rescale from the functional groups (per-frame over shared)."""
    shared_seq = ds.get("SharedFunctionalGroupsSequence")
    shared = shared_seq[0] if shared_seq else None
    per_frame = ds.get("PerFrameFunctionalGroupsSequence") or []
    if per_frame and len(per_frame) < info.frames:
        msg = "per-frame functional groups do not cover every frame"
        raise _Reject(msg)
    slices = []
    for f in range(info.frames):
        frame = per_frame[f] if per_frame else None

        def item(name: str, frame=frame):
            return _group_item(frame, name) or _group_item(shared, name)

        pos = item("PlanePositionSequence")
        ori = item("PlaneOrientationSequence")
        meas = item("PixelMeasuresSequence")
        pvt = item("PixelValueTransformationSequence")
        content = item("FrameContentSequence")
        slices.append(
            SliceInfo(
                info,
                f,
                _floats(pos.get("ImagePositionPatient"), 3) if pos else None,
                _floats(ori.get("ImageOrientationPatient"), 6) if ori else None,
                _floats(meas.get("PixelSpacing"), 2) if meas else None,
                slope=(_float(pvt.get("RescaleSlope"), 1.0) or 1.0) if pvt else 1.0,
                intercept=_float(pvt.get("RescaleIntercept"), 0.0) if pvt else 0.0,
                instance=f + 1,
                thickness=_float(meas.get("SliceThickness"), None) if meas else None,
                spacing_between=_float(meas.get("SpacingBetweenSlices"), None) if meas else None,
            )
        )
        if content is not None:
            slices[-1].stack = (
                str(content.get("StackID", "")),
                str(content.get("TemporalPositionIndex", "")),
            )
    return slices


def _dedupe(headers: list[_Header], result: ScanResult) -> list[_Header]:
    """Keep one file per image when the same instance is present in several encodings."""
    best: dict[tuple, _Header] = {}
    order: list[tuple] = []
    for h in headers:
        key = (
            h.keys["SOPInstanceUID"] or id(h),
            h.slices[0].position,
            h.info.rows,
            h.info.columns,
            h.info.frames,
        )
        if key not in best:
            best[key] = h
            order.append(key)
            continue
        keep, drop = (h, best[key]) if h.rank < best[key].rank else (best[key], h)
        keep.identity = keep.identity or drop.identity
        best[key] = keep
        result.rejected.append(
            Rejected(
                drop.info.source.label,
                f"duplicate of the same image in {keep.info.source.label} (that one is used)",
            )
        )
    return [best[k] for k in order]


_STRUCT = {"US": "H", "SS": "h", "UL": "L", "SL": "l", "FL": "f", "FD": "d"}
_TEXT_VRS = {"CS", "UI", "DA", "TM", "SH", "AS", "DS", "IS"}
_TAGS: dict[str, tuple[int, str]] = {}


def _tag_vr(keyword: str) -> tuple[int, str]:
    entry = _TAGS.get(keyword)
    if entry is None:
        from pydicom.datadict import dictionary_VR, tag_for_keyword  # noqa: PLC0415

        tag = tag_for_keyword(keyword)
        entry = _TAGS[keyword] = (tag, dictionary_VR(tag))
    return entry


def _get(ds, keyword: str, default=None):
    """``ds.get`` for the plain numeric and ASCII elements a scan reads, without pydicom's
    per-element conversion machinery (the bulk of a header scan); anything else goes to pydicom.
    """
    from pydicom.dataelem import RawDataElement  # noqa: PLC0415

    tag, vr = _tag_vr(keyword)
    elem = ds.get_item(tag, keep_deferred=True)
    if elem is None:
        return default
    if not isinstance(elem, RawDataElement):
        return default if elem.value is None or elem.value == "" else elem.value
    raw = elem.value
    if raw is None and elem.length:
        return ds.get(keyword, default)  # deferred: pydicom re-reads it
    if not raw:
        return default
    if elem.VR not in (None, "UN"):
        vr = elem.VR
    try:
        if vr in _STRUCT:
            code = _STRUCT[vr]
            count = len(raw) // struct.calcsize(code)
            order = "<" if elem.is_little_endian else ">"
            values = struct.unpack(order + code * count, raw[: count * struct.calcsize(code)])
            return values[0] if count == 1 else list(values)
        if vr in _TEXT_VRS:
            parts = [p.strip(" \0") for p in raw.decode("ascii").split("\\")]
            if vr == "DS":
                values = [float(p) for p in parts]
            elif vr == "IS":
                values = [int(p) for p in parts]
            else:
                values = parts
            return values[0] if len(values) == 1 else values
    except (ValueError, UnicodeDecodeError):
        pass
    return ds.get(keyword, default)


def _raw_text(ds, keyword: str) -> str:
    """An element's bytes as text, undecoded: good for grouping, not for display."""
    from pydicom.dataelem import RawDataElement  # noqa: PLC0415

    elem = ds.get_item(_tag_vr(keyword)[0], keep_deferred=True)
    if elem is None:
        return ""
    if isinstance(elem, RawDataElement):
        return (elem.value or b"").decode("latin-1").strip(" \0")
    return str(elem.value or "").strip()


def _text(ds, name: str) -> str:
    try:
        value = ds.get(name)
    except Exception:
        return ""
    return "" if value is None else str(value).strip()


def _identity(ds) -> dict[str, str]:
    return {
        "patient_name": _text(ds, "PatientName"),
        "patient_id": _text(ds, "PatientID"),
        "birth_date": _text(ds, "PatientBirthDate"),
        "sex": _text(ds, "PatientSex"),
        "study_date": _text(ds, "StudyDate"),
        "study_description": _text(ds, "StudyDescription"),
        "series_description": _text(ds, "SeriesDescription"),
        "description": _text(ds, "SeriesDescription") or _text(ds, "StudyDescription"),
        "series_date": _text(ds, "SeriesDate") or _text(ds, "StudyDate"),
        "institution": _text(ds, "InstitutionName"),
        "accession_number": _text(ds, "AccessionNumber"),
        "study_instance_uid": _text(ds, "StudyInstanceUID"),
        "series_instance_uid": _text(ds, "SeriesInstanceUID"),
    }


_GROUPING = (
    "PatientID",
    "PatientName",
    "PatientBirthDate",
    "StudyInstanceUID",
    "SeriesInstanceUID",
)


def _group(headers: list[_Header], result: ScanResult) -> None:
    patients: dict[tuple, Patient] = {}
    studies: dict[str, Study] = {}
    stacks: dict[tuple, Series] = {}
    series_ident: dict[str, dict[str, str]] = {}
    for h in headers:
        keys = h.keys
        pkey = (keys["PatientID"], keys["PatientName"], keys["PatientBirthDate"])
        patient = patients.get(pkey)
        series_ident.setdefault(keys["SeriesInstanceUID"], h.identity or {})
        ident = series_ident[keys["SeriesInstanceUID"]]
        if patient is None:
            patient = Patient(
                f"P{len(patients) + 1}",
                {k: ident.get(k, "") for k in ("patient_name", "patient_id", "birth_date", "sex")},
            )
            patients[pkey] = patient
            result.patients.append(patient)
        study_uid = keys["StudyInstanceUID"] or f"no-study:{h.info.source.label}"
        study = studies.get(study_uid)
        if study is None:
            study = Study(
                f"{patient.key}.S{len(patient.studies) + 1}",
                study_uid,
                {
                    k: ident.get(k, "")
                    for k in ("study_date", "study_description", "accession_number", "institution")
                },
            )
            studies[study_uid] = study
            patient.studies.append(study)
        series_uid = keys["SeriesInstanceUID"] or f"no-series:{h.info.source.label}"
        for sub, sub_slices in _split_frames(h).items():
            skey = (study_uid, series_uid, h.signature, sub)
            series = stacks.get(skey)
            if series is None:
                digest = hashlib.sha256(repr((series_uid, h.signature, sub)).encode())
                series = Series(
                    key=digest.hexdigest()[:12],
                    series_uid=series_uid,
                    modality=h.modality,
                    number=h.number,
                    body_part=h.body_part,
                    rows=h.info.rows,
                    columns=h.info.columns,
                    slices=[],
                    identity=dict(ident),
                    study_key=study.key,
                    patient_key=patient.key,
                )
                stacks[skey] = series
                study.series.append(series)
            series.slices.extend(sub_slices)
    for study in studies.values():
        study.series.sort(key=lambda s: (s.number if s.number is not None else 1 << 30, s.key))
        for series in study.series:
            series.notes.extend(_notes(series))


def _split_frames(h: _Header) -> dict[tuple, list[SliceInfo]]:
    """Split a multi-frame file by frame orientation and stack/temporal position."""
    groups: dict[tuple, list[SliceInfo]] = {}
    for s in h.slices:
        key = (_orientation_key(s.orientation), s.stack)
        if len(h.slices) == 1:
            key = ((), ("", ""))
        groups.setdefault(key, []).append(s)
    return groups


def _normal_distances(slices: list[SliceInfo]) -> np.ndarray | None:
    first = slices[0]
    if first.orientation is None or any(s.position is None for s in slices):
        return None
    normal = np.cross(first.orientation[:3], first.orientation[3:])
    return np.array([float(np.dot(normal, s.position)) for s in slices])


def _notes(series: Series) -> list[str]:
    """Facts worth seeing before import (the loader warns about the same and fixes them)."""
    notes = []
    distances = _normal_distances(series.slices)
    if distances is None:
        notes.append("no slice positions: geometry will be assumed")
        return notes
    steps = np.diff(np.sort(distances))
    if len(steps) and (steps < 1e-3).any():
        notes.append(f"{int((steps < 1e-3).sum())} slice(s) share a position with another")
    steps = steps[steps >= 1e-3]
    if len(steps) > 1 and steps.max() - steps.min() > max(0.01, 0.01 * np.median(steps)):
        notes.append(f"uneven slice spacing {steps.min():.2f}–{steps.max():.2f} mm")
    first = series.slices[0]
    if len(series.slices) > 1 and first.orientation is not None:
        pos = np.array([s.position for s in series.slices], dtype=float)
        order = np.argsort(distances)
        axis = pos[order[-1]] - pos[order[0]]
        normal = np.cross(first.orientation[:3], first.orientation[3:])
        if np.linalg.norm(axis) > 0:
            cos = abs(float(np.dot(axis, normal))) / float(np.linalg.norm(axis))
            angle = float(np.degrees(np.arccos(min(1.0, cos))))
            if angle > 0.05:
                notes.append(f"slices sheared by {angle:.1f}° (gantry tilt)")
    return notes


def _ts_name(uid: str) -> str:
    from pydicom.uid import UID  # noqa: PLC0415

    name = UID(uid).name
    return name or uid


# --------------------------------------------------------------------------- thumbnail


def thumbnail(series: Series, size: int = 128) -> np.ndarray:
    """A small uint8 image of the middle slice (made on first call, then cached).

    The slice is decoded and rescaled like the loader does, windowed to its 1st–99th percentile
    (CT: to the series window when given) and reduced by block averaging to at most ``size``
    pixels on its longer side.
    """
    if series._thumbnail is not None:
        return series._thumbnail
    from app.imaging.load import read_slice  # noqa: PLC0415 (load imports scan)

    middle = sorted(series.slices, key=_slice_sort_key(series))[len(series.slices) // 2]
    image = read_slice(middle).astype(np.float32)
    step = max(1, -(-max(image.shape) // size))
    rows, cols = (image.shape[0] // step) * step, (image.shape[1] // step) * step
    if step > 1 and rows and cols:
        image = (
            image[:rows, :cols].reshape(rows // step, step, cols // step, step).mean(axis=(1, 3))
        )
    window = middle.file.window
    if window is not None and series.modality == "CT":
        low, high = window[0] - window[1] / 2, window[0] + window[1] / 2
    else:
        low, high = np.percentile(image, [1, 99]) if image.size else (0.0, 1.0)
    scale = 255.0 / max(float(high - low), 1e-6)
    series._thumbnail = np.clip((image - low) * scale, 0, 255).astype(np.uint8)
    return series._thumbnail


def _slice_sort_key(series: Series):
    distances = _normal_distances(series.slices)
    if distances is None:
        return lambda s: (s.instance or 0, s.frame or 0)
    lookup = {id(s): d for s, d in zip(series.slices, distances, strict=True)}
    return lambda s: lookup[id(s)]


class SourceOpener:
    """Opens many sources, keeping each zip archive open until the block ends.

    ``SourceRef.open()`` re-reads a zip's central directory on every call; copying the
    originals of a 5000-member archive should use this instead::

        with SourceOpener() as opener:
            for source in series.sources:
                with opener.open(source) as stream:
                    shutil.copyfileobj(stream, out)
    """

    def __init__(self) -> None:
        self._archives: dict[str, zipfile.ZipFile] = {}

    def __enter__(self) -> SourceOpener:
        return self

    def __exit__(self, *exc: object) -> None:
        for archive in self._archives.values():
            archive.close()
        self._archives.clear()

    @contextlib.contextmanager
    def open(self, source: SourceRef) -> Iterator[BinaryIO]:
        if source.member is None:
            with open(source.path, "rb") as handle:
                yield handle
            return
        archive = self._archives.get(source.path)
        if archive is None:
            archive = self._archives[source.path] = zipfile.ZipFile(source.path)
        with archive.open(source.member) as handle:
            yield handle  # type: ignore[misc]


__all__ = [
    "JSON_FORMAT",
    "FileInfo",
    "Patient",
    "Rejected",
    "ScanResult",
    "Series",
    "SliceInfo",
    "SourceOpener",
    "SourceRef",
    "Study",
    "check_declared_size",
    "scan",
    "thumbnail",
]
