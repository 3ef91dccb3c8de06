"""Every tool on small phantoms with known answers (anisotropic spacing, rotated axes)."""

from __future__ import annotations

import numpy as np
import pytest

from app.errors import Cancelled, SegmentationError
from app.progress import CancelToken, Progress
from app.tools.segmentation import Segmentation, get_tool, registry

from .conftest import ball_mask


def run(seg, volume, name, **params):
    tool = get_tool(name)
    return tool.apply(seg, volume, tool.default_params(**params))


def ball_segment(volume, radius_mm=12.0, name="ball"):
    seg = Segmentation(volume)
    s = seg.add_segment(name)
    centre = np.array(volume.shape) / 2
    spacing_kji = volume.spacing[::-1]
    seg.modify(s, ball_mask(volume.shape, spacing_kji, centre, radius_mm))
    return seg


def test_every_tool_has_name_help_and_parameter_specs():
    reg = registry()
    assert not reg.errors
    assert len(reg.names()) >= 13
    for tool in reg.tools.values():
        assert tool.name and tool.title and tool.help
        for spec in tool.specs():
            assert spec.label and spec.kind


def test_threshold_presets_custom_percentile_and_otsu(small_volume):
    seg = Segmentation(small_volume)
    result = run(seg, small_volume, "threshold", preset="compact-bone")
    assert result.values == {"lower": 662, "upper": 1988}
    assert np.array_equal(seg.mask("compact-bone"), small_volume.array == 700)
    run(seg, small_volume, "threshold", segment="body", preset="custom", lower=-500, upper=800)
    assert np.array_equal(seg.mask("body"), small_volume.array >= -500)
    run(seg, small_volume, "threshold", segment="auto", method="otsu")
    assert seg.mask("auto")[small_volume.array == 700].all()
    assert not seg.mask("auto")[small_volume.array == -1000].any()
    r = run(seg, small_volume, "threshold", segment="mr", method="percentile", percentile_low=50)
    assert r.values["lower"] <= 700 <= r.values["upper"]
    with pytest.raises(SegmentationError, match="swap"):
        run(seg, small_volume, "threshold", preset="custom", lower=500, upper=100)


def test_threshold_preview_matches_apply(small_volume):
    from app.tools.segmentation.threshold import ThresholdParams, preview

    params = ThresholdParams(preset="bone")
    plane = preview(small_volume, params, 20)
    assert plane.shape == small_volume.shape[1:]
    assert np.array_equal(plane, small_volume.array[20] >= 226)
    coronal = preview(small_volume, params, 25, axis="j")
    assert np.array_equal(coronal, small_volume.array[:, 25] >= 226)


@pytest.mark.parametrize("dtype", [np.int16, np.uint16, np.int8, np.uint8, np.int32, np.float32])
def test_threshold_mask_is_the_inclusive_range_at_the_type_limits(dtype):
    from app.tools.segmentation.threshold import threshold_mask

    info = np.iinfo(dtype) if np.issubdtype(dtype, np.integer) else np.finfo(dtype)
    rng = np.random.default_rng(3)
    array = rng.uniform(float(info.min), float(info.max), (5, 33, 35)).astype(dtype)
    array.flat[:4] = [info.min, info.max, 0, 1]
    ranges = [(226, 3071), (info.min, info.max), (-5.5, 7.2), (0, 0), (3, 2), (-1e38, 1e38)]
    for lower, upper in ranges:
        expected = (array >= lower) & (array <= upper)
        assert np.array_equal(threshold_mask(array, lower, upper), expected), (lower, upper)
        assert np.array_equal(threshold_mask(array[:, 3], lower, upper), expected[:, 3])


def test_overlay_slice_colours_visible_segments(small_volume):
    from app.tools.segmentation.overlay import overlay_slice

    seg = Segmentation(small_volume)
    run(seg, small_volume, "threshold", preset="compact-bone")
    rgba = overlay_slice(seg, "k", 20, opacity=0.5)
    ball = small_volume.array[20] == 700
    assert rgba.shape == (*small_volume.shape[1:], 4)
    assert (rgba[ball, 3] == 128).all() and (rgba[~ball, 3] == 0).all()
    assert overlay_slice(seg, "i", 30, outline=True)[..., 3].sum() < rgba[..., 3].sum()
    seg.update_segment("compact-bone", visible=False)
    assert not overlay_slice(seg, "k", 20).any()


