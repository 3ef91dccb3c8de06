"""Paint and erase brushes: a 2D circle in the slice plane or a 3D sphere, radius in mm.

A drag in a view is one stroke: the view calls ``seg.begin_stroke()``, then ``apply`` with the
new points on every mouse move (consecutive points are joined, so fast drags leave no gaps), and
``seg.end_stroke()`` on release; the whole stroke is one undo step. With ``hu_min``/``hu_max``
only voxels in that intensity range are painted ("threshold paint").
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import numpy as np

from app.errors import SegmentationError
from app.progress import CancelToken, Progress
from app.tools.segmentation.base import Tool, ToolResult, editable_segment, hu_array
from app.tools.segmentation.grid import Box
from app.tools.segmentation.model import Segmentation
from app.tools.segmentation.params import param

AXES = {"k": 0, "j": 1, "i": 2}


@dataclass
class PaintParams:
    segment: str = param("", label="Segment")
    points: list[tuple[float, float, float]] = param(  # noqa: RUF009
        [], label="Brush centres (i, j, k)", help="voxel indices; consecutive points are joined"
    )
    radius_mm: float = param(5.0, label="Radius", unit="mm", minimum=0.1, maximum=200)
    shape: str = param(
        "circle", label="Shape", choices=("circle", "sphere"), help="circle: in the slice only"
    )
    axis: str = param(
        "k",
        label="Slice axis",
        choices=tuple(AXES),
        help="k axial, j coronal, i sagittal (for circles)",
    )
    erase: bool = param(False, label="Erase")
    hu_min: float | None = param(
        None, label="Only from", unit="HU", help="threshold paint: lower bound"
    )
    hu_max: float | None = param(
        None, label="Only up to", unit="HU", help="threshold paint: upper bound"
    )


def _dense_points(points: np.ndarray, step: np.ndarray) -> np.ndarray:
    """Points (N, 3) in (k, j, i) with extra points so neighbours are at most ``step`` apart."""
    out = [points[:1]]
    for a, b in itertools.pairwise(points):
        n = int(np.ceil(np.max(np.abs(b - a) / step)))
        if n > 1:
            t = np.linspace(0, 1, n + 1)[1:, None]
            out.append(a + t * (b - a))
        else:
            out.append(b[None])
    return np.concatenate(out)


def brush_mask(
    shape: tuple[int, int, int],
    spacing_kji: tuple[float, float, float],
    points_ijk: list[tuple[float, float, float]],
    radius_mm: float,
    *,
    sphere: bool,
    axis: int = 0,
) -> tuple[np.ndarray, Box] | None:
    """The brush footprint of a stroke cropped to its box; None when it misses the volume."""
    spacing = np.asarray(spacing_kji)
    pts = np.asarray([(p[2], p[1], p[0]) for p in points_ijk], dtype=float)
    if not sphere:
        pts[:, axis] = np.round(pts[:, axis])
    reach = radius_mm / spacing
    if not sphere:
        reach[axis] = 0.0
    pts = _dense_points(pts, np.maximum(reach * 0.5, 0.5))
    lo = np.floor(pts.min(axis=0) - reach).astype(int)
    hi = np.ceil(pts.max(axis=0) + reach).astype(int) + 1
    lo = np.maximum(lo, 0)
    hi = np.minimum(hi, shape)
    if np.any(hi <= lo):
        return None
    box: Box = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi, strict=True))  # type: ignore[assignment]
    grids = [np.arange(a, b) * s for a, b, s in zip(lo, hi, spacing, strict=True)]
    mask = np.zeros(tuple(hi - lo), dtype=bool)
    r2 = radius_mm * radius_mm
    for p in pts:
        c = p * spacing
        d = [(g - cc) ** 2 for g, cc in zip(grids, c, strict=True)]
        if not sphere:
            d[axis] = np.where(np.abs(grids[axis] - c[axis]) < 0.5 * spacing[axis], 0.0, np.inf)
        mask |= (d[0][:, None, None] + d[1][None, :, None] + d[2][None, None, :]) <= r2
    return mask, box


class PaintTool(Tool):
    name = "paint"
    title = "Paint / erase"
    help = __doc__ or ""
    Params = PaintParams
    interactive = True
    needs_volume = False

    def check(self, seg: Segmentation, volume: Any, params: PaintParams) -> None:
        editable_segment(seg, params.segment)
        if not params.points:
            msg = "paint needs at least one brush position"
            raise SegmentationError(msg)
        if any(len(p) != 3 for p in params.points):
            msg = "a brush position is three numbers (i, j, k)"
            raise SegmentationError(msg)
        if (
            params.hu_min is not None
            and params.hu_max is not None
            and params.hu_min > params.hu_max
        ):
            msg = "the HU range is reversed; swap its bounds"
            raise SegmentationError(msg)
        if (params.hu_min is not None or params.hu_max is not None) and volume is None:
            msg = "threshold paint needs the image volume; load the case's volume first"
            raise SegmentationError(msg)

    def run(
        self,
        seg: Segmentation,
        volume: Any,
        params: PaintParams,
        progress: Progress,
        cancel: CancelToken | None,
    ) -> ToolResult:
        segment = seg.segment(params.segment)
        found = brush_mask(
            seg.grid.shape,
            seg.grid.spacing_kji,
            params.points,
            params.radius_mm,
            sphere=params.shape == "sphere",
            axis=AXES[params.axis],
        )
        if found is None:
            return ToolResult(0, [segment.id], "the brush is outside the volume")
        mask, box = found
        if not params.erase and (params.hu_min is not None or params.hu_max is not None):
            values = hu_array(volume)[box]
            if params.hu_min is not None:
                mask &= values >= params.hu_min
            if params.hu_max is not None:
                mask &= values <= params.hu_max
        offset = (box[0].start, box[1].start, box[2].start)
        mode = "remove" if params.erase else "add"
        changed = seg.modify(
            segment, mask, mode, offset=offset, description="erase" if params.erase else "paint"
        )
        return ToolResult(
            changed,
            [segment.id],
            f"{segment.name}: {'erased' if params.erase else 'painted'} {changed} voxels",
        )


TOOLS = [PaintTool()]
