"""Chunked AEAD streams: the on-disk format of every file in the case vault.

Layout::

    header = b"MPVF" | format (u8) | chunk size (u32 LE) | file id (16 random bytes)
             | label length (u16 LE) | label (UTF-8 "<case>/<name>")
    chunk_i = AES-256-GCM(file key, nonce = i (u64 BE) | last flag (u32 BE), plaintext_i, ad = header)

The file key is HKDF-SHA256 of the case data key with the file id as salt and the label as info,
so every file has its own key and nonces never repeat. The whole header is the associated data
of every chunk, which binds each chunk to its file, its case and its name. The counter in the
nonce detects swapped or reordered chunks; the last-chunk flag detects truncation at a chunk
boundary; the expected label detects a file moved to another case or renamed.

Memory is bounded by one chunk (1 MiB by default) whatever the file size.
"""

from __future__ import annotations

import io
import os
import secrets
import struct
from typing import BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from app.errors import IntegrityError

MAGIC = b"MPVF"
FORMAT = 1
CHUNK_SIZE = 1 << 20
TAG = 16
_FIXED = struct.Struct("<4sBI16sH")


def _file_key(data_key: bytes, file_id: bytes, label: bytes) -> AESGCM:
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=file_id, info=b"medprint-file:" + label)
    return AESGCM(hkdf.derive(data_key))


def _nonce(index: int, last: bool) -> bytes:
    return struct.pack(">QI", index, 1 if last else 0)


class EncryptingWriter(io.RawIOBase):
    """Encrypts everything written to it into ``sink``; :meth:`close` writes the final chunk."""

    def __init__(self, sink: BinaryIO, data_key: bytes, label: str, chunk_size: int = CHUNK_SIZE):
        super().__init__()
        self._sink = sink
        self._chunk = chunk_size
        label_bytes = label.encode("utf-8")
        file_id = secrets.token_bytes(16)
        self._header = (
            _FIXED.pack(MAGIC, FORMAT, chunk_size, file_id, len(label_bytes)) + label_bytes
        )
        self._aead = _file_key(data_key, file_id, label_bytes)
        self._buf = bytearray()
        self._index = 0
        self._finished = False
        sink.write(self._header)

    def writable(self) -> bool:
        return True

    def _emit(self, plain: bytes | bytearray | memoryview, last: bool) -> None:
        self._sink.write(self._aead.encrypt(_nonce(self._index, last), plain, self._header))
        self._index += 1

    def write(self, data) -> int:  # type: ignore[override]
        view = memoryview(data).cast("B")
        size, pos = len(view), 0
        while pos < size:
            if len(self._buf) == self._chunk:  # full, and more data is coming: not the last one
                self._emit(self._buf, last=False)
                self._buf = bytearray()
            if not self._buf and size - pos > self._chunk:
                self._emit(view[pos : pos + self._chunk], last=False)
                pos += self._chunk
                continue
            take = min(self._chunk - len(self._buf), size - pos)
            self._buf += view[pos : pos + take]
            pos += take
        return size

    def finish(self) -> None:
        """Write the last chunk (possibly empty). Called by :meth:`close`."""
        if not self._finished:
            self._emit(self._buf, last=True)
            self._buf = bytearray()
            self._finished = True

    def close(self) -> None:
        if not self.closed:
            self.finish()
        super().close()


class DecryptingReader(io.RawIOBase):
    """Reads and authenticates a stream written by :class:`EncryptingWriter`.

    ``expected_label`` must equal the label in the header: a file copied to another case or
    name fails here. Any tampering raises :class:`IntegrityError` naming what failed.
    """

    def __init__(self, source: BinaryIO, data_key: bytes, expected_label: str, what: str = "file"):
        super().__init__()
        self._src = source
        self._what = what
        fixed = source.read(_FIXED.size)
        if len(fixed) != _FIXED.size:
            self._fail("is truncated before its header ends")
        magic, fmt, chunk, file_id, label_len = _FIXED.unpack(fixed)
        if magic != MAGIC or fmt != FORMAT:
            self._fail("is not a MedPrint vault file (bad magic or format)")
        label = source.read(label_len)
        if label != expected_label.encode("utf-8"):
            self._fail("belongs to another case or name (moved or swapped)")
        self._header = fixed + label
        self._chunk = chunk
        self._aead = _file_key(data_key, file_id, label)
        total = os.fstat(source.fileno()).st_size - len(self._header)
        self._chunks = max(1, -(-total // (chunk + TAG)))
        self._index = 0
        self._plain = b""
        self._offset = 0

    def _fail(self, why: str) -> None:
        msg = f"vault {self._what} {why}; restore it from a backup"
        raise IntegrityError(msg)

    def readable(self) -> bool:
        return True

    def _next_chunk(self) -> bool:
        if self._index >= self._chunks:
            return False
        last = self._index == self._chunks - 1
        blob = self._src.read(self._chunk + TAG)
        if len(blob) < TAG:
            self._fail(f"is truncated at chunk {self._index}")
        try:
            self._plain = self._aead.decrypt(_nonce(self._index, last), blob, self._header)
        except InvalidTag:
            self._fail(
                f"failed authentication at chunk {self._index} (tampered, truncated or reordered)"
            )
        self._offset = 0
        self._index += 1
        return True

    def readinto(self, buffer) -> int:  # type: ignore[override]
        view = memoryview(buffer).cast("B")
        filled = 0
        while filled < len(view):
            if self._offset >= len(self._plain) and not self._next_chunk():
                break
            take = min(len(self._plain) - self._offset, len(view) - filled)
            view[filled : filled + take] = self._plain[self._offset : self._offset + take]
            self._offset += take
            filled += take
        return filled

    def readall(self) -> bytes:
        parts = [self._plain[self._offset :]]
        self._offset = len(self._plain)
        while self._next_chunk():
            parts.append(self._plain)
            self._offset = len(self._plain)
        return b"".join(parts)
