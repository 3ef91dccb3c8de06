"""Tools on the real TCIA abdomen CT: bone in one click, region growing, hollow, undo."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from app.imaging.load import load_series
from app.tools.segmentation import get_tool

from .conftest import COUCH_ROWS, VERTEBRAL_BODY


def test_bone_in_one_click_is_spine_and_pelvis_without_the_couch(ct_volume, ct_bone):
    bone = ct_bone.mask("bone")
    assert [s.name for s in ct_bone.segments] == ["bone"]
    # a lumbar vertebral body (cancellous, ~250 HU, its cavities filled)
    assert bone[VERTEBRAL_BODY]
    # both iliac wings on the lowest slices (right: columns < 200, left: columns > 320)
    for k in (0, 10):
        assert bone[k, :, :200].sum() > 500, k
        assert bone[k, :, 320:].sum() > 500, k
    # spine and pelvis are one island (the tool kept only the largest)
    _labels, count = ndi.label(bone)
    assert count == 1
    # the couch passes the bone threshold but is not in the segment
    assert (ct_volume.array[:, COUCH_ROWS, :] >= 226).sum() > 5000
    assert not bone[:, COUCH_ROWS, :].any()
    # contrast-filled aorta/kidneys (other islands above 226 HU) are gone
    assert (ct_volume.array >= 226).sum() > 1.3 * bone.sum() * 0.9
    stats = ct_bone.statistics(ct_volume)[0]
    assert 800 < stats.volume_ml < 2500  # ribs, spine, pelvis of an adult: ~1.3 l here
    assert 150 < stats.hu_mean < 700
    assert stats.surface_mm2 > 1e5
    assert stats.bbox_max_ijk[1] < 400  # the box stays above the couch


def test_region_growing_from_a_vertebra_stays_in_bone(ct_volume, ct_bone):
    seed = [(VERTEBRAL_BODY[2], VERTEBRAL_BODY[1], VERTEBRAL_BODY[0])]
    tool = get_tool("region-growing")
    tool.apply(ct_bone, ct_volume, tool.default_params(segment="spine", seeds=seed, lower=226))
    grown = ct_bone.mask("spine")
    assert grown[VERTEBRAL_BODY]
    assert (ct_volume.array[grown] >= 226).all()
    assert not (grown & ~ct_bone.mask("bone")).any()  # inside the bone segment
    assert not grown[:, COUCH_ROWS, :].any()
    tool.apply(
        ct_bone,
        ct_volume,
        tool.default_params(segment="vertebra", seeds=seed, method="confidence-connected"),
    )
    vertebra = ct_bone.mask("vertebra")
    slices = np.flatnonzero(vertebra.any(axis=(1, 2)))
    assert slices.min() >= VERTEBRAL_BODY[0] - 8 and slices.max() <= VERTEBRAL_BODY[0] + 8
    assert ct_volume.array[vertebra].min() > 150  # no soft tissue
    dilated = ndi.binary_dilation(ct_bone.mask("bone"), iterations=1)
    assert not (vertebra & ~dilated).any()


def test_hollow_vertebra_shell_thickness_within_one_voxel(ct_volume, ct_bone):
    seed = [(VERTEBRAL_BODY[2], VERTEBRAL_BODY[1], VERTEBRAL_BODY[0])]
    grow = get_tool("region-growing")
    grow.apply(
        ct_bone,
        ct_volume,
        grow.default_params(segment="v", seeds=seed, method="confidence-connected"),
    )
    get_tool("smoothing").apply(
        ct_bone,
        None,
        get_tool("smoothing").default_params(segment="v", method="closing", kernel_mm=5.0),
    )
    box = ct_bone.bbox("v")
    solid = ct_bone.mask("v", box)
    thickness = 2.0
    get_tool("hollow").apply(
        ct_bone, None, get_tool("hollow").default_params(segment="v", thickness_mm=thickness)
    )
    shell = ct_bone.mask("v", box)
    spacing = ct_volume.spacing[::-1]
    depth = ndi.distance_transform_edt(np.pad(solid, 1), sampling=spacing)[1:-1, 1:-1, 1:-1]
    # every voxel within the thickness of the surface is in the shell, none deeper than one voxel more
    assert shell[solid & (depth <= thickness)].all()
    assert not shell[depth > thickness + max(spacing)].any()
    assert not (shell & ~solid).any()
    assert shell.sum() < 0.9 * solid.sum()


def test_undo_restores_exact_labels_after_real_edits(ct_volume, ct_bone):
    original = ct_bone.labels.copy()
    get_tool("margin").apply(
        ct_bone, None, get_tool("margin").default_params(segment="bone", margin_mm=2.0)
    )
    grown = ct_bone.labels.copy()
    assert (grown != original).sum() > 10000
    paint = get_tool("paint")
    ct_bone.begin_stroke()
    for x in range(200, 320, 4):
        paint.apply(
            ct_bone,
            None,
            paint.default_params(segment="bone", points=[(x, 300, 60)], radius_mm=5.0, erase=True),
        )
    ct_bone.end_stroke()
    assert ct_bone.undo()  # the whole stroke at once
    assert np.array_equal(ct_bone.labels, grown)
    assert ct_bone.undo()
    assert np.array_equal(ct_bone.labels, original)
    assert ct_bone.redo()
    assert np.array_equal(ct_bone.labels, grown)
    assert ct_bone.history.nbytes < 8 << 20


@pytest.mark.parametrize("preset", ["bone", "soft-tissue"])
def test_threshold_presets_on_ct(ct_volume, ct_bone, preset):
    tool = get_tool("threshold")
    result = tool.apply(ct_bone, ct_volume, tool.default_params(preset=preset))
    lower, upper = result.values["lower"], result.values["upper"]
    mask = ct_bone.mask(preset if preset != "bone" else result.segments[0])
    assert np.array_equal(mask, (ct_volume.array >= lower) & (ct_volume.array <= upper))


def test_mr_percentile_and_otsu_thresholds(dicom_dir):
    from app.tools.segmentation import Segmentation

    volume = load_series(dicom_dir / "mr-brain-t1-sagittal-philips-170")
    seg = Segmentation(volume)
    tool = get_tool("threshold")
    result = tool.apply(
        seg, volume, tool.default_params(segment="bright", method="percentile", percentile_low=90)
    )
    lower = result.values["lower"]
    foreground = volume.array > volume.array.min()
    share = seg.voxel_count("bright") / np.count_nonzero(foreground)
    assert 0.05 < share < 0.2  # about the top 10 % of the non-background voxels
    assert (volume.array[seg.mask("bright")] >= lower).all()
    tool.apply(seg, volume, tool.default_params(segment="head", method="otsu"))
    head = seg.voxel_count("head") / volume.array.size
    assert 0.1 < head < 0.7  # the head, not the air around it
