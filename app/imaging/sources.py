"""Where DICOM files are: folders, zip archives and the files a DICOMDIR lists."""

from __future__ import annotations

import contextlib
import io
import os
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from app.progress import CancelToken, check_cancel

MAX_MEMBER_BYTES = 4 << 30  # zip members larger than this are not opened
MEMORY_PREFIX = "memory:"
# Zip archives held in memory (instances received from a PACS where the system has no
# anonymous memory files), by the name that stands for their path.
_MEMORY: dict[str, bytes] = {}


@contextlib.contextmanager
def memory_archive(data: bytes) -> Iterator[str]:
    """A name the scanner and loader read the in-memory zip ``data`` through, like a path,
    for as long as the block runs; nothing is written anywhere."""
    name = f"{MEMORY_PREFIX}{id(data):x}.zip"
    _MEMORY[name] = data
    try:
        yield name
    finally:
        _MEMORY.pop(name, None)


def _open_file(path: str) -> BinaryIO:
    data = _MEMORY.get(path)
    return open(path, "rb") if data is None else io.BytesIO(data)


def _zip(path: str) -> zipfile.ZipFile:
    data = _MEMORY.get(path)
    return zipfile.ZipFile(path if data is None else io.BytesIO(data))


@dataclass(frozen=True)
class SourceRef:
    """Where a DICOM file lives: a plain path, or a member of a zip archive."""

    path: str
    member: str | None = None

    @property
    def label(self) -> str:
        """``path`` or ``archive.zip!member``, for listings shown to the user."""
        return self.path if self.member is None else f"{self.path}!{self.member}"

    @contextlib.contextmanager
    def open(self) -> Iterator[BinaryIO]:
        """A seekable binary stream of the file's bytes."""
        if self.member is None:
            with _open_file(self.path) as handle:
                yield handle
            return
        with _zip(self.path) as archive, archive.open(self.member) as handle:
            yield handle  # type: ignore[misc]

    def size(self) -> int:
        if self.member is None:
            return os.path.getsize(self.path)
        with _zip(self.path) as archive:
            return archive.getinfo(self.member).file_size


@dataclass
class Rejected:
    """A file that is not part of any series, and why (one line)."""

    file: str
    reason: str


def list_sources(
    paths: list[Path], rejected: list[Rejected], cancel: CancelToken | None
) -> list[tuple[SourceRef, zipfile.ZipFile | None]]:
    """Every candidate file, sorted and de-duplicated (zip archives are expanded to their
    members when their header is read); paths that do not exist go to ``rejected``."""
    files: list[str] = []
    for root in paths:
        if root.is_dir():
            for folder, dirs, names in os.walk(root):
                check_cancel(cancel)
                dirs.sort()
                files.extend(os.path.join(folder, n) for n in sorted(names))
        elif root.exists() or str(root) in _MEMORY:
            files.append(str(root))
        else:
            rejected.append(Rejected(str(root), "does not exist"))
    out: list[tuple[SourceRef, zipfile.ZipFile | None]] = []
    seen: set = set()
    for name in files:
        try:
            stat = os.stat(name)
            identity: object = (stat.st_dev, stat.st_ino)
        except OSError:
            identity = name
        if identity not in seen:  # the same file reached twice (links, overlapping roots)
            seen.add(identity)
            out.append((SourceRef(name), None))
    return out


def zip_members(
    path: str, rejected: list[Rejected]
) -> list[tuple[SourceRef, zipfile.ZipFile | None]]:
    """The members of a zip archive worth reading; the others go to ``rejected``."""
    try:
        archive = _zip(path)
        infos = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        rejected.append(Rejected(path, f"unreadable zip archive ({type(exc).__name__})"))
        return []
    members = []
    for info in sorted(infos, key=lambda i: i.filename):
        ref = SourceRef(path, info.filename)
        if info.is_dir():
            continue
        if info.flag_bits & 0x1:
            rejected.append(Rejected(ref.label, "encrypted zip member; extract it first"))
        elif info.file_size > MAX_MEMBER_BYTES:
            rejected.append(Rejected(ref.label, "zip member larger than 4 GiB; extract it first"))
        elif info.filename.lower().endswith(".zip"):
            rejected.append(
                Rejected(ref.label, "zip inside a zip is not followed; extract it first")
            )
        else:
            members.append((ref, archive))
    return members


