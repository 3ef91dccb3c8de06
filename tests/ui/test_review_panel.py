"""The surgeon's review in the window, on the real CT with a bone mesh built by the workflow:
the mesh version as a contour on the slices (over bone), stepping through the scan, two
versions compared (two contours, the distance map in 3D, the edits between), comments pinned
to the crosshair.

Needs ``scripts/with-keyring.sh`` (a real Secret Service) and a display.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from PySide6 import QtCore, QtWidgets
from scipy import ndimage

from tests.ui.conftest import grab_array

SLAB = (60, 76)  # axial slices of the CT whose bone is meshed (3 mm apart)


@pytest.fixture
def bone_case(data_dir, keystore_service, ct_volume):
    """A case holding the CT, a saved "bone" segment (>= 250 HU in a slab) and two mesh
    versions: v1 built by workflow.mesh.build, v2 its 1% scale by workflow.mesh.edit."""
    from app.case import Case
    from app.settings import resolve_paths
    from app.workflow import mesh, segment, users
    from app.workflow.actor import Actor

    actor = Actor.current(resolve_paths(data_dir))
    users.init_vault(actor)
    case = Case(actor.vault, actor.vault.create_case({}))
    case.save_volume(ct_volume)
    seg = segment.new(ct_volume)
    bone = ct_volume.array >= 250
    bone[: SLAB[0]] = bone[SLAB[1] :] = False
    segment.add_segment_from_mask(actor, case, seg, "bone", bone)
    segment.save(actor, case, seg)
    built = mesh.build(actor, case, segments=["bone"], settings="review", segmentation=seg,
                       volume=ct_volume)  # fmt: skip
    mesh.edit(actor, case, built.number, "scale", {"factor": 1.01})
    return case


@pytest.fixture
def window(styled_app, qtbot, bone_case):
    from app.settings import resolve_paths
    from app.ui.main_window import MainWindow

    win = MainWindow(resolve_paths())
    win.resize(1500, 920)
    win.show()
    qtbot.addWidget(win)
    win.startup(open_sample=False)
    with qtbot.waitSignal(win.caseOpened, timeout=60_000):
        win.open_case(bone_case.pseudonym)
    qtbot.waitUntil(lambda: win.mesh_panel.versions.count() == 2, timeout=120_000)
    yield win
    win.review_panel.worker.cancel()
    win.review_panel.worker.wait(30.0)
    for box in win.findChildren(QtWidgets.QMessageBox):
        box.close()


def _show_version(win, qtbot, number: int) -> None:
    panel = win.mesh_panel
    panel.versions.setCurrentIndex(panel.versions.findData(number))
    with qtbot.waitSignal(win.review_panel.contoursShown, timeout=60_000):
        panel.show_version.click()
    assert win.review_panel.layer.label == f"v{number}"


def _double_click(qtbot, table, row: int) -> None:
    """As a person does: press (the view remembers the cell), then the double-click."""
    at = table.visualItemRect(table.item(row, 0)).center()
    qtbot.mouseClick(table.viewport(), QtCore.Qt.MouseButton.LeftButton, pos=at)
    qtbot.mouseDClick(table.viewport(), QtCore.Qt.MouseButton.LeftButton, pos=at)


def _contour_pixels(view, state) -> tuple[np.ndarray, np.ndarray]:
    """(mask of the pixels the contours changed, the view drawn without them)."""
    layers = state.mesh_contours
    with_contours = grab_array(view).astype(int)
    state.set_mesh_contours([])
    bare = grab_array(view)
    state.set_mesh_contours(layers)
    changed = np.abs(with_contours - bare.astype(int)).sum(axis=2) > 60
    changed[-40:, :] = False  # the legend
    changed[:40, :] = False  # the title lines
    return changed, bare


def test_the_mesh_on_the_scan_steps_compare_and_comments(window, qtbot, ct_volume, artifacts):
    win, state = window, window.state
    win.set_review_mode(True)
    assert win.stage_docks["Review"].isVisible() and state.overlay_outline
    _show_version(win, qtbot, 1)
    state.set_overlay_style(visible=False)  # only image and contour below
    centre = (np.array(ct_volume.size_ijk) - 1) / 2
    state.set_cursor(ct_volume.index_to_lps([centre[0], centre[1], 68]))
    changed = _contour_over_bone(win, artifacts)
    _scroll_and_step(win, qtbot, changed)
    _distance_colours(win, qtbot)
    _comments(win, qtbot, ct_volume)
    state.set_cursor(ct_volume.index_to_lps([centre[0], centre[1], 68]))
    _compare(win, qtbot, artifacts)


def _contour_over_bone(win, artifacts) -> np.ndarray:
    """The contour is drawn over bone: where it runs, the image (bone window) is bright."""
    state, panel, axial = win.state, win.review_panel, win.area.slice_views["axial"]
    assert axial.slice_index == 68
    changed, bare = _contour_pixels(axial, state)
    axial.grab().save(str(artifacts / "review-axial-contour.png"))
    assert grab_array(axial).std() > 20
    assert changed.sum() > 300, changed.sum()
    grey = ndimage.maximum_filter(bare[..., 0].astype(int), size=3)
    body = bare[..., 0][bare[..., 0] > 40]  # inside the patient: soft tissue mostly
    under = grey[changed]
    assert np.median(under) > np.median(body) + 25, (np.median(under), np.median(body))
    assert (under > np.median(body) + 15).mean() > 0.8
    for orientation, view in win.area.slice_views.items():
        assert len(view.contour_cut(panel.layer).segments) > 20, orientation
    return changed


def _scroll_and_step(win, qtbot, changed: np.ndarray) -> None:
    """Scrolling moves the contour with the slice; Next / Previous (and ] / [) step by the
    chosen millimetres (6 mm = two 3 mm slices)."""
    state, panel, axial = win.state, win.review_panel, win.area.slice_views["axial"]
    before = axial.contour_screen_segments(panel.layer)
    axial.scroll(3)
    assert axial.slice_index == 71
    after_changed, _ = _contour_pixels(axial, state)
    assert not np.array_equal(before, axial.contour_screen_segments(panel.layer))
    overlap = (changed & after_changed).sum() / max(1, (changed | after_changed).sum())
    assert overlap < 0.5
    panel.orientation.setCurrentText("axial")
    panel.step_mm.setValue(6.0)
    panel.next_button.click()
    assert axial.slice_index == 73
    panel.previous_button.click()
    panel.previous_button.click()
    assert axial.slice_index == 69
    with warnings.catch_warnings():  # no window manager under Xvfb: make it active by hand
        warnings.simplefilter("ignore", DeprecationWarning)
        QtWidgets.QApplication.setActiveWindow(win)
    axial.setFocus()
    qtbot.keyClick(axial, QtCore.Qt.Key.Key_BracketRight)
    assert axial.slice_index == 71
    qtbot.keyClick(axial, QtCore.Qt.Key.Key_BracketLeft)
    assert axial.slice_index == 69


def _distance_colours(win, qtbot) -> None:
    """Coloured by the distance to the segmentation: the mesh follows the segment's surface."""
    panel = win.review_panel
    with qtbot.waitSignal(panel.contoursShown, timeout=60_000):
        panel.by_distance.setChecked(True)
    section = panel.layer.sections["axial"]
    assert panel.layer.value_range is not None and section.values is not None
    assert np.median(np.abs(section.values)) < 0.5
    assert len(win.area.slice_views["axial"].contour_cut(panel.layer).values) > 20
    with qtbot.waitSignal(panel.contoursShown, timeout=60_000):
        panel.by_distance.setChecked(False)
    assert panel.layer.value_range is None


