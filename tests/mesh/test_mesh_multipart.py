"""Several named, coloured parts in one 3MF (read back by lib3mf and PrusaSlicer), OBJ + MTL and
one STL per part; every file carries only part names, colours and geometry."""

from __future__ import annotations

import dataclasses
import re
import subprocess
import zipfile

import numpy as np
import pytest
import trimesh

from app.errors import MeshError
from app.printing.slicer import prusaslicer
from app.tools.mesh.meshio import read_mesh_file
from app.tools.mesh.multipart import check_3mf, make_part, model_3mf, write_parts

lib3mf = pytest.importorskip("lib3mf")

PARTS = [("Bone", 1, "#E6DCC8"), ("tumour", 2, "#c83232"), ("vessel", 1, "#3232c8")]


def three_parts():
    out = []
    for index, (name, subdivisions, colour) in enumerate(PARTS):
        ball = trimesh.creation.icosphere(subdivisions=subdivisions, radius=5.0)
        style = {"colour": colour, "material": "Resin Clear"}
        out.append(
            make_part(name, ball.vertices + np.array([index * 15.0, 0, 0]), ball.faces, style)
        )
    return out


def read_3mf(path):
    model = lib3mf.get_wrapper().CreateModel()
    reader = model.QueryReader("3mf")
    reader.ReadFromFile(str(path))
    objects, found = [], model.GetMeshObjects()
    while found.MoveNext():
        obj = found.GetCurrentMeshObject()
        objects.append((obj.GetName(), obj.GetTriangleCount(), obj.GetObjectLevelProperty()))
    group = model.GetBaseMaterialGroupByID(1)
    colours = []
    for pid in group.GetAllPropertyIDs():
        c = group.GetDisplayColor(pid)
        colours.append(f"#{c.Red:02x}{c.Green:02x}{c.Blue:02x}")
    return model, reader, objects, colours, [group.GetName(p) for p in group.GetAllPropertyIDs()]


def test_3mf_has_named_coloured_objects_in_mm_as_lib3mf_reads_them(tmp_path):
    [path] = write_parts(three_parts(), tmp_path / "model.3mf", "3mf")
    model, reader, objects, colours, materials = read_3mf(path)
    assert model.GetUnit() == lib3mf.ModelUnit.MilliMeter
    assert reader.GetWarningCount() == 0
    assert [(n, t) for n, t, _ in objects] == [("bone", 80), ("tumour", 320), ("vessel", 80)]
    assert [prop[:2] for _, _, prop in objects] == [(1, 1), (1, 2), (1, 3)]  # group 1, own base
    assert colours == ["#e6dcc8", "#c83232", "#3232c8"]
    assert materials == ["resin-clear"] * 3
    group = model.GetColorGroupByID(2)
    assert group.GetCount() == 3
    assert check_3mf(path.read_bytes()) == []


@pytest.mark.skipif(prusaslicer.find_executable() is None, reason="prusa-slicer not installed")
def test_prusaslicer_reads_every_part(tmp_path):
    [path] = write_parts(three_parts(), tmp_path / "model.3mf", "3mf")
    run = subprocess.run(
        [prusaslicer.find_executable(), "--info", str(path)],
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    facets = [int(n) for n in re.findall(r"number_of_facets = (\d+)", run.stdout)]
    mins = [float(x) for x in re.findall(r"min_x = (\S+)", run.stdout)]
    assert facets == [80, 320, 80]
    assert mins == pytest.approx([-5.0, 10.0, 25.0], abs=1e-3)
    assert run.stdout.count("manifold = yes") == 3


def test_obj_mtl_and_stl_per_part(tmp_path):
    obj, mtl = write_parts(three_parts(), tmp_path / "model.obj", "obj")
    text = obj.read_text()
    assert text.splitlines()[0] == "mtllib model.mtl"
    assert re.findall(r"^o (\S+)$", text, re.M) == ["bone", "tumour", "vessel"]
    assert len(re.findall(r"^f ", text, re.M)) == 480
    assert "Kd 0.7843 0.1961 0.1961" in mtl.read_text()
    assert re.findall(r"^newmtl (\S+)$", mtl.read_text(), re.M) == ["bone", "tumour", "vessel"]
    stls = write_parts(three_parts(), tmp_path / "C-7K3M-Q9.stl", "stl")
    assert [p.name for p in stls] == [f"C-7K3M-Q9_{n}.stl" for n in ("bone", "tumour", "vessel")]
    vertices, faces = read_mesh_file(stls[1])
    assert len(faces) == 320 and np.allclose(vertices.mean(axis=0), [15, 0, 0], atol=0.5)


def test_clean_check_refuses_metadata_and_names(tmp_path):
    named = dataclasses.replace(three_parts()[0], name="DOE^JANE")
    assert check_3mf(model_3mf([named])) == ["3MF object name is not a plain part name"]
    [path] = write_parts(three_parts(), tmp_path / "model.3mf", "3mf")
    with zipfile.ZipFile(path, "a") as z:
        z.writestr("Metadata/thumbnail.png", b"png")
    assert check_3mf(path.read_bytes())[0].startswith("3MF has a comment or extra parts")
    with pytest.raises(MeshError, match="same name"):
        write_parts([*three_parts(), three_parts()[0]], tmp_path / "twice.3mf", "3mf")
    with pytest.raises(MeshError, match="3mf, obj or stl"):
        write_parts(three_parts(), tmp_path / "m.ply", "ply")
