"""People of a vault: enrolment with personal keys, roles as a signed chain, removal with key
rotation, recovery keys that are never stored, and a technician who cannot make themselves
administrator."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys

import pydicom
import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from app.errors import AccessDenied, IntegrityError, KeystoreError, MedPrintError, VaultError
from app.security import audit, roles
from app.security.identity import PersonalKeys
from app.security.keystore import Keystore
from app.security.vault import Vault
from app.workflow import intake, policy, users
from app.workflow.actor import Actor


def _last(actor: Actor) -> dict:
    return audit.read_records(actor.paths)[-1]


def test_init_founds_the_roles_chain_with_the_founder_as_administrator(admin):
    listed = users.list_users(admin)
    assert list(listed) == [admin.user]
    assert listed[admin.user]["roles"] == ["administrator"]
    assert listed[admin.user]["fingerprint"] == admin.keys.public.fingerprint
    state = roles.current(admin.vault)
    assert state.head_seq == 1 and admin.vault.founder == admin.keys.public.fingerprint
    assert audit.read_records(admin.paths)[0]["action"] == "vault.init"
    me = users.whoami(admin)
    assert me["roles"] == ["administrator"] and me["member"] and not me["request"]
    with pytest.raises(VaultError, match="already exists"):
        users.init_vault(admin)


def test_whoami_makes_keys_without_a_vault(data_dir, keystore_service):
    me = users.whoami(Actor.current())
    assert me["vault"] is False and me["roles"] == [] and len(me["fingerprint"]) == 64
    assert users.whoami(Actor.current())["fingerprint"] == me["fingerprint"]  # kept


def test_enrolment_needs_the_persons_own_signed_request(admin):
    with pytest.raises(MedPrintError, match="run 'medprint whoami' first"):
        users.enrol(admin, "zoe", ["technician"])
    zoe = Actor("zoe", admin.paths, keys=PersonalKeys.in_memory("zoe"), _vault=admin.vault)
    path = users.request_enrolment(zoe)
    assert path.parent == admin.paths.vault / "requests"
    data = json.loads(path.read_bytes())
    data["identity"] = PersonalKeys.in_memory("zoe").public.to_dict()  # someone else's key
    path.write_text(json.dumps(data))
    with pytest.raises(MedPrintError, match="fails its signature"):
        users.enrol(admin, "zoe", ["technician"])
    mallory = Actor("zoe", admin.paths, keys=PersonalKeys.in_memory("mallory"), _vault=None)
    users.request_enrolment(mallory)  # a request naming another account than its keys
    with pytest.raises(MedPrintError, match="malformed"):
        users.enrol(admin, "zoe", ["technician"])
    users.request_enrolment(zoe)
    with pytest.raises(AccessDenied, match="check with them"):
        users.enrol(admin, "zoe", ["technician"], fingerprint="00" * 32)
    done = users.enrol(admin, "zoe", ["technician"], fingerprint=zoe.keys.public.fingerprint)
    assert done.roles == ["technician"] and not path.exists()
    assert policy.roles_of(zoe) == {"technician"}
    assert "zoe" in admin.vault.members()
    rec = _last(admin)
    assert rec["action"] == "users.enrolled" and rec["facts"]["key"] == done.fingerprint
    # zoe opens the vault with her own key (no master key in any keystore)
    assert Vault.open(admin.paths, zoe.keys).vault_id == admin.vault.vault_id


def test_a_request_written_by_another_account_is_refused(admin, tmp_path):
    """A real account's request must be that account's own file (here: 'daemon' is a real
    account; the file is root's)."""
    fake = Actor("daemon", admin.paths, keys=PersonalKeys.in_memory("daemon"), _vault=None)
    users.request_enrolment(fake)
    with pytest.raises(AccessDenied, match="not written by that account"):
        users.enrol(admin, "daemon", ["reviewer"])


def test_roles_come_and_go_and_the_last_administrator_stays(people, admin):
    users.add_role(admin, "tess", "reviewer")
    assert users.list_users(people["tess"])["tess"]["roles"] == ["reviewer", "technician"]
    users.remove_role(admin, "tess", "reviewer")
    assert policy.roles_of(people["tess"]) == {"technician"}
    assert _last(admin)["action"] == "users.role_removed"
    users.remove_role(admin, "ada", "administrator")
    with pytest.raises(AccessDenied, match="last administrator"):
        users.remove_role(admin, admin.user, "administrator")
    with pytest.raises(MedPrintError, match="unknown role"):
        users.add_role(admin, "tess", "surgeon")
    with pytest.raises(MedPrintError, match="not a valid account"):
        users.add_role(admin, "bad name", "technician")
    with pytest.raises(MedPrintError, match="whoami"):
        users.add_role(admin, "nemo", "technician")  # keys, but no request and no membership
    assert roles.current(admin.vault).head_seq == 7  # founder, 3 enrolled, +1, -1, -1


@pytest.mark.parametrize(
    ("call", "action"),
    [
        (users.recovery_key, "vault.recovery_key"),
        (users.rotate_key, "vault.rotate_key"),
        (lambda a: users.add_role(a, "nemo", "administrator"), "users.manage"),
        (lambda a: users.remove_user(a, "rafael"), "users.manage"),
    ],
)
def test_admin_acts_are_refused_to_a_technician_and_audited(people, call, action):
    tess = people["tess"]
    with pytest.raises(AccessDenied, match="needs the administrator role"):
        call(tess)
    rec = _last(tess)
    assert rec["action"] == "access.denied" and rec["user"] == "tess"
    assert rec["facts"]["attempted"] == action and rec["facts"]["roles"] == ["technician"]


def test_nobody_without_a_role_may_see_the_vault(people):
    with pytest.raises(AccessDenied, match=r"\(no role\)"):
        users.vault_status(people["nemo"])
    assert _last(people["nemo"])["facts"]["attempted"] == "vault.status"


def test_a_technician_cannot_sign_themselves_administrator(people, admin):
    tess = people["tess"]
    with pytest.raises(AccessDenied, match="only an administrator"):
        roles.grant(tess.vault, tess.keys, tess.keys.public, {"administrator"})
    chain = roles.load_chain(admin.vault)
    # a statement claiming the founder issued it, signed by tess's key
    forged = dict(chain[-1])
    body = {k: v for k, v in forged.items() if k != "signature"}
    body |= {"seq": len(chain) + 1, "prev": roles.statement_hash(chain[-1])}
    body |= {"subject": tess.keys.public.to_dict(), "roles": ["administrator"]}
    body |= {"issuer": admin.user, "issuer_key": admin.keys.public.fingerprint}
    signature = base64.b64encode(tess.keys.sign(roles.canonical(body))).decode()
    roles.save_chain(tess.vault, [*chain, body | {"signature": signature}])
    with pytest.raises(VaultError, match=f"statement {len(chain) + 1} fails its signature"):
        policy.roles_of(tess)
    # an edited statement (tess's own, roles changed)
    edited = [dict(s) for s in chain]
    tess_at = next(i for i, s in enumerate(edited) if s["subject"]["user"] == "tess")
    edited[tess_at]["roles"] = ["administrator"]
    roles.save_chain(tess.vault, edited)
    with pytest.raises(VaultError, match=f"statement {tess_at + 1} fails its signature"):
        policy.allow(tess, "users.manage")
    # a whole new chain founded by tess's own key
    with pytest.raises(AccessDenied):
        roles.issue(
            [],
            tess.keys,
            tess.keys.public,
            {"administrator"},
            vault_id=tess.vault.vault_id,
            founder_fingerprint=tess.vault.founder,
        )
    first = roles.issue(
        [],
        tess.keys,
        tess.keys.public,
        {"administrator"},
        vault_id=tess.vault.vault_id,
        founder_fingerprint=tess.keys.public.fingerprint,
    )
    roles.save_chain(tess.vault, [first])
    with pytest.raises(VaultError, match="statement 1 was issued by 'tess'"):
        users.list_users(tess)
    roles.save_chain(tess.vault, chain)
    assert policy.roles_of(tess) == {"technician"}


def test_a_deleted_roles_record_is_reported_missing_not_empty(people, admin):
    (admin.paths.vault / "records" / "roles").unlink()
    for who in (admin, people["tess"]):
        with pytest.raises(VaultError, match="roles record is missing"):
            policy.roles_of(who)
    with pytest.raises(VaultError, match="roles record is missing"):
        users.add_role(admin, "tess", "administrator")


def test_a_deleted_vault_json_is_reported_to_whoami_not_a_fresh_folder(people, admin):
    Vault.meta_path(admin.paths).unlink()
    fresh = Actor(admin.user, admin.paths, keys=admin.keys)
    with pytest.raises(IntegrityError, match=r"vault\.json is missing"):
        users.whoami(fresh)
    with pytest.raises(IntegrityError, match=r"vault\.json is missing"):
        users.init_vault(Actor("tess", admin.paths, keys=people["tess"].keys))


def test_bootstrap_is_gone(admin):
    assert not hasattr(users, "bootstrap")
    env_run = [sys.executable, "-m", "app", "users", "bootstrap"]
    done = subprocess.run(env_run, capture_output=True, text=True, check=False)
    assert done.returncode == 2 and "invalid choice" in done.stderr


def test_recovery_key_is_issued_anew_and_the_old_one_stops_working(admin):
    first = users.recovery_key(admin)
    rec = _last(admin)
    assert rec["action"] == "vault.recovery_key_issued" and first not in json.dumps(rec)
    assert first not in Vault.meta_path(admin.paths).read_text()
    generation, second = users.rotate_key(admin)
    assert generation == 3 and second != first
    lost = Actor(admin.user, admin.paths, keys=PersonalKeys.in_memory(admin.user))
    with pytest.raises(VaultError, match="does not match"):
        users.restore_vault(lost, first)
    assert users.restore_vault(lost, second) == admin.vault.vault_id
    assert _last(lost)["action"] == "vault.restore"
    assert Vault.open(admin.paths, lost.keys).generation == 3


def test_a_lost_keystore_is_not_the_enrolled_key(admin):
    stranger = PersonalKeys.in_memory(admin.user)
    with pytest.raises(VaultError, match="not the one enrolled"):
        Vault.open(admin.paths, stranger)
    with pytest.raises(KeystoreError, match="act as yourself"):
        _ = Actor("tess", admin.paths).keys


def test_removing_a_person_rotates_every_key(people, admin, sphere_case):
    rafael = people["rafael"]
    sphere_case.save_series_facts({"modality": "CT", "note": "after"})
    old_meta = Vault.meta_path(admin.paths).read_text()
    recovery = users.remove_user(admin, "rafael")
    assert recovery.startswith("MPRK-") and _last(admin)["action"] == "users.removed"
    assert "rafael" not in users.list_users(admin)
    assert policy.roles_of(admin, "rafael") == set()
    with pytest.raises(VaultError, match="not a member"):
        Vault.open(admin.paths, rafael.keys)
    # rafael's sealed copy in an old vault.json opens the old master, which opens nothing now
    old = json.loads(old_meta)
    context = f"master:{old['vault_id']}:{old['generation']}"
    old_master = rafael.keys.open_sealed(old["members"]["rafael"]["master"], context)
    _assert_opens_nothing_current(admin, old_master)
    with pytest.raises(AccessDenied, match="remove yourself"):
        users.remove_user(admin, admin.user)


def _assert_opens_nothing_current(admin: Actor, old_master: bytes) -> None:
    meta = json.loads(Vault.meta_path(admin.paths).read_text())
    for owner, blob in meta["keys"].items():
        raw = base64.b64decode(blob)
        with pytest.raises(InvalidTag):
            AESGCM(old_master).decrypt(raw[:12], raw[12:], f"dek:{owner}".encode())


def test_deleting_a_case_forgets_its_original_uids(people, admin, sphere_case, dicom_dir):
    first = sorted(p for p in (dicom_dir / "ct-head-ge-gantry-tilt-28").rglob("*") if p.is_file())[
        0
    ]
    with sphere_case.write_original(0) as out:
        out.write(first.read_bytes())
    header = pydicom.dcmread(first, stop_before_pixels=True)
    known = {header.SOPInstanceUID: "2.25.1", header.StudyInstanceUID: "2.25.2", "1.2.9": "2.25.3"}
    admin.vault.put_record(intake.UID_MAP_RECORD, json.dumps(known).encode())
    intake.delete_case(people["ada"], sphere_case.pseudonym)
    assert json.loads(admin.vault.get_record(intake.UID_MAP_RECORD)) == {"1.2.9": "2.25.3"}
    assert _last(admin)["facts"]["uids_forgotten"] == 2


def _legacy_vault(paths) -> str:
    """A vault of the old format: master key in this account's keystore, a stored copy of the
    recovery key under it, unsigned roles. Returns the recovery key."""
    from app.security import vault as old

    paths.ensure()
    master, vault_id = os.urandom(32), "00112233aabbccdd"
    recovery = old._format_recovery(os.urandom(20))
    meta = {
        "format": 1,
        "vault_id": vault_id,
        "generation": 1,
        "created": "2026-01-01T00:00:00+00:00",
        "keys": {k: old._wrap(master, os.urandom(32), f"dek:{k}") for k in ("_index", "_records")},
        "check": old._wrap(master, old._CHECK, f"check:{vault_id}"),
        "recovery_key": old._wrap(master, recovery.encode(), "recovery-key"),
        "master_by_recovery": old._wrap(old._recovery_kek(recovery, vault_id), master, "master"),
    }
    Keystore().set(f"vault-master-{vault_id}-1", master)
    Vault.meta_path(paths).write_text(json.dumps(meta))
    legacy = Vault(paths, meta, master)
    legacy._save_index({})
    legacy.put_record("roles", b'{"users": {"root": ["administrator"], "tess": ["technician"]}}')
    return recovery


def test_an_old_vault_is_migrated_by_the_account_holding_its_master_key(data_dir, keystore_service):
    paths = Actor.current().paths
    recovery = _legacy_vault(paths)
    founder = Actor.current(paths)
    assert policy.roles_of(founder) == {"administrator"}  # opening migrates it
    assert Keystore().get("vault-master-00112233aabbccdd-1") is None
    meta = json.loads(Vault.meta_path(paths).read_text())
    assert meta["format"] == 2 and "recovery_key" not in meta and recovery not in json.dumps(meta)
    assert list(meta["members"]) == [founder.user]
    rec = next(r for r in audit.read_records(paths) if r["action"] == "vault.migrated")
    assert rec["facts"]["roles_not_carried"] == 1
    assert users.list_users(Actor.current(paths))[founder.user]["roles"] == ["administrator"]
    lost = Actor(founder.user, paths, keys=PersonalKeys.in_memory(founder.user))
    assert users.restore_vault(lost, recovery) == "00112233aabbccdd"  # the recovery key still works


def test_an_old_vault_without_its_master_key_here_is_refused(data_dir, keystore_service):
    paths = Actor.current().paths
    _legacy_vault(paths)
    Keystore().delete("vault-master-00112233aabbccdd-1")
    with pytest.raises(VaultError, match="Migrating an older vault"):
        _ = Actor.current(paths).vault
    assert json.loads(Vault.meta_path(paths).read_text())["format"] == 1
