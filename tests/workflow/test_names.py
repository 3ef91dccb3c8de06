"""Names given by users leave the vault only when safe: a part, file or segment name holding the
patient's name (the sphere case's patient is DOE^JANE) is refused, audited without the name."""

from __future__ import annotations

import json

import numpy as np
import pytest

from app.errors import AccessDenied
from app.security import audit
from app.workflow import mesh, package, review, segment, slice
from tests.workflow.mesh_versions import sphere_qa, sphere_stl, store_gcode


def _refused(actor, call, *args, **kwargs) -> str:
    with pytest.raises(AccessDenied) as error:
        call(*args, **kwargs)
    message = str(error.value)
    assert "DOE" not in message.upper().replace("DOESN", "") and "JANE" not in message.upper()
    denied = [r for r in audit.read_records(actor.paths) if r["action"] == "access.denied"]
    assert denied[-1]["facts"]["reason"] == "name"
    assert "jane" not in json.dumps(denied[-1]).lower()
    return message


def _version(case, part: str) -> int:
    return case.save_mesh_version(
        {part: sphere_stl()}, qa=sphere_qa(), info={"author": "tess", "part": part}
    )


def test_part_and_file_names_with_the_patients_name_stay_in_the_vault(
    people, sphere_case, tmp_path
):
    tess = people["tess"]
    named = _version(sphere_case, "jane-skull")
    assert "part name" in _refused(tess, mesh.export, tess, sphere_case, named, tmp_path / "out/")
    plain = _version(sphere_case, "skull")
    _refused(tess, mesh.export, tess, sphere_case, plain, tmp_path / "DOE_JANE.stl")
    assert mesh.export(tess, sphere_case, plain, tmp_path / "skull.stl").name == "skull.stl"
    number = store_gcode(sphere_case, sphere_case.mesh_sha256(plain))
    _refused(tess, slice.export, tess, sphere_case, number, tmp_path / "jane.gcode")
    review.approve(people["rafael"], sphere_case, named)
    drive = tmp_path / "drive"
    drive.mkdir()
    _refused(tess, package.build, tess, sphere_case, version=named, out_dir=drive)
    assert list(drive.iterdir()) == []


def test_segment_names_with_the_patients_name_are_not_exported_meshed_or_audited(
    people, sphere_case, tmp_path
):
    tess = people["tess"]
    volume = sphere_case.load_volume()
    seg = segment.new(volume)
    mask = np.zeros(volume.shape, dtype=bool)
    mask[20:28, 20:28, 20:28] = True
    segment.add_segment_from_mask(tess, sphere_case, seg, "Jane Doe", mask)
    applied = [r for r in audit.read_records(tess.paths) if r["action"] == "segmentation.apply"]
    assert json.loads(applied[-1]["facts"]["params"]) == {"segment": "(withheld)"}
    _refused(tess, segment.export_file, tess, sphere_case, seg, tmp_path / "seg.seg.nrrd")
    _refused(tess, mesh.build, tess, sphere_case, segmentation=seg, volume=volume)
    assert not (tmp_path / "seg.seg.nrrd").exists()
    clean = segment.new(volume)
    segment.add_segment_from_mask(tess, sphere_case, clean, "bone", mask)
    _refused(tess, segment.export_file, tess, sphere_case, clean, tmp_path / "doe.seg.nrrd")
    assert segment.export_file(tess, sphere_case, clean, tmp_path / "bone.seg.nrrd").segments == 1
