"""Print packages through the workflow: built only from an approved mesh version, carrying the
signed approval, every signed override it rests on and the role statements of their signers, and
verified against the mesh and G-code it holds and back to the trusted lab key."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from app.case import Case
from app.errors import AccessDenied
from app.security import audit, esign
from app.security.package import format as fmt
from app.security.package.verify import verify_package
from app.workflow import package, review
from app.workflow.actor import Actor
from tests.workflow.mesh_versions import sphere_stl, store_gcode, store_version

TECH, REVIEWER, ADMIN, NOBODY = "tess", "rafael", "ada", "nemo"


@pytest.fixture
def approved(people, sphere_case) -> Case:
    """Mesh v1 made by the technician and approved by the reviewer."""
    version = store_version(sphere_case, TECH)
    review.approve(people[REVIEWER], sphere_case, version, comment="fits DOE^JANE")
    return sphere_case


@pytest.fixture
def drive(tmp_path) -> Path:
    out = tmp_path / "drive"
    out.mkdir()
    return out


def _manifest(folder: Path) -> dict:
    return json.loads((folder / fmt.MANIFEST).read_bytes())


def _actions(actor: Actor) -> list[str]:
    return [r["action"] for r in audit.read_records(actor.paths)]


def test_a_package_of_an_approved_version_names_the_mesh_and_verifies(people, approved, drive):
    tess = people[TECH]
    made = package.build(tess, approved, out_dir=drive)
    mesh_sha = approved.mesh_sha256(1)
    manifest = _manifest(made.path)
    assert manifest["mesh"]["sha256"] == mesh_sha and manifest["mesh"]["version"] == 1
    assert manifest["approval"]["mesh_sha256"] == mesh_sha
    assert manifest["approval"]["meaning"] == review.APPROVED_FOR_PRINTING
    assert manifest["approval"]["kept_in_vault"] == ["comment"]
    assert manifest["overrides"] == [] and manifest["gcode"] == []
    stl = f"mesh/{approved.pseudonym}_sphere.stl"
    assert {f["path"] for f in manifest["files"]} == {
        stl, f"mesh/{approved.pseudonym}_sphere.3mf", "mesh/manifest.json",
        "qa/report.json", "qa/report.html", "approval.json", "roles.json",
        "qa/review.pdf", f"mesh/{approved.pseudonym}_model.glb", "trace/chain.json",
    }  # fmt: skip
    assert (made.path / stl).read_bytes() == approved.load_mesh_version(1).parts["sphere"]
    for file in made.path.rglob("*"):  # no identity and no review comment left the vault
        assert file.is_dir() or b"JANE" not in file.read_bytes()

    report = package.verify(tess, made.path)
    assert report.ok, report.message
    assert report.manifest["mesh"]["sha256"] == mesh_sha
    records = audit.read_records(tess.paths)
    built = next(r for r in records if r["action"] == "package.build")
    assert built["facts"]["package_id"] == made.package_id
    assert built["facts"]["mesh_sha256"] == mesh_sha and built["facts"]["override_kinds"] == []
    assert records[-1]["action"] == "package.verify" and records[-1]["facts"]["ok"] is True


def test_the_gcode_of_that_version_travels_with_its_provenance(people, approved, drive):
    mesh_sha = approved.mesh_sha256(1)
    number = store_gcode(approved, mesh_sha)
    made = package.build(people[ADMIN], approved, out_dir=drive, make_zip=True)
    manifest = _manifest(made.path)
    (gcode,) = manifest["gcode"]
    assert gcode["path"] == f"gcode/{approved.pseudonym}_g{number}.gcode"
    assert gcode["mesh_sha256"] == mesh_sha and gcode["foreign_gcode_override"] is None
    provenance = json.loads((made.path / gcode["path"]).with_suffix(".json").read_bytes())
    assert provenance["gcode_sha256"] == approved.load_gcode(number).sha256
    assert manifest["printer"] == {"printer": "generic-marlin-220", "material": "pla"}
    zipped = made.path.with_name(made.path.name + fmt.ZIP_SUFFIX)
    received = drive.parent / "received"
    report = package.verify(None, zipped, extract_to=received)
    assert report.ok and report.extracted == received
    assert (received / gcode["path"]).read_bytes() == approved.load_gcode(number).text.encode()


def test_an_unapproved_or_rejected_version_cannot_be_packaged(people, sphere_case, drive):
    tess = people[TECH]
    store_version(sphere_case, TECH)
    with pytest.raises(AccessDenied, match="cannot be packaged: not reviewed"):
        package.build(tess, sphere_case, out_dir=drive)
    review.reject(people[REVIEWER], sphere_case, 1, comment="thicker base")
    with pytest.raises(AccessDenied, match="cannot be packaged: rejected"):
        package.build(tess, sphere_case, version=1, out_dir=drive)
    assert list(drive.iterdir()) == []
    denied = [r for r in audit.read_records(tess.paths) if r["action"] == "access.denied"]
    assert [r["facts"]["attempted"] for r in denied] == ["package.build"] * 2
    assert "package.build" not in _actions(tess)


def test_the_latest_approved_version_is_packaged_and_nobody_without_a_role_packages(
    people, approved, drive
):
    store_version(approved, TECH, radius=11.0)  # v2, not reviewed
    made = package.build(people[TECH], approved, out_dir=drive)
    assert made.release.mesh_version == 1
    with pytest.raises(AccessDenied, match="administrator or technician role"):
        package.build(people[NOBODY], approved, out_dir=drive)
    assert package.verify(people[NOBODY], made.path).ok  # receiving needs no role


def test_gcode_of_another_version_is_refused_unless_an_administrator_overrides(
    people, approved, drive
):
    v2 = store_version(approved, TECH, radius=11.0)
    review.approve(people[REVIEWER], approved, v2)
    number = store_gcode(approved, approved.mesh_sha256(v2))
    with pytest.raises(AccessDenied, match=f"sliced from mesh v{v2}, not from the packaged v1"):
        package.build(people[TECH], approved, version=1, gcode_version=number, out_dir=drive)
    sha = approved.load_gcode(number).sha256
    review.override(people[ADMIN], approved, "foreign-gcode", reason="test", gcode_sha256=sha)
    made = package.build(people[TECH], approved, version=1, gcode_version=number, out_dir=drive)
    manifest = _manifest(made.path)
    (override,) = manifest["overrides"]
    assert override["kind"] == "foreign-gcode" and override["kept_in_vault"] == ["reason"]
    assert manifest["gcode"][0]["foreign_gcode_override"] == override["id"]
    assert (made.path / fmt.override_file(override)).is_file()
    assert package.verify(people[TECH], made.path).ok


def test_a_self_approved_package_carries_and_shows_its_override(admin, sphere_case, drive):
    version = store_version(sphere_case, admin.user)
    review.override(admin, sphere_case, "self-approval", reason="alone", version=version)
    made = package.build(admin, sphere_case, out_dir=drive)
    assert made.release.self_approved
    manifest = _manifest(made.path)
    assert manifest["approval"]["meaning"] == review.SELF_APPROVED
    (override,) = manifest["overrides"]
    assert override["kind"] == "self-approval"
    assert override["subject_sha256"] == sphere_case.mesh_sha256(version)
    assert override["id"] in manifest["approval"]["override_ids"]
    assert (made.path / fmt.override_file(override)).is_file()
    assert package.verify(admin, made.path).ok
    facts = next(r for r in audit.read_records(admin.paths) if r["action"] == "package.build")
    assert facts["facts"]["override_kinds"] == ["self-approval"]


# --- a signed package whose records do not bind fails verify, each with its own code ---------


def _resign(
    by: Actor, folder: Path, change: Callable[[dict], None], files: dict[str, bytes | None]
) -> None:
    """Rewrite files (None removes one), edit the manifest, and sign it again with the
    packager's key: what a sender with a valid key but a wrong package would produce."""
    for name, data in files.items():
        target = folder / name
        if data is None:
            target.unlink()
            if not any(target.parent.iterdir()):
                target.parent.rmdir()
        else:
            target.write_bytes(data)
    manifest = _manifest(folder)
    manifest["files"] = [
        {"path": p, "size": len(b), "sha256": hashlib.sha256(b).hexdigest()}
        for p in sorted(
            f["path"] for f in manifest["files"] if files.get(f["path"], b"") is not None
        )
        for b in [(folder / p).read_bytes()]
    ]
    change(manifest)
    raw = fmt.canonical_json(manifest)
    (folder / fmt.MANIFEST).write_bytes(raw)
    (folder / fmt.SIGNATURE).write_bytes(fmt.signature_bytes(by.keys.signing, raw))


