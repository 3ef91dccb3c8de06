"""Bone in one click: threshold, drop the CT couch, keep the largest island(s), close small holes.

Method (each step's parameter is visible and adjustable):

1. **Body mask / couch removal** (``remove_couch``). Voxels above ``body_threshold`` (−400 HU:
   everything but air and lung) are taken slice by slice at about 2 mm in-plane resolution, holes
   in each slice are filled (lungs, bowel gas), and an in-plane opening of ``couch_gap_mm`` cuts
   the thin contact between the patient and the couch or head rest. The largest 3D component is
   the patient; it is dilated back by the same radius and anything outside it (the couch, its
   rails, positioning aids) is excluded.
2. **Threshold** ``lower..upper`` HU inside the body (InVesalius' bone preset: 226..3071).
3. **Islands**: keep the ``keep_largest`` largest connected components (6-connected) plus every
   component of at least ``min_island_ml``; this drops contrast-filled vessels, calcifications
   and noise that pass the threshold.
4. **Close small holes**: a morphological closing of ``closing_mm`` (ellipsoidal, anisotropic
   spacing handled exactly), then enclosed cavities up to ``fill_cavities_ml`` (marrow spaces in
   vertebral bodies) are filled, so the printed part is solid.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from app.errors import SegmentationError
from app.progress import CancelToken, Progress, check_cancel
from app.tools.segmentation import ops
from app.tools.segmentation.base import Tool, ToolResult, hu_array, radius_voxels, target_segment
from app.tools.segmentation.grid import box_pad, mask_box
from app.tools.segmentation.model import Segmentation
from app.tools.segmentation.params import param
from app.tools.segmentation.threshold import PRESET_COLORS, threshold_mask


@dataclass
class BoneParams:
    segment: str = param("bone", label="Segment", help="segment to fill (created when missing)")
    lower: float = param(
        226.0, label="Lower", unit="HU", minimum=-1000, maximum=3071, help="bone threshold"
    )
    upper: float = param(3071.0, label="Upper", unit="HU", minimum=-1000, maximum=65535)
    keep_largest: int = param(1, label="Keep largest islands", minimum=1, maximum=50)
    min_island_ml: float = param(
        0.0,
        label="Also keep islands from",
        unit="ml",
        minimum=0,
        maximum=5000,
        help="0 keeps only the largest",
    )
    closing_mm: float = param(1.0, label="Close gaps", unit="mm", minimum=0, maximum=10)
    fill_cavities_ml: float = param(
        5.0,
        label="Fill cavities up to",
        unit="ml",
        minimum=0,
        maximum=1000,
        help="0 leaves cavities open",
    )
    remove_couch: bool = param(True, label="Remove CT couch")
    body_threshold: float = param(
        -400.0, label="Body threshold", unit="HU", minimum=-1000, maximum=200, advanced=True
    )
    couch_gap_mm: float = param(
        4.0,
        label="Couch gap",
        unit="mm",
        minimum=0.5,
        maximum=30,
        advanced=True,
        help="opening radius that separates the patient from the couch",
    )


def body_mask(
    array: np.ndarray, spacing_kji: tuple[float, float, float], threshold: float, gap_mm: float
) -> np.ndarray:
    """The patient without the couch (see step 1 of the module docstring)."""
    from scipy import ndimage as ndi  # noqa: PLC0415

    step_j = max(1, round(2.0 / spacing_kji[1]))
    step_i = max(1, round(2.0 / spacing_kji[2]))
    small = fill_holes_per_slice(array[:, ::step_j, ::step_i] > threshold)
    rj = max(1, round(gap_mm / (spacing_kji[1] * step_j)))
    ri = max(1, round(gap_mm / (spacing_kji[2] * step_i)))
    size = (1, 2 * rj + 1, 2 * ri + 1)
    opened = ndi.maximum_filter(ndi.minimum_filter(small.view(np.uint8), size=size), size=size)
    labels, count = ndi.label(opened)
    if count == 0:
        return np.zeros(array.shape, dtype=bool)
    sizes = _label_sizes(labels, count)
    sizes[0] = 0
    body = labels == int(sizes.argmax())
    body = ndi.maximum_filter(body.view(np.uint8), size=size).view(bool)
    nk, nj, ni = body.shape
    # Broadcast into the full grid: np.repeat holds the GIL (and stalls the window) for its
    # whole copy, a broadcast assignment does not.
    full = np.empty((nk, nj, step_j, ni, step_i), dtype=bool)
    full[...] = body[:, :, None, :, None]
    return full.reshape(nk, nj * step_j, ni * step_i)[:, : array.shape[1], : array.shape[2]]


def _label_sizes(labels: np.ndarray, count: int, slab: int = 32) -> np.ndarray:
    """Voxels per label, counted a slab of slices at a time (np.bincount holds the GIL)."""
    sizes = np.zeros(count + 1, dtype=np.int64)
    for k in range(0, labels.shape[0], slab):
        sizes += np.bincount(labels[k : k + slab].ravel(), minlength=count + 1)
    return sizes


def fill_holes_per_slice(mask: np.ndarray) -> np.ndarray:
    """Fill the holes of every axial slice (lungs, bowel gas) with one labelling call."""
    from scipy import ndimage as ndi  # noqa: PLC0415

    in_plane = np.zeros((3, 3, 3), dtype=bool)
    in_plane[1] = ndi.generate_binary_structure(2, 1)
    labels, count = ndi.label(~mask, structure=in_plane)
    border = np.unique(
        np.concatenate(
            [
                labels[:, 0].ravel(),
                labels[:, -1].ravel(),
                labels[:, :, 0].ravel(),
                labels[:, :, -1].ravel(),
            ]
        )
    )
    outside = np.zeros(count + 1, dtype=bool)
    outside[border] = True
    outside[0] = False
    return ~outside[labels]


def bone_mask(
    array: np.ndarray,
    spacing_kji: tuple[float, float, float],
    params: BoneParams,
    progress: Progress | None = None,
    cancel: CancelToken | None = None,
) -> tuple[np.ndarray | None, tuple[int, int, int]]:
    """The bone mask cropped to its box, and the box offset (k, j, i); None when nothing is bone."""
    progress = progress or Progress()
    mask = threshold_mask(array, params.lower, params.upper)
    if params.remove_couch:
        progress.update(0.05, "finding the patient (couch removal)")
        mask &= body_mask(array, spacing_kji, params.body_threshold, params.couch_gap_mm)
    check_cancel(cancel)
    box = mask_box(mask)
    if box is None:
        return None, (0, 0, 0)
    radius = radius_voxels(spacing_kji, params.closing_mm)
    box = box_pad(box, ops.pad_for(radius), array.shape)
    mask = mask[box]
    progress.update(0.35, "keeping the largest islands")
    voxel_ml = float(np.prod(spacing_kji)) / 1000.0
    min_voxels = int(np.ceil(params.min_island_ml / voxel_ml)) if params.min_island_ml > 0 else 0
    mask, _, _ = ops.largest_components(mask, params.keep_largest, min_voxels)
    check_cancel(cancel)
    if any(radius):
        progress.update(0.6, "closing small gaps")
        mask = ops.closing(mask, radius)
        check_cancel(cancel)
    if params.fill_cavities_ml > 0:
        progress.update(0.8, "filling cavities")
        mask = ops.fill_cavities(mask, int(params.fill_cavities_ml / voxel_ml))
    return mask, (box[0].start, box[1].start, box[2].start)


class BoneTool(Tool):
    name = "bone"
    title = "Bone in one click"
    help = __doc__ or ""
    Params = BoneParams

    def check(self, seg: Segmentation, volume: Any, params: BoneParams) -> None:
        if params.lower > params.upper:
            msg = f"lower {params.lower:g} HU is above upper {params.upper:g} HU; swap them"
            raise SegmentationError(msg)

    def run(
        self,
        seg: Segmentation,
        volume: Any,
        params: BoneParams,
        progress: Progress,
        cancel: CancelToken | None,
    ) -> ToolResult:
        mask, offset = bone_mask(hu_array(volume), seg.grid.spacing_kji, params, progress, cancel)
        if mask is None:
            msg = f"no voxel lies in {params.lower:g}..{params.upper:g} HU; is this a CT?"
            raise SegmentationError(msg)
        check_cancel(cancel)
        with seg.group("bone in one click"):
            segment = target_segment(seg, params.segment, "bone", PRESET_COLORS["bone"])
            changed = seg.modify(segment, mask, "set", offset=offset)
        ml = float(np.count_nonzero(mask)) * seg.grid.voxel_volume_mm3 / 1000.0
        return ToolResult(
            changed, [segment.id], f"{segment.name}: {ml:.1f} ml of bone", {"volume_ml": ml}
        )


TOOLS = [BoneTool()]
