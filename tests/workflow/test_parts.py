"""Exporting every part of a mesh version with its colour: one 3MF (also through mesh.export, as
``medprint mesh CASE --segment a --segment b --out model.3mf`` does), OBJ + MTL, STL per part;
role-checked, names checked, audited with the manifest hash."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import trimesh

from app.errors import AccessDenied
from app.security import audit
from app.tools.mesh.meshio import mesh_bytes
from app.tools.mesh.multipart import check_3mf
from app.tools.segmentation import Segmentation
from app.workflow import mesh, parts, segment

from .mesh_versions import sphere_qa

lib3mf = pytest.importorskip("lib3mf")
STYLES = {"bone": "#e6dcc8", "tumour": "#c83232", "vessel": "#3232c8"}


def three_part_version(case, author: str) -> int:
    data, styles = {}, {}
    for index, (name, colour) in enumerate(STYLES.items()):
        ball = trimesh.creation.icosphere(subdivisions=1 + (name == "tumour"), radius=5.0)
        data[name] = mesh_bytes(ball.vertices + np.array([index * 15.0, 0, 0]), ball.faces, "stl")
        styles[name] = {"colour": colour, "material": "resin"}
    info = {"author": author, "part": "all"}
    return case.save_mesh_version(data, qa=sphere_qa(), info=info, styles=styles)


def objects(path) -> list[tuple[str, int]]:
    model = lib3mf.get_wrapper().CreateModel()
    model.QueryReader("3mf").ReadFromFile(str(path))
    found, out = model.GetMeshObjects(), []
    while found.MoveNext():
        obj = found.GetCurrentMeshObject()
        out.append((obj.GetName(), obj.GetTriangleCount()))
    return out


def test_mesh_export_writes_all_parts_into_one_3mf(sphere_case, people, tmp_path):
    tess = people["tess"]
    number = three_part_version(sphere_case, "tess")
    path = mesh.export(tess, sphere_case, number, tmp_path / "model.3mf")
    assert objects(path) == [("bone", 80), ("tumour", 320), ("vessel", 80)]
    assert check_3mf(path.read_bytes()) == [] and b"DOE" not in path.read_bytes()
    [record] = [r for r in audit.read_records(tess.paths) if r["action"] == "mesh.export"]
    assert record["facts"]["parts"] == 3 and record["facts"]["format"] == "3mf"
    assert record["facts"]["mesh_sha256"] == sphere_case.mesh_sha256(number)


def test_folder_exports_are_named_by_pseudonym(sphere_case, people, tmp_path):
    number = three_part_version(sphere_case, "tess")
    obj, mtl = parts.export_parts(people["tess"], sphere_case, number, tmp_path, "obj")
    assert (obj.name, mtl.name) == (
        f"{sphere_case.pseudonym}_parts.obj",
        f"{sphere_case.pseudonym}_parts.mtl",
    )
    assert mtl.read_text().count("newmtl") == 3
    stls = parts.export_parts(people["tess"], sphere_case, number, tmp_path / "x.stl")
    assert [p.name for p in stls] == ["x_bone.stl", "x_tumour.stl", "x_vessel.stl"]


def test_identity_in_the_file_name_and_other_roles_are_refused(sphere_case, people, tmp_path):
    number = three_part_version(sphere_case, "tess")
    with pytest.raises(AccessDenied):
        parts.export_parts(people["tess"], sphere_case, number, tmp_path / "doe-jane.3mf")
    with pytest.raises(AccessDenied):
        parts.export_parts(people["nemo"], sphere_case, number, tmp_path / "m.3mf")
    assert list(tmp_path.glob("*.3mf")) == []


def test_cli_mesh_with_two_segments_writes_one_coloured_3mf(
    sphere_case, people, tmp_path, data_dir
):
    """``medprint mesh CASE --segment A --segment B --out model.3mf`` (OS user = founder)."""
    volume = sphere_case.load_volume()
    seg = Segmentation(volume)
    bone, x = volume.array > 0, np.arange(volume.shape[2])
    colours = {"Bone": (0.9, 0.86, 0.78), "Tumour": (0.8, 0.2, 0.2)}
    for (name, colour), side in zip(colours.items(), (x < 22, x > 25), strict=True):
        seg.modify(seg.add_segment(name, colour), bone & side[None, None, :], "set")
    segment.save(people["tess"], sphere_case, seg)
    out = tmp_path / "model.3mf"
    command = [sys.executable, "-m", "app", "mesh", sphere_case.pseudonym, "--segment", "Bone"]
    command += ["--segment", "Tumour", "--settings", "review", "--out", str(out)]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr
    found = objects(out)
    assert [name for name, _ in found] == ["bone", "tumour"] and all(n > 100 for _, n in found)
    model = lib3mf.get_wrapper().CreateModel()
    model.QueryReader("3mf").ReadFromFile(str(out))
    group = model.GetBaseMaterialGroupByID(1)
    rgb = [group.GetDisplayColor(p) for p in group.GetAllPropertyIDs()]
    assert [(c.Red, c.Green, c.Blue) for c in rgb] == [(230, 219, 199), (204, 51, 51)]
    assert b"Bone" not in out.read_bytes() and check_3mf(out.read_bytes()) == []


def test_a_versions_hash_is_the_manifest_hash_over_its_parts(sphere_case):
    """The hash a decision binds covers every part's bytes, name, colour and material, not the
    order the parts were given in; a part changed in the vault no longer loads."""
    from app.errors import VaultError
    from app.security.access import mesh_manifest_sha256

    case = sphere_case
    v1 = three_part_version(case, "tess")
    manifest = case.mesh_manifest(v1)
    assert [p["name"] for p in manifest["parts"]] == list(STYLES)
    assert case.mesh_sha256(v1) == mesh_manifest_sha256(manifest["parts"])
    stored = case.load_mesh_version(v1)
    styles = {
        p["name"]: {"colour": p["colour"], "material": p["material"]} for p in manifest["parts"]
    }
    again = dict(reversed(list(stored.parts.items())))
    same = case.save_mesh_version(again, qa=sphere_qa(), info={"author": "tess"}, styles=styles)
    assert case.mesh_sha256(same) == case.mesh_sha256(v1)
    recoloured = styles | {"tumour": {"colour": "#00ff00", "material": "resin"}}
    other = case.save_mesh_version(again, qa=sphere_qa(), info={}, styles=recoloured)
    assert case.mesh_sha256(other) != case.mesh_sha256(v1)
    changed = stored.parts | {"bone": stored.parts["bone"][:-50] + bytes(50)}
    moved = case.save_mesh_version(changed, qa=sphere_qa(), info={}, styles=styles)
    assert case.mesh_sha256(moved) != case.mesh_sha256(v1)
    case._save_bytes(f"mesh/v{v1}/parts/bone.stl", changed["bone"])
    with pytest.raises(VaultError, match="part bone of mesh v1 does not match its manifest"):
        case.load_mesh_version(v1)