@contextlib.contextmanager
def open_source(source: SourceRef, archive: zipfile.ZipFile | None) -> Iterator[BinaryIO]:
    if archive is not None and source.member is not None:
        with archive.open(source.member) as handle:
            yield handle  # type: ignore[misc]
    else:
        with source.open() as handle:
            yield handle


def follow_dicomdir(
    source: SourceRef,
    archive: zipfile.ZipFile | None,
    ds,
    sources: list[tuple[SourceRef, zipfile.ZipFile | None]],
) -> int:
    """Add the files a DICOMDIR references to ``sources`` (when not already listed); the
    number of referenced files that are missing."""
    known = {
        (os.path.realpath(s.path), s.member) if s.member else (os.path.realpath(s.path), None)
        for s, _ in sources
    }
    base = os.path.dirname(source.member if source.member else source.path)
    missing = 0
    for record in ds.get("DirectoryRecordSequence", []):
        parts = record.get("ReferencedFileID")
        if not parts:
            continue
        parts = [parts] if isinstance(parts, str) else list(parts)
        ref = _resolve_reference(source, archive, base, parts)
        if ref is None:
            missing += 1
            continue
        key = (os.path.realpath(ref.path), ref.member)
        if key not in known:
            known.add(key)
            sources.append((ref, archive if ref.member else None))
    return missing


def _resolve_reference(
    source: SourceRef, archive: zipfile.ZipFile | None, base: str, parts: list[str]
) -> SourceRef | None:
    if any(not p or p in (".", "..") or "/" in p or "\\" in p or ":" in p for p in parts):
        return None  # a DICOMDIR may only point below its own folder
    if source.member is not None and archive is not None:
        wanted = "/".join([base, *parts]).strip("/").lower() if base else "/".join(parts).lower()
        for name in archive.namelist():
            if name.lower() == wanted:
                return SourceRef(source.path, name)
        return None
    path = os.path.join(base, *parts)
    if os.path.isfile(path):
        return SourceRef(path)
    # CDs are often written upper-case while the copy on disk is lower-case (or the reverse).
    folder = base
    for part in parts:
        try:
            names = {n.lower(): n for n in os.listdir(folder)}
        except OSError:
            return None
        actual = names.get(part.lower())
        if actual is None:
            return None
        folder = os.path.join(folder, actual)
    return SourceRef(folder) if os.path.isfile(folder) else None


class SourceOpener:
    """Opens many sources, keeping each zip archive open until the block ends.

    ``SourceRef.open()`` re-reads a zip's central directory on every call; copying the
    originals of a 5000-member archive should use this instead::

        with SourceOpener() as opener:
            for source in series.sources:
                with opener.open(source) as stream:
                    shutil.copyfileobj(stream, out)
    """

    def __init__(self) -> None:
        self._archives: dict[str, zipfile.ZipFile] = {}

    def __enter__(self) -> SourceOpener:
        return self

    def __exit__(self, *exc: object) -> None:
        for archive in self._archives.values():
            archive.close()
        self._archives.clear()

    @contextlib.contextmanager
    def open(self, source: SourceRef) -> Iterator[BinaryIO]:
        if source.member is None:
            with _open_file(source.path) as handle:
                yield handle
            return
        archive = self._archives.get(source.path)
        if archive is None:
            archive = self._archives[source.path] = _zip(source.path)
        with archive.open(source.member) as handle:
            yield handle  # type: ignore[misc]