def test_margin_grows_and_shrinks_by_whole_voxels_per_axis(small_volume):
    # spacing (i, j, k) = (0.8, 1.0, 2.0): 2 mm is 2 voxels in j, 1 in k, round(2.5)=2 in i
    seg = ball_segment(small_volume, 8.0)
    before = seg.mask("ball").copy()
    run(seg, small_volume, "margin", segment="ball", margin_mm=2.0)
    after = seg.mask("ball")
    assert before[after].sum() == before.sum() and after.sum() > before.sum()
    k, j, i = (np.array(small_volume.shape) / 2).astype(int)
    k_line_before = before[:, j, i].sum()
    k_line_after = after[:, j, i].sum()
    j_line_before, j_line_after = before[k, :, i].sum(), after[k, :, i].sum()
    i_line_before, i_line_after = before[k, j, :].sum(), after[k, j, :].sum()
    assert k_line_after - k_line_before == 2  # 1 voxel each side
    assert j_line_after - j_line_before == 4
    assert i_line_after - i_line_before == 2 * round(2.0 / 0.8)
    seg.undo()
    assert np.array_equal(seg.mask("ball"), before)
    run(seg, small_volume, "margin", segment="ball", margin_mm=-2.0)
    shrunk = seg.mask("ball")
    assert before[k, :, i].sum() - shrunk[k, :, i].sum() == 4
    with pytest.raises(SegmentationError, match="0 mm"):
        run(seg, small_volume, "margin", segment="ball", margin_mm=0.0)
    with pytest.raises(SegmentationError, match="outside"):
        run(seg, small_volume, "margin", segment="ball", margin_mm=500.0)


@pytest.mark.parametrize("side", ["inside", "outside", "centered"])
def test_hollow_shell_has_the_requested_thickness(small_volume, side):
    seg = ball_segment(small_volume, 10.0)
    solid = seg.mask("ball").copy()
    run(seg, small_volume, "hollow", segment="ball", thickness_mm=4.0, side=side)
    shell = seg.mask("ball")
    k, j, i = (np.array(small_volume.shape) / 2).astype(int)
    spacing_kji = small_volume.spacing[::-1]
    for axis, line in enumerate((shell[:, j, i], shell[k, :, i], shell[k, j, :])):
        runs = np.diff(np.flatnonzero(np.diff(np.r_[0, line.astype(int), 0])))[::2]
        expected = 4.0 / spacing_kji[axis]
        assert len(runs) == 2, (axis, line)  # two walls crossed, hollow in the middle
        assert all(abs(r - expected) <= 1.0 for r in runs), (axis, runs, expected)
    if side == "inside":
        assert not (shell & ~solid).any()
    if side == "outside":
        assert not (shell & solid).any()


def test_islands_keep_largest_selected_remove_small_and_split(small_volume):
    seg = Segmentation(small_volume)
    s = seg.add_segment("bits")
    m = np.zeros(small_volume.shape, bool)
    m[2:12, 2:12, 2:12] = True  # 1000
    m[20:25, 20:25, 20:25] = True  # 125
    m[30:32, 30:32, 30:32] = True  # 8
    seg.modify(s, m)
    run(seg, small_volume, "islands", segment="bits", operation="remove-small", min_voxels=100)
    assert seg.voxel_count("bits") == 1125
    run(seg, small_volume, "islands", segment="bits", operation="keep-largest")
    assert seg.voxel_count("bits") == 1000
    seg.undo()
    seg.undo()
    run(seg, small_volume, "islands", segment="bits", operation="keep-selected", point=(22, 22, 22))
    assert seg.voxel_count("bits") == 125
    with pytest.raises(SegmentationError, match="not on the segment"):
        run(
            seg, small_volume, "islands", segment="bits", operation="keep-selected", point=(0, 0, 0)
        )
    seg.undo()
    result = run(seg, small_volume, "islands", segment="bits", operation="split", min_voxels=5)
    assert [seg.voxel_count(x) for x in result.segments] == [1000, 125, 8]
    seg.undo()
    assert [x.name for x in seg.segments] == ["bits"] and seg.voxel_count("bits") == 1133


@pytest.mark.parametrize("method", ["median", "opening", "closing", "gaussian"])
def test_smoothing_methods(small_volume, method):
    seg = ball_segment(small_volume, 10.0)
    ball = seg.mask("ball").copy()
    noisy = ball.copy()
    k, j, i = (np.array(small_volume.shape) / 2).astype(int)
    noisy[k, j, i] = False  # a pinhole
    noisy[k, j, 5] = True  # a speck far outside
    seg.modify("ball", noisy)
    run(seg, small_volume, "smoothing", segment="ball", method=method, kernel_mm=3.0)
    out = seg.mask("ball")
    if method in ("median", "closing", "gaussian"):
        assert out[k, j, i]
    if method in ("median", "opening", "gaussian"):
        assert not out[k, j, 5]
    assert abs(int(out.sum()) - int(ball.sum())) < 0.1 * ball.sum()


