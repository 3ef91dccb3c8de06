"""Instances received from a PACS, held in memory only: never on disk in the clear.

The instances are members of an uncompressed zip kept in an anonymous memory file
(``memfd``, Linux) or, on systems without one (macOS, Windows), in process memory; the
scanner and loader read them through their ordinary zip-member path (``/proc/self/fd/N``, or
the name :func:`app.imaging.sources.memory_archive` gives), and the import stores them into
the vault's encrypted streams. Closing frees the memory; no temporary file is ever made.
"""

from __future__ import annotations

import contextlib
import io
import os
import threading
import zipfile
from collections.abc import Iterator
from typing import BinaryIO

from app.imaging.pacs.nodes import PacsError
from app.imaging.sources import memory_archive


def _anonymous_file() -> BinaryIO:
    """A memory file with no name on any file system."""
    if hasattr(os, "memfd_create"):
        fd = os.memfd_create("medprint-received", os.MFD_CLOEXEC)
        return os.fdopen(fd, "w+b", closefd=True)
    return io.BytesIO()


class ReceivedInstances:
    """A growing, in-memory set of DICOM instances (thread-safe :meth:`add`)."""

    def __init__(self) -> None:
        self._file = _anonymous_file()
        self._zip: zipfile.ZipFile | None = zipfile.ZipFile(self._file, "w", zipfile.ZIP_STORED)
        self._lock = threading.Lock()
        self._names = contextlib.ExitStack()
        self._path = ""
        self.count = 0
        self.bytes = 0

    def add(self, data: bytes) -> None:
        """Keep one encoded instance (a DICOM file's bytes, with its file meta)."""
        with self._lock:
            if self._zip is None:
                msg = "no more instances are taken once the retrieve is finished"
                raise PacsError(msg)
            self._zip.writestr(f"{self.count:06d}.dcm", data)
            self.count += 1
            self.bytes += len(data)

    def finish(self) -> str:
        """Stop taking instances; the path the scanner reads them from (a zip)."""
        with self._lock:
            if self._zip is not None:
                self._zip.close()
                self._zip = None
                self._file.flush()
                self._path = self._name()
        return self._path

    def _name(self) -> str:
        if isinstance(self._file, io.BytesIO):
            return self._names.enter_context(memory_archive(self._file.getvalue()))
        return f"/proc/self/fd/{self._file.fileno()}"

    def instances(self) -> Iterator[bytes]:
        """Each received instance's bytes, in the order received."""
        self.finish()
        with zipfile.ZipFile(self._file) as archive:
            for member in archive.namelist():
                yield archive.read(member)

    def close(self) -> None:
        with self._lock:
            if self._zip is not None:
                self._zip.close()
                self._zip = None
            self._names.close()
            self._file.close()

    def __enter__(self) -> ReceivedInstances:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
