"""Edits by name with plain parameters (what ``medprint edit`` and the Mesh panel apply)."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh

from app.errors import MeshError
from app.tools.mesh.core import concatenate, make_mesh
from app.tools.mesh.operations import apply_edit, edit_params


def box(extents=(10.0, 20.0, 30.0), at=(0.0, 0.0, 0.0)) -> trimesh.Trimesh:
    b = trimesh.creation.box(extents=extents)
    return make_mesh(b.vertices + np.asarray(at), b.faces)


def test_parameters_are_completed_and_plain():
    assert edit_params("hollow") == {"wall_mm": 2.0, "hole_mm": 4.0}
    cut = edit_params("cut", {"point": np.array([1, 2, 3]), "normal": (0, 0, 1)})
    assert cut == {"point": [1.0, 2.0, 3.0], "normal": [0.0, 0.0, 1.0], "keep": "front"}
    with pytest.raises(MeshError, match="cut needs point, normal"):
        edit_params("cut")
    with pytest.raises(MeshError, match="scale takes factor, not percent"):
        edit_params("scale", {"percent": 50})
    with pytest.raises(MeshError, match="unknown edit 'twist'"):
        edit_params("twist")


def test_mirror_scale_and_connector():
    mirrored, label = apply_edit(box(at=(5, 0, 0)), "mirror", {})
    assert label is None and np.allclose(mirrored.bounds[:, 0], [0.0, 10.0])
    half, _ = apply_edit(box(), "scale", {"factor": 0.5})
    assert half.volume == pytest.approx(10 * 20 * 30 / 8)
    apart = concatenate([box(), make_mesh(*_ball(at=(20, 0, 0)))])
    joined, _ = apply_edit(apart, "connector", {"diameter_mm": 3.0})
    assert joined.body_count == 1 and joined.volume > apart.volume
    with pytest.raises(MeshError, match="one piece"):
        apply_edit(box(), "connector", {})


def test_cut_keeps_a_side_and_refuses_an_empty_one():
    kept, _ = apply_edit(box(), "cut", {"point": (0, 0, 5), "normal": (0, 0, 1), "keep": "back"})
    assert kept.bounds[1][2] == pytest.approx(5.0)
    with pytest.raises(MeshError, match="move the plane"):
        apply_edit(box(), "cut", {"point": (0, 0, 50), "normal": (0, 0, 1)})


def test_label_and_booleans_need_their_inputs():
    with pytest.raises(MeshError, match="case pseudonym"):
        apply_edit(box(), "label", {})
    with pytest.raises(MeshError, match="other mesh version"):
        apply_edit(box(), "union", {"with_version": 1})
    carved, _ = apply_edit(box(), "difference", {"with_version": 1}, other=box((4, 4, 4)))
    assert carved.volume == pytest.approx(10 * 20 * 30 - 64)


def _ball(at=(0.0, 0.0, 0.0), radius=4.0):
    s = trimesh.creation.icosphere(radius=radius)
    return s.vertices + np.asarray(at), s.faces
