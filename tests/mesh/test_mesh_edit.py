"""Editing tools: every result is a closed 2-manifold with the expected size."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh

from app.errors import MeshError
from app.tools.mesh import edit
from app.tools.mesh.core import make_mesh, signed_volume, split_components, topology
from app.tools.mesh.qa import wall_thickness


def sphere(radius=20.0, centre=(0, 0, 0)):
    s = trimesh.creation.icosphere(5, radius=radius)
    return make_mesh(s.vertices + np.asarray(centre), s.faces)


def cube(size=40.0, centre=(0, 0, 0)):
    b = trimesh.creation.box((size, size, size))
    return make_mesh(b.vertices + np.asarray(centre), b.faces)


def test_plane_cut_is_capped():
    front, back = edit.plane_cut(cube(), point=(0, 0, 5), normal=(0, 0, 1))
    assert topology(front).closed_manifold and topology(back).closed_manifold
    assert signed_volume(front) == pytest.approx(40 * 40 * 15)
    assert signed_volume(back) == pytest.approx(40 * 40 * 25)


def test_booleans():
    a, b = cube(), cube(centre=(20, 0, 0))
    assert signed_volume(edit.union(a, b)) == pytest.approx(40 * 40 * 60)
    assert signed_volume(edit.difference(a, b)) == pytest.approx(40 * 40 * 20)
    assert signed_volume(edit.intersection(a, b)) == pytest.approx(40 * 40 * 20)
    open_mesh = make_mesh(a.vertices, a.faces[2:])
    with pytest.raises(MeshError, match="Repair"):
        edit.union(open_mesh, b)


def test_mirror_and_scale_keep_normals_outward():
    a = cube(centre=(30, 0, 0))
    m = edit.mirror(a, normal=(1, 0, 0), point=(0, 0, 0))
    assert np.allclose(m.bounds, [[-50, -20, -20], [-10, 20, 20]])
    assert signed_volume(m) == pytest.approx(64000)
    s = edit.scale(a, (-1.0, 2.0, 1.0))
    assert signed_volume(s) == pytest.approx(2 * 64000)
    with pytest.raises(MeshError):
        edit.scale(a, 0.0)


def test_flat_base_under_the_model():
    s = sphere()
    based = edit.flat_base(s, down=(0, 0, -1), thickness_mm=3.0, cut_mm=2.0)
    assert topology(based).closed_manifold
    assert based.bounds[0][2] == pytest.approx(-20.0 + 2.0 - 3.0, abs=1e-6)
    assert len(split_components(based)) == 1


def test_hollow_leaves_requested_wall_and_drain_hole():
    s = sphere(radius=25.0)
    hollowed = edit.hollow(s, 2.0, drain_holes=[((0, 0, -25), (0, 0, -1))])
    assert topology(hollowed).closed_manifold
    assert len(split_components(hollowed)) == 1  # the drain hole opens the cavity
    thickness = wall_thickness(hollowed, samples=300)
    finite = thickness[np.isfinite(thickness)]
    assert np.median(finite) == pytest.approx(2.0, abs=0.15)
    expected = 4 / 3 * np.pi * (25.0**3 - 23.0**3)
    assert signed_volume(hollowed) == pytest.approx(expected, rel=0.05)


def test_connector_rod_joins_two_parts():
    a, b = sphere(centre=(0, 0, 0)), sphere(centre=(60, 0, 0))
    joined = edit.connector_rod(a, b, (19.5, 0, 0), (40.5, 0, 0), diameter_mm=5.0)
    assert topology(joined).closed_manifold
    assert len(split_components(joined)) == 1


def test_measurements():
    m = edit.measure(cube(centre=(1, 2, 3)))
    assert m.volume_mm3 == pytest.approx(64000)
    assert m.area_mm2 == pytest.approx(6 * 1600)
    assert m.size_mm == pytest.approx([40, 40, 40])
    assert m.bbox_min == pytest.approx([-19, -18, -17])
    assert edit.distance((0, 0, 0), (3, 4, 0)) == pytest.approx(5.0)
