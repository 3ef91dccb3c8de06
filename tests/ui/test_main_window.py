"""The main window on a private vault and a real keystore: first start, import through the
dialog with cancel, the case browser, opening a case, saving, settings, audit, screenshots.

Needs ``scripts/with-keyring.sh`` (a real Secret Service) and a display.
"""

from __future__ import annotations

import json

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
    yield win
    for box in win.findChildren(QtWidgets.QMessageBox):
        box.close()


def _close_boxes(win) -> list[str]:
    texts = []
    for box in win.findChildren(QtWidgets.QMessageBox):
        if box.isVisible():
            texts.append(box.text())
            box.close()
    return texts


def test_first_start_creates_the_vault_and_offers_the_sample_or_import(window, qtbot, artifacts):
    from app.workflow import users
    from app.workflow.intake import sample_available

    window.startup()
    assert window.vault_ready
    shown = _close_boxes(window)
    assert any("Recovery key" in text for text in shown)  # shown once, at creation
    assert users.list_users(window.actor)[window.actor.user]["roles"] == ["administrator"]
    if sample_available():
        qtbot.waitUntil(lambda: window.state.volume is not None, timeout=60_000)
        assert window.case is not None and "(sample)" in window.windowTitle()
        assert [c.pseudonym for c in window.actor.vault.list_cases()] == [window.case.pseudonym]
        qtbot.waitUntil(lambda: window.browser.visible_pseudonyms() == [window.case.pseudonym])
        window.area.flush_3d()
        window.save_screenshot(artifacts / "main-window-sample.png", whole_window=True)
        for orientation, view in window.area.slice_views.items():
            view.grab().save(str(artifacts / f"sample-{orientation}.png"))
            assert grab_array(view).std() > 20, f"{orientation} view of the sample is blank"
        # Bone where bone is: a dense-bone voxel of the axial slice, away from the crosshair
        # lines, is drawn bright grey.
        volume, axial = window.state.volume, window.area.slice_views["axial"]
        k = axial.slice_index
        # Inside the bone (its 3x3 neighbourhood averages over 600 HU), not at a partial-volume
        # edge that the display blends with its neighbours; soft tissue draws below 100 grey.
        from scipy import ndimage

        local = ndimage.uniform_filter(volume.array[k].astype(np.float32), size=3)
        js, is_ = np.nonzero(local > 600)
        cross = axial.crosshair_screen()
        points = [
            axial.lps_to_screen(volume.index_to_lps([i, j, k]))
            for i, j in zip(is_, js, strict=True)
        ]
        best = max(points, key=lambda p: min(abs(p.x() - cross.x()), abs(p.y() - cross.y())))
        pixel = grab_array(axial)[round(best.y()), round(best.x())].astype(int)
        assert pixel.min() > 130 and pixel.max() - pixel.min() < 20, pixel
        image = window.area.view3d.image().astype(int)
        assert ((image[..., 0] > image[..., 2] + 25) & (image[..., 0] > 90)).mean() > 0.03
    else:
        assert "import a DICOM folder" in window.statusBar().currentMessage()
        assert window.state.volume is None


def test_import_cancel_then_import_again_gives_one_case(window, qtbot, ct_dir, artifacts):
    window.startup(open_sample=False)
    _close_boxes(window)
    window.import_dicom()
    dialog = window.import_dialog
    with qtbot.waitSignal(dialog.worker.done, timeout=60_000):
        dialog.start_scan(str(ct_dir))
    assert dialog.selected_series() is not None and dialog.selected_series().slice_count == 134
    dialog.grab().save(str(artifacts / "import-dialog.png"))
    dialog._fill_drives()  # removable drives, or one disabled line saying there are none
    assert dialog.drive_menu.actions()

    # Cancel once the import is past loading, while it stores the originals in the vault.
    seen: list[float] = []

    def cancel_late(fraction: float, _message: str) -> None:
        seen.append(fraction)
        if fraction >= 0.65 and dialog.cancel_button.isEnabled():
            dialog.cancel_button.click()

    dialog.worker.progress.connect(cancel_late)
    with qtbot.waitSignal(dialog.worker.cancelled, timeout=120_000):
        dialog.start_import()
    dialog.worker.progress.disconnect(cancel_late)
    assert max(seen) >= 0.65
    assert "Cancelled" in dialog.status.text()
    assert window.actor.vault.list_cases() == []

    with qtbot.waitSignal(window.caseOpened, timeout=120_000) as opened:
        dialog.start_import()
    pseudonym = opened.args[0]
    cases = window.actor.vault.list_cases()
    assert [c.pseudonym for c in cases] == [pseudonym]
    assert window.browser.visible_pseudonyms() == [pseudonym]
    assert pseudonym in window.windowTitle()
    assert window.state.volume is not None and window.state.volume.shape == (134, 512, 512)

    _search_and_show_identity(window, pseudonym, cases[0].identity["patient_name"])
    window.save_screenshot(artifacts / "main-window-ct.png", whole_window=True)
    image = grab_array(window.area)
    assert image.std() > 20


