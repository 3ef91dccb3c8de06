"""Anchored state: what a person saw is kept in their own keystore, so a wiped or rolled-back
audit log, roles record, ``vault.json`` or decision history is reported as tampering, naming
what is missing; an interrupted append is repaired; every audit head reaches syslog."""

from __future__ import annotations

import json
import re
import shutil
import socket
from datetime import datetime

import pytest

from app.errors import AuditError, IntegrityError, MedPrintError
from app.security import audit, syslog
from app.security.identity import PersonalKeys
from app.workflow import anchoring, records, review, settings
from app.workflow.actor import Actor
from tests.test_cli import medprint
from tests.workflow.conftest import REVIEWER, TECH, person
from tests.workflow.mesh_versions import store_version


def _reopened(actor: Actor) -> Actor:
    """The same person starting again: same keys, the vault not yet opened."""
    return Actor(actor.user, actor.paths, keys=actor.keys)


def _snapshot(paths, tmp_path, name: str):
    """Copies of the audit log and its head (what an attacker keeps to write back later)."""
    folder = tmp_path / name
    folder.mkdir()
    shutil.copy2(audit.log_path(paths), folder / "audit.jsonl")
    shutil.copy2(audit.head_path(paths), folder / "audit-head.json")
    return folder


def _write_back(folder, paths) -> None:
    shutil.copy2(folder / "audit.jsonl", audit.log_path(paths))
    shutil.copy2(folder / "audit-head.json", audit.head_path(paths))


def test_a_deleted_audit_log_is_not_empty_and_ok(people):
    tess = people[TECH]
    assert records.verify_log(tess).ok
    seen = audit.current_head(tess.paths).seq
    audit.log_path(tess.paths).unlink()
    audit.head_path(tess.paths).unlink()
    verdict = records.verify_log(tess)
    assert not verdict.ok
    assert f"the audit log is missing (deleted): you saw record {seen}" in verdict.message
    with pytest.raises(IntegrityError, match="audit log is missing"):
        _reopened(tess).vault  # noqa: B018 (opening is the act)


def test_a_log_rolled_back_with_its_head(people, tmp_path):
    admin, tess = people["founder"], people[TECH]
    old = _snapshot(admin.paths, tmp_path, "old")
    old_seq = audit.current_head(admin.paths).seq
    for _ in range(3):
        records.verify_log(tess)
    seen = audit.current_head(admin.paths).seq
    _write_back(old, admin.paths)
    assert audit.verify(admin.paths, _people(admin)).ok  # the copy is consistent in itself
    verdict = records.verify_log(tess)
    assert not verdict.ok
    assert f"ends at record {old_seq} but you saw record {seen} (rolled back" in verdict.message
    with pytest.raises(IntegrityError, match=f"ends at record {old_seq}"):
        _reopened(admin).vault  # noqa: B018


def test_a_log_replaced_by_a_longer_one_is_caught(people, tmp_path):
    """Cut the last records and append as many again (all signed by oneself): the record the
    anchor names is no longer the one seen."""
    tess = people[TECH]
    old = _snapshot(tess.paths, tmp_path, "old")
    records.verify_log(tess)
    seen = audit.current_head(tess.paths).seq
    _write_back(old, tess.paths)
    for _ in range(3):
        audit.record("audit.verify", user=tess.user, paths=tess.paths, keys=tess.keys)
    verdict = records.verify_log(tess)
    assert not verdict.ok and f"record {seen} is not the one you saw (replaced)" in verdict.message


def _people(actor: Actor) -> dict:
    return anchoring.known_people(actor)


def test_a_record_rewritten_by_another_enrolled_user(people):
    """tess rewrites rafael's record with her own key: no shared key lets her sign as him."""
    tess, rafael = people[TECH], people[REVIEWER]
    records.verify_log(rafael)
    log = audit.log_path(tess.paths)
    lines = log.read_bytes().splitlines(keepends=True)
    number = max(i for i, line in enumerate(lines) if b'"user":"rafael"' in line)
    rec = json.loads(lines[number])
    rec["facts"]["records"] = 0
    body = {k: rec[k] for k in audit.FIELDS if k != "signature"}
    rec["signature"] = audit._b64(
        tess.keys.sign(b"medprint-audit-record-1\n" + audit.canonical(body))
    )
    lines[number] = audit.canonical(rec) + b"\n"
    log.write_bytes(b"".join(lines))
    verdict = records.verify_log(tess)
    assert not verdict.ok and verdict.first_bad == number + 1
    assert "fails its signature" in verdict.message


