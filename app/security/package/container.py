"""One read-only view over a package folder or zip: its entries (files, folders, links, special
entries) and a way to open them, without following links or extracting anything."""

from __future__ import annotations

import hashlib
import os
import stat
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from app.security.package.format import CHUNK

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
