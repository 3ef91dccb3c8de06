"""Layer regions to print regions: perimeters, solid and sparse infill areas, supports, skirt.

Every step works on numpy arrays of shapely geometries (one element per layer or per island), so
GEOS loops in C instead of Python. Distances are in mm; ``spacing`` is the centre distance of two
neighbouring extrusions, ``width - height * (1 - pi/4)`` as for a rounded-rectangle bead.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import shapely

from app.printing.slicer.settings import SliceSettings
from app.progress import CancelToken, check_cancel

_log = logging.getLogger(__name__)
EMPTY = shapely.MultiPolygon()
SUPPORT_TOLERANCE = 0.1  # mm: outlines of support areas are simplified this much
_MITRE = {"join_style": "mitre", "mitre_limit": 3.0}


def spacing_of(width: float, height: np.ndarray | float) -> np.ndarray:
    """Centre distance of neighbouring beads of ``width`` x ``height``."""
    return width - np.asarray(height, dtype=np.float64) * (1.0 - math.pi / 4.0)


def bead_area(width: float, height: float) -> float:
    """Cross-section (mm²) of one bead: a rectangle with semicircular sides."""
    if width <= height:
        return math.pi * (width / 2) ** 2
    return (width - height) * height + math.pi * (height / 2) ** 2


def _clean(geoms: np.ndarray, min_area: float = 1e-3) -> np.ndarray:
    """Keep polygons only (offsets and booleans may return lines or points) and drop specks."""
    out = np.empty(len(geoms), dtype=object)
    for i, geom in enumerate(geoms):
        if geom is None or geom.is_empty:
            out[i] = EMPTY
            continue
        if geom.geom_type == "Polygon":
            out[i] = geom if geom.area > min_area else EMPTY
            continue
        parts = [
            p for p in shapely.get_parts(geom) if p.geom_type == "Polygon" and p.area > min_area
        ]
        if not parts:
            parts = [
                q
                for p in shapely.get_parts(geom)
                if p.geom_type == "MultiPolygon"
                for q in p.geoms
                if q.area > min_area
            ]
        out[i] = (
            EMPTY if not parts else parts[0] if len(parts) == 1 else shapely.MultiPolygon(parts)
        )
    return out


def opening(geoms: np.ndarray, radius: np.ndarray | float) -> np.ndarray:
    """Remove parts narrower than ``2 * radius`` (erode, then dilate back)."""
    return _clean(shapely.buffer(shapely.buffer(geoms, -radius, **_MITRE), radius, **_MITRE))


@dataclass
class Islands:
    """Every island (connected part of a layer) of every layer, flattened."""

    geom: np.ndarray  # Polygon per island
    layer: np.ndarray  # layer index per island
    perimeters: list[np.ndarray]  # per wall k: the loops of wall k of each island
    fill: np.ndarray  # area inside the walls, per island
    solid: np.ndarray  # solid infill area (bottom/inner), per island
    top: np.ndarray  # top solid area, per island
    sparse: np.ndarray  # sparse infill area, per island


def split_islands(regions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    parts, index = shapely.get_parts(regions, return_index=True)
    keep = shapely.area(parts) > 1e-4
    return parts[keep], index[keep]


def plan_islands(
    regions: np.ndarray,
    heights: np.ndarray,
    width: float,
    settings: SliceSettings,
    cancel: CancelToken | None = None,
) -> Islands:
    """Walls, and solid/sparse infill areas for every island of every layer.

    Solid: the part of an island's fill area that is not covered by all of the next
    ``top_layers`` layers or all of the previous ``bottom_layers`` layers; the top-exposed part of
    it (not covered by the next layer) prints as top solid infill.
    """
    n = len(regions)
    spacing = spacing_of(width, heights)
    geom, layer = split_islands(regions)
    s = spacing[layer]
    walls = []
    for k in range(settings.perimeters):
        check_cancel(cancel)
        walls.append(_clean(shapely.buffer(geom, -(width / 2 + k * s), **_MITRE)))
    inner = width / 2 + (settings.perimeters - 1) * s + s / 2
    overlap = settings.infill_overlap / 100.0 * s
    fill = _clean(shapely.buffer(geom, -(inner - overlap), **_MITRE))
    check_cancel(cancel)
    table = _sparse_table(regions, max(settings.top_layers, settings.bottom_layers), cancel)
    above = _covered(table, settings.top_layers, +1)
    below = _covered(table, settings.bottom_layers, -1)
    del table
    covered = _both(above, below)
    check_cancel(cancel)
    solid = opening(_clean(_minus(fill, covered[layer])), s / 2)
    if settings.solid_margin > 0:
        # grow the shells into the sparse area so they anchor (PrusaSlicer's external infill margin)
        live = ~shapely.is_empty(solid)
        solid[live] = _clean(
            _overlay(
                shapely.intersection,
                shapely.buffer(solid[live], settings.solid_margin, **_MITRE),
                fill[live],
            )
        )
    next_layer = np.empty(n, dtype=object)
    next_layer[: n - 1] = regions[1:]
    next_layer[n - 1 :] = EMPTY
    top = opening(_clean(_overlay(shapely.difference, solid, next_layer[layer])), s / 2)
    bottom = _clean(_overlay(shapely.difference, solid, top))
    sparse = _clean(_overlay(shapely.difference, fill, solid))
    # like PrusaSlicer's solid_infill_below_area: small sparse pockets print solid
    parts, owner = shapely.get_parts(sparse, return_index=True)
    small = shapely.area(parts) < settings.solid_below_area
    if small.any():
        sparse = regroup(parts[~small], owner[~small], len(geom))
        b_parts, b_owner = shapely.get_parts(bottom, return_index=True)
        bottom = regroup(
            np.concatenate([b_parts, parts[small]]),
            np.concatenate([b_owner, owner[small]]),
            len(geom),
        )
    return Islands(geom, layer, walls, fill, bottom, top, sparse)


def regroup(parts: np.ndarray, owner: np.ndarray, count: int) -> np.ndarray:
    """One MultiPolygon per owner index ``0..count-1`` (EMPTY where an owner has no part)."""
    out = np.empty(count, dtype=object)
    out[:] = EMPTY
    if len(parts):
        order = np.argsort(owner, kind="stable")
        owners, dense = np.unique(owner[order], return_inverse=True)
        out[owners] = shapely.multipolygons(parts[order], indices=dense)
    return out


def _both(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Elementwise intersection where ``None`` means "no constraint" (the whole plane)."""
    out = np.empty(len(a), dtype=object)
    for i, (x, y) in enumerate(zip(a, b, strict=True)):
        out[i] = y if x is None else x if y is None else None
    pairs = np.array(
        [x is not None and y is not None for x, y in zip(a, b, strict=True)], dtype=bool
    )
    if pairs.any():
        out[pairs] = _overlay(shapely.intersection, a[pairs], b[pairs])
    return out


