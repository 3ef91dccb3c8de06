"""What one header is: a grayscale image with its slices and stack signature, or a rejection
with a one-line reason (not an image, SEG, RT dose, colour, truncated pixel data)."""

from __future__ import annotations

from dataclasses import dataclass, field

from app.imaging.elements import get_value, maybe_int, raw_text, text_value
from app.imaging.guards import Reject, check_declared_size, size_text
from app.imaging.headers import (
    PIXEL_TAGS,
    FileInfo,
    SliceInfo,
    file_info,
    orientation_key,
    slices_of,
)
from app.imaging.sources import SourceRef

_SEG_SOP = "1.2.840.10008.5.1.4.1.1.66.4"


_RTDOSE_SOP = "1.2.840.10008.5.1.4.1.1.481.2"


_GRAYSCALE = ("MONOCHROME1", "MONOCHROME2")


_LOSSY_TS = {
    "1.2.840.10008.1.2.4.50",
    "1.2.840.10008.1.2.4.51",
    "1.2.840.10008.1.2.4.81",
    "1.2.840.10008.1.2.4.91",
    "1.2.840.10008.1.2.4.203",
    "1.2.840.10008.1.2.4.111",
    "1.2.840.10008.1.2.4.112",
}


_GROUPING = (
    "PatientID",
    "PatientName",
    "PatientBirthDate",
    "StudyInstanceUID",
    "SeriesInstanceUID",
)


@dataclass
class Header:
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


def _non_image_reason(ds) -> str:
    sop = ds.get("SOPClassUID")
    if not sop:
        return "not an image: no SOP Class and no pixel data"
    name = getattr(sop, "name", None) or str(sop)
    return f"not an image: {name}"


def classify(source: SourceRef, ds, pixel: tuple | None, size: int) -> Header:
    """Turn one header into slices, or raise Reject with the reason."""
    sop = str(get_value(ds, "SOPClassUID", ""))
    has_pixels = pixel is not None or any(t in ds for t in PIXEL_TAGS)
    if not has_pixels or "Rows" not in ds:
        raise Reject(_non_image_reason(ds))
    if sop == _SEG_SOP:
        msg = "segmentation object (SEG), not a source image"
        raise Reject(msg)
    if sop == _RTDOSE_SOP or get_value(ds, "Modality") == "RTDOSE":
        msg = "RT dose grid, not an anatomical image"
        raise Reject(msg)
    info = file_info(source, ds, pixel, size)
    check_format(info)
    slices = slices_of(ds, info)
    spacing = slices[0].pixel_spacing
    signature = (
        orientation_key(slices[0].orientation),
        info.rows,
        info.columns,
        None if spacing is None else tuple(round(v, 4) for v in spacing),
        str(get_value(ds, "EchoNumbers", "")),
        str(get_value(ds, "TemporalPositionIdentifier", "")),
        str(get_value(ds, "AcquisitionNumber", "")) if "LOCALIZER" in _image_type(ds) else "",
    )
    ts = info.transfer_syntax
    lossy = ts in _LOSSY_TS or str(get_value(ds, "LossyImageCompression", "00")) == "01"
    rank = 0 if info.native else (2 if lossy else 1)
    info.rank = rank
    return Header(info, slices, signature, rank)


def summarise(header: Header, ds, identified: set[str]) -> None:
    """Copy what grouping needs out of the dataset, so the dataset can be dropped."""
    header.keys = {name: raw_text(ds, name) for name in _GROUPING}
    header.keys["SOPInstanceUID"] = raw_text(ds, "SOPInstanceUID")
    header.modality = text_value(ds, "Modality") or "OT"
    header.number = maybe_int(get_value(ds, "SeriesNumber"))
    header.body_part = text_value(ds, "BodyPartExamined") or None
    series_uid = header.keys["SeriesInstanceUID"]
    if series_uid not in identified:
        identified.add(series_uid)
        header.identity = identity_of(ds)


def _image_type(ds) -> str:
    value = get_value(ds, "ImageType", "")
    return "\\".join(value) if not isinstance(value, str) else value


def check_format(info: FileInfo) -> None:
    """Refuse what cannot become a grayscale volume, and absurd or truncated pixel data."""
    if info.photometric not in _GRAYSCALE or info.samples != 1:
        msg = f"colour image ({info.photometric}), not a grayscale volume to print"
        raise Reject(msg)
    if info.rows <= 0 or info.columns <= 0 or info.frames <= 0:
        msg = "image has no rows, columns or frames"
        raise Reject(msg)
    if info.bits_allocated not in (1, 8, 16, 32, 64):
        msg = f"unsupported Bits Allocated ({info.bits_allocated})"
        raise Reject(msg)
    declared = info.frame_bytes * info.frames
    if info.pixel_offset is not None:
        available = info.file_size - info.pixel_offset
        if info.pixel_length is not None:
            if info.pixel_length > available:
                msg = f"pixel data truncated: element says {size_text(info.pixel_length)}, file holds {size_text(available)}"
                raise Reject(msg)
            if info.pixel_length < declared:
                msg = f"pixel data truncated: {size_text(info.pixel_length)} of {size_text(declared)} declared"
                raise Reject(msg)
        else:
            check_declared_size(
                info.rows, info.columns, info.frames, info.bits_allocated, available
            )


def identity_of(ds) -> dict[str, str]:
    return {
        "patient_name": text_value(ds, "PatientName"),
        "patient_id": text_value(ds, "PatientID"),
        "birth_date": text_value(ds, "PatientBirthDate"),
        "sex": text_value(ds, "PatientSex"),
        "study_date": text_value(ds, "StudyDate"),
        "study_description": text_value(ds, "StudyDescription"),
        "series_description": text_value(ds, "SeriesDescription"),
        "description": text_value(ds, "SeriesDescription") or text_value(ds, "StudyDescription"),
        "series_date": text_value(ds, "SeriesDate") or text_value(ds, "StudyDate"),
        "institution": text_value(ds, "InstitutionName"),
        "accession_number": text_value(ds, "AccessionNumber"),
        "study_instance_uid": text_value(ds, "StudyInstanceUID"),
        "series_instance_uid": text_value(ds, "SeriesInstanceUID"),
    }
