"""Smoothing a segment: median, opening, closing (fills holes), Gaussian; kernel size in mm."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from app.progress import CancelToken, Progress, check_cancel
from app.tools.segmentation import ops
from app.tools.segmentation.base import Tool, ToolResult, editable_segment
from app.tools.segmentation.grid import box_pad
from app.tools.segmentation.model import Segmentation
from app.tools.segmentation.params import param

METHODS = ("median", "opening", "closing", "gaussian")
FWHM_PER_SIGMA = 2.3548  # the Gaussian kernel size is its full width at half maximum


@dataclass
class SmoothingParams:
    segment: str = param("", label="Segment")
    method: str = param(
        "median",
        label="Method",
        choices=METHODS,
        help="median: removes small bumps and dents; opening: removes thin protrusions; "
        "closing: fills small holes and gaps; gaussian: rounds the surface (kernel = full width at half maximum)",
    )
    kernel_mm: float = param(3.0, label="Kernel size", unit="mm", minimum=0.1, maximum=50)


def kernel_radius(
    spacing_kji: tuple[float, float, float], kernel_mm: float
) -> tuple[int, int, int]:
    """Kernel size in mm to a radius in voxels per axis (odd kernel of about that size)."""
    return tuple(max(0, round(kernel_mm / s) // 2) for s in spacing_kji)  # type: ignore[return-value]


def gaussian(mask: np.ndarray, sigma_ijk: tuple[float, float, float]) -> np.ndarray:
    import SimpleITK as sitk  # noqa: PLC0415

    image = sitk.GetImageFromArray(mask.astype(np.float32))
    image.SetSpacing(tuple(max(s, 1e-6) for s in sigma_ijk))  # sigma of 1 "mm" per axis
    smooth = sitk.SmoothingRecursiveGaussian(image, 1.0)
    return sitk.GetArrayViewFromImage(smooth) >= 0.5


class SmoothingTool(Tool):
    name = "smoothing"
    title = "Smoothing"
    help = "Smooth a segment with a median, opening, closing or Gaussian filter of a size in mm."
    Params = SmoothingParams
    needs_volume = False

    def check(self, seg: Segmentation, volume: Any, params: SmoothingParams) -> None:
        editable_segment(seg, params.segment, must_have_voxels=True)

    def run(
        self,
        seg: Segmentation,
        volume: Any,
        params: SmoothingParams,
        progress: Progress,
        cancel: CancelToken | None,
    ) -> ToolResult:
        import SimpleITK as sitk  # noqa: PLC0415

        segment = seg.segment(params.segment)
        spacing = seg.grid.spacing_kji
        if params.method == "gaussian":
            sigma_vox = tuple(params.kernel_mm / FWHM_PER_SIGMA / s for s in spacing)
            pad = tuple(int(np.ceil(3 * v)) + 1 for v in sigma_vox)
        else:
            radius = kernel_radius(spacing, params.kernel_mm)
            if not any(radius):
                return ToolResult(0, [segment.id], "kernel smaller than a voxel: nothing to smooth")
            pad = ops.pad_for(radius, 2)
        box = box_pad(seg.bbox(segment), pad, seg.grid.shape)  # type: ignore[arg-type]
        mask = seg.mask(segment, box)
        progress.update(0.2, params.method)
        if params.method == "median":
            image = sitk.BinaryMedian(ops.to_image(mask), [radius[2], radius[1], radius[0]], 1, 0)
            out = ops.from_image(image).astype(bool)
        elif params.method == "opening":
            out = ops.opening(mask, radius)
        elif params.method == "closing":
            out = ops.closing(mask, radius)
        else:
            out = gaussian(mask, (1 / sigma_vox[2], 1 / sigma_vox[1], 1 / sigma_vox[0]))
        check_cancel(cancel)
        offset = (box[0].start, box[1].start, box[2].start)
        changed = seg.modify(
            segment, out, "set", offset=offset, description=f"smoothing {params.method}"
        )
        return ToolResult(
            changed, [segment.id], f"{segment.name}: {params.method} {params.kernel_mm:g} mm"
        )


TOOLS = [SmoothingTool()]