def test_paint_circle_sphere_threshold_paint_and_erase(small_volume):
    seg = Segmentation(small_volume)
    s = seg.add_segment("paint")
    seg.begin_stroke("paint")
    run(
        seg,
        None,
        "paint",
        segment="paint",
        points=[(30, 25, 20)],
        radius_mm=3.0,
        shape="circle",
        axis="k",
    )
    run(seg, None, "paint", segment="paint", points=[(30, 25, 20), (40, 25, 20)], radius_mm=3.0)
    seg.end_stroke()
    m = seg.mask(s)
    assert m[20].any() and not m[19].any() and not m[21].any()  # a circle stays in its slice
    assert m[20, 25, 30] and m[20, 25, 35] and m[20, 25, 40]  # the drag is joined
    assert m[20, 25, 27] and not m[20, 25, 26]  # 3 mm at 0.8 mm/voxel: 3 voxels reach
    assert len(seg.history.undo_stack) == 2  # add segment + one stroke
    run(
        seg,
        None,
        "paint",
        segment="paint",
        points=[(30, 25, 20)],
        radius_mm=3.0,
        erase=True,
        shape="sphere",
    )
    assert not seg.mask(s)[20, 25, 30]
    r = run(
        seg,
        small_volume,
        "paint",
        segment="paint",
        points=[(30, 25, 20)],
        radius_mm=30.0,
        shape="sphere",
        hu_min=500,
    )
    assert r.changed_voxels > 0
    assert (small_volume.array[seg.mask(s) & ~m] >= 500).all()
    with pytest.raises(SegmentationError, match="needs the image volume"):
        run(seg, None, "paint", segment="paint", points=[(1, 1, 1)], hu_min=0)


def test_scissors_axial_and_oblique(small_volume):
    seg = Segmentation(small_volume)
    s = seg.add_segment("all")
    seg.modify(s, np.ones(small_volume.shape, bool))
    grid = seg.grid
    square = [(10, 10, 0), (30, 10, 0), (30, 30, 0), (10, 30, 0)]  # (i, j, k) indices
    polygon = grid.index_to_lps(np.array(square, float)).tolist()
    direction = grid.direction_matrix[:, 2]  # along k
    run(
        seg,
        None,
        "scissors",
        segment="all",
        polygon_lps=polygon,
        direction_lps=tuple(direction),
        operation="erase-outside",
    )
    m = seg.mask(s)
    assert m[:, 10:31, 10:31].all()
    assert m.sum() == 21 * 21 * small_volume.shape[0]
    seg.undo()
    # oblique: sweep along (i + k); the kept region shifts by one column per slice
    oblique = tuple(
        grid.direction_matrix @ np.array([small_volume.spacing[0], 0.0, small_volume.spacing[2]])
    )
    run(
        seg,
        None,
        "scissors",
        segment="all",
        polygon_lps=polygon,
        direction_lps=oblique,
        operation="erase-inside",
    )
    m = seg.mask(s)
    assert not m[0, 20, 20] and m[0, 20, 35]
    assert not m[15, 20, 35] and m[15, 20, 20]  # shifted by 15 columns at slice 15
    with pytest.raises(SegmentationError, match="three"):
        run(seg, None, "scissors", segment="all", polygon_lps=polygon[:2])


def test_logical_operations_and_mask(small_volume):
    seg = Segmentation(small_volume)
    a, b = seg.add_segment("a"), seg.add_segment("b")
    ma = np.zeros(small_volume.shape, bool)
    mb = ma.copy()
    ma[5:20] = True
    mb[15:30] = True
    seg.modify(a, ma)
    seg.modify(b, mb)
    for op, expected in [
        ("union", ma | mb),
        ("subtract", ma & ~mb),
        ("intersect", ma & mb),
        ("invert", ~ma),
        ("copy", mb),
    ]:
        run(seg, None, "logical", segment="a", operation=op, modifier="b")
        assert np.array_equal(seg.mask(a), expected), op
        assert np.array_equal(seg.mask(b), mb), op  # the modifier never changes
        seg.undo()
    with pytest.raises(SegmentationError, match="modifier"):
        run(seg, None, "logical", segment="a", operation="union")
    run(seg, small_volume, "mask", segment="a", modifier="b", region="outside", hu_min=-100)
    assert np.array_equal(seg.mask(a), ma & ~mb & (small_volume.array >= -100))


def test_fill_between_slices(small_volume):
    seg = Segmentation(small_volume)
    s = seg.add_segment("drawn")
    m = np.zeros(small_volume.shape, bool)
    m[10, 20:30, 20:30] = True
    m[20, 22:28, 22:28] = True
    seg.modify(s, m)
    run(seg, None, "fill-between-slices", segment="drawn", axis="k")
    out = seg.mask(s)
    assert all(out[k].any() for k in range(10, 21))
    assert not out[9].any() and not out[21].any()
    assert 36 <= out[15].sum() <= 100


