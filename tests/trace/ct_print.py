"""A CT of a printed part, as a scanner would write it: the part voxelised into HU (resin on
air, blurred like a CT's point spread, with noise) and written as a DICOM series with pydicom
(new UIDs, no patient identity)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pyvista as pv
import trimesh
from pydicom.dataset import FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid
from scipy import ndimage

AIR_HU, RESIN_HU = -1000.0, 200.0
PAD = 4  # voxels of air around the part


def inside_voxels(part: trimesh.Trimesh, *, pitch: float) -> tuple[np.ndarray, np.ndarray]:
    """(mask (z, y, x), origin of its first voxel in mm) of ``part`` with ``PAD`` voxels of air
    around: a voxel is in when its centre is inside the part."""
    lo, hi = part.bounds
    origin = lo - PAD * pitch
    dims = np.ceil((hi - lo) / pitch).astype(int) + 2 * PAD + 1
    grid = pv.ImageData(dimensions=dims, spacing=(pitch,) * 3, origin=origin)
    mask = pv.wrap(part).voxelize_binary_mask(reference_volume=grid).point_data["mask"]
    return np.asarray(mask).reshape(dims[::-1]) > 0, origin


def ct_volume(
    part: trimesh.Trimesh, *, pitch: float, noise_hu: float = 30.0, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """(HU array (z, y, x), origin of its first voxel in mm) of ``part`` in air: a voxel is
    resin when its centre is inside the part."""
    inside, origin = inside_voxels(part, pitch=pitch)
    values = np.where(inside, RESIN_HU, AIR_HU).astype(np.float32)
    values = ndimage.gaussian_filter(values, 0.6)
    values += np.random.default_rng(seed).normal(0.0, noise_hu, values.shape).astype(np.float32)
    return values, origin


def write_ct_series(
    part: trimesh.Trimesh, folder: Path, *, pitch: float = 0.3, seed: int = 0
) -> Path:
    """``part`` (mm) as a CT series of axial slices in ``folder``; returns the folder."""
    values, origin = ct_volume(part, pitch=pitch, seed=seed)
    stored = np.clip(np.round(values + 1024.0), 0, 4095).astype(np.uint16)
    uids = {"study": generate_uid(), "series": generate_uid(), "frame": generate_uid()}
    folder.mkdir(parents=True, exist_ok=True)
    for k, plane in enumerate(stored):
        position = [float(origin[0]), float(origin[1]), float(origin[2] + k * pitch)]
        _slice(plane, position, pitch, k, uids).save_as(
            folder / f"ct{k:04d}.dcm", enforce_file_format=True
        )
    return folder


def _slice(
    plane: np.ndarray, position: list[float], pitch: float, k: int, uids: dict
) -> pydicom.Dataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = pydicom.Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = uids["study"], uids["series"]
    ds.FrameOfReferenceUID = uids["frame"]
    ds.Modality, ds.SeriesDescription, ds.SeriesNumber = "CT", "printed part", 1
    ds.PatientName, ds.PatientID = "", ""
    ds.InstanceNumber = k + 1
    ds.ImagePositionPatient = position
    ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    ds.PixelSpacing = [pitch, pitch]
    ds.SliceThickness = pitch
    ds.Rows, ds.Columns = plane.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.RescaleIntercept, ds.RescaleSlope = -1024.0, 1.0
    ds.PixelData = np.ascontiguousarray(plane).tobytes()
    return ds
