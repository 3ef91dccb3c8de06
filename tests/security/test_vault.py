"""The case vault against a real Secret Service: round trips, tampering, crashes, keys."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from app.case import Case
from app.errors import IntegrityError, VaultError
from app.imaging.volume import Volume
from app.security.identity import PersonalKeys
from app.security.keystore import Keystore
from app.security.streams import CHUNK_SIZE, TAG
from app.security.vault import Vault
from app.settings import resolve_paths

IDENTITY = {"patient_name": "DOE^JANE", "patient_id": "PID-4711", "birth_date": "19700101"}


@pytest.fixture
def keys(keystore_service) -> PersonalKeys:
    """The founder's personal keys, in this test's own keystore service."""
    return PersonalKeys.load_or_create()


@pytest.fixture
def vault(data_dir, keys) -> Vault:
    return Vault.init(resolve_paths(), keys)[0]


def _open(keys: PersonalKeys) -> Vault:
    return Vault.open(resolve_paths(), keys)


def _case_file(vault: Vault, pseudonym: str, name: str) -> Path:
    return vault.root / "cases" / pseudonym / name


def test_small_round_trip_and_nothing_in_the_clear(vault, data_dir):
    pseudonym = vault.create_case(IDENTITY)
    vault.write_bytes(pseudonym, "notes.txt", b"fracture of the left orbit")
    assert vault.read_bytes(pseudonym, "notes.txt") == b"fracture of the left orbit"
    assert vault.read_bytes(pseudonym, "notes.txt") == b"fracture of the left orbit"
    vault.write_bytes(pseudonym, "empty", b"")
    assert vault.read_bytes(pseudonym, "empty") == b""
    for path in Path(data_dir).rglob("*"):
        if path.is_file():
            raw = path.read_bytes()
            for secret in (b"DOE", b"PID-4711", b"19700101", b"orbit"):
                assert secret not in raw, f"{secret!r} in the clear in {path.name}"


def test_case_index_is_searchable_inside_the_app(vault):
    first = vault.create_case(IDENTITY)
    vault.create_case({"patient_name": "ROE^RICHARD"})
    assert [e.pseudonym for e in vault.search_cases("jane")] == [first]
    assert vault.case_entry(first).identity["patient_id"] == "PID-4711"
    assert len(first) == 9 and first.startswith("C-")


def test_volume_round_trip_through_the_case(vault):
    case = Case(vault, vault.create_case(IDENTITY))
    volume = Volume(
        np.arange(4 * 5 * 6, dtype=np.int16).reshape(4, 5, 6),
        origin=(1, 2, 3),
        spacing=(0.5, 0.6, 2.0),
        direction=np.diag([1.0, -1.0, -1.0]),
        modality="CT",
    )
    case.save_volume(volume)
    back = case.load_volume()
    assert back.same_grid(volume) and back.modality == "CT"
    np.testing.assert_array_equal(back.array, volume.array)


def _pattern(index: int) -> bytes:
    return hashlib.sha256(index.to_bytes(8, "little")).digest() * (CHUNK_SIZE // 32)


@pytest.mark.slow
def test_multi_gigabyte_stream_round_trip_with_bounded_memory(vault):
    """2.25 GiB (past 2**31) streamed in and out, compared block by block."""
    pseudonym = vault.create_case({})
    blocks = 2304
    with vault.write_file(pseudonym, "big.raw") as out:
        for i in range(blocks):
            out.write(_pattern(i))
    size = _case_file(vault, pseudonym, "big.raw").stat().st_size
    assert size > blocks * CHUNK_SIZE
    with vault.read_file(pseudonym, "big.raw") as src:
        for i in range(blocks):
            assert src.read(CHUNK_SIZE) == _pattern(i), f"block {i} differs"
        assert src.read(1) == b""


def _three_chunk_file(vault: Vault) -> tuple[str, Path]:
    pseudonym = vault.create_case({})
    vault.write_bytes(pseudonym, "data", os.urandom(3 * CHUNK_SIZE - 100))
    return pseudonym, _case_file(vault, pseudonym, "data")


def _header_len(path: Path) -> int:
    size = path.stat().st_size
    return size - (3 * CHUNK_SIZE - 100 + 3 * TAG)


def test_bit_flip_is_detected(vault):
    pseudonym, path = _three_chunk_file(vault)
    raw = bytearray(path.read_bytes())
    raw[_header_len(path) + CHUNK_SIZE + 500] ^= 0x01
    path.write_bytes(bytes(raw))
    with pytest.raises(IntegrityError, match="chunk 1"):
        vault.read_bytes(pseudonym, "data")


def test_truncated_chunk_is_detected(vault):
    pseudonym, path = _three_chunk_file(vault)
    raw = path.read_bytes()
    path.write_bytes(raw[: _header_len(path) + 2 * (CHUNK_SIZE + TAG)])  # last chunk cut off
    with pytest.raises(IntegrityError, match="chunk 1"):
        vault.read_bytes(pseudonym, "data")
    path.write_bytes(raw[:-10])  # tail of the last chunk cut off
    with pytest.raises(IntegrityError, match="chunk 2"):
        vault.read_bytes(pseudonym, "data")


def test_swapped_chunks_are_detected(vault):
    pseudonym, path = _three_chunk_file(vault)
    raw = path.read_bytes()
    h, c = _header_len(path), CHUNK_SIZE + TAG
    swapped = raw[:h] + raw[h + c : h + 2 * c] + raw[h : h + c] + raw[h + 2 * c :]
    path.write_bytes(swapped)
    with pytest.raises(IntegrityError, match="chunk 0"):
        vault.read_bytes(pseudonym, "data")


def test_file_moved_to_another_case_or_name_is_detected(vault):
    first = vault.create_case({})
    second = vault.create_case({})
    vault.write_bytes(first, "volume.mpvol", b"first patient")
    vault.write_bytes(second, "volume.mpvol", b"second patient")
    shutil.copy(_case_file(vault, first, "volume.mpvol"), _case_file(vault, second, "volume.mpvol"))
    with pytest.raises(IntegrityError, match="another case"):
        vault.read_bytes(second, "volume.mpvol")
    shutil.copy(_case_file(vault, first, "volume.mpvol"), _case_file(vault, first, "other"))
    with pytest.raises(IntegrityError, match="another case or name"):
        vault.read_bytes(first, "other")


def test_bad_names_are_refused(vault):
    pseudonym = vault.create_case({})
    for name in ("../escape", "/abs", "a//b", ""):
        with pytest.raises(VaultError, match="invalid vault file name"):
            vault.write_bytes(pseudonym, name, b"x")


_WRITER = """
import sys
from app.security.identity import PersonalKeys
from app.security.vault import Vault
from app.settings import resolve_paths
vault = Vault.open(resolve_paths(), PersonalKeys.load_or_create())
with vault.write_file(sys.argv[1], "volume.mpvol") as out:
    print("writing", flush=True)
    while True:
        out.write(b"\\x07" * (1 << 20))
