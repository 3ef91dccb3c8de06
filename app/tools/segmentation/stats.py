"""Per-segment statistics: voxel count, volume, surface area, bounding box and HU figures."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from app.tools.segmentation.grid import box_pad

if TYPE_CHECKING:
    from app.tools.segmentation.model import Segment, Segmentation


@dataclass
class SegmentStatistics:
    """Per-segment figures; HU values are None without a volume or for an empty segment."""

    id: str
    name: str
    voxels: int
    volume_ml: float
    surface_mm2: float
    bbox_min_ijk: tuple[int, int, int] | None
    bbox_max_ijk: tuple[int, int, int] | None
    bbox_min_lps: tuple[float, float, float] | None
    bbox_max_lps: tuple[float, float, float] | None
    hu_mean: float | None = None
    hu_std: float | None = None
    hu_min: float | None = None
    hu_max: float | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def surface_area_mm2(mask: np.ndarray, spacing_ijk: tuple[float, float, float]) -> float:
    """Surface area of a binary mask in mm² (SimpleITK's perimeter estimate, Crofton formula)."""
    import SimpleITK as sitk  # noqa: PLC0415

    if not mask.any():
        return 0.0
    padded = np.pad(mask.astype(np.uint8), 1)
    image = sitk.GetImageFromArray(padded)
    image.SetSpacing(tuple(float(s) for s in spacing_ijk))
    shape = sitk.LabelShapeStatisticsImageFilter()
    shape.SetComputePerimeter(True)
    shape.Execute(image)
    return float(shape.GetPerimeter(1))


def segment_statistics(
    seg: Segmentation, segment: Segment, volume: Any, *, surface: bool = True
) -> SegmentStatistics:
    grid = seg.grid
    box = seg.bbox(segment)
    if box is None:
        return SegmentStatistics(segment.id, segment.name, 0, 0.0, 0.0, None, None, None, None)
    mask = seg.mask(segment, box)
    voxels = int(np.count_nonzero(mask))
    lo = (box[2].start, box[1].start, box[0].start)
    hi = (box[2].stop - 1, box[1].stop - 1, box[0].stop - 1)
    corners = grid.index_to_lps(
        np.array(
            [[i, j, k] for i in (lo[0], hi[0]) for j in (lo[1], hi[1]) for k in (lo[2], hi[2])]
        )
    )
    stats = SegmentStatistics(
        id=segment.id,
        name=segment.name,
        voxels=voxels,
        volume_ml=voxels * grid.voxel_volume_mm3 / 1000.0,
        surface_mm2=surface_area_mm2(mask, grid.spacing) if surface else float("nan"),
        bbox_min_ijk=lo,
        bbox_max_ijk=hi,
        bbox_min_lps=tuple(float(v) for v in corners.min(axis=0)),  # type: ignore[arg-type]
        bbox_max_lps=tuple(float(v) for v in corners.max(axis=0)),  # type: ignore[arg-type]
    )
    if volume is not None:
        values = np.asarray(volume.array)[box][mask]
        stats.hu_mean = float(values.mean(dtype=np.float64))
        stats.hu_std = float(values.std(dtype=np.float64))
        stats.hu_min = float(values.min())
        stats.hu_max = float(values.max())
    return stats


__all__ = ["SegmentStatistics", "box_pad", "segment_statistics", "surface_area_mm2"]
