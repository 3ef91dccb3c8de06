"""Surface extraction and smoothing: phantoms at true scale and position, real CT bone."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from app.errors import Cancelled, MeshError
from app.progress import CancelToken
from app.tools.mesh.core import signed_volume, split_components, topology
from app.tools.mesh.surface import (
    area_samples,
    clean_mask,
    extract_surface,
    passband_for,
    smooth_surface,
    surface_deviation,
)

from .conftest import oblique_mirrored_direction, phantom_volume, voxel_lps


def test_passband_follows_slicer_mapping():
    assert passband_for(0.0) == pytest.approx(1.0)
    assert passband_for(0.5) == pytest.approx(0.01)
    assert passband_for(1.0) == pytest.approx(1e-4)
    with pytest.raises(MeshError):
        passband_for(1.5)


def test_sphere_phantom_true_size_and_lps_position():
    direction = oblique_mirrored_direction()
    assert np.linalg.det(direction) < 0
    volume = phantom_volume((100, 110, 120), (0.6, 0.55, 0.7), direction, (12.0, -40.0, 85.0))
    centre = volume.index_to_lps(np.array([60.0, 55.0, 50.0]))
    mask = np.linalg.norm(voxel_lps(volume) - centre, axis=-1) <= 30.0
    raw, _ = extract_surface(mask, volume)
    mesh, report = smooth_surface(raw, 0.5)
    radius = np.linalg.norm(mesh.vertices - centre, axis=1)
    assert abs(radius.mean() - 30.0) < 0.1
    assert np.sqrt(np.mean((radius - 30.0) ** 2)) < 0.1
    assert np.linalg.norm(mesh.vertices.mean(axis=0) - centre) < 0.1
    assert signed_volume(mesh) > 0  # outward normals despite the mirrored direction
    assert signed_volume(mesh) == pytest.approx(4 / 3 * np.pi * 30.0**3, rel=0.01)
    assert topology(mesh).closed_manifold
    assert abs(report.volume_change_percent) < 0.1


@pytest.mark.parametrize("method", ["flying_edges", "surface_nets"])
@pytest.mark.parametrize("mirrored", [False, True])
def test_extracted_surfaces_face_outward_with_their_cavities_inward(method, mirrored):
    # extract_surface trusts VTK's orientation (no pass over the triangles checks it)
    direction = oblique_mirrored_direction() if mirrored else np.eye(3)
    assert (np.linalg.det(direction) < 0) == mirrored
    spacing = (0.7, 0.8, 1.5)
    volume = phantom_volume((40, 44, 48), spacing, direction, (5.0, -3.0, 20.0))
    mask = np.zeros(volume.shape, dtype=bool)
    mask[5:35, 6:38, 8:40] = True
    mask[15:20, 15:25, 20:30] = False  # a cavity: its shell faces into it
    raw, _ = extract_surface(mask, volume, method=method, clean=False)
    voxels = 30 * 32 * 32 - 5 * 10 * 10
    assert signed_volume(raw) == pytest.approx(voxels * np.prod(spacing), rel=0.03)
    shells = split_components(raw)
    assert len(shells) == 2 and sorted(signed_volume(s) > 0 for s in shells) == [False, True]


def test_cube_phantom_faces_in_place():
    direction = oblique_mirrored_direction()
    spacing = (0.5, 0.5, 0.5)
    volume = phantom_volume((100, 100, 100), spacing, direction, (-20.0, 30.0, 140.0))
    # 80 voxels per side: the boundary sits exactly 20 mm from the centre along each grid axis
    mask = np.zeros(volume.shape, dtype=bool)
    mask[10:90, 10:90, 10:90] = True
    centre = volume.index_to_lps(np.array([49.5, 49.5, 49.5]))
    raw, _ = extract_surface(mask, volume)
    mesh, _ = smooth_surface(raw, 0.5)
    local = (mesh.vertices - centre) @ direction  # cube axes = grid axes
    assert np.allclose(local.max(axis=0), 20.0, atol=0.1)
    assert np.allclose(local.min(axis=0), -20.0, atol=0.1)
    # points on the flat faces (away from the rounded edges) lie on the true planes
    face = np.abs(local).max(axis=1)
    flat = np.sort(np.abs(local), axis=1)[:, 1] < 15.0
    assert np.abs(face[flat] - 20.0).max() < 0.1
    assert signed_volume(mesh) == pytest.approx(40.0**3, rel=0.01)


def test_clean_mask_drops_islands_and_fills_cavities():
    mask = np.zeros((30, 30, 30), dtype=bool)
    mask[5:25, 5:25, 5:25] = True
    mask[14:16, 14:16, 14:16] = False  # 8-voxel cavity
    mask[1, 1, 1] = True  # 1-voxel island
    cleaned, report = clean_mask(mask, min_island_voxels=10, max_cavity_voxels=10)
    assert report.islands_removed == 1 and report.cavities_filled == 1
    assert cleaned[15, 15, 15] and not cleaned[1, 1, 1]


@pytest.mark.parametrize("labelling", ["SimpleITK", "scipy"])
def test_clean_mask_counts_face_connected_parts_and_keeps_pockets_on_the_border(
    labelling, monkeypatch
):
    import SimpleITK  # noqa: F401 (the labelling is SimpleITK's once it is loaded)

    if labelling == "scipy":  # as in a process that never read an image file
        monkeypatch.delitem(sys.modules, "SimpleITK")
    mask = np.zeros((10, 10, 10), dtype=np.uint8)
    mask[4:9, 4:9, 4:9] = 1
    mask[1, 1, 1] = mask[2, 2, 2] = 1  # touching by a corner only: two islands
    _, report = clean_mask(mask, min_island_voxels=10, max_cavity_voxels=0, in_place=True)
    assert (report.islands_removed, report.island_voxels) == (2, 2)
    assert mask.sum() == 125 and mask.dtype == np.uint8
    solid = np.ones((10, 10, 10), dtype=bool)
    solid[0, 0, 0] = False  # open to the border: not a cavity
    solid[5, 5, 5:7] = False  # a 2-voxel cavity
    cleaned, report = clean_mask(solid, min_island_voxels=0, max_cavity_voxels=10)
    assert (report.cavities_filled, report.cavity_voxels) == (1, 2)
    assert cleaned[5, 5, 5] and cleaned[5, 5, 6] and not cleaned[0, 0, 0]
    assert not solid[5, 5, 5]  # not in place: the caller's mask is left alone


def test_distances_on_a_smoothed_surface_can_use_the_raw_surface_index():
    import trimesh

    from app.tools.mesh.surface import distances_to_surface

    raw = trimesh.creation.icosphere(4, radius=10.0)
    smoothed, _ = smooth_surface(raw, 0.8, measure=False)
    points = np.random.default_rng(1).normal(size=(500, 3)) * 6.0
    own = distances_to_surface(points, smoothed, keep_index=False)
    moved = distances_to_surface(points, smoothed, moved_from=raw)
    assert np.allclose(moved, own)
    with pytest.raises(MeshError, match="keep the triangles"):
        distances_to_surface(points, trimesh.creation.icosphere(3), moved_from=raw)


def test_extract_refuses_wrong_grid_and_empty():
    volume = phantom_volume((10, 10, 10), (1, 1, 1), np.eye(3), (0, 0, 0))
    with pytest.raises(MeshError):
        extract_surface(np.zeros((5, 5, 5), bool), volume)
    with pytest.raises(MeshError):
        extract_surface(np.zeros((10, 10, 10), bool), volume)


def test_cancel_stops_extraction():
    volume = phantom_volume((40, 40, 40), (1, 1, 1), np.eye(3), (0, 0, 0))
    mask = np.zeros(volume.shape, bool)
    mask[5:35, 5:35, 5:35] = True
    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled):
        extract_surface(mask, volume, cancel=token)


def test_surface_nets_matches_flying_edges():
    volume = phantom_volume((60, 60, 60), (0.7, 0.7, 0.7), np.eye(3), (0, 0, 0))
    centre = volume.index_to_lps(np.array([30.0, 30.0, 30.0]))
    mask = np.linalg.norm(voxel_lps(volume) - centre, axis=-1) <= 15.0
    fe, _ = extract_surface(mask, volume)
    sn, _ = extract_surface(mask, volume, method="surface_nets")
    assert topology(sn).closed_manifold
    assert signed_volume(sn) == pytest.approx(signed_volume(fe), rel=0.02)


# ------------------------------------------------------------------------------ real CT


def test_lumbar_bone_mesh_closed_manifold_and_true_volume(lumbar, lumbar_build):
    mask, volume = lumbar
    mesh = lumbar_build.mesh
    topo = topology(mesh)  # as an STL reader sees it: float32 positions merged
    assert topo.closed_manifold, topo
    voxel_volume = mask.sum() * volume.voxel_volume_mm3()
    assert signed_volume(mesh) == pytest.approx(voxel_volume, rel=0.02)


def test_default_smoothing_keeps_volume_and_shape(lumbar_build):
    report = lumbar_build.smoothing
    assert report.factor == 0.5 and report.passband == pytest.approx(0.01)
    assert abs(report.volume_change_percent) < 1.0
    assert report.mean_deviation_mm < 0.2
    assert 0 < report.max_deviation_mm < 3.0


def test_decimation_to_20_percent_stays_close(lumbar_build):
    from app.tools.mesh.repair import decimate_mesh

    smoothed = lumbar_build.mesh
    decimated, report = decimate_mesh(smoothed, reduction=0.8)
    assert report.faces_after <= 0.21 * report.faces_before
    assert topology(decimated).closed_manifold
    deviation = surface_deviation(decimated, smoothed)
    assert deviation.mean_mm < 0.2
    assert signed_volume(decimated) == pytest.approx(signed_volume(smoothed), rel=0.01)


@pytest.mark.slow
def test_tilted_head_skull_watertight_through_stl(ge_skull, tmp_path):
    from app.tools.mesh.core import make_mesh
    from app.tools.mesh.export import export_mesh
    from app.tools.mesh.meshio import read_mesh_file
    from app.tools.mesh.pipeline import build_mesh

    mask, volume = ge_skull
    assert not np.allclose(volume.direction, np.eye(3))
    built = build_mesh(mask, volume, reduction=0.8)
    path = export_mesh(built.mesh, tmp_path / "C-7K3M-Q9_skull.stl")
    vertices, faces = read_mesh_file(path)
    reread = make_mesh(vertices, faces)
    assert topology(reread, as_stl=False).closed_manifold
    # the skull sits where the scanner put it: inside the tilted volume's LPS bounds
    lo, hi = volume.bounds_lps()
    assert np.all(reread.vertices.min(axis=0) >= lo - 2) and np.all(
        reread.vertices.max(axis=0) <= hi + 2
    )
    voxel_volume = mask.sum() * volume.voxel_volume_mm3()
    assert signed_volume(reread) == pytest.approx(voxel_volume, rel=0.02)


def test_the_raw_surface_index_is_built_once_for_smoothing_and_qa(monkeypatch):
    import scipy.spatial
    import trimesh

    from app.tools.mesh.surface import distances_to_surface, smooth_surface, surface_deviation

    built = []

    class Counting(scipy.spatial.cKDTree):
        def __init__(self, data, *args, **kwargs):
            built.append(len(data))
            super().__init__(data, *args, **kwargs)

    monkeypatch.setattr(scipy.spatial, "cKDTree", Counting)
    raw = trimesh.creation.icosphere(4, radius=10.0)  # 5120 triangles
    smooth_surface(raw, 0.5)
    assert built == [5120]  # the raw surface's serves both directions (same triangles)
    final = trimesh.creation.icosphere(3, radius=10.0)  # 1280 triangles
    dev = surface_deviation(final, raw)
    assert built == [5120, 1280]  # QA's raw-surface index is the smoothing's
    assert 0.0 < dev.mean_mm < 0.2 and dev.max_mm < 0.5
    raw.vertices = raw.vertices * 2.0  # a changed surface gets a new index
    far = distances_to_surface(np.array([[0.0, 0.0, 0.0]]), raw)
    assert built[-1] == 5120 and far[0] == pytest.approx(20.0, abs=0.1)


def test_the_farthest_distance_is_exact_next_to_large_triangles():
    import trimesh

    from app.tools.mesh.core import concatenate
    from app.tools.mesh.surface import farthest_distance

    # 12 large triangles and 5120 small ones: the nearest centres of a point near a box face
    # are the small sphere's, so many bounds are loose and the exact search must find the face
    box = trimesh.creation.box(extents=(40.0, 30.0, 20.0))
    mesh = concatenate([box, trimesh.creation.icosphere(4, radius=3.0)])
    rng = np.random.default_rng(2)
    outside = rng.uniform(-25.0, 25.0, size=(3000, 3))
    inside = rng.uniform(-1.0, 1.0, size=(3000, 3)) * [19.5, 14.5, 9.5]  # loose bounds all over
    for points in (outside, inside):
        exact = np.min([trimesh.proximity.closest_point(box, points)[1],
                        np.abs(np.linalg.norm(points, axis=1) - 3.0)], axis=0)  # fmt: skip
        assert farthest_distance(points, mesh) == pytest.approx(exact.max(), abs=0.05)
    assert farthest_distance(outside[:0], mesh) == 0.0


def test_the_farthest_distance_equals_the_largest_of_all_exact_distances():
    import trimesh

    from app.tools.mesh.core import concatenate
    from app.tools.mesh.surface import _point_triangle, farthest_distance

    # big and small triangles, points inside and outside: bounds, exact step and its tree
    mesh = concatenate([trimesh.creation.box(extents=(40.0, 30.0, 20.0)),
                        trimesh.creation.icosphere(3, radius=3.0)])  # fmt: skip
    triangles = np.asarray(mesh.vertices)[np.asarray(mesh.faces)]
    points = np.random.default_rng(5).uniform(-25.0, 25.0, size=(300, 3))
    exact = [_point_triangle(np.broadcast_to(p, (len(triangles), 3)), triangles).min()
             for p in points]  # fmt: skip
    assert farthest_distance(points, mesh) == pytest.approx(max(exact), abs=1e-12)


def test_the_smoothing_deviation_takes_the_largest_backward_distance():
    import trimesh

    from app.tools.mesh.surface import distances_to_surface

    raw = trimesh.creation.icosphere(5, radius=10.0)  # 10242 vertices: 5000 sampled
    smoothed, _ = smooth_surface(raw, 0.9, measure=False)
    dev = surface_deviation(smoothed, raw, samples=5000, moved=True)
    rng = np.random.default_rng(0)
    on_smoothed = distances_to_surface(area_samples(smoothed, 5000, rng)[0], raw)
    chosen = np.asarray(raw.vertices)[rng.choice(len(raw.vertices), 5000, replace=False)]
    backward = distances_to_surface(chosen, smoothed, moved_from=raw)
    assert dev.max_mm == max(on_smoothed.max(), backward.max())  # the very same numbers
    assert dev.mean_mm == on_smoothed.mean()


def test_area_samples_are_the_same_with_the_areas_kept_or_not():
    import trimesh

    from app.tools.mesh.core import surface_area
    from app.tools.mesh.surface import doubled_areas

    mesh = trimesh.creation.icosphere(3, radius=7.0)
    kept = area_samples(mesh, 500, np.random.default_rng(3))
    again = area_samples(mesh, 500, np.random.default_rng(3), keep=False)
    assert all(np.array_equal(a, b) for a, b in zip(kept, again, strict=True))
    area = surface_area(mesh)
    assert 0.5 * doubled_areas(mesh).sum() == area
    mesh.vertices = mesh.vertices * 2.0  # a changed mesh: its areas are measured again
    assert 0.5 * doubled_areas(mesh).sum() == pytest.approx(4.0 * area)


def test_triangle_centres_and_radii_axis_by_axis_match_whole_corners():
    import trimesh

    from app.tools.mesh.surface import _centres

    mesh = trimesh.creation.icosphere(3, radius=7.0)
    mesh.vertices = mesh.vertices * [1.0, 2.0, 0.5]  # uneven triangles
    corners = np.asarray(mesh.vertices)[np.asarray(mesh.faces)]
    centre, radius = _centres(mesh)
    assert np.array_equal(centre, (corners[:, 0] + corners[:, 1] + corners[:, 2]) / 3.0)
    offsets = corners - centre[:, None, :]
    expected = np.sqrt(np.einsum("ijk,ijk->ij", offsets, offsets).max(axis=1))
    assert np.allclose(radius, expected, rtol=1e-15, atol=0.0)
