"""Suite-wide fixtures: a private data folder per test, the shared real data, a real keystore.

The keystore is a real Secret Service: the test command runs the suite inside
``dbus-run-session`` with an unlocked ``gnome-keyring-daemon`` (see scripts/run-tests.sh).
No plaintext keyring backend is ever used.
"""

from __future__ import annotations

import os
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
def keystore_service(monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> str:
    """A keystore service name unique to this test, so tests never share vault keys."""
    name = f"medprint-test-{os.getpid()}-{request.node.name}"[:120]
    monkeypatch.setenv("MEDPRINT_KEYSTORE_SERVICE", name)
    return name
