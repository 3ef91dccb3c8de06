"""``medprint verify-print`` end to end: a CT of the printed phantom written as a DICOM series
(passes; printed 2 % too large it fails with its regions), and landmarks picked on a part whose
principal axes are ambiguous."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import trimesh

from app.case import Case
from app.cli import main
from app.tools.mesh.phantom import calibration_phantom
from app.workflow import review
from app.workflow.actor import Actor
from tests.trace.ct_print import write_ct_series
from tests.trace.scans import box_with_a_pin, make_scan, rigid
from tests.workflow.conftest import admin, people  # noqa: F401 (fixtures)

QA_PASSED = {"passed": True, "checks": []}
PICKS = np.array([[8.0, 5.0, 14.0], [15.0, -15.0, 10.0], [-15.0, 15.0, 10.0]])  # seen corners


def _approved(people: dict[str, Actor], mesh: trimesh.Trimesh) -> Case:  # noqa: F811
    """A case whose mesh v1 (by tess) is ``mesh``, approved by the reviewer rafael."""
    vault = people["founder"].vault
    case = Case(vault, vault.create_case({"PatientName": "DOE^JANE"}))
    buffer = io.BytesIO()
    mesh.export(buffer, file_type="stl")
    number = case.save_mesh_version(
        {"part": buffer.getvalue()}, qa=QA_PASSED, info={"author": "tess", "part": "part"}
    )
    review.approve(people["rafael"], case, number, comment="fits")
    return case


def _verify(capsys, case: Case, *options: str) -> tuple[int, dict]:
    code = main(["verify-print", case.pseudonym, *options, "--json"])
    out, err = capsys.readouterr()
    assert code in (0, 1), err
    return code, json.loads(out)


def test_a_ct_of_the_print_as_a_dicom_series(people, tmp_path, capsys):  # noqa: F811
    plan = calibration_phantom()
    case = _approved(people, plan)
    on_table = rigid((0.0, 0.0, 30.0), (5.0, -3.0, 10.0))  # how the part lay in the scanner
    printed = plan.copy().apply_transform(on_table)
    folder = write_ct_series(printed, tmp_path / "ct", pitch=0.3)
    code, found = _verify(capsys, case, "--scan-dicom", str(folder), "--threshold", "-400")
    assert code == 0 and found["verdict"] == "pass", found["message"]
    assert found["deviation"]["p95_mm"] < 0.25 and found["deviation"]["regions"] == []

    large = plan.copy().apply_scale(1.02).apply_transform(on_table)
    folder = write_ct_series(large, tmp_path / "ct-large", pitch=0.3, seed=1)
    code, found = _verify(capsys, case, "--scan-dicom", str(folder))
    assert code == 1 and found["verdict"] == "fail", found["message"]
    worst = found["deviation"]["regions"][0]
    assert worst["area_mm2"] > 100 and abs(worst["peak_mm"]) > 0.5
    assert found["number"] == 2 and case.verifications() == [1, 2]


def _without_underside(plan: trimesh.Trimesh, motion: np.ndarray) -> trimesh.Trimesh:
    """A scan that missed the lowest 5 mm (the part stood on the scanner's turntable)."""
    scan = make_scan(plan, matrix=np.eye(4)).mesh
    seen = scan.submesh([np.flatnonzero(scan.triangles_center[:, 2] > -5.0)], append=True)
    return seen.apply_transform(motion)


def test_landmarks_align_a_part_the_principal_axes_cannot(people, tmp_path, capsys):  # noqa: F811
    """A near-symmetric part scanned without its underside: its principal axes and centroid
    are not the plan's, and the best fit from them looks like a mirror image."""
    plan = box_with_a_pin()
    case = _approved(people, plan)
    motion = rigid((0.0, 0.0, 120.0), (10.0, -5.0, 3.0))
    path = tmp_path / "scan.stl"
    _without_underside(plan, motion).export(path)
    code, found = _verify(capsys, case, "--scan", str(path))
    assert code == 1 and found["verdict"] != "pass", "the axes alone find no true fit"

    picked = PICKS @ motion[:3, :3].T + motion[:3, 3]
    marks = tmp_path / "marks.json"
    marks.write_text(json.dumps({"scan": picked.tolist(), "plan": PICKS.tolist()}))
    code, found = _verify(capsys, case, "--scan", str(path), "--landmarks", str(marks))
    assert code == 0 and found["verdict"] == "pass", found["message"]
    assert found["registration"]["method"] == "landmarks"

    pairs = [
        f"{','.join(map(str, s))}:{','.join(map(str, p))}"
        for s, p in zip(picked.round(3), PICKS, strict=True)
    ]
    repeated = [x for pair in pairs for x in ("--landmark", pair)]
    code, found = _verify(capsys, case, "--scan", str(path), *repeated)
    assert code == 0 and found["registration"]["method"] == "landmarks"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--landmark", "1,2,3:4,5,6"], "three or more pairs"),
        (["--landmark", "1,2:4,5,6"] * 3, "three or more pairs"),
        (["--landmark", "a,b,c"] * 3, "SX,SY,SZ:PX,PY,PZ"),
    ],
)
def test_bad_landmarks_are_one_line(people, tmp_path, capsys, options, message):  # noqa: F811
    case = _approved(people, box_with_a_pin())
    path = tmp_path / "scan.stl"
    box_with_a_pin().export(path)
    code = main(["verify-print", case.pseudonym, "--scan", str(path), *options])
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
