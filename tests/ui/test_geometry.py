"""Slice geometry and windowing maths (no widgets): orientation, coordinates, letters, LUTs."""

from __future__ import annotations

import numpy as np
import pytest

from app.imaging.volume import Volume
from app.viewers.geometry import SliceGeometry, direction_letters
from app.viewers.windowing import (
    WindowLut,
    label_colors,
    outline_of,
    overlay_rgba,
    premultiplied,
)


def _volume(direction=None, shape=(5, 6, 7), spacing=(0.5, 0.75, 2.0)) -> Volume:
    direction = np.eye(3) if direction is None else direction
    array = np.arange(np.prod(shape), dtype=np.int16).reshape(shape)
    return Volume(
        array, origin=(10.0, -20.0, 30.0), spacing=spacing, direction=direction, modality="CT"
    )


@pytest.mark.parametrize("orientation", ["axial", "coronal", "sagittal"])
@pytest.mark.parametrize(
    "direction",
    [
        np.eye(3),
        np.diag([-1.0, -1.0, 1.0]),  # RAS-stored volume
        np.array([[0, 0, 1], [1, 0, 0], [0, -1, 0]], dtype=float),  # sagittal acquisition
    ],
)
def test_display_and_lps_round_trip(orientation, direction):
    volume = _volume(direction)
    geo = SliceGeometry.for_volume(volume, orientation)
    for col, row, s in [
        (0, 0, 0),
        (geo.width - 1, geo.height - 1, geo.n_slices - 1),
        (1.5, 2.25, 1),
    ]:
        lps = geo.display_to_lps(col, row, s)
        assert np.allclose(lps, volume.index_to_lps(geo.display_to_index(col, row, s)))
        assert np.allclose(geo.lps_to_display(lps), (col, row, s))


@pytest.mark.parametrize(
    "direction",
    [
        np.eye(3),
        np.diag([-1.0, -1.0, 1.0]),
        np.array([[0, 0, 1], [1, 0, 0], [0, -1, 0]], dtype=float),
    ],
)
def test_screen_axes_follow_radiological_convention(direction):
    """Screen right is patient left (axial, coronal) or posterior (sagittal); screen down is
    posterior (axial) or inferior (coronal, sagittal) — whatever the storage order."""
    volume = _volume(direction)
    expected = {"axial": ("L", "P"), "coronal": ("L", "I"), "sagittal": ("P", "I")}
    for orientation, (right, down) in expected.items():
        geo = SliceGeometry.for_volume(volume, orientation)
        step_right = geo.display_to_lps(1, 0, 0) - geo.display_to_lps(0, 0, 0)
        step_down = geo.display_to_lps(0, 1, 0) - geo.display_to_lps(0, 0, 0)
        assert direction_letters(step_right) == right
        assert direction_letters(step_down) == down
        letters = geo.edge_letters()
        assert letters["right"] == right and letters["bottom"] == down


def test_slice_is_a_view_with_the_right_values():
    volume = _volume(np.array([[0, 0, 1], [1, 0, 0], [0, -1, 0]], dtype=float))
    for orientation in ("axial", "coronal", "sagittal"):
        geo = SliceGeometry.for_volume(volume, orientation)
        plane = geo.slice_of(volume.array, 2 % geo.n_slices)
        assert np.shares_memory(plane, volume.array)  # no copy of the volume per frame
        assert plane.shape == (geo.height, geo.width)
        for row, col in [(0, 0), (geo.height - 1, geo.width - 1), (1, 2)]:
            i, j, k = np.rint(geo.display_to_index(col, row, 2 % geo.n_slices)).astype(int)
            assert plane[row, col] == volume.array[k, j, i]


def test_oblique_letters_and_slice_position():
    angle = np.radians(30)
    tilt = np.array(
        [[1, 0, 0], [0, np.cos(angle), -np.sin(angle)], [0, np.sin(angle), np.cos(angle)]]
    )
    geo = SliceGeometry.for_volume(_volume(tilt), "axial")
    assert geo.edge_letters()["bottom"] == "PS"  # rows run posterior, and 30° towards superior
    letter, mm = geo.slice_position_mm(0)
    assert letter == "S"
    centre = geo.display_to_lps((geo.width - 1) / 2, (geo.height - 1) / 2, 0)
    assert mm == pytest.approx(centre[2])


def test_window_lut_matches_arithmetic():
    values = np.array([[-1024, -600, 0], [40, 400, 3071]], dtype=np.int16)
    lut = WindowLut(400.0, 40.0)
    grey = lut.apply(values)
    expected = np.clip((values.astype(float) - (40 - 200)) * 255 / 400, 0, 255).astype(np.uint8)
    assert np.array_equal(grey, expected)
    assert np.array_equal(lut.apply(values.astype(np.float32)), expected)


def test_overlay_colours_and_outline():
    labels = np.zeros((7, 7), dtype=np.uint8)
    labels[2:5, 2:5] = 1
    table = label_colors(1, {1: (255, 0, 0)}, opacity=0.5)
    rgba = overlay_rgba(labels, table)
    assert tuple(rgba[3, 3]) == (255, 0, 0, 128) and rgba[0, 0, 3] == 0
    edge = outline_of(labels)
    assert edge[3, 3] == 0 and edge[2, 2] == 1 and edge[2, 3] == 1
    shaded = overlay_rgba(labels, premultiplied(table))  # what the slice views draw
    assert tuple(shaded[3, 3]) == (128, 0, 0, 128) and tuple(shaded[0, 0]) == (0, 0, 0, 0)
    labels[0, 0] = 9  # a value past the table's end takes its last colour
    assert tuple(overlay_rgba(labels, table)[0, 0]) == (255, 0, 0, 128)


def test_real_sagittal_mr_is_shown_in_anatomical_orientation(styled_app, dicom_dir):
    """The Philips MR is stored sagittally (columns run A→P, rows S→I, slices R→L); the views
    still show radiological axial/coronal/sagittal planes with the right letters."""
    from app.imaging.load import load_series
    from app.viewers.slice_view import SliceView
    from app.viewers.state import ViewerState

    folder = dicom_dir / "mr-brain-t1-sagittal-philips-170"
    if not folder.is_dir():
        pytest.skip("MR series not in the shared data")
    volume = load_series(folder)
    state = ViewerState()
    views = {o: SliceView(state, o) for o in ("axial", "coronal", "sagittal")}
    state.set_volume(volume, "auto")
    expected = {
        "axial": {"left": "R", "right": "L", "top": "A", "bottom": "P"},
        "coronal": {"left": "R", "right": "L", "top": "S", "bottom": "I"},
        "sagittal": {"left": "A", "right": "P", "top": "S", "bottom": "I"},
    }
    for orientation, view in views.items():
        assert view.geometry_.edge_letters() == expected[orientation]
    # The sagittal view scrolls through the acquired slices, the others through rows/columns.
    assert views["sagittal"].n_slices == volume.shape[0]
    low, high = views["axial"].displayed_range()
    assert low < high and state.window_preset == "auto"
