"""Resin: drain holes at the lowest point of every internal cavity, and the resin check.

A hollowed model holds its cavities as inner shells (faces pointing into the cavity). Printed on
resin, each cavity must be open to the outside or it traps liquid resin (and, facing the vat,
makes a suction cup). :func:`cavity_holes` finds the lowest point of every cavity for the chosen
print orientation (``down``: the direction gravity points while the resin drains), :func:`drill` opens each with a round channel straight down out of the part, and
:func:`resin_check` proves on a voxel grid that no cavity is closed: every empty voxel must
connect to the outside.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import trimesh
from scipy import ndimage

from app.errors import MeshError
from app.progress import ensure
from app.tools.mesh import edit
from app.tools.mesh.core import signed_volume

Hole = tuple[np.ndarray, np.ndarray]  # a point at a cavity's bottom, the upward direction


def _down(down: np.ndarray | tuple[float, float, float]) -> np.ndarray:
    d = np.asarray(down, dtype=np.float64)
    norm = float(np.linalg.norm(d))
    if norm == 0:
        msg = "the print orientation needs a non-zero 'down' direction"
        raise MeshError(msg)
    return d / norm


def cavities(mesh: trimesh.Trimesh) -> list[trimesh.Trimesh]:
    """The inner shells of ``mesh`` (closed pieces whose faces point inward), largest first."""
    shells = mesh.split(only_watertight=False)
    inner = [s for s in shells if signed_volume(s) < 0]
    return sorted(inner, key=signed_volume)


def cavity_holes(mesh: trimesh.Trimesh, down: np.ndarray = (0.0, 0.0, -1.0)) -> list[Hole]:
    """One drain hole per cavity: its lowest point along ``down``, and the upward direction."""
    d = _down(down)
    holes = []
    for shell in cavities(mesh):
        holes.append((_lowest(np.asarray(shell.vertices), d), -d))
    return holes


def _lowest(vertices: np.ndarray, d: np.ndarray) -> np.ndarray:
    """The lowest vertex along ``d``; on a flat bottom the one nearest the bottom's middle."""
    height = vertices @ d
    bottom = vertices[height >= height.max() - 0.05]
    middle = bottom.mean(axis=0)
    return bottom[int(np.argmin(np.linalg.norm(bottom - middle, axis=1)))]


def drill(
    mesh: trimesh.Trimesh,
    holes: list[Hole],
    diameter_mm: float = 4.0,
    down: np.ndarray = (0.0, 0.0, -1.0),
) -> trimesh.Trimesh:
    """Open each hole with a channel from inside its cavity straight down out of the part."""
    if not holes:
        return mesh
    d = _down(down)
    beyond = float(np.max(np.asarray(mesh.vertices) @ d)) + 1.0  # past the part's lowest point
    solid = edit.to_manifold(mesh)
    for point, up in holes:
        start = point + 0.5 * diameter_mm * up  # a little inside the cavity
        end = point + (beyond - float(point @ d)) * d
        solid = solid - edit.cylinder_between(start, end, diameter_mm)
    return edit.from_manifold(solid)


@dataclass(frozen=True)
class ResinCheck:
    """Resin QA of one model: volume of resin (ml), closed cavities and the resin they trap."""

    resin_ml: float
    closed_cavities: int
    trapped_ml: float
    voxel_mm: float

    @property
    def passed(self) -> bool:
        return self.closed_cavities == 0

    def to_dict(self) -> dict:
        return asdict(self) | {"passed": self.passed}

    def lines(self) -> list[str]:
        state = "every cavity is open" if self.passed else (
            f"{self.closed_cavities} closed cavities trap {self.trapped_ml:.2f} ml of resin"
        )  # fmt: skip
        return [f"resin: {self.resin_ml:.2f} ml", f"cavities: {state}"]


def resin_check(mesh: trimesh.Trimesh, voxel_mm: float | None = None) -> ResinCheck:
    """Voxelize ``mesh`` and find empty regions not connected to the outside (6-neighbours).

    ``voxel_mm`` defaults to 0.5 mm, coarser for big models (at most 300 voxels along a side).
    """
    extent = float(np.max(mesh.bounds[1] - mesh.bounds[0]))
    voxel_mm = voxel_mm or max(0.5, extent / 300.0)
    solid, _ = edit._voxelize(mesh, voxel_mm, pad=2, progress=ensure(None), cancel=None)
    empty, count = ndimage.label(~solid)
    border = np.unique(
        np.concatenate(
            [empty[[0, -1]].ravel(), empty[:, [0, -1]].ravel(), empty[..., [0, -1]].ravel()]
        )
    )
    closed = sorted(set(range(1, count + 1)) - set(border.tolist()))
    trapped = int(np.isin(empty, closed).sum()) if closed else 0
    return ResinCheck(
        resin_ml=round(abs(signed_volume(mesh)) / 1000.0, 4),
        closed_cavities=len(closed),
        trapped_ml=round(trapped * voxel_mm**3 / 1000.0, 4),
        voxel_mm=voxel_mm,
    )
