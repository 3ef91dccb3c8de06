"""Margin (grow or shrink by mm) and hollow (a shell of given thickness) of a segment.

Distances are exact Euclidean distances on the anisotropic grid: a margin of m mm grows by
round(m / spacing) voxels along each axis and by the matching ellipsoid in between (as 3D
Slicer's margin effect), computed with a distance map on the segment's box, not on the volume.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from app.errors import SegmentationError
from app.progress import CancelToken, Progress, check_cancel
from app.tools.segmentation import ops
from app.tools.segmentation.base import Tool, ToolResult, editable_segment, radius_voxels
from app.tools.segmentation.grid import box_pad
from app.tools.segmentation.model import Segmentation
from app.tools.segmentation.params import param


@dataclass
class MarginParams:
    segment: str = param("", label="Segment")
    margin_mm: float = param(
        2.0,
        label="Margin",
        unit="mm",
        minimum=-100,
        maximum=100,
        help="positive grows, negative shrinks",
    )


@dataclass
class HollowParams:
    segment: str = param("", label="Segment")
    thickness_mm: float = param(2.0, label="Shell thickness", unit="mm", minimum=0.1, maximum=100)
    side: str = param(
        "inside",
        label="Shell",
        choices=("inside", "outside", "centered"),
        help="where the shell lies relative to the surface",
    )


def margin_mask(seg: Segmentation, key: str, margin_mm: float):
    """(mask, offset) of the segment grown (or shrunk) by ``margin_mm`` on a padded box."""
    radius = radius_voxels(seg.grid.spacing_kji, abs(margin_mm))
    box = box_pad(seg.bbox(key), ops.pad_for(radius), seg.grid.shape)  # type: ignore[arg-type]
    mask = seg.mask(key, box)
    out = ops.grow(mask, radius) if margin_mm > 0 else ops.shrink(mask, radius)
    return out, (box[0].start, box[1].start, box[2].start), radius


def shell_mask(seg: Segmentation, key: str, thickness_mm: float, side: str):
    """(mask, offset) of a shell of ``thickness_mm`` around the segment's surface."""
    if side == "centered":
        r_out = r_in = radius_voxels(seg.grid.spacing_kji, thickness_mm / 2)
    else:
        r = radius_voxels(seg.grid.spacing_kji, thickness_mm)
        r_out, r_in = (r, (0, 0, 0)) if side == "outside" else ((0, 0, 0), r)
    box = box_pad(seg.bbox(key), ops.pad_for(r_out), seg.grid.shape)  # type: ignore[arg-type]
    mask = seg.mask(key, box)
    outer = ops.grow(mask, r_out) if any(r_out) else mask
    inner = ops.shrink(mask, r_in) if any(r_in) else mask
    return outer & ~inner, (box[0].start, box[1].start, box[2].start)


class MarginTool(Tool):
    name = "margin"
    title = "Margin"
    help = __doc__ or ""
    Params = MarginParams
    needs_volume = False

    def check(self, seg: Segmentation, volume: Any, params: MarginParams) -> None:
        editable_segment(seg, params.segment, must_have_voxels=True)
        if params.margin_mm == 0:
            msg = "a margin of 0 mm changes nothing; enter a positive (grow) or negative (shrink) value"
            raise SegmentationError(msg)

    def run(
        self,
        seg: Segmentation,
        volume: Any,
        params: MarginParams,
        progress: Progress,
        cancel: CancelToken | None,
    ) -> ToolResult:
        segment = seg.segment(params.segment)
        out, offset, radius = margin_mask(seg, segment.id, params.margin_mm)
        if not any(radius):
            return ToolResult(0, [segment.id], "the margin is below half a voxel: nothing changed")
        check_cancel(cancel)
        verb = "grow" if params.margin_mm > 0 else "shrink"
        changed = seg.modify(
            segment,
            out,
            "set",
            offset=offset,
            description=f"margin {verb} {abs(params.margin_mm):g} mm",
        )
        return ToolResult(
            changed, [segment.id], f"{segment.name}: {verb} {abs(params.margin_mm):g} mm"
        )


class HollowTool(Tool):
    name = "hollow"
    title = "Hollow"
    help = "Replace a segment by a shell of the given thickness inside, outside or centred on its surface."
    Params = HollowParams
    needs_volume = False

    def check(self, seg: Segmentation, volume: Any, params: HollowParams) -> None:
        editable_segment(seg, params.segment, must_have_voxels=True)
        if params.side == "centered":
            too_thin = not any(radius_voxels(seg.grid.spacing_kji, params.thickness_mm / 2))
        else:
            too_thin = not any(radius_voxels(seg.grid.spacing_kji, params.thickness_mm))
        if too_thin:
            msg = f"a {params.thickness_mm:g} mm shell is thinner than a voxel; use at least {min(seg.grid.spacing):.2g} mm"
            raise SegmentationError(msg)

    def run(
        self,
        seg: Segmentation,
        volume: Any,
        params: HollowParams,
        progress: Progress,
        cancel: CancelToken | None,
    ) -> ToolResult:
        segment = seg.segment(params.segment)
        out, offset = shell_mask(seg, segment.id, params.thickness_mm, params.side)
        check_cancel(cancel)
        changed = seg.modify(
            segment, out, "set", offset=offset, description=f"hollow {params.thickness_mm:g} mm"
        )
        return ToolResult(
            changed,
            [segment.id],
            f"{segment.name}: {params.thickness_mm:g} mm shell ({params.side})",
        )


TOOLS = [MarginTool(), HollowTool()]
