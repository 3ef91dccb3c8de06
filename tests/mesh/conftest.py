"""Mesh fixtures: real CT bone masks (cached per session) and phantoms with known geometry."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from app.imaging.volume import Volume

TCIA = "ct-abdomen-tcia-pancreas-134"
GE_HEAD = "ct-head-ge-gantry-tilt-28"


def read_series(folder: Path) -> Volume:
    import SimpleITK as sitk

    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(folder)))
    return Volume.from_sitk(reader.Execute(), modality="CT")


def crop(volume: Volume, k: slice, j: slice, i: slice) -> Volume:
    """A sub-block with its geometry (origin moved to the block's first voxel)."""
    origin = volume.index_to_lps(np.array([i.start, j.start, k.start], dtype=np.float64))
    return Volume(
        np.ascontiguousarray(volume.array[k, j, i]),
        origin=tuple(origin),
        spacing=volume.spacing,
        direction=volume.direction,
        modality=volume.modality,
    )


def bone_mask(volume: Volume, low: float = 226.0) -> np.ndarray:
    """Threshold >= ``low`` HU, then the largest face-connected component."""
    labels, n = ndimage.label(volume.array >= low)
    assert n > 0
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    return labels == sizes.argmax()


@pytest.fixture(scope="session")
def tcia_ct(dicom_dir: Path) -> Volume:
    folder = dicom_dir / TCIA
    if not folder.is_dir():
        pytest.skip(f"{TCIA} not in the shared data")
    return read_series(folder)


@pytest.fixture(scope="session")
def lumbar(tcia_ct: Volume) -> tuple[np.ndarray, Volume]:
    """A lumbar block of the TCIA CT (40 slices x 130 x 130 voxels) and its bone mask."""
    block = crop(tcia_ct, slice(30, 70), slice(230, 360), slice(190, 320))
    return bone_mask(block), block


@pytest.fixture(scope="session")
def lumbar_build(lumbar):
    from app.tools.mesh.pipeline import build_mesh

    mask, volume = lumbar
    return build_mesh(mask, volume)


@pytest.fixture(scope="session")
def ge_skull(dicom_dir: Path) -> tuple[np.ndarray, Volume]:
    """The gantry-tilted GE head CT (non-identity direction) and its skull mask."""
    folder = dicom_dir / GE_HEAD
    if not folder.is_dir():
        pytest.skip(f"{GE_HEAD} not in the shared data")
    volume = read_series(folder)
    return bone_mask(volume), volume


def phantom_volume(
    shape_kji: tuple[int, int, int],
    spacing: tuple[float, float, float],
    direction: np.ndarray,
    origin: tuple[float, float, float],
) -> Volume:
    return Volume(
        np.zeros(shape_kji, dtype=np.int16), origin=origin, spacing=spacing, direction=direction
    )


def voxel_lps(volume: Volume) -> np.ndarray:
    """LPS position of every voxel centre, shaped like the array plus a last axis of 3."""
    k, j, i = np.meshgrid(*[np.arange(s) for s in volume.shape], indexing="ij")
    return volume.index_to_lps(np.stack([i, j, k], axis=-1).astype(np.float64))


def oblique_mirrored_direction() -> np.ndarray:
    """A rotation about an oblique axis followed by a mirror: det = -1, nothing axis-aligned."""
    axis = np.array([1.0, 2.0, 2.0]) / 3.0
    angle = np.deg2rad(25.0)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    rotation = np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * (k @ k)
    return rotation @ np.diag([1.0, -1.0, 1.0])
