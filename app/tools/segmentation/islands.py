"""Islands: keep the largest, keep the one clicked, remove small ones, split into segments."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from app.errors import SegmentationError
from app.progress import CancelToken, Progress, check_cancel
from app.tools.segmentation import ops
from app.tools.segmentation.base import Tool, ToolResult, editable_segment, seed_indices
from app.tools.segmentation.model import MAX_SEGMENTS, Segmentation
from app.tools.segmentation.params import param

OPERATIONS = ("keep-largest", "keep-selected", "remove-small", "split")


@dataclass
class IslandsParams:
    segment: str = param("", label="Segment")
    operation: str = param(
        "keep-largest",
        label="Operation",
        choices=OPERATIONS,
        help="keep-largest: keep the N largest islands; keep-selected: keep the island under the point; "
        "remove-small: drop islands below the size; split: one new segment per island of at least the size",
    )
    count: int = param(1, label="Islands to keep", minimum=1, maximum=1000)
    min_voxels: int = param(1000, label="Minimum size", unit="voxels", minimum=1, maximum=10**9)
    point: tuple[float, float, float] | None = param(
        None, label="Point (i, j, k)", help="for keep-selected"
    )
    full_connectivity: bool = param(
        False, label="Diagonal neighbours connect", help="26-connectivity instead of 6 (faces only)"
    )


class IslandsTool(Tool):
    name = "islands"
    title = "Islands"
    help = "Connected pieces of a segment: keep the largest, keep the one clicked, remove small ones, or split."
    Params = IslandsParams
    needs_volume = False

    def check(self, seg: Segmentation, volume: Any, params: IslandsParams) -> None:
        editable_segment(seg, params.segment, must_have_voxels=True)
        if params.operation == "keep-selected":
            if params.point is None:
                msg = "keep-selected needs a point: click on the island to keep"
                raise SegmentationError(msg)
            seed_indices(seg, [params.point], "point")

    def run(
        self,
        seg: Segmentation,
        volume: Any,
        params: IslandsParams,
        progress: Progress,
        cancel: CancelToken | None,
    ) -> ToolResult:
        segment = seg.segment(params.segment)
        box = seg.bbox(segment)
        assert box is not None
        offset = (box[0].start, box[1].start, box[2].start)
        mask = seg.mask(segment, box)
        full = params.full_connectivity
        if params.operation in ("keep-largest", "remove-small"):
            count = params.count if params.operation == "keep-largest" else 0
            minimum = params.min_voxels if params.operation == "remove-small" else 0
            kept_mask, kept, found = ops.largest_components(mask, count, minimum, full=full)
            check_cancel(cancel)
            changed = seg.modify(
                segment, kept_mask, "set", offset=offset, description=f"islands {params.operation}"
            )
            return ToolResult(
                changed, [segment.id], f"{segment.name}: kept {kept} of {found} islands"
            )
        labels, sizes = ops.components(mask, full=full)
        check_cancel(cancel)
        progress.update(0.6, f"{len(sizes)} islands")
        sizes_arr = np.asarray([0, *sizes])
        if params.operation == "split":
            return self._split(seg, segment, labels, sizes_arr, offset, params)
        i, j, k = seed_indices(seg, [params.point], "point")[0]
        local = (k - offset[0], j - offset[1], i - offset[2])
        inside = all(0 <= v < n for v, n in zip(local, labels.shape, strict=True))
        hit = int(labels[local]) if inside else 0
        if hit == 0:
            msg = "the point is not on the segment; click on the island to keep"
            raise SegmentationError(msg)
        changed = seg.modify(
            segment, labels == hit, "set", offset=offset, description="islands keep-selected"
        )
        return ToolResult(
            changed, [segment.id], f"{segment.name}: kept the selected island of {len(sizes)}"
        )

    def _split(self, seg, segment, labels, sizes, offset, params) -> ToolResult:  # noqa: PLR0917
        ranks = [r for r in range(1, len(sizes)) if sizes[r] >= params.min_voxels]
        if not ranks:
            msg = f"no island of {segment.name!r} has {params.min_voxels} voxels; lower the minimum size"
            raise SegmentationError(msg)
        if len(seg.segments) + len(ranks) - 1 > MAX_SEGMENTS:
            msg = f"splitting gives {len(ranks)} segments, more than fit; raise the minimum size"
            raise SegmentationError(msg)
        ids = [segment.id]
        changed = 0
        with seg.group(f"split {segment.name} into islands"):
            changed += seg.modify(segment, labels == ranks[0], "set", offset=offset)
            for n, rank in enumerate(ranks[1:], start=2):
                new = seg.add_segment(f"{segment.name} {n}")
                changed += seg.modify(new, labels == rank, "add", offset=offset, exclusive=False)
                ids.append(new.id)
        return ToolResult(changed, ids, f"{segment.name}: split into {len(ranks)} segments")


TOOLS = [IslandsTool()]