def test_grow_from_seeds_separates_touching_objects(small_volume):
    array = small_volume.array.copy()
    array[:] = 0
    array[:, :, :30] = 500  # two "bones" touching at i = 30, separated by their edge
    array[:, :, 30:] = 900
    from app.imaging.volume import Volume

    volume = Volume(array, small_volume.origin, small_volume.spacing, small_volume.direction, "CT")
    seg = Segmentation(volume)
    left, right = seg.add_segment("left"), seg.add_segment("right")
    seed = np.zeros(volume.shape, bool)
    seed[20, 25, 10] = True
    seg.modify(left, seed)
    seed2 = np.zeros(volume.shape, bool)
    seed2[20, 25, 50] = True
    seg.modify(right, seed2)
    run(seg, volume, "grow-from-seeds", margin_mm=200.0)
    assert seg.mask(left)[:, :, :29].all() and not seg.mask(left)[:, :, 31:].any()
    assert seg.mask(right)[:, :, 31:].all()


def test_region_growing_connected_and_confidence(small_volume):
    seg = Segmentation(small_volume)
    centre = tuple(int(v) for v in (np.array(small_volume.size_ijk) / 2))
    run(seg, small_volume, "region-growing", segment="ball", seeds=[centre], lower=500, upper=1000)
    assert np.array_equal(seg.mask("ball"), small_volume.array == 700)
    run(
        seg,
        small_volume,
        "region-growing",
        segment="conf",
        seeds=[centre],
        method="confidence-connected",
    )
    assert np.array_equal(seg.mask("conf"), small_volume.array == 700)
    with pytest.raises(SegmentationError, match="outside the volume"):
        run(seg, small_volume, "region-growing", seeds=[(999, 0, 0)])


def test_bad_input_and_cancel_change_nothing(small_volume):
    seg = ball_segment(small_volume, 8.0)
    seg.add_segment("empty")
    before = seg.labels.copy()
    names = [s.name for s in seg.segments]
    with pytest.raises(SegmentationError, match="empty"):
        run(seg, None, "margin", segment="empty", margin_mm=2.0)
    seg.update_segment("ball", locked=True)
    with pytest.raises(SegmentationError, match="locked"):
        run(seg, None, "hollow", segment="ball")
    seg.update_segment("ball", locked=False)
    with pytest.raises(SegmentationError, match="thinner than a voxel"):
        run(seg, None, "hollow", segment="ball", thickness_mm=0.2)
    wrong = type(small_volume)(
        small_volume.array[:-1].copy(), small_volume.origin, small_volume.spacing
    )
    with pytest.raises(SegmentationError, match="grid"):
        run(seg, wrong, "threshold")
    with pytest.raises(SegmentationError, match="needs the image volume"):
        run(seg, None, "threshold")
    with pytest.raises(SegmentationError, match="takes"):
        get_tool("margin").apply(seg, None, get_tool("hollow").default_params(segment="ball"))
    with pytest.raises(SegmentationError, match="unexpected keyword"):
        get_tool("margin").default_params(radius=3)
    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled):
        get_tool("margin").apply(
            seg, None, get_tool("margin").default_params(segment="ball"), cancel=token
        )
    # cancelled half way through (from the progress callback) also leaves nothing
    token = CancelToken()
    progress = Progress(lambda f, m: token.cancel() if f > 0.1 else None)
    with pytest.raises(Cancelled):
        get_tool("bone").apply(
            seg, small_volume, get_tool("bone").default_params(), progress=progress, cancel=token
        )
    assert np.array_equal(seg.labels, before)
    assert [s.name for s in seg.segments] == names


@pytest.mark.parametrize(
    "radius", [(1, 1, 0), (1, 2, 2), (2, 3, 5), (0, 0, 3), (4, 0, 0), (5, 6, 6)]
)
def test_grow_by_rows_and_by_distance_equal_the_ellipsoid_dilation(radius):
    from scipy import ndimage as ndi

    from app.tools.segmentation import ops

    mask = np.random.default_rng(3).random((24, 26, 30)) > 0.985
    rows = ops.ellipsoid_rows(radius)
    kernel = np.zeros([2 * r + 1 for r in radius], dtype=bool)
    for dk, dj, w in rows:
        kernel[dk + radius[0], dj + radius[1], radius[2] - w : radius[2] + w + 1] = True
    expected = ndi.binary_dilation(mask, kernel)
    assert np.array_equal(ops._grow_by_rows(mask, rows), expected)
    if all(radius):
        assert np.array_equal(ops._grow_by_distance(mask, radius), expected)
    assert np.array_equal(ops.shrink(~expected, radius), ~ops.grow(expected, radius))
