"""Array operations shared by the tools: components, anisotropic grow/shrink, crops.

All work on boolean crops (k, j, i) and take voxel radii per axis, so callers convert mm with
the grid spacing once. Growing and shrinking use the ellipsoid of those radii (anisotropic
spacing handled exactly): small kernels by row decomposition (running maxima plus shifted ORs, a
few passes over the crop), large ones by an exact Euclidean distance map (SimpleITK's Maurer) in
a metric scaled by the radii, whose cost does not grow with the radius. Both give the same voxels.
"""

from __future__ import annotations

import numpy as np


def to_image(mask: np.ndarray, spacing_ijk: tuple[float, float, float] = (1.0, 1.0, 1.0)):
    import SimpleITK as sitk  # noqa: PLC0415

    image = sitk.GetImageFromArray(mask.view(np.uint8) if mask.dtype == bool else mask)
    image.SetSpacing(tuple(float(s) for s in spacing_ijk))
    return image


def from_image(image) -> np.ndarray:
    import SimpleITK as sitk  # noqa: PLC0415

    return sitk.GetArrayFromImage(image)


def components(mask: np.ndarray, *, full: bool = False) -> tuple[np.ndarray, list[int]]:
    """Connected components, relabelled 1 = largest; returns (labels, sizes in voxels)."""
    import SimpleITK as sitk  # noqa: PLC0415

    cc = sitk.ConnectedComponent(to_image(mask), full)
    relabel = sitk.RelabelComponentImageFilter()
    relabel.SetSortByObjectSize(True)
    out = relabel.Execute(cc)
    return from_image(out), list(relabel.GetSizeOfObjectsInPixels())


def largest_components(
    mask: np.ndarray, count: int = 1, min_voxels: int = 0, *, full: bool = False
) -> tuple[np.ndarray, int, int]:
    """Keep the ``count`` largest components plus every one of at least ``min_voxels``.

    Returns (mask, components kept, components found). The selection happens inside SimpleITK
    (a threshold on the size-sorted labels), so no 32-bit label array crosses into numpy.
    """
    import SimpleITK as sitk  # noqa: PLC0415

    relabel = sitk.RelabelComponentImageFilter()
    relabel.SetSortByObjectSize(True)
    labels = relabel.Execute(sitk.ConnectedComponent(to_image(mask), full))
    sizes = relabel.GetSizeOfObjectsInPixels()
    big = sum(1 for s in sizes if s >= min_voxels) if min_voxels > 0 else 0
    keep = min(max(count, big), len(sizes))
    if keep == 0:
        return np.zeros(mask.shape, dtype=bool), 0, len(sizes)
    kept = sitk.BinaryThreshold(labels, 1, keep, 1, 0)
    return sitk.GetArrayFromImage(kept).view(bool), keep, len(sizes)


def keep_components(
    mask: np.ndarray, keep: list[int] | np.ndarray, *, full: bool = False
) -> np.ndarray:
    """Keep only the components with these ranks (1 = largest)."""
    labels, _ = components(mask, full=full)
    lookup = np.zeros(int(labels.max()) + 1, dtype=bool)
    keep = [k for k in keep if 0 < k < lookup.size]
    lookup[keep] = True
    return lookup[labels]


def ellipsoid_rows(radius: tuple[int, int, int]) -> list[tuple[int, int, int]]:
    """The ellipsoid of ``radius`` (k, j, i) as rows: (dk, dj, half-width along i)."""
    rk, rj, ri = radius
    rows = []
    for dk in range(-rk, rk + 1):
        for dj in range(-rj, rj + 1):
            rest = 1.0 - (dk / rk if rk else 0.0) ** 2 - (dj / rj if rj else 0.0) ** 2
            if rest >= -1e-9:
                rows.append((dk, dj, int(np.floor(ri * np.sqrt(max(rest, 0.0)) + 1e-9))))
    return rows


