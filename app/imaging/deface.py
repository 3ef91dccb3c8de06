"""Defacing a loaded volume: the face soft tissue of a head CT/MR set to air."""

from __future__ import annotations

import numpy as np

from app.imaging.volume import Volume
from app.security.deid.deface import face_mask


def deface_mask(
    volume: Volume, *, modality: str | None = None, max_depth_mm: float = 50.0
) -> np.ndarray:
    """Voxels of the face soft tissue of ``volume`` (see :func:`face_mask`); ``modality``
    defaults to the volume's."""
    return face_mask(
        volume.array,
        volume.spacing,
        volume.direction,
        modality=modality or volume.modality or "",
        max_depth_mm=max_depth_mm,
    )


def deface(volume: Volume, *, modality: str | None = None) -> Volume:
    """A copy of ``volume`` with the face soft tissue set to air (CT -1000 HU, MR minimum)."""
    modality = (modality or volume.modality or "").upper()
    mask = deface_mask(volume, modality=modality)
    array = volume.array.copy()
    blank = -1000 if modality == "CT" else array.min()
    if np.issubdtype(array.dtype, np.integer):
        info = np.iinfo(array.dtype)
        blank = min(max(blank, info.min), info.max)
    array[mask] = blank
    return Volume(
        array,
        volume.origin,
        volume.spacing,
        volume.direction,
        volume.modality,
        [*volume.warnings, "face soft tissue removed (defaced)"],
    )
