"""The Record panel in the real window: a case with an approved mesh shows its chain, a cure
step joins it, a scan of the print is verified with its numbers and coloured in the 3D view,
and a tampered step is shown broken in red."""

from __future__ import annotations

import io

import numpy as np
import pytest
from matplotlib.colors import rgb_to_hsv
from PySide6 import QtWidgets

from app.case import Case
from app.tools.mesh.phantom import calibration_phantom
from app.workflow import review, users
from app.workflow.actor import Actor
from tests.trace.ct_print import write_ct_series
from tests.trace.scans import make_scan, printed_phantom, rigid
from tests.ui.conftest import grab_array
from tests.workflow.conftest import person, sphere_volume

QA_PASSED = {"passed": True, "checks": []}


@pytest.fixture
def window(styled_app, qtbot, data_dir, keystore_service):
    from app.settings import resolve_paths
    from app.ui.main_window import MainWindow

    users.init_vault(Actor.current(resolve_paths()))
    win = MainWindow(resolve_paths())
    win.resize(1500, 920)
    win.show()
    qtbot.addWidget(win)
    yield win
    for box in win.findChildren(QtWidgets.QMessageBox):
        box.close()


def _approved_case(founder: Actor) -> Case:
    """A CT case whose mesh v1 (the calibration phantom, by tess) rafael approved."""
    person(founder, "tess", "technician")
    rafael = person(founder, "rafael", "reviewer")
    case = Case(founder.vault, founder.vault.create_case({"PatientName": "DOE^JANE"}))
    case.save_volume(sphere_volume())
    case.save_series_facts({"modality": "CT", "body_part": "PHANTOM"})
    buffer = io.BytesIO()
    calibration_phantom().export(buffer, file_type="stl")
    number = case.save_mesh_version(
        {"phantom": buffer.getvalue()}, qa=QA_PASSED, info={"author": "tess", "part": "phantom"}
    )
    review.approve(rafael, case, number, comment="fits")
    return case


def _rows(panel) -> dict[str, tuple[str, object]]:
    """Link name -> (status text, its row's background colour)."""
    table = panel.links
    return {
        table.item(r, 0).text(): (table.item(r, 1).text(), table.item(r, 0).background().color())
        for r in range(table.rowCount())
    }


def _hues(image: np.ndarray) -> dict[str, float]:
    """Fraction of the image in saturated red and saturated blue."""
    hsv = rgb_to_hsv(image.astype(float) / 255.0)
    vivid = (hsv[..., 1] > 0.4) & (hsv[..., 2] > 0.25)
    hue = hsv[..., 0] * 360
    red = vivid & ((hue < 20) | (hue > 340))
    blue = vivid & (hue > 200) & (hue < 250)
    return {"red": float(red.mean()), "blue": float(blue.mean())}


def test_chain_step_verification_and_a_broken_link(window, qtbot, tmp_path, artifacts):
    window.refresh_cases()
    case = _approved_case(window.actor)
    panel = window.record_panel
    window.stage_docks["Record"].raise_()
    window.open_case(case.pseudonym)
    qtbot.waitUntil(lambda: panel.chain is not None, timeout=120_000)
    rows = _rows(panel)
    assert list(rows)[:6] == ["series", "segmentation", "mesh", "approval", "gcode", "print"]
    assert rows["approval"][0] == "ok", rows
    assert rows["mesh"][0] == "unverified", "stored by the test, not built: no signed hash"
    assert rows["print"][0] == "pending" and "✔" in panel.summary.text()
    assert len(panel.links.item(3, 2).text()) == 12, "the approval's short hash"
    _record_cure(panel, qtbot)
    _verify_with_colours(window, panel, qtbot, tmp_path, artifacts)
    _verify_in_wrong_units(window, panel, qtbot, tmp_path)
    _ct_folder_at_the_threshold(panel, qtbot, tmp_path)
    _tamper_and_see_red(case, panel, qtbot, artifacts)


