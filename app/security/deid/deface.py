"""Defacing (Clean Recognizable Visual Features, 113102): the face soft tissue of head CT/MR.

The mask works on a plain array with its geometry (``app.imaging.deface`` applies it to a
loaded Volume); :func:`deface_stack` blanks it in the stored slices of one series.
"""

from __future__ import annotations

import numpy as np
from pydicom.dataset import Dataset
from scipy import ndimage

from app.security.deid.errors import DeidError
from app.security.deid.header import add_method
from app.security.deid.pixels import decoded_pixels, store_pixels
from app.security.deid.profile import CID_7050

_HEAD_WORDS = (
    "HEAD", "BRAIN", "SKULL", "CRAN", "NEURO", "FACE", "FACIAL", "SINUS", "ORBIT", "MAXILL",
    "MANDIB", "DENTAL", "TMJ", "KOPF", "SCHAEDEL", "SCHADEL", "TETE", "CEREB",
)  # fmt: skip


def face_mask(
    array: np.ndarray,
    spacing: tuple[float, float, float],
    direction: np.ndarray,
    *,
    modality: str,
    max_depth_mm: float = 50.0,
) -> np.ndarray:
    """Voxels of the face soft tissue (skin, fat, nose, lips, eyelids) to blank.

    Rays run from the front of the head backwards along the volume axis closest to the
    anterior–posterior direction. On each ray the tissue between the skin and the first voxel
    that is not soft tissue (bone or air on CT; the dark band of cortical bone, air or CSF on MR)
    is marked, when that voxel lies inside the head (tissue behind it) at most ``max_depth_mm``
    deep; so the skull, and the brain behind it, are never marked, and soft tissue far from
    bone or air is left alone. Neighbouring rays share a median cut depth, so the cut is smooth.

    Parameters
    ----------
    array
        CT in Hounsfield units, or MR in its own units, indexed ``[k, j, i]``; any orientation.
    spacing
        Voxel size in mm along i, j, k.
    direction
        3x3 matrix whose columns are the LPS directions of i, j and k.
    modality
        "CT" or "MR".
    max_depth_mm
        Deepest soft tissue removed in front of the bone or air.

    Returns
    -------
    numpy.ndarray
        Boolean array of ``array.shape``; True where the face tissue (and the air in front of
        it) is.
    """
    modality = modality.upper()
    direction = np.asarray(direction, dtype=np.float64).reshape(3, 3)
    ap_axis = int(np.argmax(np.abs(direction[1, :])))  # i, j or k
    np_axis = 2 - ap_axis
    posterior_first = direction[1, ap_axis] < 0  # LPS +y is posterior
    rays = np.moveaxis(np.asarray(array), np_axis, -1)
    if posterior_first:
        rays = rays[..., ::-1]
    step = float(spacing[ap_axis])
    tissue, stops, fallback = _tissue_classes(rays, modality)
    run = max(1, round(2.0 / step))
    line = np.ones((1,) * (rays.ndim - 1) + (run,), dtype=bool)
    tissue = ndimage.binary_opening(tissue, structure=line)
    n = rays.shape[-1]
    index = np.arange(n)
    entry = np.where(tissue.any(axis=-1), np.argmax(tissue, axis=-1), n)
    # The stop must be inside the head (tissue behind it): where a thin slice through the
    # vertex misses the skull, the ray leaving the back of the head is no stop.
    last_tissue = n - 1 - np.argmax(tissue[..., ::-1], axis=-1)

    def first_stop(kind: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        hit = kind & (index >= entry[..., None])
        first = np.where(hit.any(axis=-1), np.argmax(hit, axis=-1), n)
        usable = (first > entry) & (first < last_tissue) & ((first - entry) * step <= max_depth_mm)
        return first, usable & (entry < n)

    first, usable = first_stop(stops)
    if fallback is not None:  # CT: no bone within reach, so stop at air inside the face
        second, usable_second = first_stop(fallback)
        first = np.where(usable, first, np.where(usable_second, second, first))
        usable |= usable_second
    # Neighbouring rays agree (median of the stop index over 5x5 rays) so the cut has no
    # streaks; never past a ray's own stop, so the skull is never touched.
    stop = ndimage.median_filter(np.where(usable, first, 0), size=(5,) * first.ndim)
    stop = np.minimum(stop, np.where(first < n, first, 0))
    if fallback is None:  # MR: the nose stops at its own nostril air; cut it to the cheeks
        grid = tuple(float(spacing[a]) for a in (2, 1, 0) if a != ap_axis)
        stop = _fill_narrow_pits(
            stop, entry, grid_spacing=grid, step=step, max_depth_mm=max_depth_mm
        )
    mask = index < stop[..., None]
    if posterior_first:
        mask = mask[..., ::-1]
    return np.ascontiguousarray(np.moveaxis(mask, -1, np_axis))


def _fill_narrow_pits(
    stop: np.ndarray,
    entry: np.ndarray,
    *,
    grid_spacing: tuple[float, ...],
    step: float,
    max_depth_mm: float,
    width_mm: float = 40.0,
) -> np.ndarray:
    """Raise cut depths in pits narrower than ``width_mm`` (the nose among the cheeks) to the
    level around them (a grey closing of the depth map), never more than ``max_depth_mm`` of
    tissue on any ray. Broad plateaus (the forehead over the brain) are left as they are."""
    size = tuple(max(3, round(width_mm / spacing) | 1) for spacing in grid_spacing)
    closed = ndimage.grey_closing(stop, size=size)
    limit = entry + int(max_depth_mm / step)  # rays with no tissue: only air is cut
    return np.maximum(stop, np.minimum(closed, limit))


def _tissue_classes(
    rays: np.ndarray, modality: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """(anything not air, where the cut stops, where it stops when the first is out of reach).

    CT stops at bone, so the nose, lips and eyes go whole (air in the nose does not stop the
    cut), or at air inside the face where no bone is within reach; MR stops at the first dark
    voxel (cortical bone, air and CSF look alike on T1).
    """
    if modality == "CT":
        tissue = rays > -400
        return tissue, rays >= 250, ~tissue | (rays >= 250)
    threshold = _otsu(rays)
    bright = _median3(np.asarray(rays, dtype=np.float32)) > 0.5 * threshold
    return bright, ~bright, None


def _median3(rays: np.ndarray) -> np.ndarray:
    """Median of each voxel and its two neighbours along the last axis (edges kept)."""
    out = rays.copy()
    a, b, c = rays[..., :-2], rays[..., 1:-1], rays[..., 2:]
    out[..., 1:-1] = np.maximum(np.minimum(a, b), np.minimum(np.maximum(a, b), c))
    return out


def _otsu(values: np.ndarray) -> float:
    sample = np.asarray(values, dtype=np.float32).ravel()[:: max(1, values.size // 2_000_000)]
    hist, edges = np.histogram(sample, bins=256)
    centers = (edges[:-1] + edges[1:]) / 2
    weight = np.cumsum(hist)
    mean = np.cumsum(hist * centers)
    total, total_mean = weight[-1], mean[-1]
    between = (total_mean * weight - mean * total) ** 2 / np.maximum(
        weight * (total - weight), 1e-9
    )
    return float(centers[int(np.argmax(between[:-1]))])


def is_head_series(ds: Dataset) -> bool:
    """Whether the body part or descriptions name the head or brain (CT/MR only)."""
    if str(ds.get("Modality", "")).upper() not in ("CT", "MR"):
        return False
    words = " ".join(
        str(ds.get(k, "") or "")
        for k in ("BodyPartExamined", "StudyDescription", "SeriesDescription", "ProtocolName")
    ).upper()
    return any(word in words for word in _HEAD_WORDS)


def deface_stack(datasets: list[Dataset]) -> None:
    """Deface one series of single-frame CT/MR slices in place (stored values blanked)."""
    first = datasets[0]
    try:
        iop = np.array([float(v) for v in first.ImageOrientationPatient])
        row, col = iop[:3], iop[3:]
        normal = np.cross(row, col)
        order = sorted(
            datasets,
            key=lambda d: float(np.dot([float(v) for v in d.ImagePositionPatient], normal)),
        )
        positions = [np.dot([float(v) for v in d.ImagePositionPatient], normal) for d in order]
        spacing_rc = [float(v) for v in first.PixelSpacing]
        stored = np.stack([decoded_pixels(d) for d in order])
        if stored.ndim != 3 or not np.issubdtype(stored.dtype, np.integer):
            msg = "multi-frame, colour or float pixel data"
            raise ValueError(msg)
    except (AttributeError, ValueError, TypeError, DeidError) as exc:
        msg = "a head series cannot be defaced (no usable single-frame slice geometry, "
        msg += f"{type(exc).__name__}); export it without defacing, or deface the loaded volume"
        raise DeidError(msg) from None
    gap = float(np.median(np.diff(positions))) if len(positions) > 1 else 1.0
    slopes = np.array([float(d.get("RescaleSlope", 1) or 1) for d in order], np.float32)
    intercepts = np.array([float(d.get("RescaleIntercept", 0) or 0) for d in order], np.float32)
    values = stored.astype(np.float32) * slopes[:, None, None] + intercepts[:, None, None]
    modality = str(first.Modality).upper()
    spacing = (spacing_rc[1], spacing_rc[0], abs(gap) or 1.0)
    direction = np.column_stack([row, col, normal])
    mask = face_mask(values, spacing, direction, modality=modality)
    info = np.iinfo(stored.dtype)
    for k, ds in enumerate(order):
        if modality == "CT":
            blank = round((-1000.0 - intercepts[k]) / slopes[k])
        else:
            blank = int(stored.min())
        plane = stored[k].copy()
        plane[mask[k]] = min(max(blank, info.min), info.max)
        store_pixels(ds, plane)
        add_method(ds, ["113102"], [CID_7050["113102"][:64]])
