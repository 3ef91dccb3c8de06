"""Roles (stored in the real vault) and approvals bound to one mesh version's SHA-256."""

from __future__ import annotations

import hashlib
import json

import pytest

from app.case import open_case
from app.errors import AccessDenied, MedPrintError
from app.security import access, audit
from app.security.package import PackageMeta, build_package, verify_package
from app.security.signing import SigningKey
from app.security.vault import Vault

QA_PASS = {"passed": True, "watertight": True, "min_wall_mm": 1.2}
QA_FAIL = {"passed": False, "watertight": False, "problems": ["3 holes"]}


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


MESH_V1 = _sha(b"mesh version 1")
MESH_V2 = _sha(b"mesh version 2")


@pytest.fixture
def vault(data_dir, keystore_service) -> Vault:
    return Vault.init()[0]


@pytest.fixture
def admin(vault) -> str:
    return access.current_user()


@pytest.fixture
def staff(vault, admin) -> Vault:
    access.assign_role(admin, "tech1", access.TECHNICIAN, vault)
    access.assign_role(admin, "surgeon", access.REVIEWER, vault)
    return vault


@pytest.fixture
def case(staff):
    return open_case(staff.create_case({"patient_name": "DOE^JANE"}), staff)


def _actions() -> list[str]:
    return [r["action"] for r in audit.read_records()]


def test_the_user_who_ran_vault_init_is_the_first_administrator(vault, admin, data_dir):
    assert access.roles_of(admin, vault) == {access.ADMINISTRATOR}
    assert vault.get_record(access.ROLES_RECORD) is not None
    assert "users.bootstrap" in _actions()
    # The roles record is encrypted in the vault like everything else.
    for path in data_dir.rglob("*"):
        if path.is_file():
            assert b"administrator" not in path.read_bytes() or path.suffix == ".jsonl"
    with pytest.raises(AccessDenied, match="already set up"):
        access.bootstrap(vault, "intruder")


def test_roles_are_assigned_listed_and_removed_by_an_administrator(staff, admin):
    roles = access.load_roles(staff)
    assert roles["tech1"] == {access.TECHNICIAN} and roles["surgeon"] == {access.REVIEWER}
    access.assign_role(admin, "surgeon", access.TECHNICIAN, staff)
    assert access.roles_of("surgeon", staff) == {access.REVIEWER, access.TECHNICIAN}
    access.remove_role(admin, "surgeon", access.TECHNICIAN, staff)
    assert access.roles_of("surgeon", staff) == {access.REVIEWER}
    access.remove_role(admin, "tech1", None, staff)
    assert "tech1" not in access.load_roles(staff)
    with pytest.raises(MedPrintError, match="unknown role"):
        access.assign_role(admin, "x", "surgeon-in-chief", staff)
    with pytest.raises(MedPrintError, match="not a valid account"):
        access.assign_role(admin, "../x", access.REVIEWER, staff)
    with pytest.raises(AccessDenied, match="last administrator"):
        access.remove_role(admin, admin, access.ADMINISTRATOR, staff)
    assert {"users.role_added", "users.role_removed"} <= set(_actions())


@pytest.mark.parametrize(
    ("user", "action", "needed"),
    [
        ("tech1", "review.approve", "reviewer"),
        ("surgeon", "package", "technician"),
        ("surgeon", "users.manage", "administrator"),
        ("tech1", "keys.manage", "administrator"),
        ("tech1", "override", "administrator"),
        ("nobody", "mesh.edit", "technician"),
    ],
)
def test_refusals_are_clear_and_audited(staff, user, action, needed):
    with pytest.raises(AccessDenied) as caught:
        access.require(user, action, staff)
    text = str(caught.value)
    assert user in text and needed in text and "medprint users add" in text
    last = audit.read_records()[-1]
    assert last["action"] == "access.denied"
    assert last["facts"]["subject"] == user and last["facts"]["attempted"] == action


def test_administrators_do_not_approve_by_default_and_technicians_cannot_grant_roles(staff, admin):
    with pytest.raises(AccessDenied):
        access.require(admin, "review.approve", staff)
    with pytest.raises(AccessDenied):
        access.assign_role("tech1", "tech1", access.REVIEWER, staff)
    access.require("tech1", "slice", staff)  # allowed: returns quietly


def test_approval_is_bound_to_the_mesh_hash_and_an_edit_voids_it(case):
    assert access.approval_status(case, MESH_V1).state == access.NONE
    record = access.approve(case, MESH_V1, QA_PASS, "surgeon", "good fit on the orbit")
    assert record["mesh_sha256"] == MESH_V1
    assert record["qa_sha256"] == access.qa_report_sha256(QA_PASS)
    assert access.approval_status(case, MESH_V1).approved
    # The technician edits the mesh: a new version, the approval no longer applies.
    status = access.approval_status(case, MESH_V2)
    assert status.state == access.VOID and "void" in status.message
    # A changed QA report voids it as well.
    other_qa = {**QA_PASS, "min_wall_mm": 0.4}
    assert access.approval_status(case, MESH_V1, access.qa_report_sha256(other_qa)).state == "void"
    assert access.approval_status(case, MESH_V1, record["qa_sha256"]).approved
    access.approve(case, MESH_V2, QA_PASS, "surgeon")
    assert access.approval_status(case, MESH_V2).approved
    assert [r["decision"] for r in access.history(case)] == ["approved", "approved"]
    assert "review.approved" in _actions()


