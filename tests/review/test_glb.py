"""The approved model as GLB: metres and +Y up, one coloured node per part, and the stated
transform back to patient LPS millimetres."""

from __future__ import annotations

import json
import struct
import subprocess

import numpy as np
import trimesh

from app.tools.mesh.gltf import glb_bytes
from app.workflow import package, review
from tests.review.conftest import CANARY, store_lineage


def _json_chunk(data: bytes) -> dict:
    assert data[:4] == b"glTF" and struct.unpack("<I", data[4:8])[0] == 2
    length, kind = struct.unpack("<II", data[12:20])
    assert kind == 0x4E4F534A  # JSON
    return json.loads(data[20 : 20 + length])


def _parts() -> dict[str, trimesh.Trimesh]:
    bone = trimesh.creation.icosphere(subdivisions=3, radius=20.0)
    bone.apply_translation([-112.5, 87.25, -301.0])
    box = trimesh.creation.box(extents=[10, 20, 30])
    box.apply_translation([40.0, -150.0, 250.0])
    return {"bone": bone, "vessel": box}


def test_glb_is_in_metres_y_up_with_parts_colours_and_the_way_back():
    parts = _parts()
    data = glb_bytes(
        {n: (m.vertices, m.faces) for n, m in parts.items()},
        {"bone": "#e0c080", "vessel": "#c03030"},
        pseudonym="C-7K3M-Q9",
    )
    tree = _json_chunk(data)
    to_lps = np.array(tree["asset"]["extras"]["medprint"]["gltf_to_lps_mm"])
    assert tree["asset"]["version"] == "2.0"
    nodes = {n["name"]: n for n in tree["nodes"] if "mesh" in n}
    assert set(nodes) == {"bone", "vessel"}
    materials = {m["name"]: m["pbrMetallicRoughness"]["baseColorFactor"] for m in tree["materials"]}
    assert np.allclose(materials["bone"], [224 / 255, 192 / 255, 128 / 255, 1])
    assert np.allclose(materials["vessel"], [192 / 255, 48 / 255, 48 / 255, 1])
    scene = trimesh.load(trimesh.util.wrap_as_stream(data), file_type="glb")
    for name, mesh in parts.items():
        back = scene.geometry[name].vertices
        assert np.abs(back).max() < 1.0  # metres: the model is well under a metre out
        lps = back @ to_lps[:3, :3].T + to_lps[:3, 3]
        assert np.abs(lps - mesh.vertices).max() < 1e-4
        assert np.allclose(nodes[name]["extras"]["gltf_to_lps_mm"], to_lps)
    # +Y up: the patient's superior (+z LPS) is glTF +Y; anterior (-y LPS) is glTF +Z
    bone = scene.geometry["bone"].vertices
    assert np.isclose(bone[:, 1].mean(), -301.0 / 1000, atol=1e-3)
    assert np.isclose(bone[:, 2].mean(), -87.25 / 1000, atol=1e-3)
    assert scene.geometry["bone"].is_watertight and scene.geometry["bone"].volume > 0


def test_the_package_carries_the_glb_and_the_review_pdf(people, canary_case, tmp_path):
    version = store_lineage(canary_case, "tess")
    decision = review.approve(people["rafael"], canary_case, version, comment="good")
    drive = tmp_path / "drive"
    drive.mkdir()
    made = package.build(people["tess"], canary_case, out_dir=drive)
    assert package.verify(people["tess"], made.path).ok
    glb = made.path / "mesh" / f"{canary_case.pseudonym}_model.glb"
    scene = trimesh.load(glb, file_type="glb")
    stl = canary_case.load_mesh_version(version).parts["bone"]
    original = trimesh.load(trimesh.util.wrap_as_stream(stl), file_type="stl")
    to_lps = np.array(
        _json_chunk(glb.read_bytes())["asset"]["extras"]["medprint"]["gltf_to_lps_mm"]
    )
    back = scene.geometry["bone"].vertices @ to_lps[:3, :3].T
    assert np.abs(np.sort(back, axis=0) - np.sort(original.vertices, axis=0)).max() < 1e-4
    pdf = made.path / "qa" / "review.pdf"
    text = subprocess.run(
        ["pdftotext", str(pdf), "-"], check=True, capture_output=True, text=True
    ).stdout
    assert canary_case.pseudonym in text and decision["mesh_sha256"] in text
    for file in made.path.rglob("*"):
        assert file.is_dir() or CANARY.encode() not in file.read_bytes()