def grow(mask: np.ndarray, radius: tuple[int, int, int]) -> np.ndarray:
    """Dilate by the ellipsoid of ``radius`` voxels per axis (k, j, i); zero radii stay flat.

    The ellipsoid is every offset with (dk/rk)² + (dj/rj)² + (di/ri)² <= 1, so a margin of m mm
    reaches exactly the voxels within round(m / spacing) along each axis and the matching
    ellipsoid in between. Small kernels are decomposed into rows (a running maximum along i per
    row width, then shifted ORs); large ones use an exact Euclidean distance map whose cost does
    not depend on the radius.
    """
    if not any(radius) or not mask.any():
        return mask.copy()
    rows = ellipsoid_rows(radius)
    if len(rows) <= _MAX_ROWS or not all(radius):
        # (a flat kernel is always done by rows: the distance map loses precision there)
        return _grow_by_rows(mask, rows)
    return _grow_by_distance(mask, radius)


_MAX_ROWS = 40


def _grow_by_rows(mask: np.ndarray, rows: list[tuple[int, int, int]]) -> np.ndarray:
    from scipy import ndimage as ndi  # noqa: PLC0415

    source = mask.view(np.uint8) if mask.dtype == bool else mask.astype(np.uint8)
    widened = {0: source}
    for width in {w for _, _, w in rows if w}:
        widened[width] = ndi.maximum_filter1d(source, 2 * width + 1, axis=2, mode="constant")
    out = np.zeros(mask.shape, dtype=bool)
    nk, nj, _ = mask.shape
    for dk, dj, width in rows:
        src = widened[width].view(bool)
        k0, k1 = max(0, dk), min(nk, nk + dk)
        j0, j1 = max(0, dj), min(nj, nj + dj)
        if k1 <= k0 or j1 <= j0:
            continue
        target = out[k0 - dk : k1 - dk, j0 - dj : j1 - dj]
        np.logical_or(target, src[k0:k1, j0:j1], out=target)
    return out


def _grow_by_distance(mask: np.ndarray, radius: tuple[int, int, int]) -> np.ndarray:
    import SimpleITK as sitk  # noqa: PLC0415

    spacing_ijk = tuple(1.0 / r for r in (radius[2], radius[1], radius[0]))
    distance = sitk.SignedMaurerDistanceMap(
        to_image(mask, spacing_ijk),
        insideIsPositive=False,
        squaredDistance=True,
        useImageSpacing=True,
    )
    return sitk.GetArrayViewFromImage(distance) <= 1.0 + 1e-6


def shrink(mask: np.ndarray, radius: tuple[int, int, int]) -> np.ndarray:
    """Erode by an ellipsoid; voxels beyond the array edge count as inside (no erosion there)."""
    if not any(radius):
        return mask.copy()
    background = ~mask
    if not background.any():
        return mask.copy()
    return ~grow(background, radius)


def closing(mask: np.ndarray, radius: tuple[int, int, int]) -> np.ndarray:
    return shrink(grow(mask, radius), radius)


def opening(mask: np.ndarray, radius: tuple[int, int, int]) -> np.ndarray:
    return grow(shrink(mask, radius), radius)


def fill_cavities(mask: np.ndarray, max_voxels: int | None = None) -> np.ndarray:
    """Fill enclosed background pockets (not touching the array border) up to ``max_voxels``."""
    import SimpleITK as sitk  # noqa: PLC0415

    padded = np.pad(~mask, 1, constant_values=True)
    relabel = sitk.RelabelComponentImageFilter()
    relabel.SetSortByObjectSize(True)
    labels = relabel.Execute(sitk.ConnectedComponent(to_image(padded)))
    sizes = relabel.GetSizeOfObjectsInPixels()
    outside = int(labels[0, 0, 0])
    # sizes are sorted: the pockets small enough are the ranks first..len(sizes)
    first = 1 if max_voxels is None else 1 + sum(1 for s in sizes if s > max_voxels)
    ranges = [
        (a, b) for a, b in ((first, outside - 1), (max(first, outside + 1), len(sizes))) if a <= b
    ]
    if not ranges:
        return mask.copy()
    fill = None
    for a, b in ranges:
        part = sitk.BinaryThreshold(labels, a, b, 1, 0)
        fill = part if fill is None else sitk.Or(fill, part)
    filled = sitk.GetArrayViewFromImage(fill)[1:-1, 1:-1, 1:-1].view(bool)
    return mask | filled


def pad_for(radius: tuple[int, int, int], extra: int = 1) -> tuple[int, int, int]:
    return tuple(int(r) + extra for r in radius)  # type: ignore[return-value]
