"""The audit log: signed by each person's own key; every tamper case is caught at the right
record; an interrupted append is repaired once; an old MAC-sealed log is archived, not trusted."""

from __future__ import annotations

import json

import pytest

from app.errors import AuditError
from app.security import audit
from app.security.identity import PersonalKeys
from app.settings import resolve_paths


@pytest.fixture
def tess() -> PersonalKeys:
    return PersonalKeys.in_memory("tess")


@pytest.fixture
def rafael() -> PersonalKeys:
    return PersonalKeys.in_memory("rafael")


@pytest.fixture
def known(tess, rafael) -> dict:
    return {k.public.fingerprint: k.public for k in (tess, rafael)}


@pytest.fixture
def paths(data_dir):
    return resolve_paths(data_dir)


@pytest.fixture
def log(paths, tess, rafael, known):
    for i in range(6):
        keys = (tess, rafael)[i % 2]
        audit.record("test.action", f"C-TEST-{i:02d}", user=keys.user, paths=paths, keys=keys, n=i)
    assert audit.verify(paths, known).ok
    return audit.log_path(paths)


def _lines(path):
    return path.read_bytes().splitlines(keepends=True)


def _verify(paths, known):
    result = audit.verify(paths, known)
    assert not result.ok
    return result


def test_records_are_chained_signed_and_complete(paths, log, tess, known):
    records = audit.read_records(paths)
    assert [r["seq"] for r in records] == [1, 2, 3, 4, 5, 6]
    assert records[2]["facts"] == {"n": 2} and records[2]["case"] == "C-TEST-02"
    assert records[2]["user"] == "tess" and records[2]["signer"] == tess.public.fingerprint
    assert audit.read_case_records(paths, "C-TEST-02") == [records[2]]
    assert all(r["time"].endswith("+00:00") and r["signature"] for r in records)
    assert "mac" not in records[0]
    result = audit.verify(paths, known)
    assert result.ok and result.records == 6 and "6 records" in result.message


def test_edited_record_fails_its_signature(paths, log, known):
    lines = _lines(log)
    lines[3] = lines[3].replace(b'"n":3', b'"n":9')
    log.write_bytes(b"".join(lines))
    result = _verify(paths, known)
    assert result.first_bad == 4 and "fails its signature" in result.message


def test_record_rewritten_by_another_enrolled_user(paths, log, tess, known):
    """tess rewrites rafael's record 4 and signs it with her own key: no shared key lets her."""
    lines = _lines(log)
    rec = json.loads(lines[3])
    assert rec["user"] == "rafael"
    rec["facts"] = {"n": 99}
    for signer in (rec["signer"], tess.public.fingerprint):
        rec["signer"] = signer
        body = {k: rec[k] for k in audit.FIELDS if k != "signature"}
        signature = tess.sign(b"medprint-audit-record-1\n" + audit.canonical(body))
        rec["signature"] = audit._b64(signature)
        lines[3] = audit.canonical(rec) + b"\n"
        log.write_bytes(b"".join(lines))
        result = _verify(paths, known)
        assert result.first_bad == 4
    assert "names user 'rafael' but is signed by 'tess'" in result.message


def test_record_by_an_unknown_key(paths, log, tess):
    result = _verify(paths, {tess.public.fingerprint: tess.public})
    assert result.first_bad == 2 and "unknown key" in result.message


def test_deleted_inserted_and_reordered_records(paths, log, known):
    original = _lines(log)
    for lines, bad in (
        (original[:2] + original[3:], 3),
        (original[:2] + original[1:], 3),
        ([original[0], original[2], original[1], *original[3:]], 2),
    ):
        log.write_bytes(b"".join(lines))
        assert _verify(paths, known).first_bad == bad


def test_truncated_tail_is_caught_by_the_signed_head(paths, log, tess, known):
    log.write_bytes(b"".join(_lines(log)[:-2]))
    result = _verify(paths, known)
    assert "head says 6" in result.message and result.first_bad == 5
    with pytest.raises(AuditError, match="does not hold record 6"):
        audit.record("more", user="tess", paths=paths, keys=tess)


def test_tampered_and_missing_head(paths, log, tess, known):
    head = audit.head_path(paths)
    data = json.loads(head.read_text())
    data["seq"] = 4
    head.write_text(json.dumps(data))
    assert "head fails its signature" in _verify(paths, known).message
    head.unlink()
    assert "head is missing" in _verify(paths, known).message
    with pytest.raises(AuditError, match="head is missing"):
        audit.record("more", user="tess", paths=paths, keys=tess)


def test_deleted_log_with_its_head_left(paths, log, known):
    log.unlink()
    result = _verify(paths, known)
    assert "audit log is missing (deleted)" in result.message


