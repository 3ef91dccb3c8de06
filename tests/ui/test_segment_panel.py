"""The Segment panel on the real CT: a threshold tool through the worker, a painted stroke with
the mouse, the overlay showing both, and undo restoring the labels exactly."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6 import QtCore, QtGui, QtWidgets

pytest.importorskip("app.tools.segmentation.base")


@pytest.fixture
def editor(styled_app, qtbot, ct_volume):
    from app.ui.segment_panel import SegmentPanel
    from app.viewers.slice_view import SliceView
    from app.viewers.state import ViewerState

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
    state.set_volume(ct_volume, "bone")
    panel.connect_views(list(views.values()))
    panel.attach(ct_volume)
    QtWidgets.QApplication.processEvents()
    yield panel, views["axial"], state
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
    with qtbot.waitSignal(panel.worker.done, timeout=60_000):
        panel.apply_current(preset="bone", segment="")
    assert [s.name for s in panel.seg.segments] == ["bone"] or panel.seg.segments[
        0
    ].name.startswith("bone")
    segment = panel.seg.segments[0]
    expected = (ct_volume.array >= 226) & (ct_volume.array <= 3071)
    assert np.array_equal(panel.seg.mask(segment), expected)
    assert state.labels is panel.seg.labels  # the overlay reads the labels, no copy
    assert panel.table.rowCount() == 1 and float(panel.table.item(0, 3).text()) > 100

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


def test_save_and_reload_through_bytes(editor, qtbot):
    from app.tools.segmentation import Segmentation

    panel, _axial, _state = editor
    panel.select_tool("threshold")
    with qtbot.waitSignal(panel.worker.done, timeout=60_000):
        panel.apply_current(preset="bone", segment="")

    class FakeCase:
        def __init__(self) -> None:
            self.saved: dict[str, bytes] = {}

        def save_bytes(self, name, data):
            self.saved[name] = data

    case = FakeCase()
    panel.save(case)
    restored = Segmentation.from_bytes(case.saved["segmentation.seg"])
    assert np.array_equal(restored.labels, panel.seg.labels)
    assert [s.name for s in restored.segments] == [s.name for s in panel.seg.segments]


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