def _codes(actor: Actor, folder: Path) -> list[str]:
    return package.verify(actor, folder).codes


def test_an_approval_of_another_mesh_fails_verify(people, approved, drive):
    made = package.build(people[TECH], approved, out_dir=drive)
    stl = f"mesh/{approved.pseudonym}_sphere.stl"
    other = sphere_stl(12.0)
    mesh_manifest = json.loads((made.path / fmt.MESH_MANIFEST).read_bytes())
    mesh_manifest["parts"][0]["sha256"] = hashlib.sha256(other).hexdigest()
    changed = {stl: other, fmt.MESH_MANIFEST: fmt.canonical_json(mesh_manifest)}
    _resign(people[TECH], made.path, lambda m: None, changed)
    assert _codes(people[TECH], made.path) == [fmt.APPROVAL_MESH_MISMATCH]


def test_a_part_that_differs_from_the_mesh_manifest_fails_verify(people, approved, drive):
    made = package.build(people[TECH], approved, out_dir=drive)
    _resign(
        people[TECH],
        made.path,
        lambda m: None,
        {f"mesh/{approved.pseudonym}_sphere.stl": sphere_stl(9)},
    )
    assert _codes(people[TECH], made.path) == [fmt.BAD_MESH_MANIFEST]


def test_a_self_approval_without_its_override_record_fails_verify(admin, sphere_case, drive):
    version = store_version(sphere_case, admin.user)
    review.override(admin, sphere_case, "self-approval", reason="alone", version=version)
    made = package.build(admin, sphere_case, out_dir=drive)
    (override,) = _manifest(made.path)["overrides"]

    def drop(manifest: dict) -> None:
        manifest["overrides"] = []

    _resign(admin, made.path, drop, {fmt.override_file(override): None})
    assert _codes(admin, made.path) == [fmt.MISSING_OVERRIDE]


