"""The audit log: every tamper case is detected at the right record."""

from __future__ import annotations

import json

import pytest

from app.security import audit
from app.settings import resolve_paths


@pytest.fixture
def log(data_dir, keystore_service):
    for i in range(6):
        audit.record("test.action", case=f"C-TEST-{i:02d}", index=i)
    path = resolve_paths().audit / "audit.jsonl"
    assert audit.verify().ok
    return path


def _lines(path):
    return path.read_bytes().splitlines(keepends=True)


def test_records_are_chained_and_complete(log):
    records = audit.read_records()
    assert [r["seq"] for r in records] == [1, 2, 3, 4, 5, 6]
    assert records[2]["facts"] == {"index": 2} and records[2]["case"] == "C-TEST-02"
    assert all(r["user"] and r["time"].endswith("+00:00") for r in records)
    result = audit.verify()
    assert result.ok and result.records == 6 and "6 records" in result.message


def test_edited_record(log):
    lines = _lines(log)
    lines[3] = lines[3].replace(b'"index":3', b'"index":9')
    log.write_bytes(b"".join(lines))
    result = audit.verify()
    assert not result.ok and result.first_bad == 4 and "fails its MAC" in result.message


def test_deleted_record(log):
    lines = _lines(log)
    del lines[2]
    log.write_bytes(b"".join(lines))
    result = audit.verify()
    assert not result.ok and result.first_bad == 3 and "sequence 4" in result.message


def test_inserted_record(log):
    lines = _lines(log)
    lines.insert(2, lines[1])
    log.write_bytes(b"".join(lines))
    result = audit.verify()
    assert not result.ok and result.first_bad == 3


def test_reordered_records(log):
    lines = _lines(log)
    lines[1], lines[2] = lines[2], lines[1]
    log.write_bytes(b"".join(lines))
    result = audit.verify()
    assert not result.ok and result.first_bad == 2


def test_truncated_tail_is_caught_by_the_sealed_head(log):
    lines = _lines(log)
    log.write_bytes(b"".join(lines[:-2]))
    result = audit.verify()
    assert not result.ok and "sealed head says 6" in result.message and result.first_bad == 5


def test_partially_written_last_line(log):
    raw = log.read_bytes()
    log.write_bytes(raw[:-20])
    result = audit.verify()
    assert not result.ok and result.first_bad == 6 and "cut off" in result.message


def test_tampered_head_and_missing_head(log):
    head = resolve_paths().config / "audit-head.json"
    data = json.loads(head.read_text())
    data["seq"] = 4
    head.write_text(json.dumps(data))
    with pytest.raises(Exception, match="sealed audit head"):
        audit.verify()
    head.unlink()
    result = audit.verify()
    assert not result.ok and "missing" in result.message


def test_export_csv_and_json(log):
    records = audit.read_records()
    assert json.loads(audit.export(records, "json"))[0]["action"] == "test.action"
    csv_text = audit.export(records, "csv")
    assert csv_text.splitlines()[0].startswith("seq,time,user,action,case,facts,prev,mac")
    assert len(csv_text.splitlines()) == 7
