"""Logical operations between segments, and masking a segment by another one and/or a HU range.

Segments may overlap (see the model), so union, subtract and intersect work as on sets and never
take voxels away from the modifier segment.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from app.errors import SegmentationError
from app.progress import CancelToken, Progress, check_cancel
from app.tools.segmentation.base import Tool, ToolResult, editable_segment, hu_array
from app.tools.segmentation.grid import box_union
from app.tools.segmentation.model import Segmentation
from app.tools.segmentation.params import param

OPERATIONS = ("union", "subtract", "intersect", "invert", "copy", "clear")


@dataclass
class LogicalParams:
    segment: str = param("", label="Segment", help="the segment that changes")
    operation: str = param(
        "union",
        label="Operation",
        choices=OPERATIONS,
        help="union: add the modifier; subtract: remove it; intersect: keep only the overlap; "
        "invert: everything that is not the segment; copy: become the modifier; clear: empty",
    )
    modifier: str = param("", label="Modifier segment", help="for union, subtract, intersect, copy")


class LogicalTool(Tool):
    name = "logical"
    title = "Logical operators"
    help = __doc__ or ""
    Params = LogicalParams
    needs_volume = False

    def check(self, seg: Segmentation, volume: Any, params: LogicalParams) -> None:
        editable_segment(seg, params.segment)
        if params.operation in ("union", "subtract", "intersect", "copy"):
            if not params.modifier:
                msg = f"{params.operation} needs a modifier segment"
                raise SegmentationError(msg)
            if seg.segment(params.modifier).id == seg.segment(params.segment).id:
                msg = "the modifier must be another segment"
                raise SegmentationError(msg)

    def run(
        self,
        seg: Segmentation,
        volume: Any,
        params: LogicalParams,
        progress: Progress,
        cancel: CancelToken | None,
    ) -> ToolResult:
        segment = seg.segment(params.segment)
        op = params.operation
        description = f"{op} {segment.name}" + (
            f" with {params.modifier}" if params.modifier else ""
        )
        if op in ("invert", "clear"):
            mask = np.zeros((1, 1, 1), dtype=bool) if op == "clear" else ~seg.mask(segment)
            changed = seg.modify(segment, mask, "set", description=description, exclusive=False)
            return ToolResult(changed, [segment.id], description)
        modifier = seg.segment(params.modifier)
        box = box_union(seg.bbox(segment), seg.bbox(modifier))
        if box is None:
            return ToolResult(0, [segment.id], "both segments are empty: nothing to do")
        other = seg.mask(modifier, box)
        offset = (box[0].start, box[1].start, box[2].start)
        check_cancel(cancel)
        if op == "union":
            changed = seg.modify(segment, other, "add", offset, description, exclusive=False)
        elif op == "subtract":
            changed = seg.modify(segment, other, "remove", offset, description)
        elif op == "intersect":
            changed = seg.modify(
                segment, seg.mask(segment, box) & other, "set", offset, description, exclusive=False
            )
        else:
            changed = seg.modify(segment, other, "set", offset, description, exclusive=False)
        return ToolResult(changed, [segment.id], description)


@dataclass
class MaskParams:
    segment: str = param("", label="Segment", help="the segment that is masked")
    modifier: str = param(
        "", label="Mask segment", help="empty: no segment mask, only the HU range"
    )
    region: str = param(
        "inside",
        label="Keep",
        choices=("inside", "outside"),
        help="keep the part inside or outside the mask segment",
    )
    hu_min: float | None = param(None, label="Only from", unit="HU")
    hu_max: float | None = param(None, label="Only up to", unit="HU")


class MaskTool(Tool):
    name = "mask"
    title = "Mask by segment"
    help = "Keep only the part of a segment inside (or outside) another segment and/or within a HU range."
    Params = MaskParams
    needs_volume = False

    def check(self, seg: Segmentation, volume: Any, params: MaskParams) -> None:
        editable_segment(seg, params.segment, must_have_voxels=True)
        if not params.modifier and params.hu_min is None and params.hu_max is None:
            msg = "choose a mask segment or a HU range"
            raise SegmentationError(msg)
        if params.modifier and seg.segment(params.modifier).id == seg.segment(params.segment).id:
            msg = "the mask must be another segment"
            raise SegmentationError(msg)
        if (params.hu_min is not None or params.hu_max is not None) and volume is None:
            msg = "masking by HU needs the image volume; load the case's volume first"
            raise SegmentationError(msg)

    def run(
        self,
        seg: Segmentation,
        volume: Any,
        params: MaskParams,
        progress: Progress,
        cancel: CancelToken | None,
    ) -> ToolResult:
        segment = seg.segment(params.segment)
        box = seg.bbox(segment)
        assert box is not None
        keep = seg.mask(segment, box)
        if params.modifier:
            inside = seg.mask(params.modifier, box)
            keep &= inside if params.region == "inside" else ~inside
        if params.hu_min is not None or params.hu_max is not None:
            values = hu_array(volume)[box]
            if params.hu_min is not None:
                keep &= values >= params.hu_min
            if params.hu_max is not None:
                keep &= values <= params.hu_max
        check_cancel(cancel)
        offset = (box[0].start, box[1].start, box[2].start)
        changed = seg.modify(segment, keep, "set", offset, f"mask {segment.name}", exclusive=False)
        return ToolResult(
            changed, [segment.id], f"{segment.name}: masked, {changed} voxels removed"
        )


TOOLS = [LogicalTool(), MaskTool()]
