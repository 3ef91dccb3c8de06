"""The linked views on the real CT: rendering, scrolling, crosshair, window presets, overlay,
measurements and the 3D view."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6 import QtCore, QtGui, QtWidgets

from tests.ui.conftest import grab_array


@pytest.fixture(scope="module")
def area(styled_app, ct_volume):
    from app.viewers.layout import ViewArea

    widget = ViewArea()
    widget.resize(1000, 820)
    widget.show()
    widget.show_volume(ct_volume, "bone")
    QtWidgets.QApplication.processEvents()
    yield widget
    widget.view3d.close()
    widget.close()
    widget.deleteLater()


@pytest.fixture
def fresh(area, ct_volume):
    """The shared area reset to bone window, centre crosshair, navigate tool."""
    area.set_tool("navigate")
    area.clear_measurements()
    area.state.set_labels(None)
    area.state.apply_preset("bone")
    ni, nj, _nk = ct_volume.size_ijk
    area.state.set_cursor(ct_volume.index_to_lps([(ni - 1) / 2, (nj - 1) / 2, 80]))
    for view in area.slice_views.values():
        view.reset_view()
    QtWidgets.QApplication.processEvents()
    return area


def _pixel(view, lps) -> np.ndarray:
    """Mean RGB of a 3×3 screen patch at an LPS point of the view's current slice."""
    image = grab_array(view)
    point = view.lps_to_screen(np.asarray(lps, float))
    x, y = round(point.x()), round(point.y())
    return image[y - 1 : y + 2, x - 1 : x + 2].reshape(-1, 3).mean(axis=0)


def _solid_voxels(volume, k: int, low: float, high: float, margin: int = 2) -> np.ndarray:
    """(i, j, k) of voxels on slice k whose whole 5×5 neighbourhood lies in [low, high]."""
    from scipy import ndimage

    plane = volume.array[k].astype(np.float32)
    inside = (plane >= low) & (plane <= high)
    inside = ndimage.binary_erosion(inside, iterations=margin)
    j, i = np.nonzero(inside)
    return np.stack([i, j, np.full_like(i, k)], axis=1)


