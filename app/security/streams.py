"""Chunked AEAD streams: the on-disk format of every file in the case vault.

Layout::

    header = b"MPVF" | format (u8) | chunk size (u32 LE) | file id (16 random bytes)
             | label length (u16 LE) | label (UTF-8 "<case>/<name>")
    chunk_i = AES-256-GCM(file key, nonce = i (u64 BE) | last (u32 BE), plaintext_i, ad = header)

The file key is HKDF-SHA256 of the case data key with the file id as salt and the label as info,
so every file has its own key and nonces never repeat. The whole header is the associated data
of every chunk, which binds each chunk to its file, its case and its name. The counter in the
nonce detects swapped or reordered chunks; the last-chunk flag detects truncation at a chunk
boundary (the last chunk, 0 to chunk-1 bytes, is always present); the expected label detects a file moved to another case or renamed.

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
    """Encrypts everything written to it into ``sink``; :meth:`finish` writes the final chunk.

    Full chunks go out as soon as they are complete; the final chunk (0 to chunk-1 bytes,
    flagged last) is written by :meth:`finish`. Buffers are allocated once and reused.
    """

    def __init__(self, sink: BinaryIO, data_key: bytes, label: str, chunk_size: int = CHUNK_SIZE):
        super().__init__()
        self._sink = sink
        self._chunk = chunk_size
        label_bytes = label.encode("utf-8")
        file_id = secrets.token_bytes(16)
        fixed = _FIXED.pack(MAGIC, FORMAT, chunk_size, file_id, len(label_bytes))
        self._header = fixed + label_bytes
        self._aead = _file_key(data_key, file_id, label_bytes)
        self._buf = bytearray(chunk_size)
        self._fill = 0
        self._out = bytearray(chunk_size + TAG)
        self._index = 0
        self._finished = False
        sink.write(self._header)

    def writable(self) -> bool:
        return True

    def _emit(self, plain, last: bool) -> None:
        out = memoryview(self._out)[: len(plain) + TAG]
        self._aead.encrypt_into(_nonce(self._index, last), plain, self._header, out)
        self._sink.write(out)
        self._index += 1

    def write(self, data) -> int:  # type: ignore[override]
        view = memoryview(data).cast("B")
        size, pos = len(view), 0
        if self._fill:
            pos = min(self._chunk - self._fill, size)
            self._buf[self._fill : self._fill + pos] = view[:pos]
            self._fill += pos
            if self._fill < self._chunk:
                return size
            self._emit(self._buf, last=False)
            self._fill = 0
        while size - pos >= self._chunk:
            self._emit(view[pos : pos + self._chunk], last=False)
            pos += self._chunk
        rest = size - pos
        self._buf[:rest] = view[pos:]
        self._fill = rest
        return size

    def finish(self) -> None:
        """Write the last chunk (possibly empty). Called by :meth:`close`."""
        if not self._finished:
            self._emit(memoryview(self._buf)[: self._fill], last=True)
            self._fill = 0
            self._finished = True

    def close(self) -> None:
        if not self.closed:
            self.finish()
        super().close()


class DecryptingReader(io.RawIOBase):
    """Reads and authenticates a stream written by :class:`EncryptingWriter`.

    ``expected_label`` must equal the label in the header: a file copied to another case or
    name fails here. Any tampering raises :class:`IntegrityError` naming what failed. Large
    reads are decrypted straight into the caller's buffer.
    """

    def __init__(self, source: BinaryIO, data_key: bytes, expected_label: str, what: str = "file"):
        super().__init__()
        self._src = source
        self._what = what
        fixed = source.read(_FIXED.size)
        if len(fixed) != _FIXED.size:
            self._fail("is truncated before its header ends")
        magic, fmt, chunk, file_id, label_len = _FIXED.unpack(fixed)
        if magic != MAGIC or fmt != FORMAT or not 0 < chunk <= 64 * CHUNK_SIZE:
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
        self._sealed = bytearray(chunk + TAG)
        self._plain = bytearray(chunk)
        self._plain_len = 0
        self._offset = 0

    def _fail(self, why: str) -> None:
        msg = f"vault {self._what} {why}; restore it from a backup"
        raise IntegrityError(msg)

    def readable(self) -> bool:
        return True

    def _open_chunk(self, target: memoryview | None = None) -> int:
        """Decrypt the next chunk into ``target`` (if it fits) or the internal buffer.

        Returns the plaintext length, or -1 at the end of the stream.
        """
        if self._index >= self._chunks:
            return -1
        last = self._index == self._chunks - 1
        got = self._src.readinto(self._sealed)
        if got < TAG or (not last and got != len(self._sealed)):
            self._fail(f"is truncated at chunk {self._index}")
        size = got - TAG
        dest = target if target is not None and len(target) >= size else None
        out = dest[:size] if dest is not None else memoryview(self._plain)[:size]
        try:
            sealed = memoryview(self._sealed)[:got]
            self._aead.decrypt_into(_nonce(self._index, last), sealed, self._header, out)
        except InvalidTag:
            self._fail(
                f"failed authentication at chunk {self._index} (tampered, truncated or reordered)"
            )
        self._index += 1
        if dest is None:
            self._plain_len, self._offset = size, 0
        return size if dest is not None else 0

    def readinto(self, buffer) -> int:  # type: ignore[override]
        view = memoryview(buffer).cast("B")
        filled = 0
        while filled < len(view):
            if self._offset < self._plain_len:
                take = min(self._plain_len - self._offset, len(view) - filled)
                view[filled : filled + take] = self._plain[self._offset : self._offset + take]
                self._offset += take
                filled += take
                continue
            direct = self._open_chunk(view[filled:] if len(view) - filled >= self._chunk else None)
            if direct < 0:
                break
            filled += direct
        return filled

    def readall(self) -> bytes:
        parts = []
        chunk = bytearray(self._chunk)
        while got := self.readinto(chunk):
            parts.append(bytes(chunk[:got]))
        return b"".join(parts)
