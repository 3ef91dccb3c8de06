"""Resin: drain holes at the lowest point of every internal cavity, and the resin check.

A hollowed model holds its cavities as inner shells (faces pointing into the cavity). Printed on
resin, each cavity must be open to the outside or it traps liquid resin (and, facing the vat,
makes a suction cup). :func:`cavity_holes` finds the lowest point of every cavity for the chosen
print orientation (``down``: the direction gravity points while the resin drains),
:func:`drill` opens each with a round channel straight down out of the part, and
:func:`resin_check` counts the cavities still closed (the inner shells of a closed mesh), the
suction cups of the print orientation and the walls too thin for the resin
(:mod:`app.tools.mesh.resinqa`). Cavities too small to drain are filled back to solid
(:func:`fill_small_cavities`) before drilling, so every cavity left is drilled.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import numpy as np
import trimesh
from scipy import ndimage

from app.errors import MeshError
from app.progress import ensure
from app.tools.mesh import edit, resinqa
from app.tools.mesh.core import signed_volume

MIN_CAVITY_ML = 0.1  # smaller cavities are filled back to solid when hollowing
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
    """Resin QA of one model in its print orientation: volume of resin (ml), closed cavities and
    the resin they trap, suction cups, and regions thinner than the resin's minimum wall and
    feature size (``None`` when no resin limits were given)."""

    resin_ml: float
    closed_cavities: int
    trapped_ml: float
    voxel_mm: float
    suction_cups: int = 0
    largest_cup_mm2: float = 0.0
    thin_walls: int | None = None
    small_features: int | None = None
    thinnest_mm: float | None = None
    min_wall_mm: float | None = None
    min_feature_mm: float | None = None

    @property
    def passed(self) -> bool:
        return self.closed_cavities == 0 and self.suction_cups == 0 and not self.thin_walls

    def to_dict(self) -> dict:
        return asdict(self) | {"passed": self.passed}

    @classmethod
    def from_dict(cls, data: dict) -> ResinCheck:
        """The check kept in a provenance record (fields it lacks take their defaults)."""
        return cls(**{f.name: data[f.name] for f in fields(cls) if f.name in data})

    def lines(self) -> list[str]:
        state = "every cavity is open" if self.closed_cavities == 0 else (
            f"{self.closed_cavities} closed cavities trap {self.trapped_ml:.2f} ml of resin"
        )  # fmt: skip
        return [f"resin: {self.resin_ml:.2f} ml", f"cavities: {state}", *self.problems()]

    def problems(self) -> list[str]:
        """One line per finding beyond the cavities (empty when none)."""
        out = []
        if self.suction_cups:
            out.append(
                f"{self.suction_cups} suction cups (a hole facing the vat, sealed behind; largest "
                f"{self.largest_cup_mm2:.0f} mm²): reorient, add a vent or drain hole"
            )
        if self.thin_walls:
            out.append(
                f"{self.thin_walls} regions thinner than the resin's {self.min_wall_mm:g} mm "
                f"minimum wall (thinnest {self.thinnest_mm:g} mm); thicken them"
            )
        if self.small_features:
            out.append(
                f"{self.small_features} features under the resin's {self.min_feature_mm:g} mm "
                "minimum feature size will not print"
            )
        return out


def resin_check(
    mesh: trimesh.Trimesh,
    voxel_mm: float | None = None,
    *,
    min_wall_mm: float | None = None,
    min_feature_mm: float | None = None,
    on_plate: bool = False,
) -> ResinCheck:
    """Check ``mesh`` as oriented for printing (z up from the build plate).

    Cavities: a closed (watertight) mesh's inner shells are exactly its closed cavities, their
    volume the resin they trap; an open mesh is voxelized and every empty region not connected to
    the outside counts (6-neighbours). Suction cups (``on_plate``: no supports, the plate seals
    the part's underside) and thickness against ``min_wall_mm`` / ``min_feature_mm`` are found on
    a voxel grid of ``voxel_mm``: default 0.5 mm (a quarter of the thinnest limit when given, at
    least 0.1 mm), coarser for big models (at most 300 voxels along a side).
    """
    extent = float(np.max(mesh.bounds[1] - mesh.bounds[0]))
    limits = [v for v in (min_wall_mm, min_feature_mm) if v]
    fine = max(0.1, min(limits) / 4.0) if limits else 0.5
    voxel_mm = voxel_mm or round(max(fine, extent / 300.0), 4)
    solid, _ = edit._voxelize(
        mesh, voxel_mm, pad=2, progress=ensure(None), cancel=None, half_step=True
    )
    closed, trapped = _closed(mesh, solid, voxel_mm)
    cups = resinqa.suction_cups(solid, voxel_mm, on_plate)
    facts = _thickness(solid, voxel_mm, min_wall_mm, min_feature_mm) if limits else {}
    return ResinCheck(
        resin_ml=round(abs(signed_volume(mesh)) / 1000.0, 4),
        closed_cavities=closed,
        trapped_ml=round(trapped, 4),
        voxel_mm=voxel_mm,
        suction_cups=cups.count,
        largest_cup_mm2=cups.largest_mm2,
        **facts,
    )


def _closed(mesh: trimesh.Trimesh, solid: np.ndarray, voxel_mm: float) -> tuple[int, float]:
    """Closed cavities and their volume (ml): inner shells of a closed mesh, else voxel regions."""
    if mesh.is_watertight:
        inner = cavities(mesh)
        return len(inner), sum(-signed_volume(c) for c in inner) / 1000.0
    empty, count = ndimage.label(~solid)
    border = np.unique(
        np.concatenate(
            [empty[[0, -1]].ravel(), empty[:, [0, -1]].ravel(), empty[..., [0, -1]].ravel()]
        )
    )
    closed = sorted(set(range(1, count + 1)) - set(border.tolist()))
    trapped = int(np.isin(empty, closed).sum()) if closed else 0
    return len(closed), trapped * voxel_mm**3 / 1000.0


def _thickness(
    solid: np.ndarray, voxel_mm: float, min_wall: float | None, min_feature: float | None
) -> dict:
    ridge, thickness = resinqa.thickness_ridge(solid, voxel_mm)
    walls = resinqa.thin_regions(ridge, thickness, min_wall or 0.0)
    features = resinqa.thin_regions(ridge, thickness, min_feature or 0.0)
    return {
        "thin_walls": walls.regions if min_wall else None,
        "small_features": features.regions if min_feature else None,
        "thinnest_mm": walls.thinnest_mm,
        "min_wall_mm": min_wall,
        "min_feature_mm": min_feature,
    }


def fill_small_cavities(mesh: trimesh.Trimesh, min_ml: float) -> tuple[trimesh.Trimesh, int]:
    """``mesh`` without its inner shells smaller than ``min_ml`` (those cavities become solid: too
    small to drain or to save resin), and how many were filled."""
    shells = mesh.split(only_watertight=False)
    small = [s for s in shells if -min_ml * 1000.0 < signed_volume(s) < 0]
    if not small:
        return mesh, 0
    kept = [s for s in shells if not -min_ml * 1000.0 < signed_volume(s) < 0]
    return trimesh.util.concatenate(kept), len(small)