def test_a_record_signed_by_a_stranger(people):
    stranger = PersonalKeys.in_memory("tess")
    tess = people[TECH]
    audit.record("mesh.build", user="tess", paths=tess.paths, keys=stranger)
    verdict = records.verify_log(tess)
    assert not verdict.ok and "unknown key" in verdict.message


def test_a_crash_mid_append_is_repaired_on_the_next_start(people):
    admin = people["founder"]
    log = audit.log_path(admin.paths)
    with open(log, "ab") as handle:
        handle.write(b'{"seq":999,"action":"mesh.bui')
    reopened = _reopened(admin)
    assert records.verify_log(reopened).ok
    actions = [r["action"] for r in audit.read_records(admin.paths)]
    assert actions.count("audit.repaired") == 1
    records.verify_log(_reopened(admin))
    assert [r["action"] for r in audit.read_records(admin.paths)].count("audit.repaired") == 1


def test_a_record_forged_after_the_head_is_not_taken_in_as_a_crash(people):
    """A technician appends a record naming the reviewer (chained, signed with her own key) and
    puts the head back, as an interrupted append would leave it: the next act refuses it."""
    tess, rafael = people[TECH], people[REVIEWER]
    head = audit.head_path(tess.paths).read_bytes()
    audit.record("review.approved", user=REVIEWER, paths=tess.paths, keys=tess.keys)
    audit.head_path(tess.paths).write_bytes(head)
    seq = json.loads(head)["seq"] + 1
    forged = f"record {seq} names user '{REVIEWER}' but is signed by '{TECH}'"
    with pytest.raises(AuditError, match=forged):
        records.export_log(rafael, "json")
    with pytest.raises(IntegrityError, match=forged):
        _ = _reopened(rafael).vault
    assert json.loads(audit.head_path(tess.paths).read_bytes())["seq"] == seq - 1


def test_a_deleted_roles_record_is_named(people):
    admin = people["founder"]
    roles_file = admin.paths.vault / "records" / "roles"
    assert roles_file.exists()
    roles_file.unlink()
    with pytest.raises(IntegrityError, match="the roles record is missing \\(deleted\\)"):
        _reopened(admin).vault  # noqa: B018


def test_an_older_roles_record_written_back(people, tmp_path):
    admin = people["founder"]
    roles_file = admin.paths.vault / "records" / "roles"
    old = roles_file.read_bytes()
    person(admin, "newbie", "technician")
    roles_file.write_bytes(old)
    reopened = _reopened(admin)
    with pytest.raises(IntegrityError, match="roles record ends at statement"):
        reopened.vault  # noqa: B018


def test_an_older_vault_json_written_back(people):
    admin = people["founder"]
    meta = admin.paths.vault / "vault.json"
    old = meta.read_bytes()
    person(admin, "newbie", "technician")
    meta.write_bytes(old)
    with pytest.raises(IntegrityError, match=r"vault\.json ends at version"):
        _reopened(admin).vault  # noqa: B018


def test_an_older_decision_history_written_back(people, sphere_case):
    tess, rafael = people[TECH], people[REVIEWER]
    first = store_version(sphere_case, TECH)
    review.approve(rafael, sphere_case, first)
    history = sphere_case.vault.root / "cases" / sphere_case.pseudonym / "approvals.json"
    old = history.read_bytes()
    second = store_version(sphere_case, TECH, radius=11.0)
    review.approve(rafael, sphere_case, second)
    history.write_bytes(old)
    with pytest.raises(IntegrityError, match="ends at decision 1 but you saw decision 2"):
        _reopened(tess).case(sphere_case.pseudonym)
    history.unlink()
    with pytest.raises(IntegrityError, match=r"decision history of case .* is missing"):
        _reopened(tess).case(sphere_case.pseudonym)


