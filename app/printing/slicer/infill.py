"""Straight-line fills (rectilinear, grid, solid, support) for many areas at once, by scanlines.

Lines lie on a global grid (offset ``k * spacing`` across the fill angle), so sparse infill of
consecutive layers stacks. Instead of clipping lines polygon by polygon, every boundary edge of
every area is crossed with the scanlines it spans (numpy, one pass for all areas); the crossings
of one scanline sorted along it pair up into inside intervals (even-odd rule). The pieces of an
area are ordered as a zig-zag, and consecutive pieces are linked into one polyline when the link
is short and inside the area (like PrusaSlicer's infill anchors), otherwise the nozzle travels.
"""

from __future__ import annotations

import numpy as np
import shapely


def _edges(areas: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All boundary edges: start (e, 2), end (e, 2) and owning area index (e,)."""
    polys, poly_owner = shapely.get_parts(areas, return_index=True)
    rings, ring_poly = shapely.get_rings(polys, return_index=True)
    coords, ring_of = shapely.get_coordinates(rings, return_index=True)
    same = ring_of[1:] == ring_of[:-1]
    a, b = coords[:-1][same], coords[1:][same]
    owner = poly_owner[ring_poly[ring_of[:-1][same]]]
    return a, b, owner


_CHUNK_VERTICES = 400_000  # areas are filled in batches of about this many boundary points


def fill_lines(
    areas: np.ndarray,
    spacing: np.ndarray,
    angle_deg: np.ndarray,
    *,
    max_link: np.ndarray | None = None,
) -> list[list[np.ndarray]]:
    """Fill every area with parallel lines; return per area a list of (n, 2) polylines in order.

    ``spacing``, ``angle_deg`` and ``max_link`` (longest extruded link between neighbouring lines,
    default 0: no links) are per area. A spacing of 0 or an empty area gives no lines. Areas are
    processed in batches so memory stays bounded on large prints.
    """
    n = len(areas)
    spacing = np.broadcast_to(np.asarray(spacing, dtype=np.float64), (n,))
    angle_deg = np.broadcast_to(np.asarray(angle_deg, dtype=np.float64), (n,))
    links = np.zeros(n) if max_link is None else np.broadcast_to(np.asarray(max_link, float), (n,))
    counts = np.cumsum(shapely.get_num_coordinates(areas))
    out: list[list[np.ndarray]] = []
    start = 0
    while start < n:
        base = counts[start - 1] if start else 0
        stop = max(start + 1, int(np.searchsorted(counts, base + _CHUNK_VERTICES, side="right")))
        stop = min(stop, n)
        out += _fill_batch(
            areas[start:stop], spacing[start:stop], angle_deg[start:stop], links[start:stop]
        )
        start = stop
    return out


def _fill_batch(
    areas: np.ndarray, spacing: np.ndarray, angle_deg: np.ndarray, max_link: np.ndarray
) -> list[list[np.ndarray]]:
    n = len(areas)
    out: list[list[np.ndarray]] = [[] for _ in range(n)]
    spacing = np.asarray(spacing, dtype=np.float64)
    valid = (spacing > 0) & ~shapely.is_empty(areas)
    if not valid.any():
        return out
    a, b, owner = _edges(np.where(valid, areas, shapely.MultiPolygon()))
    if not len(owner):
        return out
    theta = np.radians(np.asarray(angle_deg, dtype=np.float64))
    d = np.stack([np.cos(theta), np.sin(theta)], axis=1)  # along the lines
    nv = np.stack([-np.sin(theta), np.cos(theta)], axis=1)  # across the lines
    da, na = d[owner], nv[owner]
    sp = spacing[owner]
    u0, u1 = (a * da).sum(axis=1), (b * da).sum(axis=1)
    v0, v1 = (a * na).sum(axis=1) / sp, (b * na).sum(axis=1) / sp  # in line units
    lo, hi = np.minimum(v0, v1), np.maximum(v0, v1)
    k_first = np.ceil(lo).astype(np.int64)
    count = np.ceil(hi).astype(np.int64) - k_first  # lines with lo <= k < hi
    count = np.maximum(count, 0)
    total = int(count.sum())
    if total == 0:
        return out
    edge = np.repeat(np.arange(len(owner)), count)
    k = np.repeat(k_first, count) + (np.arange(total) - np.repeat(np.cumsum(count) - count, count))
    t = (k - v0[edge]) / (v1[edge] - v0[edge])
    u = u0[edge] + t * (u1[edge] - u0[edge])
    area = owner[edge]
    order = np.lexsort((u, k, area))
    u, k, area = u[order], k[order], area[order]
    # crossings pair up per (area, line): even positions enter, odd ones leave
    group = np.flatnonzero((np.diff(k) != 0) | (np.diff(area) != 0)) + 1
    starts = np.concatenate([[0], group])
    pos_in_group = np.arange(total) - np.repeat(starts, np.diff(np.concatenate([starts, [total]])))
    enter = np.flatnonzero(pos_in_group % 2 == 0)
    enter = enter[enter + 1 < total]
    leave = enter + 1
    ok = (k[leave] == k[enter]) & (area[leave] == area[enter]) & (u[leave] - u[enter] > 1e-3)
    enter, leave = enter[ok], leave[ok]
    p_start, p_end, seg_area = _order_pieces(
        area[enter], k[enter], u[enter], u[leave], spacing, d, nv
    )
    links = max_link if max_link is not None else np.zeros(n)
    joined = _links_inside(areas, p_start, p_end, seg_area, np.asarray(links, dtype=np.float64))
    return _polylines(p_start, p_end, seg_area, joined, out)


def _order_pieces(
    seg_area: np.ndarray,
    seg_k: np.ndarray,
    ua: np.ndarray,
    ub: np.ndarray,
    *frame: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pieces (area, line, from u, to u) in printing order, as start and end points."""
    spacing, d, nv = frame
    odd = (seg_k % 2) == 1
    # columns: the j-th piece of every line belongs to column j, so a ring-shaped area is filled
    # one side after the other instead of jumping across its hole on every line
    line_start = np.flatnonzero(
        np.concatenate([[True], (np.diff(seg_k) != 0) | (np.diff(seg_area) != 0)])
    )
    column = np.arange(len(seg_k)) - np.repeat(
        line_start, np.diff(np.append(line_start, len(seg_k)))
    )
    # zig-zag: even lines run along +d, odd lines along -d
    zz = np.lexsort((seg_k, column, seg_area))
    seg_area, seg_k, ua, ub, odd = seg_area[zz], seg_k[zz], ua[zz], ub[zz], odd[zz]
    u_start = np.where(odd, ub, ua)
    u_end = np.where(odd, ua, ub)
    v = seg_k * spacing[seg_area]
    dd, nn = d[seg_area], nv[seg_area]
    p_start = u_start[:, None] * dd + v[:, None] * nn
    p_end = u_end[:, None] * dd + v[:, None] * nn
    return p_start, p_end, seg_area


def _links_inside(
    areas: np.ndarray,
    p_start: np.ndarray,
    p_end: np.ndarray,
    seg_area: np.ndarray,
    max_link: np.ndarray,
) -> np.ndarray:
    """Which consecutive pieces to join: same area, short link, link inside the area."""
    same = seg_area[1:] == seg_area[:-1]
    a, b = p_end[:-1], p_start[1:]
    gap = np.linalg.norm(b - a, axis=1)
    candidate = np.flatnonzero(same & (gap <= max_link[seg_area[:-1]]))
    joined = np.zeros(len(a), dtype=bool)
    if candidate.size:
        # test a point just inside of the link's middle, towards the two pieces it joins
        mid = (a[candidate] + b[candidate]) / 2
        inner = (
            p_start[candidate] + p_end[candidate] + p_start[candidate + 1] + p_end[candidate + 1]
        ) / 4
        towards = inner - mid
        norm = np.linalg.norm(towards, axis=1, keepdims=True)
        probe = mid + 0.02 * towards / np.maximum(norm, 1e-9)
        inside = shapely.intersects_xy(areas[seg_area[candidate]], probe[:, 0], probe[:, 1])
        joined[candidate[inside]] = True
    return joined


def _polylines(
    p_start: np.ndarray,
    p_end: np.ndarray,
    seg_area: np.ndarray,
    joined: np.ndarray,
    out: list[list[np.ndarray]],
) -> list[list[np.ndarray]]:
    pts = np.empty((2 * len(p_start), 2))
    pts[0::2] = p_start
    pts[1::2] = p_end
    breaks = np.flatnonzero(~joined) + 1
    first = np.concatenate([[0], breaks])
    last = np.concatenate([breaks, [len(p_start)]])
    for lo, hi in zip(first.tolist(), last.tolist(), strict=True):
        out[int(seg_area[lo])].append(pts[2 * lo : 2 * hi])
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