def test_crash_mid_append_is_repaired_once(paths, log, tess, known):
    """A partial last line (power cut during the append) is cut off by the next start."""
    whole = log.read_bytes()
    log.write_bytes(whole + b'{"seq":7,"time":"2030-01-01T00:00:0')
    result = _verify(paths, known)
    assert "cut off" in result.message and result.first_bad == 7
    head = audit.repair(paths, "tess", tess)
    assert head.seq == 7 and audit.repair(paths, "tess", tess) == head
    repaired = audit.read_records(paths)[-1]
    assert repaired["action"] == "audit.repaired" and repaired["facts"]["cut_bytes"] > 0
    assert repaired["facts"]["head_was"] == repaired["facts"]["head_now"] == 6
    assert audit.verify(paths, known).ok
    audit.record("after", user="tess", paths=paths, keys=tess)
    actions = [r["action"] for r in audit.read_records(paths)]
    assert actions.count("audit.repaired") == 1 and audit.verify(paths, known).ok


def test_crash_between_append_and_head_write(paths, log, tess, known):
    """The record reached the disk but the head did not: the head moves to it."""
    old_head = audit.head_path(paths).read_bytes()
    audit.record("landed", user="tess", paths=paths, keys=tess)
    audit.head_path(paths).write_bytes(old_head)
    assert "head says 6" in _verify(paths, known).message
    head = audit.record("next", user="tess", paths=paths, keys=tess)
    records = audit.read_records(paths)
    assert [r["action"] for r in records[-3:]] == ["landed", "audit.repaired", "next"]
    assert records[-2]["facts"] == {"head_was": 6, "head_now": 7, "cut_bytes": 0}
    assert head.seq == 9 and audit.verify(paths, known).ok


def test_appended_forgery_after_the_head_is_not_repaired(paths, log, tess, known):
    """A line after the head that does not chain is tampering, not a crash: refused."""
    lines = _lines(log)
    log.write_bytes(b"".join(lines) + lines[2])
    with pytest.raises(AuditError, match="do not follow it"):
        audit.record("more", user="tess", paths=paths, keys=tess)


def test_a_forged_record_after_the_head_is_not_repaired_into_the_log(paths, log, tess, known):
    """A record that chains to the head but is not signed by the person it names looks like
    an interrupted append; the repair checks its signature and refuses it."""
    original, head = log.read_bytes(), audit.head_path(paths).read_bytes()
    audit.record("landed", user="rafael", paths=paths, keys=PersonalKeys.in_memory("rafael"))
    audit.head_path(paths).write_bytes(head)  # as if the head write was lost
    forged = log.read_bytes()
    with pytest.raises(AuditError, match="record 7 is signed by an unknown key"):
        audit.repair(paths, "tess", tess, lambda: known)
    assert log.read_bytes() == forged and audit.head_path(paths).read_bytes() == head
    log.write_bytes(original)  # a real crash between append and head write is still repaired
    audit.record("landed", user="tess", paths=paths, keys=tess)
    audit.head_path(paths).write_bytes(head)
    assert audit.repair(paths, "tess", tess, lambda: known).seq == 8
    assert [r["action"] for r in audit.read_records(paths)][-2:] == ["landed", "audit.repaired"]
    assert audit.verify(paths, known).ok


def test_old_mac_sealed_log_is_archived_not_trusted(paths, tess, known):
    """A log of the old format (a shared MAC key) is set aside with its hash in a signed
    ``audit.migrated`` record; changing the archive afterwards is caught."""
    paths.audit.mkdir(parents=True)
    paths.config.mkdir(parents=True)
    old = b'{"action":"vault.init","mac":"ab","seq":1}\n{"action":"x","mac":"cd","seq":2}\n'
    audit.log_path(paths).write_bytes(old)
    audit.head_path(paths).write_text('{"hash":"ef","mac":"01","seq":2}')
    audit.record("first", user="tess", paths=paths, keys=tess)
    migrated, first = audit.read_records(paths)
    assert migrated["action"] == "audit.migrated" and migrated["facts"]["records"] == 2
    assert first["action"] == "first" and audit.verify(paths, known).ok
    archive = paths.audit / migrated["facts"]["file"]
    assert archive.read_bytes() == old
    archive.write_bytes(old[:-1])
    assert "old-format log" in _verify(paths, known).message


def test_export_csv_and_json(paths, log):
    records = audit.read_records(paths)
    assert json.loads(audit.export(records, "json"))[0]["action"] == "test.action"
    csv_text = audit.export(records, "csv")
    assert csv_text.splitlines()[0] == "seq,time,user,action,case,facts,prev,signer,signature"
    assert len(csv_text.splitlines()) == 7
