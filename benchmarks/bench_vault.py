"""Vault streaming throughput and memory vs raw AES-256-GCM from ``cryptography``.

Ours: write 1 GiB into a vault file (chunked AEAD, atomic rename, fsync) and read it back with
authentication. Anchor: plain ``AESGCM.encrypt``/``decrypt`` over the same 1 MiB chunks with the
same file I/O (write + fsync, read) and nothing else. Goal: >= 0.7x the anchor's throughput, i.e. time ratio <= 1.43.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import tempfile
import time

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from benchmarks.common import Row, peak_rss_mib_of

MIB = 1 << 20

_STREAM = """
import os, sys
from app.security.vault import Vault
vault = Vault.open()
case = vault.create_case({})
block = os.urandom(1 << 20)
_baseline()
with vault.write_file(case, "big") as out:
    for _ in range(int(sys.argv[1])):
        out.write(block)
with vault.read_file(case, "big") as src:
    while src.read(1 << 20):
        pass
"""


def _raw(total_mib: int, folder: str) -> tuple[float, float]:
    """The anchor: plain AESGCM over 1 MiB chunks, written to a file and fsynced, read back."""
    aead, block = AESGCM(secrets.token_bytes(32)), os.urandom(MIB)
    path = os.path.join(folder, "raw.bin")
    start = time.perf_counter()
    with open(path, "wb") as out:
        for i in range(total_mib):
            out.write(aead.encrypt(i.to_bytes(12, "big"), block, b"ad"))
        out.flush()
        os.fsync(out.fileno())
    encrypt = time.perf_counter() - start
    start = time.perf_counter()
    with open(path, "rb") as src:
        for i in range(total_mib):
            aead.decrypt(i.to_bytes(12, "big"), src.read(MIB + 16), b"ad")
    decrypt = time.perf_counter() - start
    os.unlink(path)
    return encrypt, decrypt


def _ours(total_mib: int) -> tuple[float, float]:
    from app.security.vault import Vault

    vault = Vault.open()
    case = vault.create_case({})
    block = os.urandom(MIB)
    start = time.perf_counter()
    with vault.write_file(case, "big") as out:
        for _ in range(total_mib):
            out.write(block)
    write = time.perf_counter() - start
    start = time.perf_counter()
    with vault.read_file(case, "big") as src:
        while src.read(MIB):
            pass
    read = time.perf_counter() - start
    vault.delete_case(case)
    return write, read


def _with_vault(fn):
    with tempfile.TemporaryDirectory(prefix="medprint-bench-") as tmp:
        os.environ["MEDPRINT_DATA_DIR"] = tmp
        os.environ.setdefault("MEDPRINT_KEYSTORE_SERVICE", f"medprint-bench-{os.getpid()}")
        from app.security.vault import Vault

        Vault.init()
        return fn(tmp)


def run(quick: bool = False) -> list[Row]:
    total = 128 if quick else 1024

    def measure(tmp: str) -> list[Row]:
        raw_enc, raw_dec = min(_raw(total, tmp) for _ in range(2))
        write, read = min(_ours(total) for _ in range(2))
        base, peak = peak_rss_mib_of(
            _STREAM.replace("sys.argv[1]", str(total)), {"MEDPRINT_DATA_DIR": tmp}
        )
        gib = f"{total} MiB"
        return [
            Row(
                f"vault write {gib} (fsync'd file)",
                write,
                "AESGCM.encrypt + write + fsync",
                raw_enc,
                goal="<= 1.43",
            ),
            Row(
                f"vault read {gib} (authenticated)",
                read,
                "read + AESGCM.decrypt",
                raw_dec,
                goal="<= 1.43",
            ),
            Row(
                "vault stream peak memory above baseline",
                peak - base,
                "64 MiB budget",
                64.0,
                unit="M",
                goal="<= 1.0",
            ),
        ]

    try:
        return _with_vault(measure)
    except subprocess.CalledProcessError as exc:
        raise RuntimeError(exc.stderr) from None