def test_appending_to_a_tampered_log_is_refused(people):
    tess = people[TECH]
    log = audit.log_path(tess.paths)
    log.write_bytes(b"".join(log.read_bytes().splitlines(keepends=True)[:-1]))
    with pytest.raises(AuditError, match="does not hold record"):
        records.export_log(people[REVIEWER], "json")
    assert not records.verify_log(tess).ok


# ----- syslog -----------------------------------------------------------------------------------

RFC5424 = re.compile(
    r"<(?P<pri>\d{1,3})>1 (?P<time>\S+) (?P<host>\S+) (?P<app>\S+) (?P<proc>\S+) (?P<msgid>\S+) "
    r"\[(?P<sdid>[^ \]]+)(?P<params>(?: [a-z]+=\"(?:[^\"\\\]]|\\.)*\")*)\](?: (?P<msg>.*))?"
)


def _parse(datagram: bytes) -> dict:
    match = RFC5424.fullmatch(datagram.decode())
    assert match, datagram
    params = dict(re.findall(r'([a-z]+)="((?:[^"\\\]]|\\.)*)"', match["params"]))
    return match.groupdict() | {"params": params}


@pytest.fixture
def collector():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(5)
        yield sock


def test_each_audit_head_goes_to_syslog(people, collector):
    admin, tess = people["founder"], people[TECH]
    url = f"udp://127.0.0.1:{collector.getsockname()[1]}"
    settings.set_value(admin, "syslog", url)
    records.verify_log(tess)
    records.export_log(people[REVIEWER], "csv")
    log = audit.log_path(admin.paths).read_bytes().splitlines()
    received = [_parse(collector.recv(4096)) for _ in range(3)]
    for message, line in zip(received, log[-3:], strict=True):
        rec = json.loads(line)
        assert message["pri"] == "109" and message["app"] == "medprint"
        assert message["msgid"] == "audit-head" and message["sdid"] == "head@32473"
        datetime.fromisoformat(message["time"])
        assert message["params"] == {
            "seq": str(rec["seq"]),
            "hash": audit.line_hash(line),
            "vault": admin.vault.vault_id,
            "user": rec["user"],
            "action": rec["action"],
        }
    assert [m["params"]["action"] for m in received] == [
        "settings.changed",
        "audit.verify",
        "audit.export",
    ]
    assert not syslog.unsent(admin.paths)


def test_a_failed_send_does_not_block_and_is_reported(people):
    admin, tess = people["founder"], people[TECH]
    settings.set_value(admin, "syslog", "udp://255.255.255.255:514")  # no broadcast: refused
    records.verify_log(tess)
    verdict = records.verify_log(tess)
    assert verdict.ok
    [note] = verdict.notes
    assert "syslog: 2 audit head(s) not sent" in note and "PermissionError" in note


def test_only_an_administrator_sets_a_valid_syslog_target(people):
    with pytest.raises(MedPrintError, match="administrator role"):
        settings.set_value(people[TECH], "syslog", "udp://127.0.0.1:514")
    with pytest.raises(MedPrintError, match="not udp://HOST:PORT"):
        settings.set_value(people["founder"], "syslog", "tcp://127.0.0.1:514")
    settings.set_value(people["founder"], "syslog_local", "true")
    assert settings.show(people[TECH])["syslog_local"] is True


def test_settings_through_the_cli(data_dir, keystore_service):
    medprint("vault", "init", data_dir=data_dir)
    medprint("settings", "set", "syslog", "udp://127.0.0.1:5514", data_dir=data_dir)
    shown = json.loads(medprint("settings", "show", "--json", data_dir=data_dir).stdout)
    assert shown["syslog"] == "udp://127.0.0.1:5514" and shown["syslog_local"] is False
    bad = medprint("settings", "set", "syslog", "udp://nowhere", data_dir=data_dir, check=False)
    assert bad.returncode != 0 and "udp://HOST:PORT" in bad.stderr
    verdict = json.loads(medprint("audit", "verify", "--json", data_dir=data_dir).stdout)
    assert verdict["ok"] and verdict["notes"] == []
