"""Keys (show, export, trust, revoke, recipients) and the audit log (verify, read, export)."""

from __future__ import annotations

import json

import pytest

from app.errors import AccessDenied
from app.security import audit
from app.workflow import keys, records


def _last(actor) -> dict:
    return audit.read_records(actor.paths)[-1]


def test_signing_key_export_and_own_revocation(people):
    tess, ada = people["tess"], people["ada"]
    info = keys.show(tess)
    key, pem = keys.export_signing_key(tess, "pem")
    assert key.key_id == info.key_id and pem.startswith("-----BEGIN PUBLIC KEY-----")
    assert _last(tess)["action"] == "keys.export" and _last(tess)["facts"]["key_id"] == key.key_id
    with pytest.raises(AccessDenied, match="administrator role"):
        keys.revoke(tess)
    assert _last(tess)["facts"]["attempted"] == "keys.manage"
    revoked, own = keys.revoke(ada, reason="laptop stolen")
    assert revoked.key_id == info.key_id and own
    assert keys.show(ada).key_id != info.key_id  # a new key on next use
    assert info.key_id in keys.show(ada).revoked_keys


def test_trust_and_recipients_are_for_administrators(people, tmp_path):
    tess, ada = people["tess"], people["ada"]
    _key, recipient_pem = keys.export_recipient_key(tess)
    source = tmp_path / "print-room.pem"
    source.write_text(recipient_pem)
    with pytest.raises(AccessDenied):
        keys.add_recipient(tess, "print-room", str(source))
    added = keys.add_recipient(ada, "print-room", str(source))
    assert keys.recipients(tess) == {"print-room": added.key_id}
    assert _last(ada)["action"] == "keys.recipient_add"
    _signing, pem = keys.export_signing_key(ada, "base64")
    with pytest.raises(AccessDenied):
        keys.trust(tess, pem.strip(), "theatre-2")
    assert keys.trust(ada, pem.strip(), "theatre-2").key_id in keys.show(ada).trusted_keys


def test_log_is_verified_read_and_exported_by_role(people, sphere_case):
    tess, rafael = people["tess"], people["rafael"]
    verdict = records.verify_log(tess)
    assert verdict.ok and _last(tess)["action"] == "audit.verify"
    mine = records.read_log(tess, case=sphere_case.pseudonym)
    assert all(r["case"] == sphere_case.pseudonym for r in mine)
    assert len(records.read_log(tess, last=2)) == 2
    with pytest.raises(AccessDenied, match="administrator or reviewer"):
        records.export_log(tess, "json")
    assert _last(tess)["facts"]["attempted"] == "audit.export"
    exported = json.loads(records.export_log(rafael, "json", last=3))
    assert [r["action"] for r in exported][-1] == "access.denied"
    assert _last(rafael)["action"] == "audit.export" and _last(rafael)["facts"]["records"] == 3
    assert records.export_log(rafael, "csv").startswith("seq,time,user,action")
    with pytest.raises(AccessDenied):
        records.read_log(people["nemo"])
