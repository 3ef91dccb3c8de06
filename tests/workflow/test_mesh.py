"""Mesh use cases headless on the sphere case: build, edit, export, load and list, each checked by
role and audited without patient data."""

from __future__ import annotations

import numpy as np
import pytest

from app.errors import AccessDenied, MeshError
from app.security import audit
from app.tools.mesh.meshio import check_clean, read_mesh_file
from app.tools.mesh.pipeline import PRESETS, settings_for
from app.tools.segmentation import Segmentation, get_tool
from app.workflow import mesh, segment

from .conftest import sphere_volume

SPHERE_MM3 = 4 / 3 * np.pi * 12.0**3
SMALL_LABEL = {"label_height_mm": 2.5, "label_depth_mm": 0.8}  # fits the 24 mm sphere


def records(actor, action: str) -> list[dict]:
    return [r for r in audit.read_records(actor.paths) if r["action"] == action]


@pytest.fixture
def bone_case(sphere_case, people):
    """The sphere case with a saved threshold segmentation named "bone"."""
    volume = sphere_case.load_volume()
    seg = Segmentation(volume)
    tool = get_tool("threshold")
    tool.apply(seg, volume, tool.default_params(preset="bone"))
    segment.save(people["tess"], sphere_case, seg)
    return sphere_case


def test_build_stores_a_checked_version_by_its_author(bone_case, people):
    tess = people["tess"]
    made = mesh.build(tess, bone_case, settings="review", build_volume_mm=(200, 200, 200))
    assert made.number == 1 and list(made.parts) == ["bone"]
    assert made.qa.passed, made.qa.failed
    assert made.qa.volume_mm3 == pytest.approx(SPHERE_MM3, rel=0.03)
    assert made.sha256 == bone_case.mesh_sha256(1)
    assert made.references and made.qa.deviation["p95_mm"] <= 0.5
    info = bone_case.mesh_info(1)
    assert info["author"] == "tess" and info["operation"] == "build"
    assert info["settings"] == PRESETS["review"].to_dict() and info["segments"] == ["bone"]
    assert bone_case.mesh_manifest(1)["parts"][0]["colour"].startswith("#")
    [built] = records(tess, "mesh.build")
    assert built["user"] == "tess" and built["case"] == bone_case.pseudonym
    assert built["facts"]["version"] == 1 and built["facts"]["sha256"] == made.sha256
    assert built["facts"]["qa_passed"] is True and built["facts"]["triangles"] > 1000


def test_print_settings_decimate_and_label_with_the_pseudonym(bone_case, people):
    ada = people["ada"]
    review = mesh.build(ada, bone_case, settings="review")
    printed = mesh.build(ada, bone_case, changes=SMALL_LABEL)
    # a 2.5 mm label is thin (the wall check says so); the deviation check leaves it out
    assert printed.qa.check("deviation from segmentation").passed
    assert printed.qa.check("watertight").passed
    assert printed.info["settings"]["reduction"] == 0.8
    label = printed.info["builds"]["bone"]["label"]
    assert label["text"] == bone_case.pseudonym and label["mode"] == "emboss"
    assert printed.qa.volume_mm3 > review.qa.volume_mm3  # the letters add material
    summary = mesh.versions(ada, bone_case)
    assert [v.number for v in summary] == [1, 2] and [v.qa_passed for v in summary] == [
        True,
        printed.qa.passed,
    ]
    assert summary[1].author == "ada" and summary[1].operation == "build"


def test_coarse_series_get_lighter_presets():
    fine, coarse = sphere_volume(), sphere_volume(spacing=3.0)
    assert settings_for("print", fine) == PRESETS["print"]
    light = settings_for("print", coarse)
    assert (light.smoothing, light.reduction, light.label) == (0.2, 0.5, True)
    assert settings_for("review", coarse).reduction is None
    assert settings_for("print", coarse, smoothing=0.4).smoothing == 0.4
    with pytest.raises(MeshError, match="print, review"):
        settings_for("pretty", fine)


def test_edit_makes_a_child_version_with_a_fresh_qa(bone_case, people):
    tess = people["tess"]
    mesh.build(tess, bone_case, settings="review")
    cut = mesh.edit(tess, bone_case, 1, "cut", {"point": (23.5, 23.5, 23.5), "normal": (0, 0, 1)})
    assert cut.number == 2 and cut.sha256 != bone_case.mesh_sha256(1)
    assert cut.info["parent_version"] == 1 and cut.info["operation"] == "cut"
    assert cut.info["author"] == "tess" and cut.info["params"]["keep"] == "front"
    assert cut.qa.check("watertight").passed
    assert cut.qa.volume_mm3 == pytest.approx(SPHERE_MM3 / 2, rel=0.05)
    assert cut.mesh.bounds[0][2] == pytest.approx(23.5, abs=1e-3)
    [edited] = records(tess, "mesh.edit")
    assert edited["facts"]["version"] == 2 and edited["facts"]["parent_version"] == 1
    assert edited["facts"]["operation"] == "cut" and edited["facts"]["sha256"] == cut.sha256

    ada = people["ada"]
    joined = mesh.edit(ada, bone_case, 2, "union", {"with_version": 1})
    assert joined.qa.volume_mm3 == pytest.approx(
        mesh.load(ada, bone_case, 1).qa.volume_mm3, rel=1e-3
    )
    assert joined.info["authors"] == ["tess"]  # four eyes: the merged version's author counts

    with pytest.raises(MeshError, match="scale needs factor"):
        mesh.edit(tess, bone_case, 1, "scale", {})
    with pytest.raises(MeshError, match="unknown edit"):
        mesh.edit(tess, bone_case, 1, "twist", {})
    assert bone_case.mesh_versions() == [1, 2, 3]