"""


def test_killed_writer_leaves_the_previous_version(vault, data_dir, keys):
    pseudonym = vault.create_case({})
    vault.write_bytes(pseudonym, "volume.mpvol", b"good old version")
    env = {**os.environ, "MEDPRINT_DATA_DIR": str(data_dir)}
    proc = subprocess.Popen(
        [sys.executable, "-c", _WRITER, pseudonym], env=env, stdout=subprocess.PIPE
    )
    assert proc.stdout.readline().strip() == b"writing"
    time.sleep(0.5)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert _open(keys).read_bytes(pseudonym, "volume.mpvol") == b"good old version"
    assert resolve_paths().vault.exists()


# ----- members, keys, rotation, shredding ---------------------------------------------------


def _store_everything(vault: Vault) -> str:
    pseudonym = vault.create_case(IDENTITY)
    vault.write_bytes(pseudonym, "data", os.urandom(CHUNK_SIZE + 10))
    vault.put_record("uid-map", b'{"1.2.3": "2.25.9"}')
    return pseudonym


def test_no_master_key_in_any_keystore_and_members_open_with_their_own_key(vault, keys):
    assert Keystore().get(f"vault-master-{vault.vault_id}-1") is None
    assert list(vault.members()) == [keys.user] and vault.founder == keys.public.fingerprint
    with pytest.raises(VaultError, match="not a member"):
        _open(PersonalKeys.in_memory("zoe"))
    with pytest.raises(VaultError, match="not the one enrolled"):
        _open(PersonalKeys.in_memory(keys.user))
    zoe = PersonalKeys.in_memory("zoe")
    vault.add_member(zoe.public)
    assert _open(zoe).list_cases() == []


def test_every_change_raises_meta_version_and_an_older_copy_is_refused(vault, keys):
    first = vault.meta_version
    old = Vault.meta_path(vault.paths).read_bytes()
    pseudonym = vault.create_case({})
    assert vault.meta_version == first + 1
    Vault.meta_path(vault.paths).write_bytes(old)  # vault.json rolled back
    with pytest.raises(VaultError, match="older copy"):
        vault.read_bytes(pseudonym, "anything")


def test_two_openers_creating_cases_keep_both_keys(vault, keys):
    """Each change re-reads vault.json under the lock (two processes or accounts at once)."""
    other = _open(keys)
    first, second = vault.create_case({}), other.create_case({})
    vault.write_bytes(first, "a", b"1")
    other.write_bytes(second, "b", b"2")
    again = _open(keys)
    assert again.read_bytes(first, "a") == b"1" and again.read_bytes(second, "b") == b"2"
    assert {e.pseudonym for e in again.list_cases()} == {first, second}


def test_another_founder_in_vault_json_is_refused(vault, keys):
    meta = json.loads(Vault.meta_path(vault.paths).read_text())
    meta["founder"] = "ab" * 32
    Vault.meta_path(vault.paths).write_text(json.dumps(meta))
    with pytest.raises(VaultError, match="another founding key"):
        _open(keys)


def test_a_deleted_vault_json_is_named_and_no_vault_is_founded_over_its_data(vault, keys):
    """Deleting vault.json to found a new vault (and be its administrator) over the old one's
    data is refused: the folder still holds the index and records."""
    pseudonym = vault.create_case({})
    vault.write_bytes(pseudonym, "data", b"kept")
    Vault.meta_path(vault.paths).unlink()
    for attempt in (lambda: _open(keys), lambda: Vault.init(resolve_paths(), keys)):
        with pytest.raises(IntegrityError, match=r"vault\.json is missing") as refused:
            attempt()
        assert "\n" not in str(refused.value)
    assert not Vault.exists(resolve_paths())
    for folder in ("index", "records"):  # the case folder alone still tells
        shutil.rmtree(vault.root / folder, ignore_errors=True)
    with pytest.raises(IntegrityError, match=r"vault\.json is missing"):
        Vault.init(resolve_paths(), keys)
    assert (vault.root / "cases" / pseudonym).is_dir()


def test_rotation_locks_out_the_old_master_and_the_old_recovery_key(data_dir, keys):
    vault, old_recovery = Vault.init(resolve_paths(), keys)
    pseudonym = _store_everything(vault)
    old_master = vault._master
    old_meta = Vault.meta_path(vault.paths).read_bytes()
    old_file = _case_file(vault, pseudonym, "data").read_bytes()
    payload = vault.read_bytes(pseudonym, "data")
    recovery = vault.rotate_key()
    assert recovery != old_recovery and vault.generation == 2
    assert _case_file(vault, pseudonym, "data").read_bytes() != old_file  # re-encrypted
    assert not list(vault.root.glob(".staging-*"))
    reopened = _open(keys)
    assert reopened.read_bytes(pseudonym, "data") == payload
    assert reopened.case_entry(pseudonym).identity == IDENTITY
    assert reopened.get_record("uid-map") == b'{"1.2.3": "2.25.9"}'
    with pytest.raises(VaultError, match="does not match"):
        Vault.restore_with_recovery_key(old_recovery, resolve_paths(), keys)
    # an old vault.json (a backup) with the old master: its data keys open no current file
    backup = Vault(resolve_paths(), json.loads(old_meta), old_master)
    backup._stamp = backup._meta_stamp()
    with pytest.raises(IntegrityError):
        backup.read_bytes(pseudonym, "data")
    # ... and the old recovery key only opens that old copy, not the vault as it is now
    assert (
        json.loads(old_meta)["recovery"]
        != json.loads(Vault.meta_path(vault.paths).read_text())["recovery"]
    )


def test_recovery_key_seals_the_master_to_new_personal_keys(data_dir, keys):
    vault, recovery = Vault.init(resolve_paths(), keys)
    pseudonym = _store_everything(vault)
    fresh = PersonalKeys.in_memory(keys.user)  # the keystore was lost: new keys
    with pytest.raises(VaultError, match="does not match"):
        Vault.restore_with_recovery_key("MPRK-" + "AAAA-" * 7 + "AAAA", resolve_paths(), fresh)
    Vault.restore_with_recovery_key(recovery.lower(), resolve_paths(), fresh)
    assert _open(fresh).read_bytes(pseudonym, "data") == vault.read_bytes(pseudonym, "data")
    assert recovery not in Vault.meta_path(vault.paths).read_text()


def test_a_crash_during_rotation_loses_nothing(vault, keys, monkeypatch):
    pseudonym = _store_everything(vault)
    payload = vault.read_bytes(pseudonym, "data")

    def crash(self, meta):
        raise OSError("killed")

    with monkeypatch.context() as patch:  # killed before vault.json switched
        patch.setattr(Vault, "_commit", crash)
        with pytest.raises(OSError, match="killed"):
            vault.rotate_key()
    assert list(vault.root.glob(".staging-*"))
    assert _open(keys).read_bytes(pseudonym, "data") == payload
    assert not list(vault.root.glob(".staging-*"))
    opened = _open(keys)
    with monkeypatch.context() as patch:  # killed after the switch, before the files moved
        patch.setattr(Vault, "_finish_staging", lambda self: (_ for _ in ()).throw(OSError("x")))
        with pytest.raises(OSError):
            opened.rotate_key()
    assert list(vault.root.glob(".staging-*"))
    again = _open(keys)
    assert again.generation == 2 and again.read_bytes(pseudonym, "data") == payload


def test_delete_case_shreds_against_restored_copies(vault, keys, tmp_path):
    pseudonym = _store_everything(vault)
    kept = vault.create_case({"patient_name": "ROE^RICHARD"})
    backup = tmp_path / "backup"
    shutil.copytree(vault.root, backup)
    vault.delete_case(pseudonym)
    assert [e.pseudonym for e in vault.list_cases()] == [kept]
    assert pseudonym not in Vault.meta_path(vault.paths).read_text()
    assert not (vault.root / "cases" / pseudonym).exists()
    with pytest.raises(VaultError, match="not in this vault"):
        vault.read_bytes(pseudonym, "data")
    # the case folder, the index and the records put back: none of them opens
    for folder in (f"cases/{pseudonym}", "index", "records"):
        shutil.rmtree(vault.root / folder, ignore_errors=True)
        shutil.copytree(backup / folder, vault.root / folder)
    with pytest.raises(VaultError, match="not in this vault"):
        vault.read_bytes(pseudonym, "data")
    with pytest.raises(IntegrityError):
        vault.list_cases()
    with pytest.raises(IntegrityError):
        vault.get_record("uid-map")
    # and vault.json put back too: a rollback
    shutil.copy(backup / "vault.json", Vault.meta_path(vault.paths))
    with pytest.raises(VaultError, match="older copy"):
        vault.list_cases()
