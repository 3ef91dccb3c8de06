"""Pick a printable piece of a segment: its largest connected component that fits a printer."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

# Room kept free around the part on each axis (label, brim, skirt).
MARGIN_MM = 10.0


def largest_fitting_component(
    mask: np.ndarray,
    spacing_mm: tuple[float, float, float],
    build_volume_mm: tuple[float, float, float],
) -> np.ndarray | None:
    """The largest face-connected component of ``mask`` whose box fits ``build_volume_mm``.

    ``spacing_mm`` is (x, y, z) voxel size (the volume's ``spacing``); the mask is indexed
    (z, y, x). The box is compared axis by axis (x, y, z) with :data:`MARGIN_MM` kept free.
    Returns ``None`` when no component fits.
    """
    labels, count = ndimage.label(mask)
    if count == 0:
        return None
    sizes = np.bincount(labels.ravel())
    boxes = ndimage.find_objects(labels)
    step = np.abs(np.asarray(spacing_mm, dtype=np.float64))[::-1]  # (z, y, x)
    room = np.asarray(build_volume_mm, dtype=np.float64)[::-1] - MARGIN_MM
    for label in np.argsort(sizes[1:])[::-1] + 1:
        box = boxes[label - 1]
        extent = np.array([s.stop - s.start for s in box]) * step
        if np.all(extent <= room):
            return labels == label
    return None


def printable_piece(
    mask: np.ndarray,
    spacing_mm: tuple[float, float, float],
    build_volume_mm: tuple[float, float, float],
    *,
    cut_height_mm: float | None = None,
) -> tuple[np.ndarray | None, bool]:
    """The largest component that fits, else the largest component cut to the build volume
    (at most ``cut_height_mm`` high) around its centre, then its largest remaining piece.

    Returns (mask, was_cut); the mask is ``None`` when ``mask`` is empty.
    """
    whole = largest_fitting_component(mask, spacing_mm, build_volume_mm)
    if whole is not None:
        return whole, False
    labels, count = ndimage.label(mask)
    if count == 0:
        return None, False
    largest = labels == (np.bincount(labels.ravel())[1:].argmax() + 1)
    del labels
    step = np.abs(np.asarray(spacing_mm, dtype=np.float64))[::-1]
    room = np.asarray(build_volume_mm, dtype=np.float64)[::-1] - MARGIN_MM
    if cut_height_mm is not None:
        room[0] = min(room[0], cut_height_mm)
    half = (room / step / 2).astype(int)
    centre = np.round(ndimage.center_of_mass(largest)).astype(int)
    window = tuple(
        slice(max(0, c - h), min(n, c + h))
        for c, h, n in zip(centre, half, mask.shape, strict=True)
    )
    cut = np.zeros_like(mask, dtype=bool)
    cut[window] = largest[window]
    return largest_fitting_component(cut, spacing_mm, build_volume_mm), True
