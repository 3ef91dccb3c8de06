"""Region growing from seed clicks, and grow-from-seeds (watershed from several labelled seeds)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from app.errors import SegmentationError
from app.progress import CancelToken, Progress, check_cancel
from app.tools.segmentation.base import (
    Tool,
    ToolResult,
    editable_segment,
    hu_array,
    seed_indices,
    target_segment,
)
from app.tools.segmentation.grid import box_pad, box_union, mask_box
from app.tools.segmentation.model import Segmentation
from app.tools.segmentation.params import param


@dataclass
class RegionGrowParams:
    segment: str = param("", label="Segment", help="segment to fill; empty creates 'region'")
    seeds: list[tuple[float, float, float]] = param(  # noqa: RUF009
        [], label="Seeds (i, j, k)", help="click points in the region"
    )
    method: str = param(
        "connected-threshold",
        label="Method",
        choices=("connected-threshold", "confidence-connected"),
        help="connected-threshold: voxels in lower..upper connected to a seed; confidence-connected: "
        "voxels within mean ± multiplier·std of the region, re-estimated each iteration",
    )
    lower: float = param(226.0, label="Lower", unit="HU", minimum=-32768, maximum=65535)
    upper: float = param(3071.0, label="Upper", unit="HU", minimum=-32768, maximum=65535)
    multiplier: float = param(
        2.0, label="Multiplier", minimum=0.1, maximum=10, help="confidence-connected"
    )
    iterations: int = param(
        2, label="Iterations", minimum=0, maximum=50, help="confidence-connected"
    )
    neighborhood: int = param(1, label="Seed neighbourhood", unit="voxels", minimum=0, maximum=10)
    mode: str = param("set", label="Mode", choices=("set", "add"))


def grow_region(
    array: np.ndarray, grid, params: RegionGrowParams, seeds: list[tuple[int, int, int]]
) -> np.ndarray:
    import SimpleITK as sitk  # noqa: PLC0415

    image = grid.to_sitk(array)
    if params.method == "connected-threshold":
        out = sitk.ConnectedThreshold(image, seedList=seeds, lower=params.lower, upper=params.upper)
    else:
        out = sitk.ConfidenceConnected(
            image,
            seedList=seeds,
            numberOfIterations=params.iterations,
            multiplier=params.multiplier,
            initialNeighborhoodRadius=params.neighborhood,
            replaceValue=1,
        )
    return sitk.GetArrayFromImage(out).astype(bool)


class RegionGrowTool(Tool):
    name = "region-growing"
    title = "Region growing"
    help = __doc__ or ""
    Params = RegionGrowParams
    interactive = True

    def check(self, seg: Segmentation, volume: Any, params: RegionGrowParams) -> None:
        if not params.seeds:
            msg = "region growing needs at least one seed: click inside the structure"
            raise SegmentationError(msg)
        seed_indices(seg, params.seeds)
        if params.method == "connected-threshold" and params.lower > params.upper:
            msg = "lower is above upper; swap them"
            raise SegmentationError(msg)
        if params.segment and seg.has_segment(params.segment):
            editable_segment(seg, params.segment)

    def run(
        self,
        seg: Segmentation,
        volume: Any,
        params: RegionGrowParams,
        progress: Progress,
        cancel: CancelToken | None,
    ) -> ToolResult:
        seeds = seed_indices(seg, params.seeds)
        mask = grow_region(hu_array(volume), seg.grid, params, seeds)
        check_cancel(cancel)
        box = mask_box(mask)
        if box is None:
            msg = "nothing grew from the seeds; check the range against the seed intensity"
            raise SegmentationError(msg)
        with seg.group("region growing"):
            segment = target_segment(seg, params.segment, "region")
            changed = seg.modify(
                segment, mask[box], params.mode, offset=(box[0].start, box[1].start, box[2].start)
            )
        return ToolResult(
            changed, [segment.id], f"{segment.name}: grew {int(np.count_nonzero(mask))} voxels"
        )


@dataclass
class GrowFromSeedsParams:
    segments: list[str] = param(  # noqa: RUF009  # noqa: RUF009
        [],
        label="Seed segments",
        help="two or more segments painted as seeds (one should be background); empty = all",
    )
    margin_mm: float = param(
        20.0, label="Region margin", unit="mm", minimum=0, maximum=500, help="around the seeds"
    )
    hu_min: float | None = param(None, label="Only from", unit="HU")
    hu_max: float | None = param(None, label="Only up to", unit="HU")
    sigma_mm: float = param(
        1.0, label="Edge smoothing", unit="mm", minimum=0.1, maximum=10, advanced=True
    )


class GrowFromSeedsTool(Tool):
    name = "grow-from-seeds"
    title = "Grow from seeds"
    help = (
        "Separate touching structures: paint a few strokes in each structure and in the background as "
        "separate segments, then every voxel near them goes to the seed it reaches first across the "
        "image edges (marker-controlled watershed on the gradient magnitude)."
    )
    Params = GrowFromSeedsParams

    def _segments(self, seg: Segmentation, params: GrowFromSeedsParams):
        keys = params.segments or [s.id for s in seg.segments if not s.locked]
        segments = [editable_segment(seg, k, must_have_voxels=True) for k in keys]
        if len(segments) < 2:
            msg = "grow from seeds needs at least two non-empty seed segments (e.g. structure and background)"
            raise SegmentationError(msg)
        return segments

    def check(self, seg: Segmentation, volume: Any, params: GrowFromSeedsParams) -> None:
        self._segments(seg, params)

    def run(
        self,
        seg: Segmentation,
        volume: Any,
        params: GrowFromSeedsParams,
        progress: Progress,
        cancel: CancelToken | None,
    ) -> ToolResult:
        import SimpleITK as sitk  # noqa: PLC0415

        segments = self._segments(seg, params)
        box = None
        for s in segments:
            box = box_union(box, seg.bbox(s))
        pad = tuple(int(np.ceil(params.margin_mm / sp)) for sp in seg.grid.spacing_kji)
        box = box_pad(box, pad, seg.grid.shape)  # type: ignore[arg-type]
        values = hu_array(volume)[box].astype(np.float32)
        markers = np.zeros(values.shape, dtype=np.uint16)
        for n, s in enumerate(segments, start=1):
            markers[(markers == 0) & seg.mask(s, box)] = n
        blocked = np.zeros(values.shape, dtype=bool)
        if params.hu_min is not None:
            blocked |= values < params.hu_min
        if params.hu_max is not None:
            blocked |= values > params.hu_max
        barrier = len(segments) + 1
        markers[blocked & (markers == 0)] = barrier
        progress.update(0.2, "edges")
        image = sitk.GetImageFromArray(values)
        image.SetSpacing(seg.grid.spacing)
        gradient = sitk.GradientMagnitudeRecursiveGaussian(image, params.sigma_mm)
        check_cancel(cancel)
        progress.update(0.5, "watershed")
        marker_image = sitk.GetImageFromArray(markers)
        marker_image.CopyInformation(gradient)
        result = sitk.GetArrayFromImage(
            sitk.MorphologicalWatershedFromMarkers(
                gradient, marker_image, markWatershedLine=False, fullyConnected=False
            )
        )
        check_cancel(cancel)
        masks = {s.id: result == n for n, s in enumerate(segments, start=1)}
        changed = seg.write_masks(
            masks, (box[0].start, box[1].start, box[2].start), "grow from seeds"
        )
        return ToolResult(
            changed, [s.id for s in segments], f"grew {len(segments)} segments from their seeds"
        )


TOOLS = [RegionGrowTool(), GrowFromSeedsTool()]
