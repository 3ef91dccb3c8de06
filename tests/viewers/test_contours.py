"""A mesh's cross-section on the slice views (no widgets): an analytic sphere cut on an oblique,
mirrored grid gives the analytic circles, closed, in every orientation."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh

from app.imaging.volume import Volume
from app.viewers.contours import ContourLayer, MeshSection, distance_to_mask
from app.viewers.geometry import ORIENTATIONS, SliceGeometry

RADIUS = 20.0
CENTRE = np.array([7.5, -11.0, 23.0])


def _rotation(axis: np.ndarray, degrees: float) -> np.ndarray:
    axis = axis / np.linalg.norm(axis)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    a = np.radians(degrees)
    return np.eye(3) + np.sin(a) * k + (1 - np.cos(a)) * k @ k


def _oblique_volume() -> Volume:
    """A grid tilted 20° about (1, 2, 3), its j axis flipped, anisotropic voxels, placed so
    the sphere lies inside it."""
    direction = _rotation(np.array([1.0, 2.0, 3.0]), 20.0) @ np.diag([1.0, -1.0, 1.0])
    spacing = np.array([0.8, 0.7, 1.3])
    size = np.array([80, 90, 50])  # i, j, k
    middle = (size - 1) / 2 * spacing
    origin = CENTRE + np.array([3.0, -2.0, 4.0]) - direction @ middle
    array = np.zeros(tuple(size[::-1]), dtype=np.int16)
    return Volume(array, origin=tuple(origin), spacing=tuple(spacing), direction=direction)


@pytest.fixture(scope="module")
def sphere() -> trimesh.Trimesh:
    mesh = trimesh.creation.icosphere(subdivisions=5, radius=RADIUS)
    mesh.apply_translation(CENTRE)
    return mesh


@pytest.mark.parametrize("orientation", ORIENTATIONS)
def test_the_cut_of_a_sphere_is_the_analytic_circle(sphere, orientation):
    volume = _oblique_volume()
    geometry = SliceGeometry.for_volume(volume, orientation)
    section = MeshSection.build(geometry, sphere.vertices, sphere.faces)
    normal = geometry.slice_normal_lps()
    checked = 0
    for s in range(geometry.n_slices):
        on_plane = geometry.display_to_lps(0, 0, s)
        d = float(np.dot(CENTRE - on_plane, normal))
        cut = section.cut(s)
        segments = cut.segments
        if abs(d) > 0.8 * RADIUS:
            if abs(d) > RADIUS + 0.01:
                assert len(segments) == 0
            continue
        col, row, _ = geometry.lps_to_display(CENTRE - d * normal)
        sx, sy = geometry.pixel_mm
        centre_mm = np.array([col * sx, row * sy])
        radius = np.sqrt(RADIUS**2 - d**2)
        ends = segments.reshape(-1, 2)
        error = np.abs(np.linalg.norm(ends - centre_mm, axis=1) - radius)
        assert error.max() < 0.1, (orientation, s, error.max())
        loops = cut.polylines()
        assert len(loops) == 1 and np.allclose(loops[0][0], loops[0][-1])  # one closed loop
        length = np.linalg.norm(np.diff(loops[0], axis=0), axis=1).sum()
        assert abs(length - 2 * np.pi * radius) < 0.01 * 2 * np.pi * radius
        checked += 1
    assert checked >= 15  # many slices of each orientation went through the sphere


def test_vertex_values_are_interpolated_along_the_cut(sphere):
    volume = _oblique_volume()
    geometry = SliceGeometry.for_volume(volume, "coronal")
    normal = geometry.slice_normal_lps()
    height = sphere.vertices @ normal  # linear: exact at every point of the plane
    section = MeshSection.build(geometry, sphere.vertices, sphere.faces, height)
    s = geometry.slice_index_of(CENTRE)
    cut = section.cut(s)
    assert len(cut.values) == len(cut.segments) > 100
    expected = float(geometry.display_to_lps(0, 0, s) @ normal)
    assert np.allclose(cut.values, expected, atol=1e-6)
    assert len(section.cut(-1).segments) == 0 and len(section.cut(10_000).segments) == 0


def test_a_layer_has_a_section_per_view(sphere):
    volume = _oblique_volume()
    layer = ContourLayer.build(
        "v1", "v1", (255, 0, 0), volume, vertices=sphere.vertices, faces=sphere.faces
    )
    assert set(layer.sections) == set(ORIENTATIONS)
    for orientation, section in layer.sections.items():
        s = SliceGeometry.for_volume(volume, orientation).slice_index_of(CENTRE)
        assert len(section.cut(s).segments) > 100


def test_distance_to_a_voxel_mask_is_near_zero_on_its_surface(sphere):
    volume = _oblique_volume()
    ijk = np.indices(volume.size_ijk).reshape(3, -1).T
    lps = volume.index_to_lps(ijk)
    inside = np.linalg.norm(lps - CENTRE, axis=1) <= RADIUS
    mask = np.zeros(volume.shape, dtype=bool)
    mask[ijk[:, 2], ijk[:, 1], ijk[:, 0]] = inside
    on_surface = distance_to_mask(volume, mask, sphere.vertices)
    assert np.abs(on_surface).max() < 0.8  # within about a voxel
    outward = distance_to_mask(volume, mask, CENTRE + (sphere.vertices - CENTRE) * 1.15)
    assert abs(np.median(outward) - 0.15 * RADIUS) < 0.6


def test_chains_stay_true_on_a_mesh_wound_inconsistently(sphere):
    """Half the triangles wound the other way: the chains break more often, but every line
    drawn is one of the cut's segments (no jump between loose ends)."""
    geometry = SliceGeometry.for_volume(_oblique_volume(), "axial")
    faces = sphere.faces.copy()
    east = sphere.vertices[faces].mean(axis=1)[:, 0] > CENTRE[0]
    faces[east] = faces[east, ::-1]
    cut = MeshSection.build(geometry, sphere.vertices, faces).cut(geometry.slice_index_of(CENTRE))
    chains = cut.polylines()
    assert len(chains) >= 2
    drawn = sum(np.linalg.norm(np.diff(c, axis=0), axis=1).sum() for c in chains)
    cut_length = np.linalg.norm(cut.segments[:, 1] - cut.segments[:, 0], axis=1).sum()
    assert abs(drawn - cut_length) < 1e-6 * cut_length
    assert sum(len(c) - 1 for c in chains) == len(cut.segments)
