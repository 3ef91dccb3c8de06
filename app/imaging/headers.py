"""Reading one file's header (never its pixels): pixel format, where the pixel data sits, and
its slices (one per frame) with their geometry and rescale."""

from __future__ import annotations

import contextlib
import logging
import struct
import threading
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np

from app.imaging.elements import float_or, floats, get_value, maybe_int
from app.imaging.guards import Reject, check_inflated_size
from app.imaging.sources import SourceRef

DEFER_SIZE = 64 * 1024  # values larger than this are skipped, not read, during a header scan


# The only elements a scan reads; the others are skipped with a seek, not parsed.
HEADER_TAGS = [
    "AccessionNumber", "AcquisitionNumber", "BitsAllocated", "BitsStored", "BodyPartExamined",
    "Columns", "DirectoryRecordSequence", "EchoNumbers", "FrameIncrementPointer",
    "FrameOfReferenceUID",
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


PIXEL_TAGS = (0x7FE00010, 0x7FE00008, 0x7FE00009)


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


_NATIVE_TS = {"1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.2"}


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


def normal_distances(slices: list[SliceInfo]) -> np.ndarray | None:
    """Each slice's position along the first slice's normal (mm), or None when a slice has no
    position or the first no orientation."""
    first = slices[0]
    if first.orientation is None or any(s.position is None for s in slices):
        return None
    normal = np.cross(first.orientation[:3], first.orientation[3:])
    return np.array([float(np.dot(normal, s.position)) for s in slices])


class IsZip(Exception):  # a signal: this "file" is a zip archive to expand
    pass


@contextlib.contextmanager
def quiet() -> Iterator[None]:
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


def _looks_headerless(head: bytes) -> bool:
    """A file without preamble that starts with a plausible group 0002/0008 element."""
    if len(head) < 8:
        return False
    group_le, elem_le = struct.unpack("<HH", head[:4])
    group_be = struct.unpack(">H", head[:2])[0]
    return (group_le in (0x0002, 0x0008) or group_be in (0x0002, 0x0008)) and elem_le < 0x2000


def read_header(handle: BinaryIO, source: SourceRef) -> tuple[object, tuple | None]:
    """Header only; returns (dataset, (tag, value offset, length, little endian) or None)."""
    import pydicom  # noqa: PLC0415 (keep `import app` light)

    head = handle.read(132)
    handle.seek(0)
    if head[:4] == b"PK\x03\x04":
        raise IsZip
    force = False
    if head[128:132] != b"DICM":
        if not _looks_headerless(head):
            msg = "not a DICOM file"
            raise Reject(msg)
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
        raise Reject(msg)
    return ds, _pixel_element(handle, ds)


_HEADER_TAG_CACHE: list = []


def _header_tags() -> list:
    """HEADER_TAGS as pydicom tags, converted once (dcmread converts keywords on every call)."""
    if not _HEADER_TAG_CACHE:
        from pydicom.tag import Tag  # noqa: PLC0415 (pydicom on first use)

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
    import pydicom  # noqa: PLC0415 (pydicom on first use)

    handle.seek(0)
    check_inflated_size(handle)
    handle.seek(0)
    return pydicom.dcmread(handle)


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
    if tag not in PIXEL_TAGS:
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


def file_info(source: SourceRef, ds, pixel: tuple | None, size: int) -> FileInfo:
    ts = str(ds.file_meta.get("TransferSyntaxUID", "")) if hasattr(ds, "file_meta") else ""
    if not ts:
        little, implicit = ds.original_encoding
        ts = (
            "1.2.840.10008.1.2"
            if implicit
            else ("1.2.840.10008.1.2.1" if little else "1.2.840.10008.1.2.2")
        )
    bits_allocated = int(get_value(ds, "BitsAllocated") or 0)
    if pixel is not None and pixel[0] == 0x7FE00008:
        bits_allocated = 32
    elif pixel is not None and pixel[0] == 0x7FE00009:
        bits_allocated = 64
    bits_stored = int(get_value(ds, "BitsStored") or bits_allocated)
    frames = _int_or_reject(get_value(ds, "NumberOfFrames", 1) or 1, "Number of Frames")
    window = None
    with contextlib.suppress(Exception):
        center, width = get_value(ds, "WindowCenter"), get_value(ds, "WindowWidth")
        if center is not None and width is not None:
            center = center[0] if not isinstance(center, (int, float)) else center
            width = width[0] if not isinstance(width, (int, float)) else width
            window = (float(center), float(width))
    padding = get_value(ds, "PixelPaddingValue")
    return FileInfo(
        source=source,
        transfer_syntax=ts,
        rows=_int_or_reject(get_value(ds, "Rows", 0), "Rows"),
        columns=_int_or_reject(get_value(ds, "Columns", 0), "Columns"),
        samples=_int_or_reject(get_value(ds, "SamplesPerPixel", 1) or 1, "Samples per Pixel"),
        bits_allocated=bits_allocated,
        bits_stored=bits_stored,
        high_bit=int(
            get_value(ds, "HighBit", bits_stored - 1)
            if get_value(ds, "HighBit") is not None
            else bits_stored - 1
        ),
        signed=int(get_value(ds, "PixelRepresentation", 0) or 0) == 1,
        photometric=str(get_value(ds, "PhotometricInterpretation", "MONOCHROME2")).strip().upper(),
        frames=frames,
        file_size=size,
        pixel_tag=pixel[0] if pixel else None,
        pixel_offset=pixel[1] if pixel else None,
        pixel_length=pixel[2] if pixel else None,
        little_endian=pixel[3] if pixel else True,
        modality_lut="ModalityLUTSequence" in ds,
        padding=float(padding) if isinstance(padding, (int, float)) else None,
        window=window,
        gantry_tilt=float_or(get_value(ds, "GantryDetectorTilt"), None),
    )


def _int_or_reject(value, name: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        msg = f"invalid {name} value in the header"
        raise Reject(msg) from None


def orientation_key(iop: tuple[float, ...] | None) -> tuple | None:
    return None if iop is None else tuple(round(v, 3) + 0.0 for v in iop)


def slices_of(ds, info: FileInfo) -> list[SliceInfo]:
    if "PerFrameFunctionalGroupsSequence" in ds or "SharedFunctionalGroupsSequence" in ds:
        return _enhanced_slices(ds, info)
    iop = floats(get_value(ds, "ImageOrientationPatient"), 6)
    ipp = floats(get_value(ds, "ImagePositionPatient"), 3)
    spacing = floats(get_value(ds, "PixelSpacing"), 2) or floats(
        get_value(ds, "ImagerPixelSpacing"), 2
    )
    common = {
        "orientation": iop,
        "pixel_spacing": spacing,
        "slope": float_or(get_value(ds, "RescaleSlope"), 1.0) or 1.0,
        "intercept": float_or(get_value(ds, "RescaleIntercept"), 0.0),
        "instance": maybe_int(get_value(ds, "InstanceNumber")),
        "thickness": float_or(get_value(ds, "SliceThickness"), None),
        "spacing_between": float_or(get_value(ds, "SpacingBetweenSlices"), None),
    }
    if info.frames == 1:
        return [SliceInfo(info, None, ipp, **common)]
    pointers = get_value(ds, "FrameIncrementPointer")
    pointers = (
        []
        if pointers is None
        else ([pointers] if not isinstance(pointers, list) else list(pointers))
    )
    if any(int(p) in _TIME_POINTERS for p in pointers):
        msg = "cine multi-frame (frames are time points, not slices)"
        raise Reject(msg)
    step = common["spacing_between"] or common["thickness"]
    if ipp is None or iop is None or not step:
        msg = "multi-frame image without slice positions (frames may be time points)"
        raise Reject(msg)
    normal = np.cross(iop[:3], iop[3:])
    return [
        SliceInfo(info, f, tuple(float(v) for v in np.asarray(ipp) + f * step * normal), **common)
        for f in range(info.frames)
    ]


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
        raise Reject(msg)
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
                floats(pos.get("ImagePositionPatient"), 3) if pos else None,
                floats(ori.get("ImageOrientationPatient"), 6) if ori else None,
                floats(meas.get("PixelSpacing"), 2) if meas else None,
                slope=(float_or(pvt.get("RescaleSlope"), 1.0) or 1.0) if pvt else 1.0,
                intercept=float_or(pvt.get("RescaleIntercept"), 0.0) if pvt else 0.0,
                instance=f + 1,
                thickness=float_or(meas.get("SliceThickness"), None) if meas else None,
                spacing_between=float_or(meas.get("SpacingBetweenSlices"), None) if meas else None,
            )
        )
        if content is not None:
            slices[-1].stack = (
                str(content.get("StackID", "")),
                str(content.get("TemporalPositionIndex", "")),
            )
    return slices
