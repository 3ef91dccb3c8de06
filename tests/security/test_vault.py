"""The case vault against a real Secret Service: round trips, tampering, crashes, keys."""

from __future__ import annotations

import hashlib
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
from app.errors import IntegrityError, KeystoreError, VaultError
from app.imaging.volume import Volume
from app.security.keystore import Keystore
from app.security.streams import CHUNK_SIZE, TAG
from app.security.vault import Vault
from app.settings import resolve_paths

IDENTITY = {"patient_name": "DOE^JANE", "patient_id": "PID-4711", "birth_date": "19700101"}


@pytest.fixture
def vault(data_dir, keystore_service) -> Vault:
    return Vault.init()[0]


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


def test_wrong_master_key_is_refused(vault, data_dir):
    entry = f"vault-master-{vault.vault_id}-{vault.generation}"
    Keystore().set(entry, os.urandom(32))
    with pytest.raises(VaultError, match="does not open this vault"):
        Vault.open()


def test_missing_master_key_names_the_fix(vault):
    Keystore().delete(f"vault-master-{vault.vault_id}-{vault.generation}")
    with pytest.raises(KeystoreError, match="recovery key"):
        Vault.open()


def test_rotate_key_rewraps_without_reencrypting(vault):
    pseudonym = vault.create_case(IDENTITY)
    vault.write_bytes(pseudonym, "data", b"payload")
    before = _case_file(vault, pseudonym, "data").read_bytes()
    old_entry = f"vault-master-{vault.vault_id}-1"
    vault.rotate_key()
    assert _case_file(vault, pseudonym, "data").read_bytes() == before
    assert Keystore().get(old_entry) is None
    reopened = Vault.open()
    assert reopened.generation == 2
    assert reopened.read_bytes(pseudonym, "data") == b"payload"
    assert reopened.case_entry(pseudonym).identity == IDENTITY


def test_recovery_key_restores_access_after_keystore_loss(data_dir, keystore_service):
    vault, recovery = Vault.init()
    pseudonym = vault.create_case(IDENTITY)
    vault.write_bytes(pseudonym, "data", b"payload")
    vault.rotate_key()
    assert vault.recovery_key() == recovery
    Keystore().delete(f"vault-master-{vault.vault_id}-{vault.generation}")
    with pytest.raises(KeystoreError):
        Vault.open()
    with pytest.raises(VaultError, match="does not match"):
        Vault.restore_with_recovery_key("MPRK-" + "AAAA-" * 7 + "AAAA")
    Vault.restore_with_recovery_key(recovery.lower())
    assert Vault.open().read_bytes(pseudonym, "data") == b"payload"


def test_delete_case_shreds_its_key_and_files(vault):
    pseudonym = vault.create_case(IDENTITY)
    vault.write_bytes(pseudonym, "data", b"payload")
    vault.delete_case(pseudonym)
    assert pseudonym not in [e.pseudonym for e in vault.list_cases()]
    assert pseudonym not in Vault.meta_path(vault.paths).read_text()
    assert not (vault.root / "cases" / pseudonym).exists()
    with pytest.raises(VaultError, match="not in this vault"):
        vault.read_bytes(pseudonym, "data")


def test_bad_names_are_refused(vault):
    pseudonym = vault.create_case({})
    for name in ("../escape", "/abs", "a//b", ""):
        with pytest.raises(VaultError, match="invalid vault file name"):
            vault.write_bytes(pseudonym, name, b"x")


_WRITER = """
import sys
from app.security.vault import Vault
vault = Vault.open()
with vault.write_file(sys.argv[1], "volume.mpvol") as out:
    print("writing", flush=True)
    while True:
        out.write(b"\\x07" * (1 << 20))
"""


def test_killed_writer_leaves_the_previous_version(vault, data_dir):
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
    assert Vault.open().read_bytes(pseudonym, "volume.mpvol") == b"good old version"
    assert resolve_paths().vault.exists()
