"""Mesh versions and G-code stored straight through the case, for the review and package tests:
an icosphere part with a real QA report (a holed one fails QA)."""

from __future__ import annotations

import functools
import json

import numpy as np
import trimesh

from app.case import Case
from app.tools.mesh.meshio import mesh_bytes
from app.tools.mesh.qa import qa_report


def sphere(radius: float = 10.0, holed: bool = False) -> trimesh.Trimesh:
    mesh = trimesh.creation.icosphere(subdivisions=2, radius=radius)
    if holed:  # three triangles missing: not watertight, QA fails
        mesh.update_faces(np.arange(len(mesh.faces)) >= 3)
    return mesh


def sphere_stl(radius: float = 10.0, holed: bool = False) -> bytes:
    mesh = sphere(radius, holed)
    return mesh_bytes(mesh.vertices, mesh.faces, "stl")


@functools.cache
def _qa(radius: float, holed: bool) -> str:
    return json.dumps(qa_report(sphere(radius, holed), wall_samples=200).to_dict())


def sphere_qa(radius: float = 10.0, holed: bool = False) -> dict:
    """The real QA report of that sphere (computed once per shape)."""
    return json.loads(_qa(radius, holed))


def store_version(
    case: Case, author: str, *, radius: float = 10.0, holed: bool = False, **info: object
) -> int:
    """A new mesh version of ``case`` with one part "sphere" and its QA report; its number."""
    return case.save_mesh_version(
        {"sphere": sphere_stl(radius, holed)},
        qa=sphere_qa(radius, holed),
        info={"author": author, "part": "sphere", **info},
    )


def store_gcode(case: Case, mesh_sha256: str, text: str = "G28\nG1 X10 Y10 E0.5\n") -> int:
    """G-code stored with a provenance naming ``mesh_sha256``; its number."""
    provenance = {
        "mesh_version": 1,
        "mesh_sha256": mesh_sha256,
        "printer": "generic-marlin-220",
        "material": "pla",
        "engine": "builtin",
    }
    return case.save_gcode(text, provenance).number
