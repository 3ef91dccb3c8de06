"""Resin: a hollowed model's every cavity gets a drain hole at its lowest point, after which no
empty region is closed (the resin check), and the resin volume is the solid's volume in ml."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh

from app.tools.mesh import edit
from app.tools.mesh.drain import cavities, cavity_holes, drill, resin_check
from app.tools.mesh.operations import apply_edit


def two_boxes() -> trimesh.Trimesh:
    """Two 20 mm boxes joined by a 3 mm bar (too thin to hollow)."""
    left, right = trimesh.creation.box((20, 20, 20)), trimesh.creation.box((20, 20, 20))
    right.apply_translation((40, 0, 6))
    bar = trimesh.creation.box((24, 3, 3))
    bar.apply_translation((20, 0, 4))
    return edit.union(left, right, bar)


@pytest.fixture(scope="module")
def hollowed():
    """Two 2 mm walled chambers, each a closed cavity."""
    return edit.hollow(two_boxes(), 2.0)


def test_every_cavity_gets_a_hole_at_its_lowest_point(hollowed):
    assert len(cavities(hollowed)) == 2
    holes = sorted(cavity_holes(hollowed), key=lambda h: h[0][0])
    points = np.array([p for p, _ in holes])
    assert points[:, 2] == pytest.approx([-8.0, -2.0], abs=0.3)  # each cavity floor
    assert points[:, 0] == pytest.approx([0.0, 40.0], abs=3.0)  # near the floor's middle
    assert all(np.allclose(up, [0, 0, 1]) for _, up in holes)
    sideways = cavity_holes(hollowed, down=(1.0, 0.0, 0.0))
    assert sorted(p[0] for p, _ in sideways) == pytest.approx([8.0, 48.0], abs=1.0)


def test_closed_cavities_fail_and_drilled_ones_pass(hollowed):
    closed = resin_check(hollowed)
    assert closed.closed_cavities == 2 and not closed.passed
    inner = sum(-c.volume for c in cavities(hollowed)) / 1000  # the cavities' exact volume
    assert inner == pytest.approx(2 * 16**3 / 1000, rel=0.05)
    assert closed.trapped_ml == pytest.approx(inner, rel=0.08)  # 0.5 mm voxels: a bit less
    drilled = drill(hollowed, cavity_holes(hollowed), 4.0)
    opened = resin_check(drilled)
    assert opened.passed and opened.trapped_ml == 0.0
    assert drilled.is_watertight and len(cavities(drilled)) == 0
    assert opened.resin_ml == pytest.approx(abs(drilled.volume) / 1000, rel=1e-6)
    assert opened.resin_ml < closed.resin_ml  # the channels removed resin
    assert opened.to_dict()["passed"] is True and "every cavity is open" in opened.lines()[1]


def test_the_hollow_edit_drains_every_cavity():
    solid = two_boxes()
    made, _ = apply_edit(solid, "hollow", {"wall_mm": 2.0, "hole_mm": 3.0})
    check = resin_check(made)
    assert check.passed and len(cavities(made)) == 0
    assert check.resin_ml < 0.5 * abs(solid.volume) / 1000
    shut, _ = apply_edit(solid, "hollow", {"wall_mm": 2.0, "hole_mm": 0.0})
    assert resin_check(shut).closed_cavities == 2
