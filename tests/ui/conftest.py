"""Fixtures for the GUI tests: a styled QApplication, the real CT, a window on a private vault.

Run under a display and a real keystore::

    xvfb-run -a scripts/with-keyring.sh .venv/bin/pytest tests/ui -q

Screenshots for people to look at go to ``test-artifacts/ui/`` (git-ignored).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pytestqt")

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts" / "ui"
CT_SERIES = "ct-abdomen-tcia-pancreas-134"

pytestmark = pytest.mark.ui


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        item.add_marker(pytest.mark.ui)


@pytest.fixture(scope="session", autouse=True)
def _display() -> None:
    if not os.environ.get("DISPLAY") and os.environ.get("QT_QPA_PLATFORM") != "offscreen":
        pytest.skip("GUI tests need a display: run them under xvfb-run")


@pytest.fixture(scope="session")
def styled_app(qapp):
    from app.ui.app import make_application

    return make_application()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


@pytest.fixture(scope="session")
def ct_dir(dicom_dir: Path) -> Path:
    folder = dicom_dir / CT_SERIES
    if not folder.is_dir():
        pytest.skip(f"{CT_SERIES} not found in the shared data")
    return folder


@pytest.fixture(scope="session")
def ct_volume(ct_dir: Path):
    """The real 512×512×134 abdominal CT, loaded once."""
    from app.imaging.load import load_series

    volume = load_series(ct_dir)
    assert volume.modality == "CT"
    return volume


def grab_array(widget) -> np.ndarray:
    """The widget as rendered on screen: (h, w, 3) uint8 RGB."""
    from PySide6 import QtGui

    image = widget.grab().toImage().convertToFormat(QtGui.QImage.Format.Format_RGB888)
    width, height = image.width(), image.height()
    buffer = np.frombuffer(image.constBits(), dtype=np.uint8, count=image.bytesPerLine() * height)
    return (
        buffer.reshape(height, image.bytesPerLine())[:, : width * 3]
        .reshape(height, width, 3)
        .copy()
    )
