"""Thin-slice benchmark inputs made once from the shared TCIA CT and cached outside the repo.

The TCIA abdomen CT (512×512×134, 3 mm slices) resampled along the slice axis to ``slices``
slices over the same extent (linear interpolation, int16 HU): 536 slices is the 4× thin-slice
case (0.75 mm), 1000 slices the synthetic 512×512×1,000 CT (0.4 mm). Each is written as NRRD
(for ``medprint mesh --volume``) and, on request, as a DICOM series (for ``medprint demo
--input``). The cache folder is ``$MEDPRINT_BENCH_CACHE`` or ``~/.cache/medprint-bench``;
the data is public, nothing of a case is written.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from benchmarks.common import SHARED_DATA

TCIA = SHARED_DATA / "dicom" / "ct-abdomen-tcia-pancreas-134"


def cache_dir() -> Path:
    """The folder holding the generated inputs (created on first use)."""
    folder = Path(os.environ.get("MEDPRINT_BENCH_CACHE", Path.home() / ".cache" / "medprint-bench"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _read_tcia():
    import SimpleITK as sitk

    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(TCIA)))
    return reader.Execute()


def _resampled(slices: int):
    """The TCIA CT on ``slices`` slices over the same first-to-last extent, int16."""
    import SimpleITK as sitk

    image = _read_tcia()
    size = list(image.GetSize())
    spacing = list(image.GetSpacing())
    if slices == size[2]:
        return sitk.Cast(image, sitk.sitkInt16)
    spacing[2] = spacing[2] * (size[2] - 1) / (slices - 1)
    size[2] = slices
    out = sitk.Resample(
        image,
        size,
        sitk.Transform(),
        sitk.sitkLinear,
        image.GetOrigin(),
        spacing,
        image.GetDirection(),
        -1024,
        sitk.sitkInt16,
    )
    return out


def nrrd(slices: int) -> Path:
    """The TCIA CT with ``slices`` slices as a (cached) NRRD file."""
    import SimpleITK as sitk

    path = cache_dir() / f"tcia-ct-{slices}.nrrd"
    if not path.exists():
        partial = path.with_suffix(".part.nrrd")
        sitk.WriteImage(_resampled(slices), str(partial), useCompression=False)
        partial.replace(path)
    return path


def dicom_series(slices: int) -> Path:
    """The TCIA CT with ``slices`` slices as a (cached) folder of single-frame CT files."""
    folder = cache_dir() / f"tcia-ct-{slices}-dicom"
    done = folder / ".complete"
    if not done.exists():
        folder.mkdir(exist_ok=True)
        _write_series(nrrd(slices), folder)
        done.write_text("ok\n")
    return folder


def _write_series(source: Path, folder: Path) -> None:
    import pydicom
    import SimpleITK as sitk
    from pydicom.uid import generate_uid

    image = sitk.ReadImage(str(source))
    array = sitk.GetArrayViewFromImage(image)
    template = pydicom.dcmread(sorted(TCIA.glob("*.dcm"))[0])
    series_uid, frame_uid = generate_uid(), generate_uid()
    origin = np.asarray(image.GetOrigin())
    normal = np.asarray(image.GetDirection()).reshape(3, 3)[:, 2]
    step = image.GetSpacing()[2]
    for k in range(array.shape[0]):
        ds = template.copy()
        ds.SeriesInstanceUID, ds.FrameOfReferenceUID = series_uid, frame_uid
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.InstanceNumber = k + 1
        ds.ImagePositionPatient = [f"{v:.4f}" for v in origin + k * step * normal]
        ds.SliceThickness = f"{step:.4f}"
        ds.SliceLocation = f"{(origin + k * step * normal)[2]:.4f}"
        ds.RescaleSlope, ds.RescaleIntercept = 1, 0
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.PixelData = np.ascontiguousarray(array[k], dtype="<i2").tobytes()
        ds.save_as(folder / f"{k + 1:04d}.dcm", enforce_file_format=True)
