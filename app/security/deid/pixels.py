"""Pixel data: which images may carry burned-in text, and blanking rectangles of them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from pydicom.dataset import Dataset

from app.security.deid.errors import DeidError
from app.security.deid.header import add_method
from app.security.deid.profile import CID_7050

_SECONDARY_CAPTURE_PREFIX = "1.2.840.10008.5.1.4.1.1.7"


@dataclass(frozen=True)
class Rect:
    """A rectangle of pixels: ``x`` (column) and ``y`` (row) of the top-left corner, size."""

    x: int
    y: int
    width: int
    height: int


def burned_in_risk(ds: Dataset) -> str | None:
    """Why ``ds`` may show identifying text in its pixels, or None.

    Flagged: Burned In Annotation YES; unless Burned In Annotation is NO, ultrasound,
    secondary capture, photographic, document and screen-capture images, and projection X-ray
    (XA, RF, DX, CR, MG), which often carry labels. CT and MR are not flagged.
    """
    if "PixelData" not in ds and "FloatPixelData" not in ds and "DoubleFloatPixelData" not in ds:
        return None
    flag = str(ds.get("BurnedInAnnotation", "")).strip().upper()
    if flag == "YES":
        return "Burned In Annotation is YES"
    if flag == "NO":
        return None
    modality = str(ds.get("Modality", "")).upper()
    sop_class = str(ds.get("SOPClassUID", ""))
    image_type = [str(v).upper() for v in (ds.get("ImageType") or [])]
    if modality in ("US", "IVUS"):
        return "ultrasound images usually carry burned-in text"
    if modality in ("SC", "OT", "DOC", "XC", "ES", "GM", "SM") or sop_class.startswith(
        _SECONDARY_CAPTURE_PREFIX
    ):
        return "secondary capture / photographic images may carry burned-in text"
    if "SCREEN SAVE" in image_type or ("SECONDARY" in image_type and modality in ("XA", "RF")):
        return "screen captures may carry burned-in text"
    if modality in ("XA", "RF", "DX", "CR", "MG"):
        return "projection X-ray images often carry burned-in labels"
    return None


def mask_rectangles(ds: Dataset, rects: Sequence[Rect]) -> Dataset:
    """Blank the stored pixel values inside ``rects`` on every frame (in place).

    Compressed pixel data is decoded and re-encoded uncompressed (Explicit VR Little Endian);
    the blank value is black for the photometric interpretation. Burned In Annotation becomes NO
    and, on a de-identified dataset, Clean Pixel Data (113101) is recorded.
    """
    if not rects:
        return ds
    arr = decoded_pixels(ds)
    rows, cols = int(ds.Rows), int(ds.Columns)
    blank = _black_value(ds, arr)
    samples = (int(ds.SamplesPerPixel),) if is_color(ds) else ()
    frames = arr.reshape((-1, rows, cols, *samples))
    for rect in rects:
        y0, y1 = max(rect.y, 0), min(rect.y + rect.height, rows)
        x0, x1 = max(rect.x, 0), min(rect.x + rect.width, cols)
        if y1 > y0 and x1 > x0:
            frames[:, y0:y1, x0:x1, ...] = blank
    store_pixels(ds, frames.reshape(arr.shape))
    ds.BurnedInAnnotation = "NO"
    if str(ds.get("PatientIdentityRemoved", "")) == "YES":
        add_method(ds, ["113101"], [CID_7050["113101"]])
    return ds


def is_color(ds: Dataset) -> bool:
    return int(ds.get("SamplesPerPixel", 1)) > 1


def decoded_pixels(ds: Dataset) -> np.ndarray:
    try:
        if ds.file_meta.TransferSyntaxUID.is_compressed:
            ds.decompress(generate_instance_uid=False)
        return ds.pixel_array.copy()
    except Exception as exc:  # decoders raise many types
        msg = f"the pixel data cannot be decoded for masking ({type(exc).__name__})"
        raise DeidError(msg) from None


def _black_value(ds: Dataset, arr: np.ndarray) -> int:
    if is_color(ds):
        return 0
    if str(ds.get("PhotometricInterpretation", "")) == "MONOCHROME1":
        return int(arr.max())
    return int(arr.min())


def store_pixels(ds: Dataset, arr: np.ndarray) -> None:
    photometric = str(ds.PhotometricInterpretation)
    if is_color(ds) and photometric.startswith("YBR"):
        photometric = "RGB"  # pixel_array converted it
    ds.set_pixel_data(arr, photometric, int(ds.BitsStored), generate_instance_uid=False)
    if is_color(ds):
        ds.PlanarConfiguration = 0
