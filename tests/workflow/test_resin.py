"""Resin slicing of a stored mesh version: the SL1 archive is stored in the case with its
provenance (the mesh SHA-256 there, not in the archive), copied out, audited, and carries
nothing identifying: no part, file, case or patient name in any file of it."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
import zipfile

import pytest
import trimesh

from app.errors import AccessDenied
from app.printing.slicer import prusaslicer
from app.printing.slicer.sla import SlaSettings, _zip, bare_png
from app.security import audit
from app.security.package import format as fmt
from app.tools.mesh.meshio import mesh_bytes
from app.workflow import package, resin, review

from .mesh_versions import sphere_qa, store_version

pytestmark = pytest.mark.skipif(
    prusaslicer.find_executable() is None, reason="prusa-slicer not installed"
)
MARK = "zzmarkq"
FLAT = SlaSettings(supports=False, pad=False)


def marked_version(case) -> int:
    b = trimesh.creation.box((12.0, 12.0, 5.0))
    data = {f"{MARK}-part": mesh_bytes(b.vertices, b.faces, "stl")}
    info = {"author": "tess", "part": f"{MARK}-part"}
    return case.save_mesh_version(data, qa=sphere_qa(), info=info)


def test_resin_slicing_is_stored_bound_and_label_free(sphere_case, people, tmp_path):
    tess = people["tess"]
    number = marked_version(sphere_case)
    out = tmp_path / f"{MARK}path" / "part.sl1"
    out.parent.mkdir()
    sliced = resin.slice_resin(
        tess, sphere_case, version=number, printer="prusa-sl1s", settings=FLAT, out=out
    )
    assert sliced.archive.layers == 100  # 5 mm at 0.05 mm
    assert sliced.archive.resin_ml == pytest.approx(0.72, rel=0.02)
    prov = sphere_case.load_sla(1).provenance
    assert prov["mesh_sha256"] == sphere_case.mesh_sha256(number) and prov["layers"] == 100
    assert prov["printer"] == "prusa-sl1s" and prov["material"] == "resin"
    assert prov["sl1_sha256"] == sliced.stored.sha256 and out.read_bytes() == sliced.stored.data
    assert prov["resin_check"]["closed_cavities"] == 0 and sliced.warnings == []

    forbidden = [MARK, "DOE", "JANE", sphere_case.pseudonym, prov["mesh_sha256"], "tess", "/tmp"]
    with zipfile.ZipFile(io.BytesIO(out.read_bytes())) as archive:
        for info in archive.infolist():
            data = archive.read(info)
            text = info.filename + ("" if info.filename.endswith(".png") else data.decode())
            found = [w for w in forbidden if w.lower() in text.lower()]
            assert found == [], f"{info.filename} carries {found}"
            assert info.date_time == (1980, 1, 1, 0, 0, 0) and not info.comment
            if info.filename.endswith(".png"):  # image chunks only: no text, time or profile
                assert bare_png(data) == data

    [record] = [r for r in audit.read_records(tess.paths) if r["action"] == "slice"]
    assert record["facts"]["sla_version"] == 1 and record["facts"]["engine"] == "prusaslicer-sla"
    assert record["facts"]["mesh_sha256"] == prov["mesh_sha256"]
    assert resin.load(tess, sphere_case).archive.layers == 100


def test_refusals_are_before_any_slicing(sphere_case, people, tmp_path):
    number = marked_version(sphere_case)
    with pytest.raises(AccessDenied):
        resin.slice_resin(people["nemo"], sphere_case, version=number, printer="prusa-sl1s")
    with pytest.raises(AccessDenied):
        resin.slice_resin(
            people["tess"], sphere_case, version=number, printer="prusa-sl1s",
            out=tmp_path / "doe-jane.sl1",
        )  # fmt: skip
    assert sphere_case.sla_versions() == []


def test_cli_slice_for_a_resin_printer(sphere_case, people, tmp_path, data_dir):
    """``medprint slice CASE --printer prusa-sl1s --out part.sl1 --json`` (OS user = founder)."""
    number = marked_version(sphere_case)
    out = tmp_path / "part.sl1"
    command = [sys.executable, "-m", "app", "slice", sphere_case.pseudonym, "--printer"]
    command += ["prusa-sl1s", "--no-supports", "--no-pad", "--out", str(out), "--json"]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["sla_version"] == 1 and report["layers"] == 100
    assert report["mesh_sha256"] == sphere_case.mesh_sha256(number)
    assert out.read_bytes() == sphere_case.load_sla(1).data


def test_a_package_carries_the_sl1_of_the_approved_version(people, sphere_case, tmp_path):
    version = store_version(sphere_case, "tess")
    review.approve(people["rafael"], sphere_case, version, comment="fits")
    mesh_sha = sphere_case.mesh_sha256(version)
    archive = _zip([("config.ini", b"layerHeight = 0.05\n")])
    good = sphere_case.save_sla(archive, {"mesh_version": version, "mesh_sha256": mesh_sha})
    other = sphere_case.save_sla(archive, {"mesh_version": 9, "mesh_sha256": "ab" * 32})
    drive = tmp_path / "drive"
    drive.mkdir()
    made = package.build(people["tess"], sphere_case, sla_version=good.number, out_dir=drive)
    path = f"gcode/{sphere_case.pseudonym}_s{good.number}.sl1"
    assert (made.path / path).read_bytes() == archive
    manifest = json.loads((made.path / fmt.MANIFEST).read_bytes())
    assert [(g["path"], g["mesh_sha256"]) for g in manifest["gcode"]] == [(path, mesh_sha)]
    report = package.verify(people["tess"], made.path)
    assert report.ok, report.message
    with pytest.raises(AccessDenied, match="not sliced from the packaged mesh"):
        package.build(people["tess"], sphere_case, sla_version=other.number, out_dir=drive)


def test_resin_check_of_a_stored_version(sphere_case, people):
    outer, inner = (
        trimesh.creation.box((20.0, 20.0, 20.0)),
        trimesh.creation.box((16.0, 16.0, 16.0)),
    )
    inner.invert()  # a closed 16 mm cavity inside a 2 mm wall
    shell = trimesh.util.concatenate([outer, inner])
    data = {"shell": mesh_bytes(shell.vertices, shell.faces, "stl")}
    number = sphere_case.save_mesh_version(data, qa=sphere_qa(), info={"author": "tess"})
    check = resin.check(people["tess"], sphere_case, number)
    assert check.closed_cavities == 1 and not check.passed
    assert check.resin_ml == pytest.approx((20**3 - 16**3) / 1000, rel=1e-6)
    assert check.trapped_ml == pytest.approx(16**3 / 1000, rel=0.1)
    with pytest.raises(AccessDenied):
        resin.check(people["nemo"], sphere_case, number)
    sliced = resin.slice_resin(
        people["tess"], sphere_case, version=number, printer="generic-msla", settings=FLAT
    )
    assert sliced.stored.provenance["resin_check"]["closed_cavities"] == 1
    [warning] = sliced.warnings
    trapped = float(re.match(r"1 closed cavities trap (\d+\.\d+) ml", warning).group(1))
    assert trapped == pytest.approx(16**3 / 1000, rel=0.1)
    assert sliced.archive.resin_ml == pytest.approx(check.resin_ml, rel=0.02)