def _search_and_show_identity(window, pseudonym: str, name: str) -> None:
    # Search by a patient field finds the case; the identity columns stay hidden by default.
    assert name
    window.browser.search.setText(name[:6])
    assert window.browser.visible_pseudonyms() == [pseudonym]
    window.browser.search.setText("no-such-patient-zz")
    assert window.browser.visible_pseudonyms() == []
    window.browser.search.clear()
    assert all(window.browser.table.isColumnHidden(c) for c in range(1, 7))
    visible_text = [
        window.browser.table.item(r, c).text()
        for r in range(window.browser.table.rowCount())
        for c in range(window.browser.table.columnCount())
        if not window.browser.table.isColumnHidden(c)
    ]
    assert name not in " ".join(visible_text)

    # Showing identity is possible, and audited.
    from app.security import audit

    def shown() -> list[dict]:  # the panels' background jobs audit their reads meanwhile
        return [
            r for r in audit.read_records(window.paths) if r["action"] == "cases.identity_shown"
        ]

    before = len(shown())
    window.browser.show_identity.setChecked(True)
    assert not window.browser.table.isColumnHidden(1)
    assert window.browser.table.item(0, 1).text() == name
    records = shown()
    assert len(records) == before + 1 and records[-1]["facts"] == {"count": 1}
    window.browser.show_identity.setChecked(False)
    assert all(e.identity == {} for e in window.browser.entries)  # dropped once hidden


def test_open_save_and_audit(window, qtbot, ct_volume, artifacts, data_dir):
    from app.case import Case

    window.startup(open_sample=False)
    _close_boxes(window)
    vault = window.actor.vault
    pseudonym = vault.create_case({"patient_name": "TEST^PATIENT"})
    Case(vault, pseudonym).save_volume(ct_volume)
    window.refresh_cases()
    with qtbot.waitSignal(window.caseOpened, timeout=60_000):
        window.open_case(pseudonym)
    assert window.settings.recent_cases[0] == pseudonym
    assert window.recent_menu.actions()[0].text() == pseudonym

    window.state.apply_preset("lung")
    window.set_layout("axial")
    window.save()
    saved = Case(vault, pseudonym).view_state()
    assert saved["window_preset"] == "lung" and saved["layout"] == "axial"
    window.set_layout("four-up")

    window.audit_dock.show()
    window.audit_dock.raise_()
    with qtbot.waitSignal(window.audit_panel.worker.done, timeout=30_000):
        window.audit_panel.refresh()
    assert window.audit_panel.status.text().startswith("✔")
    actions = {
        window.audit_panel.table.item(r, 3).text()
        for r in range(window.audit_panel.table.rowCount())
    }
    assert {"vault.init", "case.open", "audit.verify"} <= actions
    assert "TEST^PATIENT" not in json.dumps(
        [
            [window.audit_panel.table.item(r, c).text() for c in range(6)]
            for r in range(window.audit_panel.table.rowCount())
        ]
    )
    window.save_screenshot(artifacts / "main-window-audit.png", whole_window=True)
    exported = data_dir.parent / "audit.json"
    window.audit_panel.export(str(exported))
    assert {r["action"] for r in json.loads(exported.read_text())} >= {"vault.init", "case.open"}
    assert audit_actions(window)[-1] == "audit.export"


def audit_actions(window) -> list[str]:
    from app.security import audit

    return [r["action"] for r in audit.read_records(window.paths)]


def test_open_missing_case_is_a_readable_error(window, qtbot):
    window.startup(open_sample=False)
    _close_boxes(window)
    with qtbot.waitSignal(window.jobs.error, timeout=30_000) as error:
        window.open_case("C-ZZZZ-ZZ")
    assert "no case C-ZZZZ-ZZ" in error.args[0]
    assert any("no case" in t.lower() for t in _close_boxes(window))


