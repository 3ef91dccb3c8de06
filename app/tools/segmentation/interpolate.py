"""Fill between slices: contours drawn on a few slices become a solid (morphological interpolation).

Uses SimpleITK's MorphologicalContourInterpolator (Zukić et al., ND morphological contour
interpolation) on the segment's box: slices without any voxel between two drawn slices are filled
by interpolating the shapes; drawn slices are kept as they are.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from app.errors import SegmentationError
from app.progress import CancelToken, Progress, check_cancel
from app.tools.segmentation.base import Tool, ToolResult, editable_segment
from app.tools.segmentation.grid import box_pad
from app.tools.segmentation.model import Segmentation
from app.tools.segmentation.params import param

AXES = {"auto": -1, "i": 0, "j": 1, "k": 2}


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
        import SimpleITK as sitk  # noqa: PLC0415

        segment = seg.segment(params.segment)
        box = box_pad(seg.bbox(segment), 1, seg.grid.shape)  # type: ignore[arg-type]
        mask = seg.mask(segment, box)
        if params.axis != "auto":
            axis = {"k": 0, "j": 1, "i": 2}[params.axis]
            drawn = mask.any(axis=tuple(a for a in range(3) if a != axis))
            if np.count_nonzero(drawn) < 2:
                msg = f"draw the segment on at least two {params.axis} slices to fill between them"
                raise SegmentationError(msg)
        image = sitk.GetImageFromArray(mask.view(np.uint8))
        image.SetSpacing(seg.grid.spacing)
        progress.update(0.2, "interpolating")
        out = sitk.MorphologicalContourInterpolator(
            image,
            label=1,
            axis=AXES[params.axis],
            heuristicAlignment=True,
            useDistanceTransform=True,
        )
        filled = sitk.GetArrayFromImage(out).astype(bool) | mask
        check_cancel(cancel)
        offset = (box[0].start, box[1].start, box[2].start)
        changed = seg.modify(segment, filled, "set", offset, f"fill between slices {segment.name}")
        return ToolResult(
            changed, [segment.id], f"{segment.name}: filled {changed} voxels between slices"
        )


TOOLS = [FillBetweenSlicesTool()]
