"""The lab's calibration phantom: a plate with steps, holes and pins of known sizes.

Built in code (manifold booleans), in millimetres, so every printer gets the same model: a
60 × 40 mm plate 4 mm thick, a staircase of four 2 mm steps along one edge, holes of 2, 3, 4
and 6 mm diameter through the plate, and pins of 1.5, 2.5 and 4 mm diameter, 6 mm tall. The
model is asymmetric, so a mirrored or rotated scan is told apart.
"""

from __future__ import annotations

from functools import cache

import trimesh

HOLES_MM = (2.0, 3.0, 4.0, 6.0)
PINS_MM = (1.5, 2.5, 4.0)
STEP_MM = 2.0


def _box(size: tuple[float, float, float], corner: tuple[float, float, float]) -> trimesh.Trimesh:
    box = trimesh.creation.box(extents=size)
    box.apply_translation([c + s / 2 for c, s in zip(corner, size, strict=True)])
    return box


def _cylinder(diameter: float, height: float, x: float, y: float, z: float) -> trimesh.Trimesh:
    cylinder = trimesh.creation.cylinder(radius=diameter / 2, height=height, sections=48)
    cylinder.apply_translation([x, y, z + height / 2])
    return cylinder


@cache
def _phantom() -> trimesh.Trimesh:
    solids = [_box((60.0, 40.0, 4.0), (0.0, 0.0, 0.0))]
    solids += [_box((8.0, 40.0 - 8.0 * i, STEP_MM * (i + 1)), (52.0, 0.0, 4.0)) for i in range(4)]
    solids += [_cylinder(d, 6.0, 8.0 + 11.0 * i, 32.0, 4.0) for i, d in enumerate(PINS_MM)]
    body = trimesh.boolean.union(solids, engine="manifold")
    holes = [_cylinder(d, 8.0, 8.0 + 10.0 * i, 12.0, -2.0) for i, d in enumerate(HOLES_MM)]
    return trimesh.boolean.difference([body, *holes], engine="manifold")


def calibration_phantom() -> trimesh.Trimesh:
    """The phantom (a copy: callers may move it)."""
    return _phantom().copy()