def test_export_writes_a_clean_file_named_by_pseudonym(bone_case, people, tmp_path):
    tess = people["tess"]
    made = mesh.build(tess, bone_case, settings="review")
    folder = tmp_path / "usb"
    folder.mkdir()
    path = mesh.export(tess, bone_case, 1, folder, "3mf")
    assert path.name == f"{bone_case.pseudonym}_bone.3mf" and check_clean(path) == []
    _vertices, faces = read_mesh_file(path)
    assert len(faces) == len(made.mesh.faces)
    stl = mesh.export(tess, bone_case, 1, tmp_path / "model.stl")
    assert stl.name == "model.stl" and check_clean(stl) == []
    exported = records(tess, "mesh.export")
    assert [r["facts"]["format"] for r in exported] == ["3mf", "stl"]
    assert exported[0]["facts"]["mesh_sha256"] == made.sha256
    assert len(exported[0]["facts"]["sha256"]) == 64
    log = b"".join(f.read_bytes() for f in tess.paths.audit.iterdir() if f.is_file())
    assert str(tmp_path).encode() not in log and b"JANE" not in log


@pytest.mark.parametrize("who", ["tess", "ada"])
def test_makers_build_edit_and_export(bone_case, people, who, tmp_path):
    actor = people[who]
    made = mesh.build(actor, bone_case, settings="review")
    mesh.edit(actor, bone_case, made.number, "scale", {"factor": 0.5})
    mesh.export(actor, bone_case, 2, tmp_path / "half.stl")
    assert [v.number for v in mesh.versions(actor, bone_case)] == [1, 2]


@pytest.mark.parametrize("who", ["rafael", "nemo"])
def test_others_are_refused_and_the_refusal_is_audited(bone_case, people, who, tmp_path):
    mesh.build(people["tess"], bone_case, settings="review")
    actor = people[who]
    for attempt in (
        lambda: mesh.build(actor, bone_case),
        lambda: mesh.edit(actor, bone_case, 1, "mirror"),
        lambda: mesh.export(actor, bone_case, 1, tmp_path / "x.stl"),
    ):
        with pytest.raises(AccessDenied, match="administrator or technician role"):
            attempt()
    denied = records(actor, "access.denied")
    assert [r["facts"]["attempted"] for r in denied] == ["mesh.build", "mesh.edit", "mesh.export"]
    assert all(r["user"] == who for r in denied)
    assert bone_case.mesh_versions() == [1] and not (tmp_path / "x.stl").exists()
    if who == "rafael":  # a reviewer looks at what was built
        assert mesh.load(actor, bone_case).number == 1
    else:
        with pytest.raises(AccessDenied):
            mesh.load(actor, bone_case)


def test_build_without_segments_is_one_clear_line(sphere_case, people):
    with pytest.raises(MeshError, match="run 'medprint segment"):
        mesh.build(people["tess"], sphere_case)


def test_several_segments_make_one_version_of_named_parts(sphere_case, people, tmp_path):
    tess = people["tess"]
    volume = sphere_case.load_volume()
    seg = Segmentation(volume)
    bone = volume.array > 0
    x = np.arange(volume.shape[2])
    for name, side in (("Left half", x < 22), ("Right half", x > 25)):
        seg.modify(seg.add_segment(name), bone & side[None, None, :], "set")
    segment.save(tess, sphere_case, seg)
    made = mesh.build(tess, sphere_case, segments=["Left half", "Right half"], settings="review")
    assert list(made.parts) == ["left-half", "right-half"] and made.part_name == "all"
    assert made.qa.components == 2 and made.qa.check("watertight").passed
    assert [p["name"] for p in sphere_case.mesh_manifest(1)["parts"]] == list(made.parts)

    one = mesh.edit(tess, sphere_case, 1, "mirror", {"normal": (0, 0, 1)}, part="left-half")
    before, after = (sphere_case.mesh_manifest(n)["parts"] for n in (1, 2))
    assert one.info["edited_parts"] == ["left-half"]
    assert before[0]["sha256"] != after[0]["sha256"] and before[1] == after[1]

    merged = mesh.export(tess, sphere_case, 2, tmp_path)
    single = mesh.export(tess, sphere_case, 2, tmp_path, part="right-half")
    assert merged.name == f"{sphere_case.pseudonym}_all.stl"
    assert single.name == f"{sphere_case.pseudonym}_right-half.stl"
    with pytest.raises(MeshError, match="no part 'middle'"):
        mesh.export(tess, sphere_case, 2, tmp_path, part="middle")


def test_build_meshes_each_segment_cut_to_its_box(bone_case, people, monkeypatch):
    seen = {}
    real = mesh.make_parts

    def spy(masks, volume, *args, **kwargs):
        seen.update(masks, grid=volume.shape)
        return real(masks, volume, *args, **kwargs)

    monkeypatch.setattr(mesh, "make_parts", spy)
    made = mesh.build(people["tess"], bone_case, settings="review")
    crop, grid = seen["bone"], seen["grid"]
    box = segment.load(people["tess"], bone_case, bone_case.load_volume()).bbox("bone")
    assert crop.box == box and crop.array.shape == tuple(b.stop - b.start for b in box)
    assert crop.array.size < np.prod(grid) / 2  # the sphere's box, not the whole grid
    assert crop.array.all(axis=(1, 2)).sum() == 0 and crop.array.any(axis=(1, 2)).all()
    assert made.qa.volume_mm3 == pytest.approx(SPHERE_MM3, rel=0.03)
