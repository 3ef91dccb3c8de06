"""Make the bundled sample case: a small derivative of the public TCIA abdomen CT.

    .venv/bin/python scripts/make_sample.py [SOURCE_FOLDER] [--every N]

Reads ``../shared/data/dicom/ct-abdomen-tcia-pancreas-134`` (TCIA Pancreas-CT-CB_001, CC BY
4.0), and writes ``resources/sample/ct-abdomen/`` as RLE Lossless DICOM:

* 256×256: each output pixel is the mean of a 2×2 block of Hounsfield units (no aliasing);
  Pixel Spacing is doubled and Image Position Patient moves by half an input pixel along the
  row and column directions, so the centre of output pixel (0, 0) is the centre of its block
  and the geometry stays exact;
* every ``N``-th slice (default 2: 67 slices, 6 mm apart), slice positions kept;
* values stored as signed 16-bit HU (slope 1, intercept 0);
* new UIDs derived deterministically from the source UIDs (re-running gives identical files);
  Patient Name / ID ``MedPrint Sample``; the source is already de-identified by TCIA (shifted
  dates, no birth date); private elements removed; Image Type DERIVED\\SECONDARY with a
  Derivation Description.

Also writes ``resources/sample/ATTRIBUTION.md`` from the folder's CITATION.txt.
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import sys
from pathlib import Path

import numpy as np
import pydicom
from pydicom.uid import RLELossless

REPO = Path(__file__).resolve().parents[1]
SOURCE = REPO.parent / "shared" / "data" / "dicom" / "ct-abdomen-tcia-pancreas-134"
TARGET = REPO / "resources" / "sample" / "ct-abdomen"
ATTRIBUTION = REPO / "resources" / "sample" / "ATTRIBUTION.md"
NAME = "MedPrint Sample"
UID_PREFIX = "2.25."


def _uid(original: str) -> str:
    """A 2.25 UID derived from the source UID: same input, same output."""
    digest = hashlib.sha256(f"medprint-sample:{original}".encode()).digest()[:16]
    return UID_PREFIX + str(int.from_bytes(digest, "big"))


def _downsample(ds: pydicom.Dataset) -> np.ndarray:
    hu = ds.pixel_array.astype(np.float32) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    rows, cols = hu.shape
    blocks = hu[: rows // 2 * 2, : cols // 2 * 2].reshape(rows // 2, 2, cols // 2, 2)
    return np.rint(blocks.mean(axis=(1, 3))).astype(np.int16)


def _derive(ds: pydicom.Dataset, number: int) -> pydicom.Dataset:
    iop = np.array(ds.ImageOrientationPatient, dtype=float)
    row_mm, col_mm = (float(v) for v in ds.PixelSpacing)
    ipp = np.array(ds.ImagePositionPatient, dtype=float)
    ipp = ipp + 0.5 * col_mm * iop[:3] + 0.5 * row_mm * iop[3:]
    pixels = _downsample(ds)
    ds.remove_private_tags()
    for keyword in ("RescaleType", "SmallestImagePixelValue", "LargestImagePixelValue"):
        if keyword in ds:
            delattr(ds, keyword)
    ds.PatientName = NAME
    ds.PatientID = NAME
    ds.StudyInstanceUID = _uid(ds.StudyInstanceUID)
    ds.SeriesInstanceUID = _uid(ds.SeriesInstanceUID)
    ds.FrameOfReferenceUID = _uid(ds.get("FrameOfReferenceUID", ds.StudyInstanceUID))
    ds.SOPInstanceUID = _uid(ds.SOPInstanceUID)
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.SeriesDescription = "MedPrint sample CT (TCIA Pancreas-CT-CB_001, 2x2 downsampled)"
    ds.ImageType = ["DERIVED", "SECONDARY", "AXIAL"]
    ds.DerivationDescription = "2x2 block mean of HU, every 2nd slice; from TCIA, CC BY 4.0"
    ds.InstanceNumber = number
    ds.ImagePositionPatient = [f"{v:.6f}".rstrip("0").rstrip(".") for v in ipp]
    ds.PixelSpacing = [f"{row_mm * 2:.8g}", f"{col_mm * 2:.8g}"]
    ds.RescaleSlope = 1
    ds.RescaleIntercept = 0
    ds.set_pixel_data(pixels, "MONOCHROME2", 16, generate_instance_uid=False)
    ds.compress(RLELossless, generate_instance_uid=False)
    return ds


def make(source: Path, every: int) -> list[Path]:
    files = sorted(source.glob("*.dcm"))
    if not files:
        sys.exit(f"no DICOM files in {source}")
    datasets = sorted(
        (pydicom.dcmread(f) for f in files), key=lambda d: float(d.ImagePositionPatient[2])
    )
    if TARGET.exists():
        shutil.rmtree(TARGET)
    TARGET.mkdir(parents=True)
    written = []
    for number, ds in enumerate(datasets[::every], start=1):
        out = TARGET / f"IM{number:04d}.dcm"
        _derive(ds, number).save_as(out, enforce_file_format=True)
        written.append(out)
    _attribution(source)
    return written


def _attribution(source: Path) -> None:
    citation = (source / "CITATION.txt").read_text(encoding="utf-8").strip()
    ATTRIBUTION.write_text(
        "# Sample case: attribution\n\n"
        "`ct-abdomen/` is a derivative of one public CT series, made by `scripts/make_sample.py`:\n"
        "2×2 block mean of Hounsfield units (256×256, pixel spacing doubled), every second\n"
        'slice, re-identified only as "MedPrint Sample" with new UIDs, RLE Lossless.\n\n'
        "- Source: The Cancer Imaging Archive (TCIA), collection *Pancreatic-CT-CBCT-SEG*,\n"
        '  subject Pancreas-CT-CB_001, series "PANCREAS DI, iDose (3)" (already de-identified by\n'
        "  TCIA: pseudonymous name/ID, shifted dates). DOI 10.7937/TCIA.ESHQ-4D90.\n"
        "- Licence: Creative Commons Attribution 4.0 International (CC BY 4.0),\n"
        "  https://creativecommons.org/licenses/by/4.0/, and the TCIA Data Usage Policy.\n"
        "- Changes: downsampled and re-encoded as described above; no other change to the images.\n\n"
        "Please cite:\n\n" + citation + "\n",
        encoding="utf-8",
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", nargs="?", type=Path, default=SOURCE)
    parser.add_argument("--every", type=int, default=2, help="keep every N-th slice (default 2)")
    args = parser.parse_args()
    written = make(args.source, args.every)
    size = sum(p.stat().st_size for p in written)
    print(f"wrote {len(written)} files, {size / 1e6:.1f} MB, to {TARGET.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
