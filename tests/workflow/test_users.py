"""Set-up and users: the founder administers, roles come and go, key acts are admin-only."""

from __future__ import annotations

import pytest

from app.errors import AccessDenied, KeystoreError, MedPrintError, VaultError
from app.security import audit
from app.security.keystore import Keystore
from app.workflow import users
from app.workflow.actor import Actor


def _last(actor: Actor) -> dict:
    return audit.read_records(actor.paths)[-1]


def test_init_makes_the_founder_administrator(admin):
    assert users.list_users(admin) == {admin.user: ["administrator"]}
    actions = [r["action"] for r in audit.read_records(admin.paths)]
    assert actions[:2] == ["vault.init", "users.bootstrap"]
    assert users.whoami(admin) == {"user": admin.user, "roles": ["administrator"], "vault": True}
    with pytest.raises(VaultError, match="already exists"):
        users.init_vault(admin)


def test_whoami_without_a_vault(data_dir, keystore_service):
    me = users.whoami(Actor.current())
    assert me["vault"] is False and me["roles"] == []


def test_add_and_remove_roles_keeps_the_last_administrator(people, admin):
    assert users.list_users(admin)["tess"] == ["technician"]
    users.add_role(admin, "tess", "reviewer")
    assert users.list_users(people["tess"])["tess"] == ["reviewer", "technician"]
    assert users.remove_role(admin, "tess", "reviewer") == ["reviewer"]
    assert _last(admin)["action"] == "users.role_removed"
    assert users.remove_role(admin, "ada") == ["administrator"]
    with pytest.raises(AccessDenied, match="last administrator"):
        users.remove_role(admin, admin.user, "administrator")
    assert "administrator" in users.list_users(admin)[admin.user]
    with pytest.raises(MedPrintError, match="unknown role"):
        users.add_role(admin, "tess", "surgeon")
    with pytest.raises(MedPrintError, match="not a valid account"):
        users.add_role(admin, "bad name", "technician")


@pytest.mark.parametrize(
    ("call", "action"),
    [
        (users.recovery_key, "vault.recovery_key"),
        (users.rotate_key, "vault.rotate_key"),
        (lambda a: users.add_role(a, "nemo", "administrator"), "users.manage"),
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


def test_status_rotate_and_recovery_key(admin):
    status = users.vault_status(admin)
    assert status["key_generation"] == 1 and status["cases"] == 0
    assert status["roles"] == ["administrator"]
    assert users.rotate_key(admin) == 2
    assert users.vault_status(admin)["key_generation"] == 2
    assert _last(admin)["action"] == "vault.rotate_key"
    key = users.recovery_key(admin)
    assert key.startswith("MPRK-")
    rec = _last(admin)
    assert rec["action"] == "vault.recovery_key_shown" and key not in str(rec)


def test_restore_with_the_recovery_key_after_keystore_loss(admin):
    key = users.recovery_key(admin)
    vault_id = admin.vault.vault_id
    Keystore().delete(f"vault-master-{vault_id}-1")
    fresh = Actor.current(admin.paths)
    with pytest.raises(KeystoreError, match="restore it with the recovery key"):
        users.vault_status(fresh)
    with pytest.raises(VaultError, match="does not match"):
        users.restore_vault(Actor.current(admin.paths), "MPRK-AAAA-BBBB-CCCC-DDDD")
    restored = Actor.current(admin.paths)
    assert users.restore_vault(restored, key) == vault_id
    assert _last(restored)["action"] == "vault.restore"
    assert users.vault_status(Actor.current(admin.paths))["vault_id"] == vault_id


def test_bootstrap_is_for_a_vault_without_roles(admin):
    with pytest.raises(AccessDenied, match="already set up"):
        users.bootstrap(admin)
    (admin.paths.vault / "records" / "roles").unlink()  # a vault made before roles existed
    assert users.bootstrap(Actor.current(admin.paths)) == admin.user
    assert users.list_users(admin) == {admin.user: ["administrator"]}


def test_bootstrap_needs_the_founder_in_a_verified_log(admin):
    (admin.paths.vault / "records" / "roles").unlink()
    log = admin.paths.audit / "audit.jsonl"
    log.write_bytes(log.read_bytes().replace(b"vault.init", b"vault.xxxx"))  # tampered
    with pytest.raises(AccessDenied, match="does not name who created"):
        users.bootstrap(Actor.current(admin.paths))
