"""Fill between slices: shapes drawn on a few slices become a solid (shape-based interpolation).

Every empty slice between two drawn slices gets the zero level of the linear blend of the two
drawn shapes' signed distance maps (in mm, per slice, SimpleITK's Maurer distance), the
shape-based interpolation of Raya & Udupa. Drawn slices are kept as they are. Shapes that do not
overlap from one drawn slice to the next should get another slice drawn in between. (SimpleITK's
pip wheels do not ship ITK's MorphologicalContourInterpolator, which 3D Slicer uses.)
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import numpy as np

from app.errors import SegmentationError
from app.progress import CancelToken, Progress, check_cancel
from app.tools.segmentation.base import Tool, ToolResult, editable_segment
from app.tools.segmentation.grid import box_pad
from app.tools.segmentation.model import Segmentation
from app.tools.segmentation.params import param

AXES = ("k", "j", "i", "auto")


def _plane_spacing(spacing_kji: tuple[float, float, float], axis: int) -> tuple[float, float]:
    """SimpleITK (x, y) spacing of a 2D slice across ``axis``."""
    rest = [s for a, s in enumerate(spacing_kji) if a != axis]
    return (rest[1], rest[0])


def _axis(mask: np.ndarray) -> int:
    """The axis along which the drawing is sparsest (most empty slices inside its extent)."""
    best, best_gaps = 0, -1
    for axis in range(3):
        drawn = np.flatnonzero(mask.any(axis=tuple(a for a in range(3) if a != axis)))
        gaps = int(drawn[-1] - drawn[0] + 1 - drawn.size) if drawn.size else 0
        if gaps > best_gaps:
            best, best_gaps = axis, gaps
    return best


def _signed_distance(plane: np.ndarray, spacing: tuple[float, float]) -> np.ndarray:
    import SimpleITK as sitk  # noqa: PLC0415

    image = sitk.GetImageFromArray(plane.view(np.uint8))
    image.SetSpacing(spacing)
    distance = sitk.SignedMaurerDistanceMap(
        image, insideIsPositive=False, squaredDistance=False, useImageSpacing=True
    )
    return sitk.GetArrayFromImage(distance)


def interpolate_slices(
    mask: np.ndarray, axis: int, spacing: tuple[float, float], cancel: CancelToken | None = None
) -> np.ndarray:
    """``mask`` with the empty slices between drawn slices (across ``axis``) filled."""
    moved = np.moveaxis(mask, axis, 0)
    drawn = np.flatnonzero(moved.any(axis=(1, 2)))
    if drawn.size < 2:
        msg = f"draw the segment on at least two {'kji'[axis]} slices to fill between them"
        raise SegmentationError(msg)
    out = moved.copy()
    for a, b in itertools.pairwise(drawn):
        if b - a < 2:
            continue
        check_cancel(cancel)
        da, db = _signed_distance(moved[a], spacing), _signed_distance(moved[b], spacing)
        for s in range(a + 1, b):
            t = (s - a) / (b - a)
            out[s] = (1.0 - t) * da + t * db <= 0.0
    return np.moveaxis(out, 0, axis)


@dataclass
class FillBetweenParams:
    segment: str = param("", label="Segment")
    axis: str = param(
        "k",
        label="Slice axis",
        choices=tuple(AXES),
        help="the axis of the drawn slices: k axial, j coronal, i sagittal; auto: all",
    )


class FillBetweenSlicesTool(Tool):
    name = "fill-between-slices"
    title = "Fill between slices"
    help = __doc__ or ""
    Params = FillBetweenParams
    needs_volume = False

    def check(self, seg: Segmentation, volume: Any, params: FillBetweenParams) -> None:
        editable_segment(seg, params.segment, must_have_voxels=True)

    def run(
        self,
        seg: Segmentation,
        volume: Any,
        params: FillBetweenParams,
        progress: Progress,
        cancel: CancelToken | None,
    ) -> ToolResult:
        segment = seg.segment(params.segment)
        box = box_pad(seg.bbox(segment), 1, seg.grid.shape)  # type: ignore[arg-type]
        mask = seg.mask(segment, box)
        axis = _axis(mask) if params.axis == "auto" else {"k": 0, "j": 1, "i": 2}[params.axis]
        progress.update(0.2, "interpolating")
        filled = interpolate_slices(mask, axis, _plane_spacing(seg.grid.spacing_kji, axis), cancel)
        check_cancel(cancel)
        offset = (box[0].start, box[1].start, box[2].start)
        changed = seg.modify(segment, filled, "set", offset, f"fill between slices {segment.name}")
        return ToolResult(
            changed, [segment.id], f"{segment.name}: filled {changed} voxels between slices"
        )


TOOLS = [FillBetweenSlicesTool()]
