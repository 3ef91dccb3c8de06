"""Volume: a 3D image array plus its geometry in patient LPS millimetres.

Index order follows SimpleITK/numpy: ``array[k, j, i]`` (slice, row, column). ``spacing`` is
``(si, sj, sk)`` in mm along the i (column), j (row) and k (slice) axes; ``direction`` is a 3×3
matrix whose columns are the unit vectors of the i, j, k axes in LPS; ``origin`` is the LPS
position of the centre of voxel (0, 0, 0). The mapping is::

    lps = origin + direction @ (spacing * (i, j, k))
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import BinaryIO

import numpy as np

from app.errors import MedPrintError

_MAGIC = b"MPVOL1\n"
PREVIEW_SIDE = 256  # a preview has at most this many voxels a side
_READ_STEP = 16 << 20  # bytes decrypted between progress reports


@dataclass
class Volume:
    array: np.ndarray
    origin: tuple[float, float, float] = (0.0, 0.0, 0.0)
    spacing: tuple[float, float, float] = (1.0, 1.0, 1.0)
    direction: np.ndarray = field(default_factory=lambda: np.eye(3))
    modality: str = "OT"
    warnings: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.array.ndim != 3:
            msg = f"a volume needs a 3D array, got {self.array.ndim}D"
            raise MedPrintError(msg)
        self.origin = tuple(float(v) for v in self.origin)
        self.spacing = tuple(float(v) for v in self.spacing)
        self.direction = np.asarray(self.direction, dtype=np.float64).reshape(3, 3)

    @property
    def shape(self) -> tuple[int, int, int]:
        """(nk, nj, ni): slices, rows, columns."""
        return tuple(self.array.shape)

    @property
    def size_ijk(self) -> tuple[int, int, int]:
        """(ni, nj, nk), the order SimpleITK and VTK use."""
        nk, nj, ni = self.array.shape
        return (ni, nj, nk)

    @property
    def affine(self) -> np.ndarray:
        """4×4 matrix mapping homogeneous (i, j, k, 1) to LPS mm."""
        out = np.eye(4)
        out[:3, :3] = self.direction * np.asarray(self.spacing)[None, :]
        out[:3, 3] = self.origin
        return out

    def index_to_lps(self, ijk: np.ndarray) -> np.ndarray:
        """Continuous (i, j, k) indices (..., 3) to LPS points (..., 3) in mm."""
        ijk = np.asarray(ijk, dtype=np.float64)
        aff = self.affine
        return ijk @ aff[:3, :3].T + aff[:3, 3]

    def lps_to_index(self, lps: np.ndarray) -> np.ndarray:
        """LPS points (..., 3) in mm to continuous (i, j, k) indices (..., 3)."""
        lps = np.asarray(lps, dtype=np.float64)
        aff = self.affine
        return (lps - aff[:3, 3]) @ np.linalg.inv(aff[:3, :3]).T

    def voxel_volume_mm3(self) -> float:
        return float(np.prod(self.spacing))

    def bounds_lps(self) -> np.ndarray:
        """(2, 3) min/max LPS corner of the voxel-centre grid."""
        ni, nj, nk = self.size_ijk
        corners = np.array(
            [[i, j, k] for i in (0, ni - 1) for j in (0, nj - 1) for k in (0, nk - 1)]
        )
        pts = self.index_to_lps(corners)
        return np.stack([pts.min(axis=0), pts.max(axis=0)])

    def geometry(self) -> dict:
        """Geometry as plain JSON-able values."""
        return {
            "shape": list(self.shape),
            "origin": list(self.origin),
            "spacing": list(self.spacing),
            "direction": self.direction.tolist(),
            "modality": self.modality,
            "dtype": str(self.array.dtype),
        }

    def same_grid(self, other: Volume, tol: float = 1e-4) -> bool:
        return (
            self.shape == other.shape
            and np.allclose(self.origin, other.origin, atol=tol)
            and np.allclose(self.spacing, other.spacing, atol=tol)
            and np.allclose(self.direction, other.direction, atol=tol)
        )

    def to_sitk(self):
        """A SimpleITK image sharing the geometry (the pixels are copied by SimpleITK)."""
        import SimpleITK as sitk  # noqa: PLC0415 (heavy import, only when needed)

        image = sitk.GetImageFromArray(self.array)
        image.SetOrigin(self.origin)
        image.SetSpacing(self.spacing)
        image.SetDirection(tuple(self.direction.flatten()))
        return image

    @classmethod
    def from_sitk(cls, image, modality: str = "OT", warnings: list[str] | None = None) -> Volume:
        import SimpleITK as sitk  # noqa: PLC0415 (heavy import, only when needed)

        if image.GetDimension() != 3:
            msg = f"expected a 3D image, got {image.GetDimension()}D"
            raise MedPrintError(msg)
        return cls(
            array=sitk.GetArrayFromImage(image),
            origin=image.GetOrigin(),
            spacing=image.GetSpacing(),
            direction=np.array(image.GetDirection()).reshape(3, 3),
            modality=modality,
            warnings=list(warnings or []),
        )

    def reduced(self, max_side: int = PREVIEW_SIDE) -> Volume:
        """Every n-th voxel along each axis, n the smallest that keeps every side within
        ``max_side``: the same region and geometry at a coarser spacing (a quick preview)."""
        sk, sj, si = (-(-n // max_side) for n in self.array.shape)
        return Volume(
            array=np.ascontiguousarray(self.array[::sk, ::sj, ::si]),
            origin=self.origin,
            spacing=(self.spacing[0] * si, self.spacing[1] * sj, self.spacing[2] * sk),
            direction=self.direction,
            modality=self.modality,
            warnings=list(self.warnings),
        )

    def write(self, stream: BinaryIO) -> None:
        """Serialise to a binary stream (header JSON + raw C-order array), no extra copy."""
        header = dict(self.geometry(), warnings=self.warnings)
        blob = json.dumps(header).encode("utf-8")
        stream.write(_MAGIC + struct.pack("<I", len(blob)) + blob)
        array = np.ascontiguousarray(self.array)
        view = memoryview(array.reshape(-1).view(np.uint8))
        step = 1 << 20
        for start in range(0, len(view), step):
            stream.write(view[start : start + step])

    @classmethod
    def read(cls, stream: BinaryIO, progress: Callable[[float], None] | None = None) -> Volume:
        """Inverse of :meth:`write`; refuses anything that is not a MedPrint volume.

        ``progress(fraction)`` is called as the samples arrive (and may raise to stop).
        """
        if stream.read(len(_MAGIC)) != _MAGIC:
            msg = "not a MedPrint volume stream"
            raise MedPrintError(msg)
        (length,) = struct.unpack("<I", _read_exact(stream, 4))
        header = json.loads(_read_exact(stream, length))
        shape = tuple(int(v) for v in header["shape"])
        dtype = np.dtype(header["dtype"])
        array = np.empty(shape, dtype=dtype)
        view = memoryview(array.reshape(-1).view(np.uint8))
        for start in range(0, len(view), _READ_STEP):
            part = view[start : start + _READ_STEP]
            if stream.readinto(part) != len(part):  # type: ignore[attr-defined]
                msg = "volume stream is truncated"
                raise MedPrintError(msg)
            if progress is not None:
                progress((start + len(part)) / len(view))
        return cls(
            array=array,
            origin=header["origin"],
            spacing=header["spacing"],
            direction=np.array(header["direction"]),
            modality=header["modality"],
            warnings=list(header.get("warnings", [])),
        )


def _read_exact(stream: BinaryIO, size: int) -> bytes:
    data = stream.read(size)
    if len(data) != size:
        msg = "volume stream is truncated"
        raise MedPrintError(msg)
    return data
