"""Topology checks and repair: holes, pinch points, specks, self-intersections."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh
from scipy.spatial import cKDTree

from app.errors import MeshError
from app.tools.mesh import quadric
from app.tools.mesh.core import (
    _tri_tri,
    clusters_of_components,
    concatenate,
    defect_vertices,
    examine_faces,
    first_unique_rows,
    make_mesh,
    merge_float32,
    self_intersecting_faces,
    signed_volume,
    split_components,
    submesh,
    topology,
)
from app.tools.mesh.patch import _apart_in_float32, patch_locally
from app.tools.mesh.repair import decimate_mesh, remove_self_intersections, repair_mesh


def sphere(radius=10.0, centre=(0, 0, 0), subdivisions=4):
    s = trimesh.creation.icosphere(subdivisions, radius=radius)
    return make_mesh(s.vertices + np.asarray(centre), s.faces)


def box(size=(10, 10, 10), centre=(0, 0, 0)):
    b = trimesh.creation.box(size)
    return make_mesh(b.vertices + np.asarray(centre), b.faces)


def test_topology_counts_defects():
    closed = sphere()
    assert topology(closed).closed_manifold
    holed = submesh(closed, np.arange(5, len(closed.faces)))
    t = topology(holed)
    assert not t.watertight and t.boundary_edges > 0
    # two cubes sharing one corner: closed, but the shared vertex is a pinch point
    bow = concatenate([box(centre=(0, 0, 0)), box(centre=(10, 10, 10))])
    t = topology(bow)
    assert t.watertight and t.nonmanifold_vertices == 1 and not t.manifold
    flipped = make_mesh(closed.vertices, np.vstack([closed.faces[:1, ::-1], closed.faces[1:]]))
    assert topology(flipped).inconsistent_edges == 3


def test_topology_sees_vertices_merged_as_stl():
    a = sphere(centre=(0, 0, 0))
    b = sphere(centre=(20, 0, 0))  # touches a at one point; separate vertices in memory
    both = concatenate([a, b])
    assert topology(both, as_stl=False).manifold
    assert not topology(both).manifold  # a slicer merges the touching vertices


def test_repair_fills_holes_and_keeps_every_real_part():
    a = sphere(centre=(0, 0, 0))
    b = sphere(centre=(40, 0, 0))
    holed = submesh(a, np.arange(12, len(a.faces)))
    speck = sphere(radius=0.3, centre=(80, 0, 0), subdivisions=1)
    fixed, report = repair_mesh(concatenate([holed, b, speck]))
    assert report.closed_manifold and topology(fixed).closed_manifold
    assert len(split_components(fixed)) == 2  # both spheres kept, the speck dropped
    assert report.components_removed >= 1 and report.components_fixed >= 1
    assert signed_volume(fixed) == pytest.approx(2 * signed_volume(a), rel=0.01)


def test_repair_splits_pinch_points():
    bow = concatenate([box(centre=(0, 0, 0)), box(centre=(10, 10, 10))])
    fixed, _ = repair_mesh(bow, min_component_faces=4)
    assert topology(fixed).closed_manifold


def test_repair_keeps_cavity_shells_inward():
    outer = sphere(radius=20.0)
    inner = sphere(radius=10.0)
    shell = concatenate([outer, make_mesh(inner.vertices, inner.faces[:, ::-1])])
    fixed, _ = repair_mesh(shell)
    assert signed_volume(fixed) == pytest.approx(
        signed_volume(outer) - signed_volume(inner), rel=1e-6
    )


def test_self_intersections_found_and_removed():
    a = sphere(radius=10.0, subdivisions=3)
    b = sphere(radius=10.0, centre=(12, 0, 0), subdivisions=3)
    crossing = concatenate([a, b])
    assert len(self_intersecting_faces(crossing)) > 0
    assert len(self_intersecting_faces(concatenate([a, sphere(centre=(25, 0, 0))]))) == 0
    cleaned, left = remove_self_intersections(crossing)
    assert left == 0 and topology(cleaned).closed_manifold


def test_decimation_target_count_and_refusals():
    s = sphere(subdivisions=5)
    out, report = decimate_mesh(s, target_faces=2000)
    assert abs(report.faces_after - 2000) < 200
    assert topology(out).closed_manifold
    with pytest.raises(MeshError):
        decimate_mesh(s, reduction=1.2)
    with pytest.raises(MeshError):
        repair_mesh(sphere(radius=0.1, subdivisions=1))


def fine_box(centre, size=10.0):
    b = trimesh.creation.box((size, size, size)).subdivide().subdivide()  # 192 triangles
    return make_mesh(b.vertices + np.asarray(centre, dtype=float), b.faces)


def test_repair_keeps_touching_bodies_and_small_islands_with_their_volume():
    # a decimated surface as the 536-slice CT gave it: bodies touching at one corner, bodies
    # sharing one edge, and a 99 mm3 island left with 80 triangles (once dropped for < 100)
    parts = [
        fine_box((0, 0, 0)), fine_box((10, 10, 10)),
        fine_box((40, 0, 0)), fine_box((50, 10, 0)),
        sphere(radius=3.0, centre=(80, 0, 0), subdivisions=1),
    ]  # fmt: skip
    fixed, report = repair_mesh(concatenate(parts))
    assert report.closed_manifold and topology(fixed).closed_manifold
    assert report.components_removed == 0
    volumes = sorted(signed_volume(p) for p in split_components(fixed))
    assert len(volumes) == 5
    assert volumes[0] == pytest.approx(98.79, abs=0.01)  # the island, untouched
    assert all(v == pytest.approx(1000.0, rel=0.05) for v in volumes[1:])
    assert signed_volume(fixed) == pytest.approx(sum(signed_volume(p) for p in parts), rel=0.03)


def test_a_patch_rebuilds_only_the_neighbourhood_of_a_defect():
    big = sphere(radius=30.0, subdivisions=6)  # 81,920 triangles
    holed = submesh(big, np.arange(3, len(big.faces)))
    vertices, faces = np.asarray(holed.vertices), np.asarray(holed.faces)
    seeds = np.unique(faces[:0])  # no seeds: nothing to do, nothing changes
    out = patch_locally(vertices, faces, seeds)
    assert out is not None and np.array_equal(out.faces, faces) and len(out.rebuilt) == 0
    found = examine_faces(faces)
    bad, defects = found.topology, found.defects
    assert bad.boundary_edges > 0 and 0 < len(defects) < 20
    fixed_vertices, fixed_faces, rebuilt = patch_locally(vertices, faces, defects)[:3]
    assert topology(make_mesh(fixed_vertices, fixed_faces)).closed_manifold
    # the faces outside the patch are the input's, in order; the patch is a few hundred at most
    assert len(rebuilt) < 500
    untouched = fixed_faces[: len(fixed_faces) - len(rebuilt)]
    assert np.isin(
        untouched.view([("", untouched.dtype)] * 3), faces.view([("", faces.dtype)] * 3)
    ).all()


def test_repair_keeps_the_far_surface_exactly_and_closes_pinches():
    a = sphere(radius=20.0, subdivisions=5)
    b = sphere(radius=20.0, centre=(40, 0, 0), subdivisions=5)  # touches a at one vertex
    pinched, report = repair_mesh(concatenate([a, b]))
    assert report.closed_manifold and topology(pinched).closed_manifold
    original = np.asarray(a.vertices)
    far = original[original[:, 0] < 0.0]  # a's far half is kept (as float32), never rebuilt
    gap, _ = cKDTree(np.asarray(pinched.vertices)).query(far)
    assert gap.max() < 1e-5


def test_pinch_points_by_rotation_match_the_corner_graph():
    bow = concatenate([box(centre=(0, 0, 0)), box(centre=(10, 10, 10))])
    cones = concatenate([sphere(centre=(0, 0, 0)), sphere(centre=(20, 0, 0))])
    holed = submesh(sphere(), np.arange(1, 1280))
    for mesh, pinches in ((bow, 1), (cones, 1), (holed, 0), (sphere(), 0)):
        _, faces = merge_float32(mesh.vertices, mesh.faces)
        found = examine_faces(faces)
        topo, defects = found.topology, found.defects
        assert topo.nonmanifold_vertices == pinches
        assert set(defect_vertices(faces).tolist()) == set(defects.tolist())


def test_a_fan_centre_never_lands_on_an_existing_vertex_in_float32():
    points = np.array([[0.0, 0.0, 0.0], [1.0, 1.0, 1.0]])
    centres = _apart_in_float32(np.array([[1.0, 1.0, 1.0], [2.0, 2.0, 2.0]]), points)
    assert not np.array_equal(centres[0].astype(np.float32), points[1].astype(np.float32))
    assert abs(centres[0, 0] - 1.0) < 1e-6 and np.array_equal(centres[1], [2.0, 2.0, 2.0])


def test_a_hole_too_large_for_a_patch_goes_through_the_whole_part_repair():
    ball = sphere(radius=20.0, subdivisions=5)
    centres = np.asarray(ball.triangles_center)
    capped = submesh(ball, np.flatnonzero(centres[:, 2] < 17.0))  # a cap off: a long rim
    fixed, report = repair_mesh(capped)
    assert report.closed_manifold and topology(fixed).closed_manifold
    assert "a defect needed a whole-part repair" in report.notes
    assert signed_volume(fixed) == pytest.approx(4 / 3 * np.pi * 20.0**3, rel=0.05)


def test_a_big_mesh_is_decimated_in_a_child_and_this_process_keeps_nothing_of_it(monkeypatch):
    ball = sphere(radius=30.0, subdivisions=7)  # 327,680 triangles: decimated by a child
    assert len(ball.faces) >= quadric.CHILD_FROM_TRIANGLES
    points = np.asarray(ball.vertices, dtype=np.float32)
    here = quadric._simplify(points, np.asarray(ball.faces, dtype=np.int32), 0.9, 7.0)

    def not_here(*_args):
        raise AssertionError("decimated in this process")

    monkeypatch.setattr(quadric, "_simplify", not_here)  # the child imports its own copy
    small, report = decimate_mesh(ball, reduction=0.9)
    assert report.faces_after == len(small.faces) < 0.11 * len(ball.faces)
    assert topology(small).closed_manifold
    assert len(small.faces) == len(here[1])  # the child gives what this process would


def test_a_child_started_ahead_decimates_and_an_unused_one_is_ended(monkeypatch):
    ball = sphere(radius=30.0, subdivisions=7)  # 327,680 triangles: decimated by a child

    def not_here(*_args):
        raise AssertionError("decimated in this process")

    monkeypatch.setattr(quadric, "_simplify", not_here)
    child = quadric.start_child()
    small, _ = decimate_mesh(ball, reduction=0.9, child=child)
    assert child.returncode == 0 and len(small.faces) < 0.11 * len(ball.faces)
    unused = quadric.start_child()
    quadric.stop_child(unused)
    assert unused.returncode is not None


def crossing_by_brute_force(vertices, faces):
    """Faces that cross another face sharing no vertex with it, every pair tested."""
    i, j = np.triu_indices(len(faces), k=1)
    apart = ~(faces[i][:, :, None] == faces[j][:, None, :]).any(axis=(1, 2))
    i, j = i[apart], j[apart]
    crossing = _tri_tri(vertices[faces[i]], vertices[faces[j]])
    return np.unique(np.concatenate([i[crossing], j[crossing]]))


def test_the_crossing_search_finds_every_pair_a_brute_force_search_finds():
    rng = np.random.default_rng(3)
    for trial in range(6):
        points = rng.uniform(0, 10, (150, 3))
        faces = rng.integers(0, 150, (250, 3))
        faces = faces[(faces[:, 0] != faces[:, 1]) & (faces[:, 1] != faces[:, 2])
                      & (faces[:, 0] != faces[:, 2])]  # fmt: skip
        # long thin triangles and big ones: boxes spanning many grid columns, or tiny ones
        faces[:3] = [[0, 1, 2], [3, 4, 5], [6, 7, 8]]
        points[:3] = [[0, 0, 0], [10, 10, 10], [10, 10, 10.5]]
        points[3:6] = [[-1, -1, 5], [11, -1, 5], [5, 11, 5.2]]
        if trial % 2:  # not float32 values: the boxes are rounded outward
            points = points + rng.normal(0, 1e-7, points.shape)
        else:
            points = points.astype(np.float32).astype(np.float64)
        mesh = make_mesh(points, faces)
        expected = crossing_by_brute_force(points, faces)
        assert len(expected) > 20
        assert np.array_equal(self_intersecting_faces(mesh, welded=True), expected)
        only = np.arange(0, len(faces), 5)
        near = self_intersecting_faces(mesh, only=only, welded=True)
        assert set(np.intersect1d(expected, only).tolist()) <= set(near.tolist())
        assert set(near.tolist()) <= set(expected.tolist())


def test_a_crossing_far_from_the_patched_defect_is_still_found_and_removed():
    holed = submesh(sphere(radius=10.0, subdivisions=3), np.arange(6, 1280))  # a defect here
    a = sphere(radius=10.0, centre=(100, 0, 0), subdivisions=3)
    b = sphere(radius=10.0, centre=(112, 0, 0), subdivisions=3)  # crosses a, far from the hole
    mesh = concatenate([holed, a, b])
    crossing = self_intersecting_faces(mesh)
    assert len(crossing) > 0
    assert np.asarray(mesh.triangles_center)[crossing][:, 0].min() > 80.0
    fixed, report = repair_mesh(mesh)
    assert report.closed_manifold and report.self_intersections_left == 0
    assert len(self_intersecting_faces(fixed)) == 0
    assert report.after == topology(fixed).to_dict()


def test_a_pinch_and_a_shared_edge_far_from_each_other_are_all_found_and_fixed():
    holed = submesh(sphere(radius=10.0), np.arange(3, 1280))
    bow = concatenate([box(centre=(60, 0, 0)), box(centre=(70, 10, 10))])  # one shared corner
    edge = concatenate([fine_box((0, 60, 0)), fine_box((10, 70, 0))])  # one shared edge
    mesh = concatenate([holed, bow, edge])
    before = topology(mesh)
    assert before.nonmanifold_vertices >= 1 and before.boundary_edges > 0
    fixed, report = repair_mesh(mesh)
    after = topology(fixed)
    assert after.closed_manifold and report.after == after.to_dict()
    assert after.components == 5  # the sphere and both pairs of bodies, now apart


def test_the_topology_reported_after_a_patch_is_the_measured_one():
    # the repair does not measure the whole mesh again where its patches prove it closed:
    # what it reports must be what a full check of the result finds
    ball = sphere(radius=20.0, subdivisions=5)
    centres = np.asarray(ball.triangles_center)
    flap = np.asarray(ball.faces)[:1]
    flapped = make_mesh(ball.vertices, np.vstack([ball.faces, flap[:, ::-1], flap]))
    cases = [
        concatenate([submesh(ball, np.arange(12, len(ball.faces))), sphere(centre=(60, 0, 0))]),
        concatenate([box(), box(centre=(10, 10, 10))]),
        concatenate(
            [
                fine_box((0, 0, 0)),
                fine_box((10, 10, 10)),
                fine_box((40, 0, 0)),
                fine_box((50, 10, 0)),
            ]
        ),
        flapped,
        submesh(ball, np.flatnonzero(centres[:, 2] < 17.0)),  # a whole-part repair
        concatenate([ball, sphere(radius=0.2, centre=(40, 0, 0), subdivisions=1)]),
    ]
    for mesh in cases:
        fixed, report = repair_mesh(mesh)
        assert report.after == topology(fixed).to_dict()
        assert report.closed_manifold


def test_copies_of_a_triangle_are_found_from_the_edge_table():
    s = sphere(subdivisions=3)
    faces = np.asarray(s.faces)
    faces = np.vstack([faces, faces[:3], faces[10:12, ::-1], faces[[1, 2, 0]][:, [1, 2, 0]]])
    found = examine_faces(faces)
    expected = np.setdiff1d(np.arange(len(faces)), first_unique_rows(np.sort(faces, axis=1)))
    assert np.array_equal(found.copies(faces), expected) and len(expected) == 8
    assert len(examine_faces(np.asarray(s.faces)).copies(np.asarray(s.faces))) == 0


def test_pinches_round_vertices_of_many_corners():
    cone = trimesh.creation.cone(5.0, 10.0, sections=100)  # apex and base centre: 100 corners
    one = make_mesh(cone.vertices, cone.faces)
    assert topology(one).closed_manifold
    mirrored = make_mesh(np.asarray(cone.vertices) * [1, 1, -1] + [0, 0, 20], cone.faces[:, ::-1])
    tips = concatenate([one, mirrored])  # both apexes at z = 10: 200 corners, two fans
    t = topology(tips)
    assert t.nonmanifold_vertices == 1 and t.watertight
    assert clusters_of_components(*_welded_faces_and_components(tips)).max() == 0


def _welded_faces_and_components(mesh):
    _, faces = merge_float32(mesh.vertices, mesh.faces)
    return faces, examine_faces(faces).components
