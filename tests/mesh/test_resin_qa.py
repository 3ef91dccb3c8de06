"""Resin QA in the print orientation (z up from the build plate): suction cups (a hole facing
the vat, sealed behind) and walls/features thinner than the resin's minimums."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh

from app.printing.profiles import get_material
from app.tools.mesh import edit
from app.tools.mesh.drain import ResinCheck, resin_check


def cup(opening_up: bool) -> trimesh.Trimesh:
    """A 20x20x10 mm box with a 16x16x8 mm pocket opening at the top (towards the vat) or,
    turned over, at the bottom (towards the plate)."""
    outer, pocket = trimesh.creation.box((20, 20, 10)), trimesh.creation.box((16, 16, 10))
    pocket.apply_translation((0, 0, 2.0))
    made = edit.difference(outer, pocket)
    if not opening_up:
        made.apply_transform(trimesh.transformations.rotation_matrix(np.pi, (1, 0, 0)))
    return made


def test_a_cup_facing_the_vat_is_a_suction_cup():
    found = resin_check(cup(opening_up=True))
    assert found.suction_cups == 1 and not found.passed
    assert found.largest_cup_mm2 == pytest.approx(16 * 16, rel=0.1)
    assert "suction cup" in found.problems()[0]
    assert found.closed_cavities == 0, "a cup is open, not a closed cavity"


def test_a_cup_facing_the_plate_is_open_on_supports_and_sealed_on_the_plate():
    over = cup(opening_up=False)
    assert resin_check(over).suction_cups == 0 and resin_check(over).passed
    assert resin_check(over, on_plate=True).suction_cups == 1


def test_a_pocket_vented_sideways_at_its_floor_is_no_cup():
    vent = trimesh.creation.box((30, 3, 3))
    vent.apply_translation((0, 0, -2.5))  # a 3 mm channel through the walls at the pocket's floor
    vented = edit.difference(cup(opening_up=True), vent)
    assert resin_check(vented).suction_cups == 0


@pytest.mark.parametrize(("thickness", "thin"), [(0.3, True), (2.0, False)])
def test_plates_against_the_resins_minimum_wall(thickness, thin, data_dir):
    resin = get_material("resin")
    assert (resin.min_wall_mm, resin.min_feature_mm) == (0.8, 0.4)
    plate = trimesh.creation.box((20, 20, thickness))
    found = resin_check(plate, min_wall_mm=resin.min_wall_mm, min_feature_mm=resin.min_feature_mm)
    assert found.voxel_mm == pytest.approx(0.1)  # a quarter of the thinnest limit
    assert found.thinnest_mm == pytest.approx(thickness, abs=0.15)  # within a voxel
    assert (found.thin_walls, found.small_features) == ((1, 1) if thin else (0, 0))
    assert found.passed is not thin
    if thin:
        assert "0.8 mm minimum wall" in found.problems()[0]
        assert "0.4 mm minimum feature" in found.problems()[1]


def test_a_check_survives_its_provenance_record():
    found = resin_check(cup(opening_up=True), min_wall_mm=0.8, min_feature_mm=0.4)
    again = ResinCheck.from_dict(found.to_dict())
    assert again == found and again.lines() == found.lines()