def _away_from_lines(view, candidates, volume) -> np.ndarray:
    """A candidate voxel whose screen point is away from the crosshair lines and text."""
    cross = view.crosshair_screen()
    for ijk in candidates[:: max(1, len(candidates) // 200)]:
        p = view.lps_to_screen(volume.index_to_lps(ijk))
        if (
            abs(p.x() - cross.x()) > 12
            and abs(p.y() - cross.y()) > 12
            and 40 < p.y() < view.height() - 30
        ):
            return ijk
    pytest.fail("no voxel away from the crosshair")


def test_slice_views_render_bone_where_bone_is(fresh, ct_volume, artifacts):
    axial = fresh.slice_views["axial"]
    k = axial.slice_index
    bone = _away_from_lines(axial, _solid_voxels(ct_volume, k, 700, 3000, margin=1), ct_volume)
    air = _away_from_lines(axial, _solid_voxels(ct_volume, k, -1100, -900, margin=3), ct_volume)
    bone_rgb = _pixel(axial, ct_volume.index_to_lps(bone))
    air_rgb = _pixel(axial, ct_volume.index_to_lps(air))
    # Bone window W2000/L400: >= 700 HU is at least 166 grey; air is black.
    assert bone_rgb.min() >= 150, bone_rgb
    assert air_rgb.max() <= 25, air_rgb
    for orientation, view in fresh.slice_views.items():
        image = grab_array(view)
        assert image.std() > 20, f"{orientation} view looks blank"
        assert view.geometry_ is not None and view.n_slices > 1
    fresh.snapshot().save(str(artifacts / "views-four-up.png"))


def test_three_d_view_renders_bone(fresh, artifacts):
    view3d = fresh.view3d
    view3d.set_preset("CT bone")
    view3d.camera_preset("anterior")
    image = view3d.image().astype(int)
    assert image.std() > 10
    red, blue = image[..., 0], image[..., 2]
    bone_like = (red > blue + 25) & (red > 90)  # the background is blue-grey, bone is ivory/brown
    height, width = bone_like.shape
    assert bone_like.sum() > 0.05 * bone_like.size, (
        "no bone-coloured pixels in the CT bone rendering"
    )
    # Seen from the front the spine runs down the middle of the picture ...
    assert (
        bone_like[
            int(height * 0.3) : int(height * 0.7), int(width * 0.45) : int(width * 0.55)
        ].mean()
        > 0.4
    )
    # ... and the edges are background.
    assert bone_like[:, :20].mean() < 0.02 and bone_like[:, -20:].mean() < 0.02
    view3d.screenshot(artifacts / "view3d-bone-anterior.png")
    assert (artifacts / "view3d-bone-anterior.png").stat().st_size > 10_000


def test_three_d_presets_camera_and_clipping_change_the_image(fresh, ct_volume):
    view3d = fresh.view3d
    view3d.set_preset("CT bone")
    view3d.camera_preset("anterior")
    front = view3d.image()
    view3d.camera_preset("left")
    side = view3d.image()
    view3d.set_preset("CT skin")
    skin = view3d.image()
    centre_x = float(ct_volume.bounds_lps().mean(axis=0)[0])
    view3d.camera_preset("right")
    whole = view3d.image()
    view3d.set_clipping("sagittal", centre_x)  # keeps the patient's left half: the cut faces us
    clipped = view3d.image()
    view3d.set_clipping(None)
    view3d.set_preset("CT bone")
    view3d.camera_preset("anterior")
    for a, b in [(front, side), (side, skin), (whole, clipped)]:
        assert np.abs(a.astype(int) - b.astype(int)).mean() > 2


def test_three_d_shows_a_mesh(fresh):
    import pyvista as pv

    view3d = fresh.view3d
    centre = fresh.state.volume.bounds_lps().mean(axis=0)
    view3d.set_preset("off")
    before = view3d.image()
    view3d.add_mesh("ball", pv.Sphere(radius=60, center=centre), color=(0.9, 0.2, 0.2), opacity=1.0)
    after = view3d.image()
    assert "ball" in view3d.mesh_names()
    view3d.set_mesh_style("ball", opacity=0.4)
    colour, opacity, visible = view3d.mesh_style("ball")
    assert opacity == pytest.approx(0.4) and visible and colour[0] > 0.8
    view3d.set_mesh_style("ball", opacity=1.0)
    reddish = (after[..., 0].astype(int) > 150) & (after[..., 1] < 100)
    assert reddish.sum() > 1000 and not np.array_equal(before, after)
    view3d.remove_mesh("ball")
    view3d.set_preset("CT bone")


def _wheel(widget, steps: int, pos: QtCore.QPointF | None = None) -> None:
    pos = pos or QtCore.QPointF(widget.width() / 2, widget.height() / 2)
    event = QtGui.QWheelEvent(
        pos,
        widget.mapToGlobal(pos),
        QtCore.QPoint(0, 0),
        QtCore.QPoint(0, 120 * steps),
        QtCore.Qt.MouseButton.NoButton,
        QtCore.Qt.KeyboardModifier.NoModifier,
        QtCore.Qt.ScrollPhase.NoScrollPhase,
        False,
    )
    QtWidgets.QApplication.sendEvent(widget, event)


def test_scrolling_changes_slice_and_readout(fresh, qtbot):
    panel = fresh.panels["axial"]
    axial = panel.view
    hover = QtCore.QPoint(axial.width() // 2 + 37, axial.height() // 2 + 23)
    qtbot.mouseMove(axial, hover)
    qtbot.waitUntil(lambda: axial.readout() != "")
    first_slice, first_readout, first_label = (
        axial.slice_index,
        axial.readout(),
        axial.slice_label(),
    )
    assert "HU" in first_readout and "mm LPS" in first_readout

    _wheel(axial, +1, QtCore.QPointF(hover))
    assert axial.slice_index == first_slice + 1
    assert axial.readout() != first_readout  # z of the point under the mouse moved by one slice
    assert axial.slice_label() != first_label
    assert panel.slider.value() == axial.slice_index

    qtbot.keyClick(axial, QtCore.Qt.Key.Key_Down)
    qtbot.keyClick(axial, QtCore.Qt.Key.Key_Down)
    assert axial.slice_index == first_slice - 1
    panel.slider.setValue(10)
    assert axial.slice_index == 10
    z_mm = float(axial.slice_label().split()[1])
    assert z_mm == pytest.approx(fresh.state.volume.index_to_lps([0, 0, 10])[2], abs=0.05)


def test_click_moves_crosshair_in_the_other_views(fresh, qtbot, ct_volume):
    axial = fresh.slice_views["axial"]
    target = QtCore.QPoint(axial.width() // 2 - 61, axial.height() // 2 + 44)
    qtbot.mouseClick(axial, QtCore.Qt.MouseButton.LeftButton, pos=target)
    clicked = axial.screen_to_lps(QtCore.QPointF(target))
    cursor = fresh.state.cursor
    spacing = np.array(ct_volume.spacing)
    assert np.all(np.abs(cursor - clicked) <= spacing / 2 + 1e-6)

    ijk = np.rint(ct_volume.lps_to_index(cursor)).astype(int)
    coronal, sagittal = fresh.slice_views["coronal"], fresh.slice_views["sagittal"]
    assert coronal.slice_index == ijk[1]
    assert sagittal.slice_index == ijk[0]
    for view in (coronal, sagittal):
        seen = view.screen_to_lps(view.crosshair_screen())
        assert np.allclose(seen, cursor, atol=1e-6), view.orientation

    # And back: a click in the sagittal view moves the axial slice to the clicked height.
    qtbot.mouseClick(
        sagittal,
        QtCore.Qt.MouseButton.LeftButton,
        pos=QtCore.QPoint(sagittal.width() // 2, sagittal.height() // 3),
    )
    k = int(np.rint(ct_volume.lps_to_index(fresh.state.cursor)[2]))
    assert axial.slice_index == k


def test_window_presets_change_the_displayed_range(fresh, ct_volume):
    axial = fresh.slice_views["axial"]
    k = axial.slice_index
    tissue = _away_from_lines(axial, _solid_voxels(ct_volume, k, 30, 70, margin=2), ct_volume)
    lps = ct_volume.index_to_lps(tissue)
    ranges, greys = {}, {}
    for preset in ("bone", "soft tissue", "lung", "brain"):
        fresh.state.apply_preset(preset)
        ranges[preset] = axial.displayed_range()
        greys[preset] = _pixel(axial, lps).mean()
    assert ranges["bone"] == (-600.0, 1400.0)
    assert ranges["soft tissue"] == (-160.0, 240.0)
    assert ranges["lung"] == (-1350.0, 150.0)
    assert ranges["brain"] == (0.0, 80.0)
    # Soft tissue (~50 HU) is mid grey in the soft-tissue window, dark in bone, bright in lung.
    assert greys["bone"] < greys["soft tissue"] < greys["lung"]
    fresh.state.apply_preset("auto")
    low, high = axial.displayed_range()
    assert low < 0 < high and fresh.state.window_preset == "auto"


def test_right_drag_changes_window_and_level(fresh, qtbot):
    axial = fresh.slice_views["axial"]
    width, level = fresh.state.window
    start = QtCore.QPoint(200, 200)
    qtbot.mousePress(axial, QtCore.Qt.MouseButton.RightButton, pos=start)
    move = QtGui.QMouseEvent(
        QtCore.QEvent.Type.MouseMove,
        QtCore.QPointF(260, 170),
        QtCore.QPointF(260, 170),
        QtCore.Qt.MouseButton.NoButton,
        QtCore.Qt.MouseButton.RightButton,
        QtCore.Qt.KeyboardModifier.NoModifier,
    )
    QtWidgets.QApplication.sendEvent(axial, move)
    qtbot.mouseRelease(axial, QtCore.Qt.MouseButton.RightButton, pos=QtCore.QPoint(260, 170))
    new_width, new_level = fresh.state.window
    assert new_width > width and new_level > level


def test_segmentation_overlay_fill_and_outline(fresh, ct_volume):
    axial = fresh.slice_views["axial"]
    labels = np.zeros(ct_volume.shape, dtype=np.uint8)
    labels[ct_volume.array > 150] = 1
    fresh.state.set_labels(labels, {1: (255, 0, 0)})
    fresh.state.set_overlay_style(opacity=0.8, outline=False)
    k = axial.slice_index
    # A voxel deep inside the segment (7×7 neighbourhood), so outline mode leaves it unpainted.
    bone = _away_from_lines(axial, _solid_voxels(ct_volume, k, 151, 3000, margin=3), ct_volume)
    r, g, b = _pixel(axial, ct_volume.index_to_lps(bone))
    assert r > 150 and r > g + 60 and r > b + 60  # red over bone
    fresh.state.set_overlay_style(outline=True)
    r2, g2, _b2 = _pixel(axial, ct_volume.index_to_lps(bone))
    assert r2 - g2 < 30  # the inside of a segment is not painted in outline mode
    fresh.state.set_overlay_style(outline=False, visible=False)
    r3, g3, _ = _pixel(axial, ct_volume.index_to_lps(bone))
    assert abs(r3 - g3) < 10
    fresh.state.set_overlay_style(visible=True, opacity=0.5)


def test_ruler_and_angle_measure_in_mm_and_degrees(fresh, qtbot, ct_volume):
    axial = fresh.slice_views["axial"]
    fresh.set_tool("ruler")
    a, b = QtCore.QPoint(150, 200), QtCore.QPoint(330, 200)
    qtbot.mousePress(axial, QtCore.Qt.MouseButton.LeftButton, pos=a)
    drag = QtGui.QMouseEvent(
        QtCore.QEvent.Type.MouseMove,
        QtCore.QPointF(b),
        QtCore.QPointF(b),
        QtCore.Qt.MouseButton.NoButton,
        QtCore.Qt.MouseButton.LeftButton,
        QtCore.Qt.KeyboardModifier.NoModifier,
    )
    QtWidgets.QApplication.sendEvent(axial, drag)
    qtbot.mouseRelease(axial, QtCore.Qt.MouseButton.LeftButton, pos=b)
    assert len(axial.measurements) == 1
    expected = (b.x() - a.x()) / axial.zoom  # screen pixels / (pixels per mm)
    assert axial.measurements[0].value() == pytest.approx(expected, rel=1e-6)

    fresh.set_tool("angle")
    for point in (QtCore.QPoint(300, 150), QtCore.QPoint(200, 150), QtCore.QPoint(200, 250)):
        qtbot.mouseClick(axial, QtCore.Qt.MouseButton.LeftButton, pos=point)
    angle = axial.measurements[-1]
    assert angle.kind == "angle" and angle.value() == pytest.approx(90.0, abs=1e-6)
    fresh.set_tool("navigate")


def test_layouts(fresh, qtbot):
    axial = fresh.slice_views["axial"]
    four_up_zoom = axial.zoom
    fresh.set_layout("axial")
    QtWidgets.QApplication.processEvents()
    assert axial.zoom > four_up_zoom  # the single view is larger and the slice fills it
    assert fresh.panels["axial"].isVisible() and not fresh.view3d.isVisible()
    fresh.set_layout("3d")
    assert fresh.view3d.isVisible() and not fresh.panels["axial"].isVisible()
    fresh.set_layout("four-up")
    QtWidgets.QApplication.processEvents()
    assert all(p.isVisible() for p in fresh.panels.values()) and fresh.view3d.isVisible()
    assert axial.zoom == pytest.approx(four_up_zoom)  # back to the same framing
    coronal = fresh.slice_views["coronal"]
    qtbot.mouseDClick(coronal, QtCore.Qt.MouseButton.LeftButton, pos=QtCore.QPoint(100, 100))
    assert fresh.layout_name == "coronal" and not fresh.panels["axial"].isVisible()
    qtbot.mouseDClick(coronal, QtCore.Qt.MouseButton.LeftButton, pos=QtCore.QPoint(100, 100))
    assert fresh.layout_name == "four-up"
