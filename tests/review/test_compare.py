"""Version compare on a known edit: a 2 mm offset of one region is found, where and how far."""

from __future__ import annotations

import numpy as np
import trimesh

from app.tools.mesh.meshio import mesh_bytes
from app.workflow import compare
from tests.workflow.mesh_versions import sphere_qa


def _store(case, mesh, **info):
    data = {"bone": mesh_bytes(mesh.vertices, mesh.faces, "stl")}
    return case.save_mesh_version(data, qa=sphere_qa(), info=info)


def test_a_2mm_offset_of_one_region_is_reported(people, sphere_case):
    sphere = trimesh.creation.icosphere(subdivisions=4, radius=20.0)
    sphere.apply_translation([5.0, -3.0, 10.0])
    edited = sphere.copy()
    normals = edited.vertex_normals
    cap = (edited.vertices[:, 2] - 10.0) > 16.0  # the superior cap
    edited.vertices[cap] += 2.0 * normals[cap]
    first = _store(sphere_case, sphere, author="tess", operation="build", time_utc="t1")
    second = _store(
        sphere_case,
        edited,
        author="tess",
        operation="offset",
        params={"distance_mm": 2.0},
        parent_version=first,
        time_utc="t2",
    )
    found = compare.compare(people["rafael"], sphere_case, first, second)
    part = found["parts"]["bone"]
    assert len(part["regions"]) == 1
    region = part["regions"][0]
    assert region["vertices"] == int(cap.sum())
    assert abs(region["max_mm"] - 2.0) < 0.05 and abs(part["max_mm"] - 2.0) < 0.05
    assert region["bbox_min_lps_mm"][2] > 10.0 + 16.0
    assert np.allclose(region["centre_lps_mm"][:2], [5.0, -3.0], atol=0.5)
    assert found["history"] == [
        {
            "version": second,
            "operation": "offset",
            "params": {"distance_mm": 2.0},
            "author": "tess",
            "time_utc": "t2",
        }
    ]
    same = compare.compare(people["rafael"], sphere_case, first, first)
    assert same["parts"]["bone"]["regions"] == [] and same["parts"]["bone"]["max_mm"] < 1e-6


def test_compare_command(people, sphere_case, monkeypatch, capsys):
    from app import cli
    from app.workflow.actor import Actor

    sphere = trimesh.creation.icosphere(subdivisions=3, radius=10.0)
    first = _store(sphere_case, sphere, author="tess", operation="build", time_utc="t1")
    moved = sphere.copy()
    moved.apply_translation([0.0, 0.0, 1.0])
    second = _store(sphere_case, moved, author="tess", operation="move", parent_version=first)
    monkeypatch.setattr(Actor, "current", classmethod(lambda cls, *a, **k: people["rafael"]))
    argv = ["review", "compare", sphere_case.pseudonym, "--from", "1", "--to", str(second)]
    assert cli.main([*argv, "--json"]) == 0
    import json

    found = json.loads(capsys.readouterr().out)
    assert 0.5 < found["parts"]["bone"]["max_mm"] <= 1.0
    assert [s["operation"] for s in found["history"]] == ["move"]