def _record_cure(panel, qtbot) -> None:
    panel.step.setCurrentText("cure")
    panel.detail.setText("UV 405 nm, 30 min at 60 C")
    panel.fields["cycle_id"].setText("CURE-0815")
    with qtbot.waitSignal(panel.chainShown, timeout=60_000):
        panel.record_button.click()
    assert _rows(panel)["step:cure"][0] == "ok" and "recorded and signed" in panel.message.text()


def _verify(panel, qtbot, path, units: str = "mm"):
    panel.scan.setText(str(path))
    panel.units.setCurrentText(units)
    panel.tolerance.setValue(0.5)
    with qtbot.waitSignal(panel.verified, timeout=240_000) as got:
        panel.verify_button.click()
    qtbot.waitUntil(lambda: not panel.worker.busy, timeout=60_000)  # the chain, checked again
    return got.args[0].done.check


def _verify_with_colours(window, panel, qtbot, tmp_path, artifacts) -> None:
    window.set_layout("3d")
    view3d = window.area.view3d
    view3d.set_preset("off")
    before = _hues(view3d.image())
    motion = rigid((10.0, -20.0, 35.0), (4.0, 2.0, -6.0))
    path = tmp_path / "scan.stl"
    printed_phantom(calibration_phantom(), matrix=motion, bump_mm=1.2, max_edge_mm=2.0).export(path)
    check = _verify(panel, qtbot, path)
    text = panel.result.text()
    assert "mean" in text and "p95" in text and "max" in text and "FAIL" in text, text
    assert f"{check.deviation.p95_mm:.3f}" in text and "region" in text, text
    assert np.allclose(check.deviation.regions[0].centre_mm[:2], (30.0, 22.0), atol=1.0)
    assert _rows(panel)["verification"][0] == "attention", "verified, and it failed"
    assert "printed part" in view3d.mesh_names()
    view3d.camera_preset("superior")
    view3d.frame_mesh("printed part")
    image = view3d.image()
    view3d.screenshot(artifacts / "record-deviation-3d.png")
    after = _hues(image)
    assert image.std() > 20, "the 3D view is blank"
    assert after["red"] > before["red"] + 0.002, (before, after)
    assert after["blue"] > before["blue"] + 0.002, (before, after)


def _verify_in_wrong_units(window, panel, qtbot, tmp_path) -> None:
    inches = tmp_path / "inches.stl"
    make_scan(calibration_phantom(), matrix=np.eye(4), units="inch").mesh.export(inches)
    _verify(panel, qtbot, inches, units="mm")
    assert "CHECK-UNITS" in panel.result.text() and "--units inch" in panel.result.text()
    assert "printed part" not in window.area.view3d.mesh_names(), "no stale colour map"


def _ct_folder_at_the_threshold(panel, qtbot, tmp_path) -> None:
    """A CT of the print as a DICOM folder, segmented at the panel's threshold (set above the
    resin's HU here, so nothing is found: one line, and the panel keeps working)."""
    folder = write_ct_series(calibration_phantom(), tmp_path / "ct", pitch=0.6)
    panel.scan.setText(str(folder))
    panel.threshold.setValue(2500)
    panel.verify_button.click()
    qtbot.waitUntil(lambda: not panel.worker.busy, timeout=120_000)
    assert "nothing above the threshold" in panel.message.text(), panel.message.text()
    assert panel.verify_button.isEnabled()


def _tamper_and_see_red(case, panel, qtbot, artifacts) -> None:
    steps = case.print_record()
    steps[-1]["fields"]["cycle_id"] = "CURE-0816"
    case.save_print_record(steps)
    with qtbot.waitSignal(panel.chainShown, timeout=60_000):
        panel.refresh_button.click()
    status, background = _rows(panel)["step:cure"]
    assert status == "BROKEN" and "BROKEN" in panel.summary.text()
    assert background.red() > background.green() + 40
    panel.grab().save(str(artifacts / "record-panel-broken.png"))
    shown = grab_array(panel.links).astype(int)
    assert (shown[..., 0] > shown[..., 1] + 40).mean() > 0.01, "the broken link is drawn red"
