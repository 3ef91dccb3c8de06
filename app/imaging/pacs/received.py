"""Instances received from a PACS, held in an anonymous memory file: never on disk in the clear.

The instances are members of an uncompressed zip inside a ``memfd`` (Linux), so the scanner
and loader read them through their ordinary zip-member path at ``/proc/self/fd/N``, and the
import stores them into the vault's encrypted streams. Closing the memory file frees it; no
name on any file system ever pointed at it.
"""

from __future__ import annotations

import os
import threading
import zipfile
from pathlib import Path

from app.imaging.pacs.nodes import PacsError


class ReceivedInstances:
    """A growing, in-memory set of DICOM instances (thread-safe :meth:`add`)."""

    def __init__(self) -> None:
        if not hasattr(os, "memfd_create"):
            msg = "retrieving from a PACS needs anonymous memory files (Linux); use a folder import"
            raise PacsError(msg)
        self._fd = os.memfd_create("medprint-received", os.MFD_CLOEXEC)
        self._file = os.fdopen(self._fd, "w+b", closefd=True)
        self._zip: zipfile.ZipFile | None = zipfile.ZipFile(self._file, "w", zipfile.ZIP_STORED)
        self._lock = threading.Lock()
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

    def finish(self) -> Path:
        """Stop taking instances; the path the scanner reads them from (a zip)."""
        with self._lock:
            if self._zip is not None:
                self._zip.close()
                self._zip = None
            self._file.flush()
        return Path(f"/proc/self/fd/{self._fd}")

    def close(self) -> None:
        with self._lock:
            if self._zip is not None:
                self._zip.close()
                self._zip = None
            self._file.close()

    def __enter__(self) -> ReceivedInstances:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