def test_an_override_record_the_manifest_does_not_show_fails_verify(admin, sphere_case, drive):
    version = store_version(sphere_case, admin.user)
    review.override(admin, sphere_case, "self-approval", reason="alone", version=version)
    made = package.build(admin, sphere_case, out_dir=drive)
    (override,) = _manifest(made.path)["overrides"]
    edited = fmt.canonical_json({**override, "kind": "qa-failure"})
    _resign(admin, made.path, lambda m: None, {fmt.override_file(override): edited})
    assert _codes(admin, made.path) == [fmt.BAD_RECORD]


def test_gcode_whose_provenance_names_another_mesh_fails_verify(people, approved, drive):
    number = store_gcode(approved, approved.mesh_sha256(1))
    made = package.build(people[TECH], approved, gcode_version=number, out_dir=drive)
    record = f"gcode/{approved.pseudonym}_g{number}.json"
    provenance = json.loads((made.path / record).read_bytes()) | {"mesh_sha256": "ab" * 32}

    def show(manifest: dict) -> None:
        manifest["gcode"][0]["mesh_sha256"] = "ab" * 32

    _resign(people[TECH], made.path, show, {record: fmt.canonical_json(provenance)})
    assert _codes(people[TECH], made.path) == [fmt.GCODE_MESH_MISMATCH]
    _resign(people[TECH], made.path, lambda m: None, {record: None})
    assert _codes(people[TECH], made.path) == [fmt.BAD_PROVENANCE]


def test_a_foreign_gcode_without_its_override_record_fails_verify(people, approved, drive):
    v2 = store_version(approved, TECH, radius=11.0)
    number = store_gcode(approved, approved.mesh_sha256(v2))
    sha = approved.load_gcode(number).sha256
    review.override(people[ADMIN], approved, "foreign-gcode", reason="test", gcode_sha256=sha)
    made = package.build(people[TECH], approved, version=1, gcode_version=number, out_dir=drive)
    (override,) = _manifest(made.path)["overrides"]

    def drop(manifest: dict) -> None:
        manifest["overrides"] = []

    _resign(people[TECH], made.path, drop, {fmt.override_file(override): None})
    assert _codes(people[TECH], made.path) == [fmt.GCODE_MESH_MISMATCH]
    report = package.verify(people[TECH], made.path)
    assert "carries no foreign-gcode override" in report.message


