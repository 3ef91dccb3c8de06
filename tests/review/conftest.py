"""Review fixtures: the workflow's people and vault, and a real series with a PHI canary."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest
import trimesh

from app.case import Case
from app.tools.mesh.meshio import mesh_bytes
from app.workflow import intake
from app.workflow.actor import Actor
from tests.workflow.conftest import admin, people, sphere_case  # noqa: F401 (fixtures)
from tests.workflow.mesh_versions import sphere_qa

SAMPLE = Path(__file__).resolve().parents[2] / "resources" / "sample" / "ct-abdomen"
CANARY = "ZQXCANARY"  # planted in PatientName; must appear nowhere outside the vault


def canary_copy(source: Path, dest: Path) -> Path:
    """A copy of a real series with ``CANARY`` in PatientName and PatientID."""
    dest.mkdir()
    for path in sorted(source.iterdir()):
        ds = pydicom.dcmread(path)
        ds.PatientName = f"{CANARY}^PATIENT"
        ds.PatientID = f"{CANARY}-ID"
        ds.save_as(dest / path.name)
    return dest


@pytest.fixture
def canary_case(people, tmp_path) -> Case:  # noqa: F811
    folder = canary_copy(SAMPLE, tmp_path / "canary")
    case = intake.import_path(people["tess"], str(folder))
    shutil.rmtree(folder)
    return case


def centred_sphere(case: Case, radius: float = 30.0) -> trimesh.Trimesh:
    """An icosphere in the middle of the case's image (LPS mm)."""
    volume = case.load_volume()
    centre = volume.index_to_lps((np.array(volume.size_ijk) - 1) / 2)
    mesh = trimesh.creation.icosphere(subdivisions=3, radius=radius)
    mesh.apply_translation(centre)
    return mesh


def store_lineage(case: Case, author: Actor | str) -> int:
    """v1 built and v2 smoothed from it, with colours; the number of v2."""
    user = author if isinstance(author, str) else author.user
    mesh = centred_sphere(case)
    data = {"bone": mesh_bytes(mesh.vertices, mesh.faces, "stl")}
    styles = {"bone": {"colour": "#e0c080", "material": "pla"}}
    info = {"author": user, "operation": "build", "time_utc": "2026-01-02T03:04:05Z"}
    case.save_mesh_version(data, qa=sphere_qa(), info=info, styles=styles)
    edit = {
        "author": user,
        "operation": "smooth",
        "params": {"iterations": 12},
        "parent_version": 1,
        "time_utc": "2026-01-02T04:05:06Z",
    }
    return case.save_mesh_version(data, qa=sphere_qa(), info=edit, styles=styles)
