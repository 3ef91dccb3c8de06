"""Slice geometry for the 2D views: which voxel axes a view shows, and the maths between
screen pixels, displayed image pixels, voxel indices and patient LPS millimetres.

The views show the volume on its own voxel grid (as ITK-SNAP does): each view picks the voxel
axis closest to its patient axis, so a slice is a numpy view of the array (no resampling, no
copy) and a displayed pixel is exactly one voxel. The display follows the radiological
convention: patient right on the screen's left, anterior up in axial, superior up in coronal
and sagittal, anterior on the left in sagittal. Orientation letters are computed from the
real direction cosines, so an oblique series shows mixed letters (e.g. ``LA``).

This module has no Qt in it; it is tested on its own.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from app.imaging.volume import Volume

# Patient axes in LPS: 0 = x (towards Left), 1 = y (towards Posterior), 2 = z (towards Superior).
_POSITIVE = "LPS"
_NEGATIVE = "RAI"

ORIENTATIONS = ("axial", "coronal", "sagittal")

# Per view: (normal patient axis, (screen-right patient axis, sign), (screen-down axis, sign)).
_LAYOUT = {
    "axial": (2, (0, +1), (1, +1)),
    "coronal": (1, (0, +1), (2, -1)),
    "sagittal": (0, (1, +1), (2, -1)),
}


def patient_axis_of_voxel_axes(direction: np.ndarray) -> tuple[tuple[int, int, int], np.ndarray]:
    """Match voxel axes (i, j, k) to patient axes (x, y, z), one to one.

    Returns ``(voxel_axis_of_patient, signs)``: for patient axis p, the voxel axis whose
    direction is closest to it, and the sign of that direction's p component.
    """
    direction = np.asarray(direction, dtype=float)
    best, best_score = (0, 1, 2), -1.0
    for perm in itertools.permutations(range(3)):
        score = sum(abs(direction[p, perm[p]]) for p in range(3))
        if score > best_score + 1e-9:
            best, best_score = perm, score
    signs = np.array([1.0 if direction[p, best[p]] >= 0 else -1.0 for p in range(3)])
    return best, signs


def direction_letters(vector: np.ndarray, second_at: float = 0.3) -> str:
    """Orientation letters of an LPS vector: the main one, plus a second for oblique vectors."""
    vector = np.asarray(vector, dtype=float)
    norm = np.linalg.norm(vector)
    if norm == 0:
        return ""
    vector = vector / norm
    order = np.argsort(-np.abs(vector))
    letters = ""
    for rank, axis in enumerate(order[:2]):
        if rank == 1 and abs(vector[axis]) < second_at:
            break
        letters += _POSITIVE[axis] if vector[axis] > 0 else _NEGATIVE[axis]
    return letters


@dataclass(frozen=True)
class SliceGeometry:
    """How one orientation (axial, coronal, sagittal) shows a given volume.

    Displayed pixel (col, row) on slice ``s`` maps to voxel index ``ijk`` with
    ``ijk[h_axis] = col`` (or ``n_h - 1 - col`` when ``h_flip``), the same for rows, and
    ``ijk[n_axis] = s``.
    """

    orientation: str
    n_axis: int
    h_axis: int
    v_axis: int
    h_flip: bool
    v_flip: bool
    size_ijk: tuple[int, int, int]
    spacing: tuple[float, float, float]
    affine: np.ndarray

    @classmethod
    def for_volume(cls, volume: Volume, orientation: str) -> SliceGeometry:
        if orientation not in _LAYOUT:
            msg = f"unknown view orientation '{orientation}'; use one of {', '.join(ORIENTATIONS)}"
            raise ValueError(msg)
        normal_p, (h_p, h_sign), (v_p, v_sign) = _LAYOUT[orientation]
        axis_of, signs = patient_axis_of_voxel_axes(volume.direction)
        return cls(
            orientation=orientation,
            n_axis=axis_of[normal_p],
            h_axis=axis_of[h_p],
            v_axis=axis_of[v_p],
            h_flip=bool(signs[h_p] * h_sign < 0),
            v_flip=bool(signs[v_p] * v_sign < 0),
            size_ijk=volume.size_ijk,
            spacing=volume.spacing,
            affine=volume.affine,
        )

    # -- sizes ------------------------------------------------------------------------------
    @property
    def n_slices(self) -> int:
        return self.size_ijk[self.n_axis]

    @property
    def width(self) -> int:
        """Displayed image width in pixels (columns)."""
        return self.size_ijk[self.h_axis]

    @property
    def height(self) -> int:
        return self.size_ijk[self.v_axis]

    @property
    def pixel_mm(self) -> tuple[float, float]:
        """Size of one displayed pixel in mm: (across, down)."""
        return (self.spacing[self.h_axis], self.spacing[self.v_axis])

    # -- slicing ----------------------------------------------------------------------------
    def slice_of(self, array: np.ndarray, index: int) -> np.ndarray:
        """The displayed 2D slice of an ``array[k, j, i]`` volume, as a view (no copy).

        Rows run down the screen, columns to the right.
        """
        index = int(np.clip(index, 0, self.n_slices - 1))
        numpy_axis = {0: 2, 1: 1, 2: 0}
        take: list[slice | int] = [slice(None)] * 3
        take[numpy_axis[self.n_axis]] = index
        plane = array[tuple(take)]
        # Remaining numpy axes are in decreasing voxel-axis order (k, j, i minus the normal).
        remaining = [a for a in (2, 1, 0) if a != self.n_axis]
        if remaining[0] != self.v_axis:
            plane = plane.T
        if self.v_flip:
            plane = plane[::-1, :]
        if self.h_flip:
            plane = plane[:, ::-1]
        return plane

    # -- coordinates ------------------------------------------------------------------------
    def display_to_index(self, col: float, row: float, slice_index: float) -> np.ndarray:
        """Continuous displayed (col, row) on a slice to continuous voxel (i, j, k)."""
        ijk = np.zeros(3)
        ijk[self.h_axis] = (self.width - 1 - col) if self.h_flip else col
        ijk[self.v_axis] = (self.height - 1 - row) if self.v_flip else row
        ijk[self.n_axis] = slice_index
        return ijk

    def index_to_display(self, ijk: np.ndarray) -> tuple[float, float, float]:
        """Voxel (i, j, k) to displayed (col, row, slice)."""
        ijk = np.asarray(ijk, dtype=float)
        col = ijk[self.h_axis]
        row = ijk[self.v_axis]
        if self.h_flip:
            col = self.width - 1 - col
        if self.v_flip:
            row = self.height - 1 - row
        return float(col), float(row), float(ijk[self.n_axis])

    def index_to_lps(self, ijk: np.ndarray) -> np.ndarray:
        ijk = np.asarray(ijk, dtype=float)
        return self.affine[:3, :3] @ ijk + self.affine[:3, 3]

    def lps_to_index(self, lps: np.ndarray) -> np.ndarray:
        lps = np.asarray(lps, dtype=float)
        return np.linalg.solve(self.affine[:3, :3], lps - self.affine[:3, 3])

    def display_to_lps(self, col: float, row: float, slice_index: float) -> np.ndarray:
        return self.index_to_lps(self.display_to_index(col, row, slice_index))

    def lps_to_display(self, lps: np.ndarray) -> tuple[float, float, float]:
        return self.index_to_display(self.lps_to_index(lps))

    def slice_index_of(self, lps: np.ndarray) -> int:
        """Nearest slice (clamped) through an LPS point."""
        k = self.lps_to_index(lps)[self.n_axis]
        return int(np.clip(np.rint(k), 0, self.n_slices - 1))

    # -- labels -----------------------------------------------------------------------------
    def _screen_vector(self, axis: int, flip: bool) -> np.ndarray:
        vec = self.affine[:3, axis] / np.linalg.norm(self.affine[:3, axis])
        return -vec if flip else vec

    def edge_letters(self) -> dict[str, str]:
        """Orientation letters at the screen edges: keys left, right, top, bottom."""
        right = self._screen_vector(self.h_axis, self.h_flip)
        down = self._screen_vector(self.v_axis, self.v_flip)
        return {
            "left": direction_letters(-right),
            "right": direction_letters(right),
            "top": direction_letters(-down),
            "bottom": direction_letters(down),
        }

    def slice_position_mm(self, slice_index: int) -> tuple[str, float]:
        """(patient-axis letter, mm) of the slice centre along the view's patient axis.

        Axial slices report S, coronal P, sagittal L, as 3D Slicer does: e.g. ``("S", -120.5)``.
        """
        normal_p = _LAYOUT[self.orientation][0]
        centre = self.display_to_lps((self.width - 1) / 2, (self.height - 1) / 2, slice_index)
        return _POSITIVE[normal_p], float(centre[normal_p])

    def slice_normal_lps(self) -> np.ndarray:
        vec = self.affine[:3, self.n_axis]
        return vec / np.linalg.norm(vec)
