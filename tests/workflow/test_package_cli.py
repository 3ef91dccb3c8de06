"""``medprint review``, ``package`` and ``verify`` end to end on a real vault and keystore.

The process runs as one OS account (the founder administrator); the technician who made the
mesh is another name in the vault, so the four-eyes rule lets the founder review it once they
hold the reviewer role.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app.case import Case
from app.cli import main
from app.security import audit
from app.workflow import users
from app.workflow.actor import Actor
from tests.workflow.conftest import person
from tests.workflow.mesh_versions import sphere_stl, store_gcode, store_version


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def reviewed(admin: Actor, sphere_case: Case) -> Case:
    """Mesh v1 by the technician tess; the founder is also a reviewer and a technician."""
    person(admin, "tess", "technician")
    store_version(sphere_case, "tess")
    return sphere_case


def test_review_package_and_verify_from_the_command_line(admin, reviewed, tmp_path, capsys):
    case = reviewed.pseudonym
    approve = ["review", "approve", case, "--version", "1", "--comment", "fits DOE^JANE"]
    code, _, err = _run(capsys, *approve)
    assert code == 2 and "reviewer role" in err  # the administrator is not a reviewer
    users.add_role(admin, admin.user, "reviewer")
    status = ["review", "status", case, "--version", "1"]
    assert _run(capsys, *status)[0] == 1
    code, out, err = _run(capsys, *approve, "--json")
    assert code == 0, err
    assert json.loads(out)["meaning"] == "approved for printing"
    code, out, _ = _run(capsys, *status)
    assert code == 0 and out.startswith("approved")

    number = store_gcode(reviewed, reviewed.mesh_sha256(1))
    drive = tmp_path / "usb"
    drive.mkdir()
    code, out, err = _run(capsys, "package", case, "--out", str(drive), "--zip", "--json")
    assert code == 0, err
    made = json.loads(out)
    folder = Path(made["path"])
    assert made["mesh_version"] == 1 and made["overrides"] == []
    manifest = json.loads((folder / "manifest.json").read_bytes())
    assert f"gcode/{case}_g{number}.gcode" in {f["path"] for f in manifest["files"]}
    for path in drive.rglob("*"):  # no identity, no review comment
        assert path.is_dir() or b"JANE" not in path.read_bytes()

    code, out, _ = _run(capsys, "verify", str(folder))
    assert code == 0 and out.startswith("OK") and "approved for printing" in out
    code, out, _ = _run(capsys, "verify", str(folder) + ".zip", "--json")
    assert code == 0 and json.loads(out)["mesh"]["sha256"] == reviewed.mesh_sha256(1)

    gcode = folder / "gcode" / f"{case}_g{number}.gcode"
    gcode.write_bytes(gcode.read_bytes().replace(b"X10", b"X19"))
    code, out, _ = _run(capsys, "verify", str(folder))
    assert code == 1 and "[hash-mismatch]" in out and gcode.name in out
    actions = [r["action"] for r in audit.read_records(admin.paths)]
    assert actions.count("package.verify") == 3 and "package.build" in actions


def test_an_edit_after_approval_blocks_packaging(admin, reviewed, tmp_path, capsys):
    case = reviewed.pseudonym
    users.add_role(admin, admin.user, "reviewer")
    assert _run(capsys, "review", "approve", case, "--version", "1")[0] == 0
    reviewed.save_mesh_version(
        {"sphere": sphere_stl(12.0)}, qa={"passed": True}, info={"author": "tess"}
    )
    code, _, err = _run(capsys, "package", case, "--version", "2", "--out", str(tmp_path))
    assert code == 2 and "cannot be packaged" in err and "void" in err
    assert not any(p.name.startswith("C-") for p in tmp_path.iterdir())
    code, _, err = _run(capsys, "review", "reject", case, "--version", "2")
    assert code == 2 and "reason saying what to change is required" in err


def test_alone_the_administrator_self_approves_and_the_package_says_so(
    admin, sphere_case, tmp_path, capsys
):
    case = sphere_case.pseudonym
    store_version(sphere_case, admin.user)
    override = ["review", "override", case, "--version", "1", "--kind", "self-approval"]
    code, out, err = _run(capsys, *override, "--reason", "one-person workshop")
    assert code == 0, err
    assert out.startswith(f"self-approval override: mesh v1 of {case}, signed by {admin.user}")
    code, out, _ = _run(capsys, "package", case, "--out", str(tmp_path))
    assert code == 0 and "self-approval" in out
    folder = next(p for p in tmp_path.iterdir() if p.name.startswith(case))
    code, out, _ = _run(capsys, "verify", str(folder))
    assert code == 0 and "self-approved" in out and "OVERRIDE: self-approval" in out


def test_a_foreign_gcode_override_names_the_gcode(admin, reviewed, tmp_path, capsys):
    case = reviewed.pseudonym
    loose = tmp_path / "elsewhere.gcode"
    loose.write_text("G28\n")
    base = ["review", "override", case, "--kind", "foreign-gcode", "--reason", "old printer"]
    code, _, err = _run(capsys, *base)
    assert code == 2 and "--gcode-version N or --gcode-file F" in err
    code, out, err = _run(capsys, *base, "--gcode-file", str(loose), "--json")
    assert code == 0, err
    assert json.loads(out)["kind"] == "foreign-gcode"


def test_encrypted_package_for_a_named_recipient(admin, reviewed, tmp_path, capsys):
    """This workstation plays both sides: its receiving key is the named recipient."""
    case = reviewed.pseudonym
    users.add_role(admin, admin.user, "reviewer")
    _run(capsys, "review", "approve", case, "--version", "1")
    key_file = tmp_path / "room.pub"
    assert _run(capsys, "keys", "recipient-key", "--out", str(key_file))[0] == 0
    assert _run(capsys, "keys", "recipient-add", "print-room", str(key_file))[0] == 0
    drive = tmp_path / "usb"
    drive.mkdir()
    code, _, err = _run(capsys, "package", case, "--out", str(drive), "--recipient", "print-room")
    assert code == 0, err
    (sealed,) = drive.iterdir()
    assert sealed.suffix == ".mpkg" and b"solid" not in sealed.read_bytes()
    received = tmp_path / "received"
    code, out, _ = _run(capsys, "verify", str(sealed), "--extract", str(received))
    assert code == 0 and "extracted to" in out
    stl = received / "mesh" / f"{case}_sphere.stl"
    assert stl.read_bytes() == reviewed.load_mesh_version(1).parts["sphere"]


def test_verify_a_missing_package_is_a_clear_failure(data_dir, keystore_service, capsys):
    code, out, _ = _run(capsys, "verify", str(Path(data_dir) / "nothing-here"))
    assert code == 1 and "[not-a-package]" in out