def _comments(win, qtbot, ct_volume) -> None:
    """Pinned at the crosshair; a double-click goes back to the point; resolve marks it."""
    from app.workflow import comments

    state, panel, axial = win.state, win.review_panel, win.area.slice_views["axial"]
    point = ct_volume.index_to_lps([200, 300, 66])
    state.set_cursor(point)
    panel.comment_text.setText("thin cortex here")
    panel.add_button.click()
    table = panel.comment_table
    assert table.rowCount() == 1
    assert table.item(0, 0).text() == "#1 thin cortex here"
    assert len(state.markers) == 1 and np.allclose(state.markers[0][0], point)
    assert state.markers[0][1] == "#1"
    at = axial.lps_to_screen(point)
    near = grab_array(axial)[round(at.y()) - 12 : round(at.y()) + 13, round(at.x()) - 12 :][:, :25]
    assert (np.abs(near.astype(int) - (255, 240, 60)).sum(axis=2) < 40).sum() > 10  # its ring
    assert table.item(0, 1).text() == win.actor.user
    state.set_cursor(ct_volume.index_to_lps([100, 100, 10]))
    _double_click(qtbot, table, 0)
    assert np.allclose(state.cursor, point)
    assert axial.slice_index == 66
    table.selectRow(0)
    panel.resolve_button.click()
    assert table.item(0, 3).text().startswith(win.actor.user)
    assert state.markers == []  # a resolved comment is no longer marked
    (stored,) = comments.listed(win.actor, win.case, 1)
    assert stored["resolved"]["by"] == win.actor.user and stored["at_lps_mm"] == list(point)