def test_a_self_approved_package_of_a_failed_qa_carries_both_overrides(admin, sphere_case, drive):
    version = store_version(sphere_case, admin.user, holed=True)
    review.override(admin, sphere_case, "qa-failure", reason="cosmetic", version=version)
    review.override(admin, sphere_case, "self-approval", reason="alone", version=version)
    made = package.build(admin, sphere_case, out_dir=drive)
    manifest = _manifest(made.path)
    assert sorted(o["kind"] for o in manifest["overrides"]) == ["qa-failure", "self-approval"]
    assert manifest["approval"]["qa_passed"] is False
    assert package.verify(admin, made.path).ok
    qa_record = next(o for o in manifest["overrides"] if o["kind"] == "qa-failure")

    def drop(m: dict) -> None:
        m["overrides"] = [o for o in m["overrides"] if o["kind"] != "qa-failure"]

    _resign(admin, made.path, drop, {fmt.override_file(qa_record): None})
    assert _codes(admin, made.path) == [fmt.MISSING_OVERRIDE]


# --- e-signatures and the lab's roles, checked back to a trusted lab key -----------------------


def test_a_package_whose_approval_signature_is_broken_fails_verify(people, approved, drive):
    tess = people[TECH]
    made = package.build(tess, approved, out_dir=drive)
    approval = _manifest(made.path)["approval"]
    renamed = approval | {"printed_name": "Dr Someone Else"}

    def show(manifest: dict) -> None:
        manifest["approval"] = renamed

    _resign(tess, made.path, show, {fmt.APPROVAL_FILE: fmt.canonical_json(renamed)})
    assert _codes(tess, made.path) == [esign.BAD_SIGNATURE]


def test_a_package_approved_by_a_technician_fails_verify(people, approved, drive):
    """A technician signs an approval herself and packages it: her role shows she may not."""
    tess = people[TECH]
    made = package.build(tess, approved, out_dir=drive)
    approval = _manifest(made.path)["approval"]
    hers = esign.sign(approval, tess.keys, "reviewer")

    def show(manifest: dict) -> None:
        manifest["approval"] = hers

    _resign(tess, made.path, show, {fmt.APPROVAL_FILE: fmt.canonical_json(hers)})
    assert _codes(tess, made.path) == [esign.WRONG_ROLE]


def test_role_statements_that_do_not_chain_to_the_lab_key_fail_verify(people, approved, drive):
    tess = people[TECH]
    made = package.build(tess, approved, out_dir=drive)
    bundle = json.loads((made.path / fmt.ROLES_FILE).read_bytes())
    assert bundle["founder"] == people["founder"].keys.public.fingerprint
    assert [s["subject"]["user"] for s in bundle["statements"]][-1] in (TECH, REVIEWER)
    assert all(
        "wrap_key" in s["subject"] and "signing_key" in s["subject"] for s in bundle["statements"]
    )
    promoted = next(s for s in bundle["statements"] if s["subject"]["user"] == TECH)
    promoted["roles"] = ["reviewer", "technician"]
    _resign(tess, made.path, lambda m: None, {fmt.ROLES_FILE: fmt.canonical_json(bundle)})
    assert _codes(tess, made.path) == [fmt.KEY_UNTRUSTED]  # nothing shows tess's key any more


def test_a_package_of_an_untrusted_lab_fails_verify(people, approved, drive):
    tess, founder = people[TECH], people["founder"]
    made = package.build(tess, approved, out_dir=drive)
    lab_key, tess_key = founder.keys.public.signing_key, tess.keys.public.signing_key
    assert verify_package(made.path, [lab_key]).ok  # the packager is shown by the lab's roles
    assert verify_package(made.path, []).codes == [fmt.KEY_UNTRUSTED]
    # Trusting the packager's own key is not enough: the approval's signer is the lab's.
    assert verify_package(made.path, [tess_key]).codes == [esign.LAB_UNTRUSTED]
    revoked = verify_package(made.path, [lab_key, tess_key], [lab_key.fingerprint])
    assert revoked.codes == [esign.LAB_UNTRUSTED]
