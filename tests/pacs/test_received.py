"""Received instances never touch the disk unencrypted: during a retrieve (C-GET, C-MOVE,
WADO-RS; with and without anonymous memory files) nothing is created under TMPDIR, watched
with inotify, and the plain-memory fallback used where there is no memfd gives the same case."""

from __future__ import annotations

import ctypes
import os
import tempfile
from pathlib import Path

import pytest

from app.imaging.pacs.received import ReceivedInstances
from app.workflow import pacs
from tests.pacs.conftest import CANARY_ID, study_of

IN_MODIFY, IN_MOVED_TO, IN_CREATE = 0x2, 0x80, 0x100


class Watch:
    """inotify on one folder: was anything created, written or moved into it?"""

    def __init__(self, folder: Path) -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        self.fd = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        mask = IN_CREATE | IN_MODIFY | IN_MOVED_TO
        if self.fd < 0 or libc.inotify_add_watch(self.fd, str(folder).encode(), mask) < 0:
            pytest.fail("inotify is not available")

    def events(self) -> bytes:
        try:
            return os.read(self.fd, 65536)
        except BlockingIOError:
            return b""
        finally:
            os.close(self.fd)


@pytest.fixture
def watched_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Watch:
    folder = tmp_path / "tmpdir"
    folder.mkdir()
    monkeypatch.setenv("TMPDIR", str(folder))
    monkeypatch.setattr(tempfile, "tempdir", None)
    assert tempfile.gettempdir() == str(folder)
    return Watch(folder)


@pytest.mark.usefixtures("pacs_node")
@pytest.mark.parametrize("method", ["get", "move", "wado", "get without memfd"])
def test_retrieve_writes_nothing_under_tmpdir(admin, orthanc, watched_tmp, monkeypatch, method):
    if method.endswith("without memfd"):
        monkeypatch.delattr(os, "memfd_create")  # as on macOS and Windows
        method = "get"
    got = pacs.retrieve(admin, "pacs", *study_of(orthanc, CANARY_ID), method=method)
    assert got.instances == 134 and got.case.load_volume().shape[0] == 134
    assert watched_tmp.events() == b""


def test_memory_fallback_reads_back(monkeypatch):
    monkeypatch.delattr(os, "memfd_create")
    with ReceivedInstances() as received:
        received.add(b"one")
        received.add(b"two")
        path = received.finish()
        assert path.startswith("memory:") and not Path(path).exists()
        assert list(received.instances()) == [b"one", b"two"]


def test_the_watch_sees_a_temporary_file(watched_tmp):
    with tempfile.NamedTemporaryFile():
        pass
    assert watched_tmp.events() != b""
