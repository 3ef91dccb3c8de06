"""Threshold: HU presets (InVesalius' CT table), MR percentiles and automatic methods."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from app.errors import SegmentationError
from app.progress import CancelToken, Progress, check_cancel
from app.tools.segmentation.base import Tool, ToolResult, hu_array, target_segment
from app.tools.segmentation.model import Segmentation
from app.tools.segmentation.params import param

# InVesalius' CT threshold presets (HU, inclusive).
CT_PRESETS: dict[str, tuple[float, float]] = {
    "bone": (226, 3071),
    "compact-bone": (662, 1988),
    "spongial-bone": (148, 661),
    "enamel": (1553, 2850),
    "soft-tissue": (-700, 225),
    "skin": (-718, -177),
}
PRESET_COLORS: dict[str, tuple[float, float, float]] = {
    "bone": (0.945, 0.839, 0.569),
    "compact-bone": (0.980, 0.930, 0.800),
    "spongial-bone": (0.850, 0.700, 0.500),
    "enamel": (1.0, 1.0, 0.95),
    "soft-tissue": (0.847, 0.396, 0.310),
    "skin": (0.694, 0.478, 0.396),
}
AUTO_METHODS = ("otsu", "triangle", "huang", "li", "maxentropy")
METHODS = ("range", "percentile", *AUTO_METHODS)


@dataclass
class ThresholdParams:
    segment: str = param(
        "", label="Segment", help="segment to fill; empty creates one named after the preset"
    )
    method: str = param(
        "range",
        label="Method",
        choices=METHODS,
        help="range: lower..upper (or a preset); percentile: MR intensities by percentile; "
        "otsu/triangle/huang/li/maxentropy: automatic threshold, keeps everything above it",
    )
    preset: str = param(
        "bone",
        label="Preset",
        choices=("custom", *CT_PRESETS),
        help="CT HU range; custom uses lower/upper",
    )
    lower: float = param(226.0, label="Lower", unit="HU", minimum=-32768, maximum=65535)
    upper: float = param(3071.0, label="Upper", unit="HU", minimum=-32768, maximum=65535)
    percentile_low: float = param(
        90.0,
        label="Lower percentile",
        unit="%",
        minimum=0,
        maximum=100,
        help="for MR: share of voxels below",
    )
    percentile_high: float = param(
        100.0, label="Upper percentile", unit="%", minimum=0, maximum=100
    )
    mode: str = param(
        "set",
        label="Mode",
        choices=("set", "add", "remove"),
        help="replace the segment, add to it, or cut from it",
    )


def resolve_range(volume: Any, params: ThresholdParams) -> tuple[float, float]:
    """The (lower, upper) intensity range ``params`` stand for on this volume."""
    if params.method == "range":
        if params.preset != "custom":
            return CT_PRESETS[params.preset]
        return (params.lower, params.upper)
    array = hu_array(volume)
    sample = array[::2, ::2, ::2]
    if params.method == "percentile":
        floor = sample.min()
        values = sample[sample > floor]  # ignore the background (air, padding, MR zero)
        if values.size == 0:
            msg = "the volume is uniform; a percentile threshold needs contrast"
            raise SegmentationError(msg)
        low, high = np.percentile(values, [params.percentile_low, params.percentile_high])
        return (float(low), float(high))
    return (_auto_threshold(sample, params.method), float(array.max()))


def _auto_threshold(sample: np.ndarray, method: str) -> float:
    import SimpleITK as sitk  # noqa: PLC0415

    filters = {
        "otsu": sitk.OtsuThresholdImageFilter,
        "triangle": sitk.TriangleThresholdImageFilter,
        "huang": sitk.HuangThresholdImageFilter,
        "li": sitk.LiThresholdImageFilter,
        "maxentropy": sitk.MaximumEntropyThresholdImageFilter,
    }
    flt = filters[method]()
    flt.SetInsideValue(0)
    flt.SetOutsideValue(1)
    flt.Execute(sitk.GetImageFromArray(np.ascontiguousarray(sample)))
    return float(flt.GetThreshold())


def threshold_mask(array: np.ndarray, lower: float, upper: float) -> np.ndarray:
    """``lower <= array <= upper`` without a float copy of the volume.

    Integer arrays take one subtraction and one unsigned comparison per element (below
    ``lower`` the difference wraps to large values), slab by slab so the difference stays in
    the CPU cache and never costs a volume-sized temporary.
    """
    if not np.issubdtype(array.dtype, np.integer):
        mask = array >= lower
        mask &= array <= upper
        return mask
    info = np.iinfo(array.dtype)
    lower = max(np.ceil(lower), info.min)
    upper = min(np.floor(upper), info.max)
    mask = np.empty(array.shape, dtype=bool)
    if lower > upper:
        mask[...] = False
        return mask
    if array.ndim < 2:
        _wrapped_range(array, int(lower), int(upper), mask)
        return mask
    step = max(1, _SLAB // max(1, array[0].size))
    for start in range(0, len(array), step):
        part = slice(start, start + step)
        _wrapped_range(array[part], int(lower), int(upper), mask[part])
    return mask


_SLAB = 1 << 19  # elements per slab: the int difference and the mask fit a 2 MiB L2 cache


def _wrapped_range(array: np.ndarray, lower: int, upper: int, out: np.ndarray) -> None:
    """``out = lower <= array <= upper`` for integers in the array's range: one subtraction
    wrapping modulo 2**bits, one unsigned comparison."""
    unsigned = np.dtype(f"u{array.dtype.itemsize}")
    shifted = np.subtract(array, array.dtype.type(lower), dtype=array.dtype).view(unsigned)
    np.less_equal(shifted, unsigned.type(upper - lower), out=out)


def preview(
    volume: Any, params: ThresholdParams, index: int | None = None, axis: str = "k"
) -> np.ndarray:
    """The mask a threshold would give on one slice (for the live preview), or on the volume.

    ``axis`` "k" is an axial slice (rows j, columns i), "j" coronal, "i" sagittal.
    """
    low, high = resolve_range(volume, params)
    array = hu_array(volume)
    if index is not None:
        array = np.take(array, int(index), axis={"k": 0, "j": 1, "i": 2}[axis])
    return threshold_mask(array, low, high)


class ThresholdTool(Tool):
    name = "threshold"
    title = "Threshold"
    help = (
        "Fill a segment with every voxel whose intensity lies in a range: a CT preset from InVesalius' "
        "table (bone 226..3071 HU, ...), a custom range, MR percentiles, or an automatic method."
    )
    Params = ThresholdParams

    def check(self, seg: Segmentation, volume: Any, params: ThresholdParams) -> None:
        if params.method == "range" and params.preset == "custom" and params.lower > params.upper:
            msg = f"lower {params.lower:g} is above upper {params.upper:g}; swap them"
            raise SegmentationError(msg)
        if params.method == "percentile" and params.percentile_low >= params.percentile_high:
            msg = "the lower percentile must be below the upper one"
            raise SegmentationError(msg)

    def run(
        self,
        seg: Segmentation,
        volume: Any,
        params: ThresholdParams,
        progress: Progress,
        cancel: CancelToken | None,
    ) -> ToolResult:
        low, high = resolve_range(volume, params)
        progress.update(0.2, f"threshold {low:g}..{high:g}")
        array = hu_array(volume)
        check_cancel(cancel)
        name = (
            params.preset if params.method == "range" and params.preset != "custom" else "threshold"
        )
        with seg.group(f"threshold {low:g}..{high:g}"):
            segment = target_segment(seg, params.segment, name, PRESET_COLORS.get(name))
            changed = seg.modify_slabs(
                segment, lambda ks: threshold_mask(array[ks], low, high), params.mode
            )
        return ToolResult(
            changed,
            [segment.id],
            f"{segment.name}: threshold {low:g}..{high:g}, {changed} voxels changed",
            {"lower": low, "upper": high},
        )


TOOLS = [ThresholdTool()]