def test_rejection_and_its_comment(case):
    with pytest.raises(MedPrintError, match="needs a comment"):
        access.reject(case, MESH_V1, QA_PASS, "surgeon", "  ")
    access.reject(case, MESH_V1, QA_PASS, "surgeon", "thicken the rim")
    status = access.approval_status(case, MESH_V1)
    assert status.state == access.REJECTED and "thicken the rim" in status.message
    access.approve(case, MESH_V1, QA_PASS, "surgeon", "fixed")
    assert access.approval_status(case, MESH_V1).approved


def test_only_reviewers_approve(case):
    with pytest.raises(AccessDenied):
        access.approve(case, MESH_V1, QA_PASS, "tech1")
    assert access.history(case) == []


def test_failing_qa_needs_an_administrator_override(case, admin):
    with pytest.raises(AccessDenied, match="failed QA"):
        access.approve(case, MESH_V1, QA_FAIL, "surgeon")
    assert "review.refused" in _actions()
    with pytest.raises(AccessDenied):
        access.record_override(
            case, access.QA_FAILURE, MESH_V1, QA_FAIL, administrator="surgeon", reason="x"
        )
    override = access.record_override(
        case,
        access.QA_FAILURE,
        MESH_V1,
        QA_FAIL,
        administrator=admin,
        reason="holes are inside the cancellous bone, not printed",
    )
    # The override covers this mesh version and QA report only.
    with pytest.raises(AccessDenied):
        access.approve(case, MESH_V2, QA_FAIL, "surgeon")
    record = access.approve(case, MESH_V1, QA_FAIL, "surgeon", "accepted with override")
    assert record["qa_override_id"] == override["id"] and record["qa_passed"] is False
    release = access.release(case, MESH_V1, "tech1")
    assert release.approval == record and release.override == override
    assert "review.override" in _actions()


def test_packaging_needs_an_approval_or_a_release_override(case, admin, tmp_path):
    with pytest.raises(AccessDenied, match="cannot be packaged"):
        access.release(case, MESH_V1, "tech1")
    assert "package.refused" in _actions()
    with pytest.raises(AccessDenied, match="cannot be printed"):
        access.release(case, MESH_V1, "tech1", action="print")
    override = access.record_override(
        case,
        access.RELEASE_WITHOUT_APPROVAL,
        MESH_V1,
        QA_PASS,
        administrator=admin,
        reason="reviewer on leave; urgent",
    )
    release = access.release(case, MESH_V1, "tech1")
    assert release.approval is None and release.override == override and release.overridden
    # The override travels in the signed package, shown as such.
    signer = SigningKey.generate()
    out = tmp_path / "drive"
    out.mkdir()
    folder = build_package(
        out,
        files={
            "mesh/model.stl": b"solid x\nendsolid x\n",
            "qa/report.json": access.qa_report_bytes(QA_PASS),
        },
        meta=PackageMeta(case=case.pseudonym),
        approval=release.approval,
        override=release.override,
        signer=signer,
    )
    manifest = json.loads((folder / "manifest.json").read_bytes())
    assert manifest["approval"] is None
    assert manifest["override"]["kind"] == access.RELEASE_WITHOUT_APPROVAL
    assert verify_package(folder, [signer.public_key]).ok


def test_approvals_live_encrypted_in_the_case(case, data_dir):
    access.approve(case, MESH_V1, QA_PASS, "surgeon", "fine")
    assert case.has(access.APPROVALS_FILE)
    for path in data_dir.rglob("*"):
        if path.is_file() and path.suffix != ".jsonl":
            assert b"good fit" not in path.read_bytes()
            assert b'"decision"' not in path.read_bytes()


def test_qa_hash_is_the_same_in_memory_and_after_a_json_round_trip():
    import numpy as np

    report = {"passed": True, "wall": {"min_mm": np.float32(1.1), "n": np.int64(3)},
              "size_mm": np.array([1.5, 2.0]), "checks": [{"value": np.float64(0.1)}]}  # fmt: skip
    loaded = json.loads(access.qa_report_bytes(report))
    assert access.qa_report_sha256(loaded) == access.qa_report_sha256(report)
    with pytest.raises(MedPrintError, match="not JSON"):
        access.qa_report_bytes({"bad": object()})


def test_qa_verdicts():
    assert access.qa_passed({"passed": True})
    assert access.qa_passed({"status": "PASS"})
    assert not access.qa_passed({"status": "fail"})
    assert not access.qa_passed({"watertight": True})  # silent reports have not passed
    assert access.qa_report_sha256({"b": 1, "a": 2}) == access.qa_report_sha256({"a": 2, "b": 1})


def test_without_an_audit_record_of_vault_init_the_user_bootstraps_explicitly(vault, data_dir):
    # A vault whose roles record is gone (e.g. made before roles existed) and whose audit log
    # cannot name its creator.
    for name in ("audit/audit.jsonl", "config/audit-head.json", "vault/records/roles"):
        (data_dir / name).unlink()
    assert access.load_roles(vault) == {}
    with pytest.raises(AccessDenied, match="users bootstrap"):
        access.require("someone", "users.manage", vault)
    access.bootstrap(vault, "founder")
    assert access.roles_of("founder", vault) == {access.ADMINISTRATOR}
    with pytest.raises(AccessDenied, match="already set up"):
        access.bootstrap(vault, "someone")
