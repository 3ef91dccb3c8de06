"""The voxel grid a segmentation lives on: shape plus LPS geometry, without the pixels.

Index order is the one of :class:`app.imaging.volume.Volume`: ``array[k, j, i]``; spacing is
``(si, sj, sk)`` and the direction matrix holds the i, j, k axes as columns in LPS.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from app.errors import SegmentationError

Box = tuple[slice, slice, slice]
"""A box of voxels ``(k, j, i)`` as three slices with explicit, non-negative start/stop."""


@dataclass(frozen=True)
class Grid:
    """Shape ``(nk, nj, ni)`` and geometry of a voxel grid in patient LPS millimetres."""

    shape: tuple[int, int, int]
    origin: tuple[float, float, float] = (0.0, 0.0, 0.0)
    spacing: tuple[float, float, float] = (1.0, 1.0, 1.0)
    direction: tuple[float, ...] = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)

    def __post_init__(self) -> None:
        object.__setattr__(self, "shape", tuple(int(v) for v in self.shape))
        object.__setattr__(self, "origin", tuple(float(v) for v in self.origin))
        object.__setattr__(self, "spacing", tuple(float(v) for v in self.spacing))
        direction = tuple(float(v) for v in np.asarray(self.direction, dtype=float).ravel())
        object.__setattr__(self, "direction", direction)
        if len(self.shape) != 3 or min(self.shape) < 1:
            msg = f"a segmentation grid needs three positive sizes, got {self.shape}"
            raise SegmentationError(msg)
        if len(direction) != 9 or min(self.spacing) <= 0:
            msg = "a segmentation grid needs a 3×3 direction and positive spacing"
            raise SegmentationError(msg)

    @classmethod
    def of(cls, source: Any) -> Grid:
        """The grid of a :class:`Volume`, a :class:`Grid`, or anything with the same fields."""
        if isinstance(source, Grid):
            return source
        shape = tuple(getattr(source, "shape", ()))
        return cls(
            shape=shape,  # type: ignore[arg-type]
            origin=tuple(source.origin),
            spacing=tuple(source.spacing),
            direction=tuple(np.asarray(source.direction, dtype=float).ravel()),
        )

    @property
    def size_ijk(self) -> tuple[int, int, int]:
        nk, nj, ni = self.shape
        return (ni, nj, nk)

    @property
    def direction_matrix(self) -> np.ndarray:
        return np.asarray(self.direction, dtype=float).reshape(3, 3)

    @property
    def spacing_kji(self) -> tuple[float, float, float]:
        """Spacing in array axis order (k, j, i)."""
        return (self.spacing[2], self.spacing[1], self.spacing[0])

    @property
    def affine(self) -> np.ndarray:
        """4×4 matrix mapping homogeneous (i, j, k, 1) to LPS mm."""
        out = np.eye(4)
        out[:3, :3] = self.direction_matrix * np.asarray(self.spacing)[None, :]
        out[:3, 3] = self.origin
        return out

    @property
    def voxel_volume_mm3(self) -> float:
        return float(np.prod(self.spacing))

    @property
    def voxel_count(self) -> int:
        return int(np.prod(self.shape))

    def index_to_lps(self, ijk: Any) -> np.ndarray:
        """Continuous (i, j, k) indices (..., 3) to LPS points (..., 3) in mm."""
        aff = self.affine
        return np.asarray(ijk, dtype=float) @ aff[:3, :3].T + aff[:3, 3]

    def lps_to_index(self, lps: Any) -> np.ndarray:
        """LPS points (..., 3) in mm to continuous (i, j, k) indices (..., 3)."""
        aff = self.affine
        return (np.asarray(lps, dtype=float) - aff[:3, 3]) @ np.linalg.inv(aff[:3, :3]).T

    def matches(self, other: Any, tol: float = 1e-3) -> bool:
        """True when ``other`` (Grid or Volume) has the same shape and geometry."""
        other = Grid.of(other)
        return (
            self.shape == other.shape
            and np.allclose(self.origin, other.origin, atol=tol)
            and np.allclose(self.spacing, other.spacing, atol=tol * 0.1)
            and np.allclose(self.direction, other.direction, atol=tol)
        )

    def full_box(self) -> Box:
        return tuple(slice(0, n) for n in self.shape)  # type: ignore[return-value]

    def to_sitk(self, array: np.ndarray, box: Box | None = None):
        """A SimpleITK image of ``array`` placed on this grid (or on ``box`` of it)."""
        import SimpleITK as sitk  # noqa: PLC0415 (heavy import)

        image = sitk.GetImageFromArray(array)
        offset = (0, 0, 0) if box is None else (box[2].start, box[1].start, box[0].start)
        image.SetOrigin(tuple(float(v) for v in self.index_to_lps(offset)))
        image.SetSpacing(self.spacing)
        image.SetDirection(self.direction)
        return image

    @classmethod
    def from_sitk(cls, image) -> Grid:
        size = image.GetSize()
        return cls(
            (size[2], size[1], size[0]), image.GetOrigin(), image.GetSpacing(), image.GetDirection()
        )

    def to_dict(self) -> dict:
        return {
            "shape": list(self.shape),
            "origin": list(self.origin),
            "spacing": list(self.spacing),
            "direction": list(self.direction),
        }

    @classmethod
    def from_dict(cls, data: dict) -> Grid:
        return cls(
            tuple(data["shape"]),
            tuple(data["origin"]),
            tuple(data["spacing"]),
            tuple(data["direction"]),
        )


def box_shape(box: Box) -> tuple[int, int, int]:
    return tuple(s.stop - s.start for s in box)  # type: ignore[return-value]


def box_size(box: Box) -> int:
    k, j, i = box_shape(box)
    return k * j * i


def box_union(a: Box | None, b: Box | None) -> Box | None:
    if a is None:
        return b
    if b is None:
        return a
    return tuple(
        slice(min(x.start, y.start), max(x.stop, y.stop)) for x, y in zip(a, b, strict=True)
    )  # type: ignore[return-value]


def box_intersection(a: Box, b: Box) -> Box | None:
    out = tuple(
        slice(max(x.start, y.start), min(x.stop, y.stop)) for x, y in zip(a, b, strict=True)
    )
    if any(s.stop <= s.start for s in out):
        return None
    return out  # type: ignore[return-value]


def box_pad(box: Box, pad: tuple[int, int, int] | int, shape: tuple[int, int, int]) -> Box:
    """``box`` grown by ``pad`` voxels per axis (k, j, i), clipped to ``shape``."""
    pads = (pad, pad, pad) if isinstance(pad, int) else pad
    return tuple(  # type: ignore[return-value]
        slice(max(0, s.start - p), min(n, s.stop + p))
        for s, p, n in zip(box, pads, shape, strict=True)
    )


def box_contains(outer: Box, inner: Box) -> bool:
    return all(o.start <= i.start and i.stop <= o.stop for o, i in zip(outer, inner, strict=True))


def relative(inner: Box, outer: Box) -> Box:
    """``inner`` expressed in the coordinates of an array cropped to ``outer``."""
    return tuple(  # type: ignore[return-value]
        slice(i.start - o.start, i.stop - o.start) for i, o in zip(inner, outer, strict=True)
    )


def mask_box(mask: np.ndarray, offset: tuple[int, int, int] = (0, 0, 0)) -> Box | None:
    """Tight box of the True voxels of ``mask`` (shifted by ``offset``), or None when empty."""
    k_hit = np.flatnonzero(mask.any(axis=(1, 2)))
    if k_hit.size == 0:
        return None
    k0, k1 = int(k_hit[0]), int(k_hit[-1]) + 1
    plane = mask[k0:k1].any(axis=0)
    j_hit = np.flatnonzero(plane.any(axis=1))
    i_hit = np.flatnonzero(plane.any(axis=0))
    return (
        slice(k0 + offset[0], k1 + offset[0]),
        slice(int(j_hit[0]) + offset[1], int(j_hit[-1]) + 1 + offset[1]),
        slice(int(i_hit[0]) + offset[2], int(i_hit[-1]) + 1 + offset[2]),
    )
