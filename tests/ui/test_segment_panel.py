"""The Segment panel on the real CT: a threshold tool through the worker, a painted stroke with
the mouse, the overlay showing both, and undo restoring the labels exactly."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6 import QtCore, QtGui, QtWidgets

from app.case import Case
from app.security import audit
from app.settings import resolve_paths
from app.ui.segment_panel import SegmentPanel
from app.viewers.slice_view import SliceView
from app.viewers.state import ViewerState
from app.workflow import segment, users
from app.workflow.actor import Actor
from tests.workflow.conftest import person, sphere_volume


def _build(qtbot, volume):
    host = QtWidgets.QWidget()
    state = ViewerState(host)
    views = {o: SliceView(state, o, host) for o in ("axial", "coronal", "sagittal")}
    panel = SegmentPanel(state, host)
    layout = QtWidgets.QHBoxLayout(host)
    layout.addWidget(views["axial"], 2)
    layout.addWidget(panel, 1)
    host.resize(1100, 600)
    host.show()
    qtbot.addWidget(host)
    state.set_volume(volume, "bone")
    panel.connect_views(list(views.values()))
    return host, panel, views, state


@pytest.fixture
def editor(styled_app, qtbot, ct_volume):
    """The panel on a plain volume (no case: nothing checked, audited or stored)."""
    host, panel, views, state = _build(qtbot, ct_volume)
    panel.attach(ct_volume)
    QtWidgets.QApplication.processEvents()
    yield panel, views["axial"], state
    panel.worker.cancel()
    panel.worker.wait(10.0)
    host.close()


@pytest.fixture
def on_case(styled_app, qtbot, data_dir, keystore_service):
    """The panel on a vault case (a small CT with a bone sphere), acting as its administrator."""
    actor = Actor.current(resolve_paths(data_dir))
    users.init_vault(actor)
    case = Case(actor.vault, actor.vault.create_case({"PatientName": "DOE^ALEX"}))
    volume = sphere_volume()
    case.save_volume(volume)
    host, panel, views, _state = _build(qtbot, volume)
    panel.set_actor(actor)
    panel.attach(volume, None, case)
    QtWidgets.QApplication.processEvents()
    yield panel, views["axial"], actor, case
    panel.worker.cancel()
    panel.worker.wait(10.0)
    host.close()


def _rgb_at(view, ijk, volume) -> np.ndarray:
    from tests.ui.conftest import grab_array

    point = view.lps_to_screen(volume.index_to_lps(ijk))
    x, y = round(point.x()), round(point.y())
    return grab_array(view)[y - 1 : y + 2, x - 1 : x + 2].reshape(-1, 3).mean(axis=0)


def test_threshold_tool_through_the_panel_then_undo(editor, qtbot, ct_volume):
    panel, axial, state = editor
    panel.select_tool("threshold")
    redrawn_for_preview = []
    state.previewChanged.connect(lambda: redrawn_for_preview.append(1))
    with qtbot.waitSignal(panel.worker.done, timeout=60_000):
        panel.apply_current(preset="bone", segment="")
    assert redrawn_for_preview == []  # no preview was shown: none is cleared (a redraw each)
    assert [s.name for s in panel.seg.segments] == ["bone"] or panel.seg.segments[
        0
    ].name.startswith("bone")
    segment = panel.seg.segments[0]
    expected = (ct_volume.array >= 226) & (ct_volume.array <= 3071)
    assert np.array_equal(panel.seg.mask(segment), expected)
    assert state.labels is panel.seg.labels  # the overlay reads the labels, no copy
    assert panel.table.rowCount() == 1
    qtbot.waitUntil(
        lambda: panel.table.item(0, 3).text() != "…", timeout=30_000
    )  # counted in a thread
    assert float(panel.table.item(0, 3).text()) > 100

    k = axial.slice_index
    j, i = np.argwhere(
        expected[k]
        & np.roll(expected[k], 1, 0)
        & np.roll(expected[k], -1, 0)
        & np.roll(expected[k], 1, 1)
        & np.roll(expected[k], -1, 1)
    )[0]
    before_undo = _rgb_at(axial, (i, j, k), ct_volume)
    assert panel.can_undo()
    panel.undo()  # removes the segment and its voxels
    qtbot.waitUntil(lambda: not panel.seg.segments)
    assert not panel.seg.labels.any()
    after_undo = _rgb_at(axial, (i, j, k), ct_volume)
    assert abs(before_undo - after_undo).sum() > 30  # the colour is gone from the view


def test_paint_stroke_with_the_mouse_and_undo(editor, qtbot, ct_volume):
    panel, axial, _state = editor
    panel.add_segment()
    panel.radius.setValue(4.0)
    panel.paint.setChecked(True)
    assert axial.tool == "stroke"
    start, end = QtCore.QPoint(200, 250), QtCore.QPoint(320, 260)
    middle = axial.screen_to_lps(QtCore.QPointF((start + end) / 2))
    i, j, k = np.rint(ct_volume.lps_to_index(middle)).astype(int)
    before = _rgb_at(axial, (i, j, k), ct_volume)
    qtbot.mousePress(axial, QtCore.Qt.MouseButton.LeftButton, pos=start)
    for t in np.linspace(0, 1, 6)[1:]:
        p = QtCore.QPointF(start + (end - start) * t)
        move = QtGui.QMouseEvent(
            QtCore.QEvent.Type.MouseMove,
            p,
            axial.mapToGlobal(p),
            QtCore.Qt.MouseButton.NoButton,
            QtCore.Qt.MouseButton.LeftButton,
            QtCore.Qt.KeyboardModifier.NoModifier,
        )
        QtWidgets.QApplication.sendEvent(axial, move)
    qtbot.mouseRelease(axial, QtCore.Qt.MouseButton.LeftButton, pos=end)

    segment = panel.seg.segments[0]
    mask = panel.seg.mask(segment)
    assert k == axial.slice_index
    assert mask[k].sum() > 50 and mask.sum() == mask[k].sum()  # a 2D brush on this slice only
    assert mask[k, j, i]
    after = _rgb_at(axial, (i, j, k), ct_volume)
    colour = np.array(segment.color) * 255
    # The painted pixel moved towards the segment colour (50% opacity overlay).
    assert np.linalg.norm(after - colour) < np.linalg.norm(before - colour) - 20
    assert len(panel.seg.history.undo_stack) == 2  # add segment + one stroke
    panel.undo()
    assert not panel.seg.mask(segment).any()
    panel.paint.setChecked(False)
    assert axial.tool == "navigate"


def _drag(view, start: QtCore.QPointF, end: QtCore.QPointF, qtbot) -> None:
    qtbot.mousePress(view, QtCore.Qt.MouseButton.LeftButton, pos=start.toPoint())
    for t in np.linspace(0, 1, 6)[1:]:
        p = start + (end - start) * t
        move = QtGui.QMouseEvent(
            QtCore.QEvent.Type.MouseMove,
            p,
            view.mapToGlobal(p),
            QtCore.Qt.MouseButton.NoButton,
            QtCore.Qt.MouseButton.LeftButton,
            QtCore.Qt.KeyboardModifier.NoModifier,
        )
        QtWidgets.QApplication.sendEvent(view, move)
    qtbot.mouseRelease(view, QtCore.Qt.MouseButton.LeftButton, pos=end.toPoint())


def _actions(actor, action: str) -> list[dict]:
    return [r for r in audit.read_records(actor.paths) if r["action"] == action]


def test_on_a_case_tools_strokes_saves_and_exports_are_audited(on_case, qtbot, tmp_path):
    panel, axial, actor, case = on_case
    panel.select_tool("threshold")
    with qtbot.waitSignal(panel.worker.done, timeout=60_000):
        panel.apply_current(preset="bone", segment="")
    assert panel.seg.voxel_count("bone") > 0
    panel.add_segment()
    panel.paint.setChecked(True)
    k = axial.slice_index
    volume = panel.volume
    _drag(
        axial,
        axial.lps_to_screen(volume.index_to_lps((10, 10, k))),
        axial.lps_to_screen(volume.index_to_lps((30, 12, k))),
        qtbot,
    )
    assert panel.seg.voxel_count(panel.seg.segments[1]) > 0
    panel.save(case)
    saved = segment.load(actor, case, volume)
    assert np.array_equal(saved.labels, panel.seg.labels)
    out = tmp_path / "panel.seg.nrrd"
    with qtbot.waitSignal(panel.worker.finished, timeout=60_000):
        panel.export_to(out)
    assert panel.message.text().startswith("Exported"), panel.message.text()
    assert out.read_bytes().startswith(b"NRRD0004")

    tools = [r["facts"]["tool"] for r in _actions(actor, "segmentation.apply")]
    assert tools == ["threshold", "paint"]
    [save] = _actions(actor, "segmentation.save")
    assert save["case"] == case.pseudonym and save["facts"]["segments"] == 2
    [export] = _actions(actor, "segmentation.export")
    assert export["facts"]["format"] == "seg.nrrd"

    panel.seg.remove_segment("bone")
    with qtbot.waitSignal(panel.worker.done, timeout=60_000):
        panel.import_from(out)
    assert [s.name for s in panel.seg.segments] == [s.name for s in saved.segments]
    assert "Imported 2 segment" in panel.message.text()
    assert len(_actions(actor, "segmentation.import")) == 1


def test_a_reviewer_is_refused_in_the_panel_and_the_refusal_audited(on_case, qtbot):
    panel, axial, actor, _case = on_case
    panel.set_actor(person(actor, "rafael", "reviewer"))
    panel.select_tool("threshold")
    with qtbot.waitSignal(panel.worker.error, timeout=60_000):
        panel.apply_current(preset="bone", segment="")
    assert "may not segment" in panel.message.text()
    assert not panel.seg.segments
    panel.add_segment()
    panel.paint.setChecked(True)
    k = axial.slice_index
    start = axial.lps_to_screen(panel.volume.index_to_lps((10, 10, k)))
    _drag(axial, start, start + QtCore.QPointF(40, 5), qtbot)
    assert not panel.seg.labels.any() and "may not segment" in panel.message.text()
    denied = _actions(actor, "access.denied")
    assert [r["user"] for r in denied] == ["rafael", "rafael"]
    assert not _actions(actor, "segmentation.apply")


def test_threshold_preview_follows_the_form(editor, ct_volume):
    panel, axial, state = editor
    panel.select_tool("threshold")
    assert state.preview is None  # nothing tinted until a range is touched
    widgets = panel.form.widgets
    widgets["preset"][1].setCurrentText("compact-bone")
    assert state.preview[:2] == (662.0, 1988.0)
    widgets["preset"][1].setCurrentText("custom")
    widgets["lower"][1].setValue(-100.0)
    widgets["upper"][1].setValue(100.0)
    assert state.preview[:2] == (-100.0, 100.0)
    k = axial.slice_index
    from scipy import ndimage

    inside = ndimage.binary_erosion(
        (ct_volume.array[k] >= -100) & (ct_volume.array[k] <= 100), iterations=3
    )
    j, i = np.argwhere(inside)[len(np.argwhere(inside)) // 2]
    tinted = _rgb_at(axial, (i, j, k), ct_volume)
    panel.preview.setChecked(False)
    assert state.preview is None
    plain = _rgb_at(axial, (i, j, k), ct_volume)
    assert tinted[2] > plain[2] + 40  # the preview colour is blue-ish
