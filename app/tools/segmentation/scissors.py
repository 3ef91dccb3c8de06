"""Scissors: cut or keep what lies inside or outside a polygon drawn in a view, through the volume.

The polygon is given in LPS mm (the clicks of a slice view or of the 3D view's picking plane) with
the view direction; it is extruded along that direction through the whole volume. Between two
slices of a grid axis the extrusion is a shift of the polygon, so each slice is rasterised in 2D
(even-odd rule at voxel centres): cost is one cheap 2D fill per slice.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from app.errors import SegmentationError
from app.progress import CancelToken, Progress, check_cancel
from app.tools.segmentation.base import Tool, ToolResult, editable_segment
from app.tools.segmentation.model import Segmentation
from app.tools.segmentation.params import param

OPERATIONS = ("erase-inside", "erase-outside", "fill-inside", "fill-outside")


@dataclass
class ScissorsParams:
    segment: str = param("", label="Segment")
    polygon_lps: list[tuple[float, float, float]] = param(  # noqa: RUF009
        [], label="Polygon (LPS mm)", help="at least 3 points"
    )
    direction_lps: tuple[float, float, float] = param(
        (0.0, 0.0, 1.0),
        label="View direction",
        help="the polygon is swept along it; axial view: (0, 0, 1)",
    )
    operation: str = param(
        "erase-inside",
        label="Operation",
        choices=OPERATIONS,
        help="erase-inside cuts, erase-outside keeps the inside",
    )


def polygon_fill(poly: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Even-odd fill of a 2D polygon (N, 2) in (row, column) units, sampled at pixel centres.

    Pixels whose centre lies on the outline count as inside.
    """
    rows, cols = shape
    out = np.zeros(shape, dtype=bool)
    r_lo = max(0, int(np.ceil(poly[:, 0].min() - _EPS)))
    r_hi = min(rows - 1, int(np.floor(poly[:, 0].max() + _EPS)))
    if r_hi < r_lo:
        return out
    y = np.arange(r_lo, r_hi + 1, dtype=float)[:, None]
    out[r_lo : r_hi + 1] = _fill_rows(poly, y - _EPS, cols) | _fill_rows(poly, y + _EPS, cols)
    return out


_EPS = 1e-6


def _fill_rows(poly: np.ndarray, y: np.ndarray, cols: int) -> np.ndarray:
    a = poly
    b = np.roll(poly, -1, axis=0)
    y0, y1 = a[:, 0][None, :], b[:, 0][None, :]
    crosses = (y0 <= y) != (y1 <= y)
    with np.errstate(divide="ignore", invalid="ignore"):
        x = a[:, 1][None, :] + (y - y0) * (b[:, 1] - a[:, 1])[None, :] / (y1 - y0)
    x = np.where(crosses, x, np.inf)
    x.sort(axis=1)
    counts = crosses.sum(axis=1)
    diff = np.zeros((len(y), cols + 1), dtype=np.int32)
    for n in range(0, int(counts.max(initial=0)), 2):
        has = counts > n + 1
        start = np.clip(np.ceil(x[has, n] - 10 * _EPS), 0, cols).astype(int)
        stop = np.clip(np.floor(x[has, n + 1] + 10 * _EPS) + 1, 0, cols).astype(int)
        rows_idx = np.flatnonzero(has)
        np.add.at(diff, (rows_idx, start), 1)
        np.add.at(diff, (rows_idx, stop), -1)
    return np.cumsum(diff[:, :cols], axis=1) > 0


def extruded_polygon(grid, polygon_lps: Any, direction_lps: Any) -> np.ndarray:
    """Boolean (k, j, i) mask of the voxels inside the polygon swept along the direction."""
    inv = np.linalg.inv(grid.affine[:3, :3])
    uvw = (np.asarray(polygon_lps, dtype=float) - grid.affine[:3, 3]) @ inv.T  # (N, 3) i, j, k
    d = inv @ np.asarray(direction_lps, dtype=float)
    if np.linalg.norm(d) == 0:
        msg = "the view direction is zero; pass the direction the view looks along"
        raise SegmentationError(msg)
    sweep = int(
        np.argmax(np.abs(d) * np.asarray(grid.spacing))
    )  # grid axis (i=0, j=1, k=2) most along d
    others = [a for a in (2, 1, 0) if a != sweep]  # array order of the two in-plane axes
    shape_ijk = grid.size_ijk
    array_axis = {0: 2, 1: 1, 2: 0}
    mask = np.zeros(grid.shape, dtype=bool)
    plane_shape = (shape_ijk[others[0]], shape_ijk[others[1]])
    for s in range(shape_ijk[sweep]):
        t = (s - uvw[:, sweep]) / d[sweep]
        pts = uvw + t[:, None] * d[None, :]
        fill = polygon_fill(pts[:, others], plane_shape)
        index = [slice(None)] * 3
        index[array_axis[sweep]] = s
        mask[tuple(index)] = fill
    return mask


class ScissorsTool(Tool):
    name = "scissors"
    title = "Scissors"
    help = __doc__ or ""
    Params = ScissorsParams
    interactive = True
    needs_volume = False

    def check(self, seg: Segmentation, volume: Any, params: ScissorsParams) -> None:
        editable_segment(seg, params.segment, must_have_voxels=params.operation.startswith("erase"))
        if len(params.polygon_lps) < 3 or any(len(p) != 3 for p in params.polygon_lps):
            msg = "scissors need a polygon of at least three (x, y, z) points"
            raise SegmentationError(msg)

    def run(
        self,
        seg: Segmentation,
        volume: Any,
        params: ScissorsParams,
        progress: Progress,
        cancel: CancelToken | None,
    ) -> ToolResult:
        segment = seg.segment(params.segment)
        inside = extruded_polygon(seg.grid, params.polygon_lps, params.direction_lps)
        check_cancel(cancel)
        region = inside if params.operation.endswith("inside") else ~inside
        mode = "remove" if params.operation.startswith("erase") else "add"
        changed = seg.modify(segment, region, mode, description=f"scissors {params.operation}")
        return ToolResult(
            changed, [segment.id], f"{segment.name}: scissors {params.operation}, {changed} voxels"
        )


TOOLS = [ScissorsTool()]