def test_settings_dialog_edits_a_copy(window):
    from app.ui.settings_dialog import SettingsDialog

    dialog = SettingsDialog(window.settings, window.paths, window)
    assert dialog.data_dir.text() == str(window.paths.root)
    dialog.units.setCurrentText("in")
    dialog.window_preset.setCurrentText("lung")
    edited = dialog.result_settings()
    assert edited.units == "in" and edited.default_window_preset == "lung"
    assert window.settings.units == "mm"  # unchanged until applied
    assert dialog.printer.count() >= 1


def test_undo_follows_the_segment_panel(window, qtbot, ct_volume, artifacts):
    from app.case import Case

    window.startup(open_sample=False)
    _close_boxes(window)
    vault = window.actor.vault
    pseudonym = vault.create_case({})
    Case(vault, pseudonym).save_volume(ct_volume)
    with qtbot.waitSignal(window.caseOpened, timeout=60_000):
        window.open_case(pseudonym)
    panel = window.segment_panel
    assert not window.act_undo.isEnabled()
    panel.select_tool("threshold")
    with qtbot.waitSignal(panel.worker.done, timeout=60_000):
        panel.apply_current(preset="bone", segment="")
    assert window.act_undo.isEnabled()
    window.act_undo.trigger()
    assert not panel.seg.segments and window.act_redo.isEnabled()
    window.act_redo.trigger()
    assert panel.seg.segments
    panel.show3d.setChecked(True)  # the surface is made in a background thread
    qtbot.waitUntil(lambda: window.area.view3d.mesh_names() == ["segment:bone"], timeout=60_000)
    window.area.view3d.set_preset("off")
    bone_only = window.area.view3d.image().astype(int)
    assert ((bone_only[..., 0] > 150) & (bone_only[..., 2] < 150)).sum() > 2000  # ivory bone
    window.save_screenshot(artifacts / "main-window-segmentation.png", whole_window=True)
    window.save()
    assert Case(vault, pseudonym).has_segmentation()


def test_settings_change_units_and_presets(window):
    from dataclasses import replace

    from app.settings import Settings

    window.apply_settings(replace(window.settings, units="cm", default_window_preset="brain"))
    assert Settings.load(window.paths).units == "cm"
    assert all(v.units == "cm" for v in window.area.slice_views.values())
    assert window.area.slice_views["axial"]._format_length(25.0) == "2.50 cm"
    assert Settings.load(window.paths).default_window_preset == "brain"


def test_review_and_package_a_stored_mesh_version(window, qtbot, ct_volume, data_dir, artifacts):
    import trimesh

    from app.case import Case
    from app.tools.mesh.qa import qa_report
    from app.workflow import users

    window.startup(open_sample=False)
    _close_boxes(window)
    actor = window.actor
    users.add_role(actor, actor.user, "reviewer")
    pseudonym = actor.vault.create_case({})
    case = Case(actor.vault, pseudonym)
    case.save_volume(ct_volume)
    ball = trimesh.creation.icosphere(subdivisions=3, radius=20.0)
    stl = ball.export(file_type="stl")
    case.save_mesh_version({"ball": stl}, qa=qa_report(ball).to_dict(), info={"part": "ball"})
    with qtbot.waitSignal(window.caseOpened, timeout=60_000):
        window.open_case(pseudonym)
    panel = window.package_panel
    # the panels list versions once the mesh modules, loading in the background, are in
    qtbot.waitUntil(lambda: panel.version.currentText() == "v1", timeout=120_000)
    window.set_review_mode(True)
    assert not window.stage_docks["Segment"].isVisible()
    assert window.area.view3d.mesh_names() == ["mesh"]  # the stored version, in 3D
    assert window.mesh_panel.checks.rowCount() > 3  # with its QA report
    assert panel.version.currentText() == "v1"
    assert panel.status.text().lower().startswith("none")
    panel.approve_button.click()
    assert panel.status.text().lower().startswith("approved"), panel.message.text()
    target = data_dir.parent / "usb-stick"
    target.mkdir()
    panel.destination.setCurrentText(str(target))
    with qtbot.waitSignal(panel.packaged, timeout=120_000) as done:
        panel.package_button.click()
    path = done.args[0]
    assert path.exists() and target in path.parents
    assert "verified" in panel.message.text()
    window.save_screenshot(artifacts / "main-window-review.png", whole_window=True)
    window.set_review_mode(False)
    assert window.stage_docks["Segment"].isVisible()
