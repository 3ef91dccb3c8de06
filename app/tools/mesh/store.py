"""Mesh versions inside a case: ``mesh/vN.stl`` (clean binary STL), ``mesh/vN.json`` (how it was
built, its label) and ``mesh/vN.qa.json`` (the QA report), all in the encrypted vault."""

from __future__ import annotations

import re

import trimesh

from app.security import audit
from app.security.strip import mesh_bytes, read_mesh_bytes
from app.tools.mesh.core import make_mesh
from app.tools.mesh.qa import QAReport

_VERSION = re.compile(r"^mesh/v(\d+)\.stl$")


def mesh_versions(case) -> list[int]:
    """Version numbers stored in ``case``, oldest first."""
    return sorted(int(m.group(1)) for name in case.files() if (m := _VERSION.match(name)))


def save_mesh_version(case, mesh: trimesh.Trimesh, qa: QAReport, info: dict) -> str:
    """Store a new mesh version with its build info and QA report; returns ``mesh/vN.stl``."""
    number = (mesh_versions(case) or [0])[-1] + 1
    name = f"mesh/v{number}.stl"
    case.save_bytes(name, mesh_bytes(mesh.vertices, mesh.faces, "stl"))
    case.save_json(f"mesh/v{number}.json", info)
    case.save_json(f"mesh/v{number}.qa.json", qa.to_dict())
    audit.record(
        "mesh.save",
        case=case.pseudonym,
        version=number,
        triangles=len(mesh.faces),
        qa_passed=qa.passed,
        qa_failed=qa.failed,
    )
    return name


def load_mesh_version(case, number: int) -> tuple[trimesh.Trimesh, QAReport]:
    """A stored version and its QA report."""
    vertices, faces = read_mesh_bytes(case.load_bytes(f"mesh/v{number}.stl"), "stl")
    return make_mesh(vertices, faces), QAReport.from_dict(case.load_json(f"mesh/v{number}.qa.json"))
