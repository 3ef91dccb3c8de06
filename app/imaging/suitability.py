"""Is this scan fit to print? Warnings with reasons; they inform, never block.

Radiology's 3D-printing guidelines ask for thin, evenly spaced, untilted slices (≤ 1.25 mm),
the whole anatomy inside the field of view, a smooth reconstruction kernel, and no metal or
motion artefacts. Each check returns ``{"code": ..., "reason": ...}``; the codes are
``thickness``, ``gaps``, ``irregular``, ``tilt``, ``truncated``, ``kernel`` and ``metal``.
Nothing here reads or returns identity.
"""

from __future__ import annotations

import io
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from app.imaging.grouping import Series
    from app.imaging.volume import Volume

MAX_MM = 1.25
GAP_FACTOR = 1.5  # a step this much over the median is a gap (missing slices)
METAL_HU = 3000.0
METAL_VOXELS = 20
BODY_HU = -300.0
EDGE_FRACTION = 0.02  # of a slice's border pixels inside the body
TRUNCATED_SLICES = 0.1  # of the slices
_SHARP = re.compile(r"BONE|LUNG|SHARP|EDGE|DETAIL|^HR|^[BIHJ][5-9]\d|^FC[5-9]\d|^YC|^YD", re.I)

Warning = dict[str, str]


def _warn(code: str, reason: str) -> Warning:
    return {"code": code, "reason": reason}


def series_warnings(series: Series) -> list[Warning]:
    """What the slices' geometry says: thickness and spacing, gaps, irregular steps, tilt."""
    from app.imaging.grouping import normal_distances  # noqa: PLC0415 (no import cycle)

    found = _resolution(series.thickness, series.spacing)
    distances = normal_distances(series.slices)
    if distances is not None and len(distances) > 2:
        found += _steps(np.diff(np.sort(distances)))
    for note in (n for n in series.notes if "gantry tilt" in n):
        found.append(_warn("tilt", f"{note}: the stack is resampled; check the geometry"))
    return found


def _resolution(thickness: float | None, spacing: Sequence[float | None]) -> list[Warning]:
    coarse = []
    if thickness is not None and thickness > MAX_MM:
        coarse.append(f"slice thickness {thickness:.2f} mm")
    for name, value in zip(("column", "row", "slice"), spacing, strict=False):
        if value is not None and value > MAX_MM:
            coarse.append(f"{name} spacing {value:.2f} mm")
    if not coarse:
        return []
    reason = ", ".join(coarse) + f" (guidelines ask ≤ {MAX_MM} mm): small detail is lost"
    return [_warn("thickness", reason)]


def _steps(steps: np.ndarray) -> list[Warning]:
    steps = steps[steps > 1e-3]
    if len(steps) < 2:
        return []
    median = float(np.median(steps))
    found = []
    gaps = int((steps > GAP_FACTOR * median).sum())
    if gaps:
        found.append(
            _warn("gaps", f"{gaps} gap(s) between slices, up to {steps.max():.2f} mm "
                  f"(usual step {median:.2f} mm): slices are missing")
        )  # fmt: skip
    if steps.max() - steps.min() > max(0.01, 0.01 * median):
        found.append(
            _warn("irregular", f"uneven slice spacing {steps.min():.2f}–{steps.max():.2f} mm")
        )
    return found


def header_warnings(header: bytes) -> list[Warning]:
    """What one original's header says: reconstruction kernel and gantry tilt."""
    import pydicom  # noqa: PLC0415 (on demand)

    ds = pydicom.dcmread(io.BytesIO(header), stop_before_pixels=True, force=True)
    found = []
    kernel = ds.get("ConvolutionKernel")
    text = "/".join(kernel) if isinstance(kernel, pydicom.multival.MultiValue) else str(kernel)
    if kernel is not None and _SHARP.search(text):
        found.append(
            _warn("kernel", f"sharp reconstruction kernel {text}: noisy surfaces; a smooth "
                  "(soft-tissue) kernel segments better")
        )  # fmt: skip
    tilt = _float(ds.get("GantryDetectorTilt"))
    if tilt:
        found.append(_warn("tilt", f"gantry tilt {tilt:g}° in the header"))
    return found


def _float(value: object) -> float:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return 0.0


def image_warnings(volume: Volume) -> list[Warning]:
    """What the image says: body at the edge of the field of view, metal streaks (CT)."""
    if volume.modality != "CT":
        return []
    found = []
    truncated = _truncated_fraction(volume.array)
    if truncated >= TRUNCATED_SLICES:
        found.append(
            _warn("truncated", f"the body touches the image edge on {truncated:.0%} of the "
                  "slices: the field of view may cut the anatomy")
        )  # fmt: skip
    metal = int((volume.array > METAL_HU).sum())
    if metal >= METAL_VOXELS:
        found.append(
            _warn("metal", f"{metal} voxels above {METAL_HU:g} HU: metal and its streak "
                  "artefacts may distort the surface")
        )  # fmt: skip
    return found


def _truncated_fraction(array: np.ndarray) -> float:
    """Share of slices whose left, right or anterior border lies in the body (the posterior
    border is left out: the table lies there)."""
    borders = np.concatenate([array[:, :, :2], array[:, :, -2:]], axis=2).reshape(len(array), -1)
    top = array[:, :2, :].reshape(len(array), -1)
    inside = np.concatenate([borders, top], axis=1) > BODY_HU
    return float((inside.mean(axis=1) > EDGE_FRACTION).mean())


def unique(warnings: Sequence[Warning]) -> list[Warning]:
    """One warning per code (the first reason given), in the order found."""
    seen: dict[str, Warning] = {}
    for warning in warnings:
        seen.setdefault(warning["code"], warning)
    return list(seen.values())
