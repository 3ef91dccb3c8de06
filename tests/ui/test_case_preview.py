"""Opening a large case: the slice views show the case's stored preview before the full image
has been read, with the tools off; the full image replaces it and the tools come on.

Needs ``scripts/with-keyring.sh`` (a real Secret Service) and a display.
"""

from __future__ import annotations

import numpy as np
import pytest
from PySide6 import QtWidgets

from tests.ui.conftest import grab_array


@pytest.fixture
def window(styled_app, qtbot, data_dir, keystore_service):
    from app.settings import resolve_paths
    from app.ui.main_window import MainWindow

    win = MainWindow(resolve_paths())
    win.resize(1500, 920)
    win.show()
    qtbot.addWidget(win)
    win.startup(open_sample=False)
    for box in win.findChildren(QtWidgets.QMessageBox):
        box.close()
    yield win


def _large_ct(slices: int = 400):
    """A 512×512×``slices`` CT: air with a bone cylinder along the slices (210 MB int16)."""
    from app.imaging.volume import Volume

    j, i = np.ogrid[:512, :512]
    disk = (i - 255.5) ** 2 + (j - 255.5) ** 2 <= 120**2
    plane = np.where(disk, 1000, -1000).astype(np.int16)
    array = np.broadcast_to(plane, (slices, 512, 512)).copy()
    return Volume(array, spacing=(0.7, 0.7, 1.0), modality="CT")


def test_a_large_case_shows_its_preview_before_the_full_image(window, qtbot):
    from app.case import Case

    volume = _large_ct()
    vault = window.actor.vault
    pseudonym = vault.create_case({})
    Case(vault, pseudonym).save_volume(volume)
    del volume
    full: list[int] = []
    seen: list[dict] = []
    window.volumeShown.connect(lambda: full.append(1))

    def on_preview() -> None:  # what the window shows at that moment
        seen.append({
            "full": bool(full),
            "case": window.case,
            "shape": window.state.volume.shape,
            "tools": window.segment_panel.apply_button.isEnabled(),
            "axial": grab_array(window.area.slice_views["axial"]),
        })  # fmt: skip

    window.previewShown.connect(on_preview)
    with qtbot.waitSignal(window.previewShown, timeout=60_000):
        window.open_case(pseudonym)
    (first,) = seen
    assert not first["full"] and first["case"] is None
    assert first["shape"] == (200, 256, 256)  # the preview: ≤ 256 a side
    assert not first["tools"]  # no tools on the preview
    grey = first["axial"].mean(axis=2)
    assert (grey > 180).mean() > 0.03 and (grey < 40).mean() > 0.3  # bone in air: not blank

    with qtbot.waitSignal(window.caseOpened, timeout=120_000):
        pass
    assert full and window.case.pseudonym == pseudonym
    assert window.state.volume.shape == (400, 512, 512)
    assert window.segment_panel.volume is window.state.volume
    assert window.segment_panel.apply_button.isEnabled()
