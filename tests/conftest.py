"""Suite-wide fixtures: a private data folder per test, the shared real data, a real keystore.

The keystore is a real Secret Service: the test command runs the suite inside
``dbus-run-session`` with an unlocked ``gnome-keyring-daemon`` (see scripts/run-tests.sh).
No plaintext keyring backend is ever used.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = (REPO / ".." / "shared" / "data").resolve()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` beside the repository; skips the test when it is absent (fails it
    under CI, where the real data is a part the suite must have)."""
    if not (SHARED_DATA / "dicom").is_dir():
        msg = f"real imaging data not found at {SHARED_DATA}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(msg)
        pytest.skip(msg)
    return SHARED_DATA


@pytest.fixture(scope="session")
def dicom_dir(shared_data: Path) -> Path:
    return shared_data / "dicom"


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private MedPrint data folder for this test (``MEDPRINT_DATA_DIR``)."""
    folder = tmp_path / "medprint-data"
    folder.mkdir()
    monkeypatch.setenv("MEDPRINT_DATA_DIR", str(folder))
    return folder


@pytest.fixture
def keystore_service(
    monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> Iterator[str]:
    """A keystore service name unique to this test, so tests never share vault keys; its
    secrets are deleted afterwards."""
    name = f"medprint-test-{os.getpid()}-{request.node.name}"[:120]
    monkeypatch.setenv("MEDPRINT_KEYSTORE_SERVICE", name)
    yield name
    forget_keystore(name)


def forget_keystore(service: str) -> None:
    """Delete every secret of ``service`` from the session's keyring.

    gnome-keyring rewrites its whole keyring file on every write and keeps about 16 KB per
    write, so secrets left by a thousand tests made each write take hundreds of ms and the
    daemon grow to gigabytes: the suite's keystore failed part-way through a CI run.
    """
    if not os.environ.get("MEDPRINT_IN_KEYRING_SESSION"):
        return
    import secretstorage

    with closing(secretstorage.dbus_init()) as connection:
        collection = secretstorage.get_default_collection(connection)
        for item in collection.search_items({"service": service}):
            item.delete()


def _keyring_daemon_pid() -> int | None:
    """The pid owning the Secret Service on this session bus (None when nothing owns it)."""
    from jeepney import DBusAddress, new_method_call
    from jeepney.io.blocking import open_dbus_connection

    bus = DBusAddress("/org/freedesktop/DBus", "org.freedesktop.DBus", "org.freedesktop.DBus")
    call = new_method_call(bus, "GetConnectionUnixProcessID", "s", ("org.freedesktop.secrets",))
    with open_dbus_connection() as connection:
        reply = connection.send_and_get_reply(call, timeout=10)
    return reply.body[0] if reply.body else None


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None):
    """Stop the run, naming the test, if the suite's keyring daemon went away during it: every
    later test would fail on 'no usable OS keystore' and hide which test broke the keystore."""
    session = item.session
    if os.environ.get("MEDPRINT_IN_KEYRING_SESSION") and not hasattr(session, "keyring_pid"):
        session.keyring_pid = _keyring_daemon_pid()
    yield
    pid = getattr(session, "keyring_pid", None)
    if pid is not None and not _running(pid):
        pytest.exit(f"the test keyring (gnome-keyring-daemon, pid {pid}) died during {item.nodeid}")


def _running(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie no one reaped does not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"
