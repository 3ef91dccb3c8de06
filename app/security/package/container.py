"""One read-only view over a package folder or zip: its entries (files, folders, links, special
entries) and a way to open them, without following links or extracting anything; and the zip
inside an encrypted ``.mpkg`` as a seekable file decrypted chunk by chunk as it is read."""

from __future__ import annotations

import hashlib
import io
import os
import stat
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from app.errors import PackageError
from app.security.package.format import CHUNK, ChunkCipher, read_encryption_header
from app.security.signing import RecipientKey

# What reading one entry of a damaged or odd archive can raise (CRC, inflate, encrypted entry,
# unsupported compression method, truncated data).
READ_ERRORS = (
    zipfile.BadZipFile,
    zlib.error,
    EOFError,
    OSError,
    RuntimeError,
    NotImplementedError,
    ValueError,
)


@dataclass(frozen=True)
class Entry:
    name: str
    kind: str  # "file", "dir", "symlink", "special"
    size: int = 0
    ref: object = None


class Container:
    kind = "?"

    def entries(self) -> list[Entry]:
        raise NotImplementedError

    def open(self, entry: Entry) -> BinaryIO:
        raise NotImplementedError

    def read_small(self, entry: Entry, limit: int) -> bytes | None:
        """The whole entry, or None when it is larger than ``limit``."""
        if entry.size > limit:
            return None
        with self.open(entry) as handle:
            data = handle.read(limit + 1)
        return None if len(data) > limit else data


class Folder(Container):
    kind = "folder"

    def __init__(self, root: Path) -> None:
        self.root = root

    def entries(self) -> list[Entry]:
        return list(walk_folder(self.root))

    def open(self, entry: Entry) -> BinaryIO:
        flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)
        fd = os.open(self.root.joinpath(*entry.name.split("/")), flags)
        return os.fdopen(fd, "rb")


def walk_folder(root: Path) -> Iterator[Entry]:
    """Every entry under ``root`` (links not followed), depth-first in name order; iterative,
    so a maliciously deep tree cannot exhaust the stack."""
    pending: list[tuple[Path, str]] = [(root, "")]
    while pending:
        folder, prefix = pending.pop()
        with os.scandir(folder) as it:
            items = sorted(it, key=lambda e: e.name)
        below: list[tuple[Path, str]] = []
        for item in items:
            name = f"{prefix}{item.name}"
            if item.is_symlink():
                yield Entry(name, "symlink")
            elif item.is_dir(follow_symlinks=False):
                yield Entry(f"{name}/", "dir")
                below.append((Path(item.path), f"{name}/"))
            elif item.is_file(follow_symlinks=False):
                yield Entry(name, "file", item.stat(follow_symlinks=False).st_size)
            else:
                yield Entry(name, "special")
        pending.extend(reversed(below))


class Zip(Container):
    kind = "zip"

    def __init__(self, zf: zipfile.ZipFile) -> None:
        self.zf = zf

    def entries(self) -> list[Entry]:
        found = []
        for info in self.zf.infolist():
            # Unix-made archives keep the file type in the high bits of external_attr.
            mode = info.external_attr >> 16 if info.create_system == 3 else 0
            if stat.S_ISLNK(mode):
                kind = "symlink"
            elif info.is_dir() or stat.S_ISDIR(mode):
                kind = "dir"
            elif stat.S_IFMT(mode) and not stat.S_ISREG(mode):
                kind = "special"
            else:
                kind = "file"
            found.append(Entry(info.filename, kind, info.file_size, info))
        return found

    def open(self, entry: Entry) -> BinaryIO:
        return self.zf.open(entry.ref)  # type: ignore[arg-type]


def hash_entry(container: Container, entry: Entry, limit: int) -> tuple[int, str]:
    """(bytes read, SHA-256); never reads more than ``limit + 1`` bytes (zip bombs)."""
    digest = hashlib.sha256()
    size = 0
    with container.open(entry) as handle:
        while size <= limit and (block := handle.read(min(CHUNK, limit + 1 - size))):
            digest.update(block)
            size += len(block)
    return size, digest.hexdigest()


class StreamTampered(PackageError):
    """A chunk of an encrypted package failed its authentication while it was read."""


class DecryptedFile(io.RawIOBase):
    """The zip inside an ``.mpkg``, read through ``handle``: a seekable, read-only file whose
    chunks are decrypted and authenticated one at a time as they are read.

    Memory stays at one chunk (the header's chunk size, at most 64 MiB) whatever the package's
    size. Every byte returned has passed its chunk's authentication; the last chunk is opened
    at once, so a package cut short fails here and not half-way through.
    """

    def __init__(self, handle: BinaryIO, recipient_key: RecipientKey) -> None:
        super().__init__()
        handle.seek(0)
        header, prelude = read_encryption_header(handle)
        self._cipher = ChunkCipher(header, prelude, recipient_key)
        self._handle = handle
        self._start = len(prelude)
        body = handle.seek(0, os.SEEK_END) - self._start
        sealed = self._cipher.sealed_size
        self._count = max(1, -(-body // sealed))
        last = body - (self._count - 1) * sealed
        self._size = (self._count - 1) * self._cipher.chunk_size + max(last - 16, 0)
        self._pos = 0
        self._cached: tuple[int, bytes] = (-1, b"")
        self._plain(self._count - 1)

    @property
    def size(self) -> int:
        return self._size

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        base = {os.SEEK_SET: 0, os.SEEK_CUR: self._pos, os.SEEK_END: self._size}[whence]
        if base + offset < 0:
            msg = "negative seek position"
            raise ValueError(msg)
        self._pos = base + offset
        return self._pos

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        if self._pos >= self._size:
            return 0
        index, offset = divmod(self._pos, self._cipher.chunk_size)
        plain = self._plain(index)
        n = min(len(buffer), len(plain) - offset)
        buffer[:n] = plain[offset : offset + n]
        self._pos += n
        return n

    def _plain(self, index: int) -> bytes:
        if self._cached[0] == index:
            return self._cached[1]
        sealed = self._cipher.sealed_size
        self._handle.seek(self._start + index * sealed)
        block = self._handle.read(sealed)
        try:
            plain = self._cipher.open(index, block, last=index == self._count - 1)
        except PackageError as exc:
            raise StreamTampered(str(exc)) from None
        self._cached = (index, plain)
        return plain
