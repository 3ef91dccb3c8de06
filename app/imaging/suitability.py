"""Is this scan fit to print? Warnings with reasons; they inform, never block.

Radiology's 3D-printing guidelines ask for thin, evenly spaced, untilted slices (≤ 1.25 mm),
the whole anatomy inside the field of view, a smooth reconstruction kernel, and no metal or
motion artefacts. Each check returns ``{"code": ..., "reason": ...}``; the codes are
``thickness``, ``gaps``, ``irregular``, ``tilt``, ``truncated``, ``kernel``, ``metal`` and
``motion``.
Nothing here reads or returns identity.
"""

from __future__ import annotations

import io
import itertools
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from app.imaging.headers import normal_distances

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
MOTION_JUMP = 1.5  # change between two slices over the median change of their neighbours
MOTION_SHIFT_GAIN = 1.4  # how much better an in-plane shift matches the next slice
MOTION_PIXEL_MM = 2.0  # slices are compared at about this pixel size
_MOTION_WINDOW = 7  # slice pairs around each pair whose median change is the usual one
_MOTION_SHIFT_PX = 4  # the largest in-plane shift tried, in compared pixels
_SHARP = re.compile(r"BONE|LUNG|SHARP|EDGE|DETAIL|^HR|^[BIHJ][5-9]\d|^FC[5-9]\d|^YC|^YD", re.I)

Warning = dict[str, str]


def _warn(code: str, reason: str) -> Warning:
    return {"code": code, "reason": reason}


def series_warnings(series: Series) -> list[Warning]:
    """What the slices' geometry says: thickness and spacing, gaps, irregular steps, tilt."""
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
    """What the image says: body at the edge of the field of view, metal streaks (CT), slabs
    displaced by motion (any modality)."""
    found = _ct_warnings(volume) if volume.modality == "CT" else []
    return found + motion_warnings(volume)


def _ct_warnings(volume: Volume) -> list[Warning]:
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


def motion_warnings(volume: Volume) -> list[Warning]:
    """Slices displaced against their neighbours, as motion between them leaves them.

    Anatomy changes smoothly from slice to slice; a patient who moved between two slices
    leaves a jump: the two differ far more than the slices around them do (``MOTION_JUMP``
    times the local median) and an in-plane shift of one matches the other clearly better
    (``MOTION_SHIFT_GAIN``), which a change of anatomy or contrast does not.
    """
    from scipy import ndimage  # noqa: PLC0415 (only an import with an image needs it)

    if volume.shape[0] < _MOTION_WINDOW:
        return []
    step = max(1, round(MOTION_PIXEL_MM / min(volume.spacing[:2])))
    slices = [_comparable(volume, k, step) for k in range(volume.shape[0])]
    change = np.array([np.abs(b - a).mean() for a, b in itertools.pairwise(slices)])
    usual = ndimage.median_filter(change, size=_MOTION_WINDOW, mode="nearest")
    jumps = np.flatnonzero(change > MOTION_JUMP * np.maximum(usual, 1e-6))
    shifts = {int(k): _best_shift(slices[k], slices[k + 1]) for k in jumps}
    moved = {k: shift for k, (gain, shift) in shifts.items() if gain >= MOTION_SHIFT_GAIN}
    if not moved:
        return []
    pairs = ", ".join(f"{k + 1} and {k + 2}" for k in sorted(moved)[:3])
    more = f" (and {len(moved) - 3} more)" if len(moved) > 3 else ""
    largest = max(float(np.hypot(*s)) * step * volume.spacing[0] for s in moved.values())
    reason = f"slices {pairs}{more} are displaced against each other by about "
    reason += f"{largest:.0f} mm: patient motion may distort or step the surface there"
    return [_warn("motion", reason)]


def _comparable(volume: Volume, k: int, step: int) -> np.ndarray:
    """Slice ``k`` at about ``MOTION_PIXEL_MM`` per pixel, CT clipped to air..dense bone (so
    metal does not dominate)."""
    image = volume.array[k, ::step, ::step].astype(np.float32)
    return np.clip(image, -1000, 1500) if volume.modality == "CT" else image


def _best_shift(a: np.ndarray, b: np.ndarray) -> tuple[float, tuple[int, int]]:
    """How much better the best in-plane shift of ``a`` (up to ``_MOTION_SHIFT_PX``) matches
    ``b`` than ``a`` as it is, and that shift (rows, columns)."""
    m = _MOTION_SHIFT_PX
    inner = (slice(m, -m), slice(m, -m))
    plain = float(np.abs(b[inner] - a[inner]).mean())
    best, where = plain, (0, 0)
    for dy in range(-m, m + 1):
        for dx in range(-m, m + 1):
            moved = np.roll(a, (dy, dx), axis=(0, 1))
            value = float(np.abs(b[inner] - moved[inner]).mean())
            if value < best:
                best, where = value, (dy, dx)
    return plain / max(best, 1e-6), where


def unique(warnings: Sequence[Warning]) -> list[Warning]:
    """One warning per code (the first reason given), in the order found."""
    seen: dict[str, Warning] = {}
    for warning in warnings:
        seen.setdefault(warning["code"], warning)
    return list(seen.values())
