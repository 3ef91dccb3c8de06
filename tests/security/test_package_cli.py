"""`medprint users|review|package|verify|keys` end to end on a real vault and keystore."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app.case import open_case
from app.cli import main
from app.security import access, audit
from app.security.vault import Vault

QA = {"passed": True, "watertight": True}


@pytest.fixture
def case_id(data_dir, keystore_service) -> str:
    vault = Vault.init()[0]
    pseudonym = vault.create_case({"patient_name": "DOE^JANE", "patient_id": "PID-4711"})
    case = open_case(pseudonym, vault)
    case.save_bytes("mesh/v1.stl", b"solid mesh\nendsolid mesh\n")
    case.save_bytes("gcode/v1.gcode", b"G28\nG1 X1 Y1\n")
    case.save_json("qa/v1.json", QA)
    case.save_json("settings.json", {"printer": {"name": "mk3s"}, "slicer": {"layer_mm": 0.2}})
    return pseudonym


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_review_package_and_verify_from_the_command_line(case_id, tmp_path, capsys):
    me = access.current_user()
    review = ["review", "approve", case_id, "--mesh", "mesh/v1.stl", "--qa", "qa/v1.json"]
    code, _, err = _run(capsys, *review)
    assert code == 2 and "reviewer" in err  # the administrator is not a reviewer
    assert _run(capsys, "users", "add", me, "reviewer")[0] == 0
    assert _run(capsys, "users", "add", me, "technician")[0] == 0
    status = ["review", "status", case_id, "--mesh", "mesh/v1.stl"]
    assert _run(capsys, *status)[0] == 1
    assert _run(capsys, *review, "--comment", "fits")[0] == 0
    code, out, _ = _run(capsys, *status)
    assert code == 0 and out.startswith("approved")

    drive = tmp_path / "usb"
    drive.mkdir()
    code, out, err = _run(
        capsys,
        "package", case_id, "--out", str(drive), "--mesh", "mesh/v1.stl", "--qa", "qa/v1.json",
        "--file", "gcode/v1.gcode=gcode/model.gcode", "--settings", "settings.json", "--zip",
    )  # fmt: skip
    assert code == 0, err
    assert "safe to remove" in out
    folder = next(p for p in drive.iterdir() if p.is_dir())
    manifest = json.loads((folder / "manifest.json").read_bytes())
    # Named by pseudonym and part; the 3MF comes with the approved STL.
    assert {f["path"] for f in manifest["files"]} == {
        f"mesh/{case_id}_model.stl", f"mesh/{case_id}_model.3mf", "qa/report.json",
        "gcode/model.gcode", "approval.json",
    }  # fmt: skip
    assert manifest["printer"] == {"name": "mk3s"}
    assert manifest["approval"]["reviewer"] == me
    # No identity anywhere in what left the vault.
    for path in drive.rglob("*"):
        if path.is_file():
            assert b"DOE" not in path.read_bytes() and b"PID-4711" not in path.read_bytes()

    code, out, _ = _run(capsys, "verify", str(folder))
    assert code == 0 and out.startswith("OK")
    code, out, _ = _run(capsys, "verify", str(folder) + ".zip", "--json")
    assert code == 0 and json.loads(out)["ok"] is True

    (folder / "gcode" / "model.gcode").write_bytes(b"G28\nG1 X9 Y1\n")
    code, out, _ = _run(capsys, "verify", str(folder))
    assert code == 1 and "[hash-mismatch]" in out and "gcode/model.gcode" in out
    actions = [r["action"] for r in audit.read_records()]
    assert actions.count("package.verify") == 3 and "package.build" in actions


def test_edit_after_approval_blocks_packaging(case_id, tmp_path, capsys):
    me = access.current_user()
    _run(capsys, "users", "add", me, "reviewer")
    _run(capsys, "users", "add", me, "technician")
    _run(capsys, "review", "approve", case_id, "--mesh", "mesh/v1.stl", "--qa", "qa/v1.json")
    open_case(case_id).save_bytes("mesh/v1.stl", b"solid mesh\n edited \nendsolid mesh\n")
    code, _, err = _run(capsys, "package", case_id, "--out", str(tmp_path), "--mesh", "mesh/v1.stl")
    assert code == 2 and "void" in err
    assert not any(p.name.startswith("C-") for p in tmp_path.iterdir())


def test_keys_export_trust_and_revoke(case_id, tmp_path, capsys):
    code, out, _ = _run(capsys, "keys", "show", "--json")
    first = json.loads(out)
    assert code == 0 and len(first["key_id"]) == 16 and first["trusted_keys"] == [first["key_id"]]
    exported = tmp_path / "workstation.pub"
    assert _run(capsys, "keys", "export", "--out", str(exported))[0] == 0
    assert "BEGIN PUBLIC KEY" in exported.read_text()
    code, out, _ = _run(capsys, "keys", "revoke", "--reason", "test")
    assert code == 0 and "new one is created" in out
    second = json.loads(_run(capsys, "keys", "show", "--json")[1])
    assert second["key_id"] != first["key_id"] and first["key_id"] in second["revoked_keys"]
    other = tmp_path / "other.pub"
    from app.security.signing import SigningKey

    other.write_text(SigningKey.generate().public_key.to_pem())
    code, out, _ = _run(capsys, "keys", "trust", str(other), "--name", "theatre-2")
    assert code == 0 and "trusted key" in out


def test_encrypted_package_for_a_named_recipient(case_id, tmp_path, capsys):
    """This workstation plays both sides: its receiving key is the named recipient."""
    me = access.current_user()
    _run(capsys, "users", "add", me, "reviewer")
    _run(capsys, "users", "add", me, "technician")
    _run(capsys, "review", "approve", case_id, "--mesh", "mesh/v1.stl", "--qa", "qa/v1.json")
    key_file = tmp_path / "room.pub"
    assert _run(capsys, "keys", "recipient-key", "--out", str(key_file))[0] == 0
    assert _run(capsys, "keys", "recipient-add", "print-room", str(key_file))[0] == 0
    code, out, _ = _run(capsys, "keys", "recipients")
    assert code == 0 and out.startswith("print-room")
    drive = tmp_path / "usb"
    drive.mkdir()
    code, out, err = _run(
        capsys, "package", case_id, "--out", str(drive), "--mesh", "mesh/v1.stl",
        "--qa", "qa/v1.json", "--recipient", "print-room",
    )  # fmt: skip
    assert code == 0, err
    (sealed,) = drive.iterdir()
    assert sealed.suffix == ".mpkg" and b"solid mesh" not in sealed.read_bytes()
    received = tmp_path / "received"
    code, out, _ = _run(capsys, "verify", str(sealed), "--extract", str(received))
    assert code == 0 and "extracted to" in out
    stl = received / "mesh" / f"{case_id}_model.stl"
    assert stl.read_bytes() == b"solid mesh\nendsolid mesh\n"


def test_verify_a_missing_package_is_a_clear_failure(data_dir, keystore_service, capsys):
    code, out, _ = _run(capsys, "verify", str(Path(data_dir) / "nothing-here"))
    assert code == 1 and "[not-a-package]" in out