def _compare(win, qtbot, artifacts) -> None:
    """v1 against v2: two contours (dashed older, solid newer), the distance map in 3D and
    the edit between them."""
    from app.ui.review_panel import COMPARE_NEWER, COMPARE_OLDER, NEWER_COLOUR, OLDER_COLOUR

    state, panel, axial = win.state, win.review_panel, win.area.slice_views["axial"]
    preset = win.area.view3d.preset
    panel.older.setCurrentIndex(panel.older.findData(1))
    panel.newer.setCurrentIndex(panel.newer.findData(2))
    with qtbot.waitSignal(panel.compared, timeout=180_000):
        panel.compare_button.click()
    layers = state.mesh_contours
    assert [(x.label, x.style) for x in layers] == [("v2", "solid"), ("v1", "dash")]
    assert all(len(axial.contour_cut(x).segments) > 20 for x in layers)
    shot = grab_array(axial).astype(int)
    axial.grab().save(str(artifacts / "review-axial-compare.png"))
    for colour in (OLDER_COLOUR, NEWER_COLOUR):
        near = (np.abs(shot - np.array(colour)).sum(axis=2) < 60).sum()
        assert near > 50, (colour, near)
    assert {COMPARE_OLDER, COMPARE_NEWER} <= set(win.area.view3d.mesh_names())
    assert win.area.view3d.preset == "off"  # the volume rendering steps aside
    assert win.area.view3d.image().std() > 10
    assert panel.history.rowCount() == 1
    assert panel.history.item(0, 1).text() == "scale"
    assert "factor=1.01" in panel.history.item(0, 2).text()
    assert "v1 (dashed) → v2 (solid)" in panel.compare_summary.text()
    assert panel.regions.rowCount() >= 1 and panel.regions.item(0, 0).text().startswith("bone")
    biggest = panel.moved[0][1]
    panel.compare_tabs.setCurrentWidget(panel.regions)
    _double_click(qtbot, panel.regions, 0)
    assert np.linalg.norm(state.cursor - biggest["centre_lps_mm"]) < 3.0  # its nearest voxel
    win.save_screenshot(artifacts / "review-compare-window.png", whole_window=True)
    panel.clear_button.click()
    assert state.mesh_contours == [panel.layer]
    assert COMPARE_NEWER not in win.area.view3d.mesh_names()
    assert win.area.view3d.preset == preset
