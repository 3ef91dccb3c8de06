"""Array operations shared by the tools: components, anisotropic grow/shrink, crops.

All work on boolean crops (k, j, i) and take voxel radii per axis, so callers convert mm with
the grid spacing once. Growing uses an exact Euclidean distance map (SimpleITK's Maurer) in a
metric scaled by the per-axis radius, which equals dilation by an ellipsoid of those radii:
anisotropic spacing is handled exactly and the cost does not grow with the radius.
"""

from __future__ import annotations

import numpy as np

_FAR = 1.0e6  # spacing that stops a distance map from growing along an axis


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


def keep_components(
    mask: np.ndarray, keep: list[int] | np.ndarray, *, full: bool = False
) -> np.ndarray:
    """Keep only the components with these ranks (1 = largest)."""
    labels, _ = components(mask, full=full)
    lookup = np.zeros(int(labels.max()) + 1, dtype=bool)
    keep = [k for k in keep if 0 < k < lookup.size]
    lookup[keep] = True
    return lookup[labels]


def grow(mask: np.ndarray, radius: tuple[int, int, int]) -> np.ndarray:
    """Dilate by an ellipsoid of ``radius`` voxels per axis (k, j, i); zero radii stay flat."""
    import SimpleITK as sitk  # noqa: PLC0415

    if not any(radius) or not mask.any():
        return mask.copy()
    spacing_ijk = tuple(1.0 / r if r else _FAR for r in (radius[2], radius[1], radius[0]))
    distance = sitk.SignedMaurerDistanceMap(
        to_image(mask, spacing_ijk),
        insideIsPositive=False,
        squaredDistance=True,
        useImageSpacing=True,
    )
    return from_image(distance) <= 1.0 + 1e-6


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
    padded = np.pad(~mask, 1, constant_values=True)
    labels, sizes = components(padded)
    outside = labels[0, 0, 0]
    fill = np.zeros(len(sizes) + 1, dtype=bool)
    fill[1:] = True
    fill[outside] = False
    if max_voxels is not None:
        fill[1:] &= np.asarray(sizes) <= max_voxels
    out = mask | fill[labels[1:-1, 1:-1, 1:-1]]
    return out


def pad_for(radius: tuple[int, int, int], extra: int = 1) -> tuple[int, int, int]:
    return tuple(int(r) + extra for r in radius)  # type: ignore[return-value]