def _minus(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a - b`` elementwise, where a ``None`` in ``b`` removes everything."""
    out = np.empty(len(a), dtype=object)
    out[:] = EMPTY
    has = np.array([x is not None for x in b], dtype=bool)
    if has.any():
        out[has] = _overlay(shapely.difference, a[has], b[has])
    return out


def _overlay(op: Callable, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``op(a, b)`` elementwise (``shapely.difference``, ``intersection``). GEOS refuses a
    pair holding an invalid outline (a TopologyException; its mitred offsets make one now and
    then from a nearly degenerate island): only the pairs it refuses are done again, on
    outlines repaired to their polygons."""
    try:
        return op(a, b)
    except shapely.errors.GEOSException:
        out = np.empty(len(a), dtype=object)
        out[:] = [_overlay_pair(op, x, y) for x, y in zip(a, b, strict=True)]
        return out


def _overlay_pair(op: Callable, a: shapely.Geometry, b: shapely.Geometry) -> shapely.Geometry:
    try:
        return op(a, b)
    except shapely.errors.GEOSException as exc:
        # why, for whoever finds the step that made the outline (geometry only, no names)
        _log.warning(
            "slicer: GEOS refused %s (%s); outlines repaired: %s / %s", op.__name__, exc,
            shapely.is_valid_reason(a), shapely.is_valid_reason(b),
        )  # fmt: skip
        return op(_repaired(a), _repaired(b))


def _repaired(geom: shapely.Geometry) -> shapely.Geometry:
    """The polygons of ``geom`` made valid (repair may leave lines and points too)."""
    fixed = shapely.get_parts(shapely.make_valid(geom))
    return shapely.union_all([g for g in fixed if g.geom_type in ("Polygon", "MultiPolygon")])


def _shift(values: np.ndarray, k: int) -> np.ndarray:
    """``out[i] = values[i + k]``, EMPTY where ``i + k`` is outside the layers."""
    n = len(values)
    out = np.empty(n, dtype=object)
    out[:] = EMPTY
    if 0 <= k < n:
        out[: n - k] = values[k:]
    elif -n < k < 0:
        out[-k:] = values[: n + k]
    return out


def _meet(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    out = np.empty(len(a), dtype=object)
    out[:] = EMPTY
    live = ~shapely.is_empty(a) & ~shapely.is_empty(b)
    if live.any():
        out[live] = _overlay(shapely.intersection, a[live], b[live])
    return out


def _sparse_table(
    regions: np.ndarray, longest: int, cancel: CancelToken | None
) -> list[np.ndarray]:
    """``table[j][i]`` = intersection of layers ``i .. i + 2**j - 1`` (for ``2**j <= longest``)."""
    table = [regions]
    while 2 ** len(table) <= longest:
        check_cancel(cancel)
        half = 2 ** (len(table) - 1)
        table.append(_meet(table[-1], _shift(table[-1], half)))
    return table


def _covered(table: list[np.ndarray], count: int, step: int) -> np.ndarray:
    """Per layer: the area covered by every one of the next ``count`` layers in ``step``
    direction (``None``: no constraint, when ``count`` is 0). A window of any length is the
    intersection of two overlapping power-of-two windows of the sparse table."""
    n = len(table[0])
    if count == 0:
        out = np.empty(n, dtype=object)
        out[:] = None
        return out
    level = count.bit_length() - 1
    power = 2**level
    first = 1 if step > 0 else -count  # window [i + first, i + first + count - 1]
    window = _shift(table[level], first)
    if power < count:
        window = _meet(window, _shift(table[level], first + count - power))
    return window


def plan_supports(
    regions: np.ndarray,
    heights: np.ndarray,
    width: float,
    settings: SliceSettings,
    cancel: CancelToken | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Support areas per layer: ``(body, interface)``; interface is the dense top of a support.

    A layer's overhang is what extends more than ``height * tan(support_angle)`` beyond the layer
    below. Support grows down from each overhang, starting ``support_z_gap`` below it, kept
    ``support_xy_distance`` away from the part, and stops where it meets the part (a z gap above
    the part's surface again), so it never stands inside the part.
    """
    n = len(regions)
    body = np.empty(n, dtype=object)
    interface = np.empty(n, dtype=object)
    body[:] = EMPTY
    interface[:] = EMPTY
    if n < 2:
        return body, interface
    reach = heights * math.tan(math.radians(settings.support_angle))
    below = np.empty(n, dtype=object)
    below[0] = EMPTY
    below[1:] = shapely.buffer(regions[:-1], reach[1:], **_MITRE)
    overhang = _clean(_overlay(shapely.difference, regions, below))
    overhang[0] = EMPTY
    overhang = opening(overhang, width / 2)
    layer_h = float(np.median(heights))
    gap = max(0, round(settings.support_z_gap / layer_h))
    clearance = settings.support_xy_distance + width / 2
    keep_out: dict[int, shapely.Geometry] = {}  # grown part outlines, only near the current layer
    carry = EMPTY
    window: list[shapely.Geometry] = []  # overhangs the top interface layers sit under
    for i in range(n - 1, -1, -1):
        if i % 32 == 0:
            check_cancel(cancel)
        source = overhang[i + 1 + gap] if i + 1 + gap < n else EMPTY
        window = [source, *window][: settings.support_interface_layers]
        for j in [j for j in keep_out if j > i]:
            del keep_out[j]
        if carry.is_empty and source.is_empty:
            continue
        # the part at this layer and within the gap below it keeps support away
        for j in range(max(0, i - gap), i + 1):
            if j not in keep_out:
                outline = shapely.simplify(regions[j], SUPPORT_TOLERANCE)
                keep_out[j] = shapely.buffer(outline, clearance, **_MITRE)
        blocked = shapely.union_all([keep_out[j] for j in range(max(0, i - gap), i + 1)])
        carry = _overlay_pair(
            shapely.difference, _overlay_pair(shapely.union, carry, source), blocked
        )
        # supports need no fine detail: keeps the carried outline from growing
        carry = _clean(np.array([shapely.simplify(carry, SUPPORT_TOLERANCE)], dtype=object), 0.05)[
            0
        ]
        body[i] = carry
        tops = [w for w in window if not w.is_empty]
        if tops and not carry.is_empty:
            top = _overlay_pair(shapely.intersection, carry, shapely.union_all(tops))
            interface[i] = _clean(np.array([top], dtype=object), 0.05)[0]
    body = _clean(_overlay(shapely.difference, body, interface))
    return body, interface


def skirt_loops(
    first_layer: shapely.Geometry, width: float, spacing: float, settings: SliceSettings
) -> list[shapely.Geometry]:
    """Closed rings of the skirt around the first layer's convex hull."""
    if settings.skirt_loops == 0 or first_layer.is_empty:
        return []
    hull = shapely.convex_hull(first_layer)
    base = settings.skirt_distance + width / 2 + max(settings.brim_width, 0.0)
    rings = []
    for k in range(settings.skirt_loops):
        loop = shapely.buffer(hull, base + k * spacing, quad_segs=4)
        rings.append(loop.exterior)
    return rings


def brim_loops(
    first_layer: shapely.Geometry, width: float, spacing: float, settings: SliceSettings
) -> list[shapely.Geometry]:
    """Closed rings of the brim around every island's outside on the first layer (outermost first)."""
    if settings.brim_width <= 0 or first_layer.is_empty:
        return []
    count = max(1, round(settings.brim_width / spacing))
    rings = []
    for k in range(count - 1, -1, -1):
        grown = shapely.buffer(first_layer, width / 2 + k * spacing, quad_segs=4, **_MITRE)
        for poly in shapely.get_parts(grown):
            rings.append(poly.exterior)
    return rings
