"""Straight-line fills (rectilinear, grid, solid, support) clipped to areas, all areas at once.

Lines lie on a global grid (offset ``k * spacing`` along the normal of the angle), so sparse infill
of consecutive layers stacks; the clipped pieces of each area are ordered as a zig-zag: by line,
alternating direction, which keeps travel between neighbouring lines short.
"""

from __future__ import annotations

import numpy as np
import shapely


def fill_lines(
    areas: np.ndarray,
    spacing: np.ndarray,
    angle_deg: np.ndarray,
) -> list[np.ndarray]:
    """Clip parallel lines to each area; return per area an ordered (m, 2, 2) array of segments.

    ``spacing`` and ``angle_deg`` are per area; a spacing of 0 or an empty area gives no lines.
    """
    n = len(areas)
    out: list[np.ndarray] = [np.zeros((0, 2, 2))] * n
    valid = ~shapely.is_empty(areas) & (np.asarray(spacing) > 0)
    which = np.flatnonzero(valid)
    if which.size == 0:
        return out
    bounds = shapely.bounds(areas[which])
    theta = np.radians(np.asarray(angle_deg, dtype=np.float64)[which])
    sp = np.asarray(spacing, dtype=np.float64)[which]
    u = np.stack([np.cos(theta), np.sin(theta)], axis=1)  # line direction
    nrm = np.stack([-np.sin(theta), np.cos(theta)], axis=1)  # across the lines
    corners = np.stack(
        [bounds[:, [0, 1]], bounds[:, [2, 1]], bounds[:, [2, 3]], bounds[:, [0, 3]]], axis=1
    )  # (a, 4, 2)
    along = np.einsum("acd,ad->ac", corners, u)
    across = np.einsum("acd,ad->ac", corners, nrm)
    k_lo = np.floor(across.min(axis=1) / sp).astype(np.int64)
    k_hi = np.ceil(across.max(axis=1) / sp).astype(np.int64)
    t_lo = along.min(axis=1) - 1.0
    t_hi = along.max(axis=1) + 1.0
    count = np.maximum(k_hi - k_lo + 1, 0)
    owner = np.repeat(np.arange(len(which)), count)
    k = np.repeat(k_lo, count) + (
        np.arange(count.sum()) - np.repeat(np.cumsum(count) - count, count)
    )
    off = k * sp[owner]
    p0 = off[:, None] * nrm[owner] + t_lo[owner, None] * u[owner]
    p1 = off[:, None] * nrm[owner] + t_hi[owner, None] * u[owner]
    lines = shapely.linestrings(np.stack([p0, p1], axis=1))
    bundles = shapely.multilinestrings(lines, indices=owner)
    clipped = shapely.intersection(bundles, areas[which])
    parts, part_owner = shapely.get_parts(clipped, return_index=True)
    parts_ok = shapely.get_type_id(parts) == 1  # LineString
    parts, part_owner = parts[parts_ok], part_owner[parts_ok]
    if not len(parts):
        return out
    coords, idx = shapely.get_coordinates(parts, return_index=True)
    first = np.searchsorted(idx, np.arange(len(parts)))
    last = np.searchsorted(idx, np.arange(len(parts)), side="right") - 1
    segs = np.stack([coords[first], coords[last]], axis=1)  # (p, 2, 2)
    seg_len = np.linalg.norm(segs[:, 1] - segs[:, 0], axis=1)
    keep = seg_len > 1e-3
    segs, part_owner = segs[keep], part_owner[keep]
    mid = segs.mean(axis=1)
    line_no = np.round(np.einsum("pd,pd->p", mid, nrm[part_owner]) / sp[part_owner]).astype(
        np.int64
    )
    pos = np.einsum("pd,pd->p", mid, u[part_owner])
    odd = (line_no % 2) == 1
    # zig-zag: even lines run along +u, odd lines along -u, pieces of a line in walking order
    order = np.lexsort((np.where(odd, -pos, pos), line_no, part_owner))
    segs, part_owner, odd = segs[order], part_owner[order], odd[order]
    forward = np.einsum("pd,pd->p", segs[:, 1] - segs[:, 0], u[part_owner]) >= 0
    segs = np.where((forward == odd)[:, None, None], segs[:, ::-1], segs)
    splits = np.searchsorted(part_owner, np.arange(len(which) + 1))
    for j, area_index in enumerate(which):
        out[area_index] = segs[splits[j] : splits[j + 1]]
    return out


def infill_spacing(line_spacing: float, density_percent: float, pattern: str) -> float:
    """Distance between parallel sparse-infill lines for a density (grid has two directions)."""
    if density_percent <= 0:
        return 0.0
    fraction = min(density_percent / 100.0, 1.0)
    directions = 2 if pattern == "grid" else 1
    return line_spacing * directions / fraction


def layer_angles(layer: np.ndarray, base: float, alternate: bool) -> np.ndarray:
    """Fill angle per layer: ``base``, turned 90° on every other layer when ``alternate``."""
    angles = np.full(len(layer), base, dtype=np.float64)
    if alternate:
        angles = angles + 90.0 * (np.asarray(layer) % 2)
    return angles


__all__ = ["fill_lines", "infill_spacing", "layer_angles"]
