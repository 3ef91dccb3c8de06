"""Registration and deviation of synthetic scans of a printed lumbar block, a CT of a printed
phantom, and the calibration phantom."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh

from app.imaging.volume import Volume
from app.tools.mesh import verify
from app.tools.mesh.phantom import calibration_phantom
from tests.trace.ct_print import inside_voxels
from tests.trace.scans import box_with_a_pin, make_scan, printed_phantom, rigid

MOTION = rigid((20.0, -35.0, 50.0), (12.0, -7.0, 30.0))


def _errors(found: np.ndarray, moved: np.ndarray) -> tuple[float, float]:
    """Angle (degrees) and shift (mm) left after undoing ``moved`` with ``found``."""
    left = found @ moved
    angle = np.degrees(np.arccos(np.clip((np.trace(left[:3, :3]) - 1) / 2, -1, 1)))
    return float(angle), float(np.linalg.norm(left[:3, 3]))


def test_a_bump_is_found_where_it_was_put_and_fails_the_print(plan):
    scan = make_scan(plan, matrix=MOTION, bump_mm=1.5)
    check = verify.check_scan(scan.mesh, plan)
    angle, shift = _errors(check.registration.matrix, MOTION)
    assert angle < 0.1 and shift < 0.1
    assert check.registration.residual_mm < 0.07  # the 0.05 mm noise
    assert check.verdict == verify.FAIL and "region" in check.message
    worst = check.deviation.regions[0]
    assert np.linalg.norm(np.array(worst.centre_mm) - scan.bump_centre) < 1.5
    assert 1.3 < worst.peak_mm < 1.7 and worst.area_mm2 > verify.MAX_REGION_MM2
    assert check.deviation.p95_mm < 0.15, "the rest of the print is within the noise"
    big = [r for r in check.deviation.regions if r.area_mm2 > verify.MAX_REGION_MM2]
    assert big == [worst], "the bump is the only region that fails the print"


def test_without_the_bump_the_same_scan_passes(plan):
    scan = make_scan(plan, matrix=MOTION)
    check = verify.check_scan(scan.mesh, plan)
    assert check.verdict == verify.PASS and check.deviation.regions == []
    assert abs(check.deviation.mean_mm) < 0.02 and check.deviation.max_mm < 0.4


def test_inches_declared_right_pass_declared_wrong_are_told(plan):
    scan = make_scan(plan, matrix=MOTION, units="inch")
    check = verify.check_scan(scan.mesh, plan, units="inch")
    assert check.verdict == verify.PASS
    angle, shift = _errors(check.registration.matrix, MOTION)
    assert angle < 0.1 and shift < 0.1
    wrong = verify.check_scan(scan.mesh, plan, units="mm")
    assert wrong.verdict == verify.CHECK_UNITS and wrong.deviation is None
    assert "--units inch" in wrong.message


def test_a_mirrored_scan_is_called_mirrored_not_passed(plan):
    scan = make_scan(plan, matrix=MOTION, units="inch", mirror=True)
    check = verify.check_scan(scan.mesh, plan, units="inch")
    assert check.verdict == verify.MIRRORED and not check.passed
    assert "mirrored" in check.message and check.deviation is None
    assert check.registration.reflected_fit_mm < 0.15 < check.registration.fit_mm


def test_landmarks_give_the_coarse_alignment(plan):
    scan = make_scan(plan, matrix=MOTION)
    picks = plan.vertices[[0, len(plan.vertices) // 2, -1]]
    moved = picks @ MOTION[:3, :3].T + MOTION[:3, 3]
    check = verify.check_scan(scan.mesh, plan, landmarks=(moved, picks))
    assert check.registration.method == "landmarks" and check.verdict == verify.PASS


def test_signed_distance_is_exact_and_signed():
    box = trimesh.creation.box(extents=(10.0, 20.0, 30.0))
    points = np.array([[0.0, 0.0, 16.0], [0.0, 0.0, 14.0], [8.0, 0.0, 0.0], [6.0, 12.0, 0.0]])
    found = verify.signed_distance(points, box)
    assert np.allclose(found, [1.0, -1.0, 3.0, np.hypot(1.0, 2.0)])


def test_a_flat_faced_part_has_the_analytic_distances():
    """A plate of twelve large triangles (the long slivers a flat-faced CAD part is made of):
    points in and around it, near its faces, edges and corners, at the box's exact distance."""
    half = np.array([40.0, 25.0, 3.0])
    plate = trimesh.creation.box(extents=2 * half)
    points = np.random.default_rng(0).uniform(-half - 6.0, half + 6.0, (5000, 3))
    excess = np.abs(points) - half
    outside = np.linalg.norm(np.maximum(excess, 0.0), axis=1)
    expected = outside + np.minimum(excess.max(axis=1), 0.0)
    assert np.allclose(verify.signed_distance(points, plate), expected, rtol=0, atol=1e-9)


def test_the_sign_at_the_corners_of_a_bumpy_surface_is_the_inside_test():
    """Points near every corner of a bumpy sphere: where faces meet at a corner, the normal of
    one of them can point the wrong way; the distance is negative exactly for points inside."""
    rng = np.random.default_rng(3)
    sphere = trimesh.creation.icosphere(subdivisions=3, radius=10.0)
    radii = rng.uniform(0.9, 1.1, (len(sphere.vertices), 1))
    bumpy = trimesh.Trimesh(sphere.vertices * radii, sphere.faces)
    points = np.repeat(bumpy.vertices, 8, axis=0)
    points += rng.normal(0.0, 0.2, points.shape)
    found = verify.signed_distance(points, bumpy)
    assert np.array_equal(found < 0, bumpy.contains(points))


def test_ct_of_a_printed_phantom(tmp_path):
    """A CT of the printed phantom (voxelised at 0.3 mm, plastic 100 HU in air) segmented and
    meshed by the pipeline, then verified against the phantom."""
    phantom = calibration_phantom()
    pitch = 0.3
    inside, origin = inside_voxels(phantom, pitch=pitch)  # (z, y, x) with air around
    array = np.where(inside, 100, -1000).astype(np.int16)
    volume = Volume(array, origin=tuple(origin), spacing=(pitch,) * 3, modality="CT")
    mesh = verify.mesh_from_mask(array > -300, volume)
    moved = mesh.copy().apply_transform(rigid((5.0, -3.0, 30.0), (2.0, 1.0, -4.0)))
    check = verify.check_scan(moved, phantom, tolerance_mm=0.5)
    assert check.verdict == verify.PASS, check.message
    assert check.deviation.p95_mm < 0.4  # a voxelised CT: the surface within half a voxel


@pytest.mark.parametrize("units", ["cm", "m"])
def test_units_scale(units):
    assert verify.to_millimetres(np.ones((1, 3)), units)[0, 0] == verify.UNITS[units]


def test_a_tilted_flat_faced_part_does_not_slide_along_its_faces():
    """The phantom tilted: its principal axes start 1.4° off, which leaves a 1.4 mm slide that
    only the small end faces can correct (ICP's inlier limit starts wide, then narrows)."""
    phantom = calibration_phantom()
    motion = rigid((10.0, -20.0, 35.0), (4.0, 2.0, -6.0))
    check = verify.check_scan(printed_phantom(phantom, matrix=motion, max_edge_mm=2.0), phantom)
    angle, shift = _errors(check.registration.matrix, motion)
    assert angle < 0.05 and shift < 0.05, (angle, shift)
    assert check.verdict == verify.PASS and check.deviation.p95_mm < 0.1, check.message


def test_two_equal_spreads_are_tried_turned():
    """A box with a pin: its principal axes leave the turn about the short axis open, so the
    starts are turned in 30° steps; the scan passes from its axes alone, and its mirror image
    fails where the pin is."""
    plan = box_with_a_pin()
    motion = rigid((0.0, 0.0, 120.0), (10.0, -5.0, 3.0))
    check = verify.check_scan(make_scan(plan, matrix=motion).mesh, plan)
    angle, shift = _errors(check.registration.matrix, motion)
    assert check.verdict == verify.PASS and angle < 0.2 and shift < 0.1, check.message
    mirrored = verify.check_scan(make_scan(plan, matrix=motion, mirror=True).mesh, plan)
    assert not mirrored.passed and mirrored.deviation.regions[0].peak_mm > 3.0
