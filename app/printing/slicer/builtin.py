"""The built-in slicer: parts + printer + material + settings -> Marlin G-code and its analysis.

Pipeline (each step vectorised over all layers or all islands):

1. arrange the parts on the bed, weld them into one mesh;
2. cut every layer at its mid-height (:mod:`.layers`);
3. walls, solid and sparse areas per island, supports per layer (:mod:`.regions`);
4. fill lines for every area at once (:mod:`.infill`);
5. order paths per layer and write G-code plus the move arrays (:mod:`.writer`).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import gc
import math
import sys

import numpy as np
import shapely

from app.errors import PrintingError
from app.printing.gcode import MotionLimits, MoveType, analyse_moves
from app.printing.profiles import MaterialProfile, PrinterProfile, check_pair
from app.printing.slicer.arrange import arrange
from app.printing.slicer.infill import fill_lines, infill_spacing, layer_angles
from app.printing.slicer.layers import layer_heights, slice_mesh
from app.printing.slicer.regions import (
    Islands,
    bead_area,
    brim_loops,
    plan_islands,
    plan_supports,
    skirt_loops,
    spacing_of,
)
from app.printing.slicer.result import SliceResult
from app.printing.slicer.settings import Part, SliceSettings
from app.printing.slicer.writer import GcodeWriter, Path
from app.progress import CancelToken, Progress, check_cancel, ensure

ENGINE = "builtin"
SPARSE_LINK_MAX = 3.0  # mm: longest extruded link between sparse infill lines (an anchor)


def slice_builtin(
    parts: list[Part],
    printer: PrinterProfile,
    material: MaterialProfile,
    settings: SliceSettings | None = None,
    *,
    progress: Progress | None = None,
    cancel: CancelToken | None = None,
) -> SliceResult:
    """Slice ``parts`` for ``printer`` with the built-in slicer."""
    settings = settings or SliceSettings()
    progress = ensure(progress)
    settings.check_against(printer.nozzle_diameter)
    check_pair(printer, material)
    vertices, faces, placements = _place(parts, printer, settings)
    height = float(vertices[:, 2].max())
    tops, heights = layer_heights(height, settings.first_layer_height, settings.layer_height)
    check_cancel(cancel)
    regions_list = slice_mesh(
        vertices, faces, tops - heights / 2, progress=progress.sub(0.0, 0.3), cancel=cancel
    )
    regions = np.empty(len(regions_list), dtype=object)
    regions[:] = regions_list
    del vertices, faces
    progress.update(0.3, "planning walls and infill")
    width = settings.width(printer.nozzle_diameter)
    islands = plan_islands(regions, heights, width, settings, cancel)
    _release_memory()
    progress.update(0.45, "planning supports")
    supports = None
    if settings.supports:
        supports = plan_supports(regions, heights, width, settings, cancel)
        _release_memory()
    progress.update(0.55, "filling")
    fills = _fills(islands, heights, width, settings, supports)
    warnings: list[str] = []
    writer = GcodeWriter(printer, material, settings, [p.safe_name for p in parts])
    planner = _LayerPlanner(
        printer,
        material,
        settings,
        width,
        islands=islands,
        fills=fills,
        regions=regions,
        heights=heights,
    )
    if supports is not None:
        planner.first_support = shapely.union(supports[0][0], supports[1][0])
    # the areas are no longer needed once filled (bounded memory: only lines and rings remain)
    islands.fill = islands.solid = islands.top = islands.sparse = None
    islands.perimeters = []
    del supports
    _release_memory()
    write_progress = progress.sub(0.6, 1.0)
    for index in range(len(tops)):
        if index % 8 == 0:
            check_cancel(cancel)
            write_progress.update(index / len(tops), "writing G-code")
        if index % 128 == 127:
            _release_memory()
        paths = planner.paths(index, writer.pos[:2], warnings)
        writer.layer(index, float(tops[index]), float(heights[index]), paths)
    text, moves = writer.finish()
    analysis = analyse_moves(
        moves,
        MotionLimits.from_profile(printer.motion),
        filament_diameter=printer.filament_diameter,
        density=material.density,
        relative_e=printer.relative_e,
        move_time=np.concatenate(writer.times) if writer.times else np.zeros(0),
    )
    _check_volume(moves, printer)
    progress.update(1.0, "done")
    return SliceResult(ENGINE, text, analysis, warnings, placements)


def _release_memory() -> None:
    """Hand freed heap back to the OS after a phase that built and dropped many geometries.

    GEOS allocates through malloc; glibc keeps freed blocks in its arenas, so the resident size
    would otherwise stay at the phase's peak. Elsewhere this is a no-op. Only the young
    generations are collected: a full collection held the GIL for 0.5-1.5 s, stalling the
    window while it sliced (geometries are freed by reference counting, not by the collector).
    """
    gc.collect(1)
    if sys.platform.startswith("linux"):
        name = ctypes.util.find_library("c")
        if name:
            with contextlib.suppress(OSError, AttributeError):
                ctypes.CDLL(name).malloc_trim(0)


def _place(
    parts: list[Part], printer: PrinterProfile, settings: SliceSettings
) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    offsets = arrange(parts, printer, settings.part_spacing)
    vertices, faces, base = [], [], 0
    for part, offset in zip(parts, offsets, strict=True):
        vertices.append(part.vertices + offset)
        faces.append(part.faces + base)
        base += len(part.vertices)
    return np.concatenate(vertices), np.concatenate(faces), offsets


def _check_volume(moves: object, printer: PrinterProfile) -> None:
    lo = np.minimum(moves.start.min(axis=0), moves.end.min(axis=0))  # type: ignore[attr-defined]
    hi = np.maximum(moves.start.max(axis=0), moves.end.max(axis=0))  # type: ignore[attr-defined]
    volume = np.asarray(printer.build_volume)
    if (lo < -1e-3).any() or (hi > volume + 1e-3).any():
        msg = (
            f"toolpaths reach {lo.round(1).tolist()}..{hi.round(1).tolist()} mm, outside the build "
            "volume; reduce the skirt or brim, or scale the part"
        )
        raise PrintingError(msg)


class _Fills:
    """Ordered fill polylines per island (solid, top, sparse) and per layer (support)."""

    def __init__(self) -> None:
        self.solid: list[list[np.ndarray]] = []
        self.top: list[list[np.ndarray]] = []
        self.sparse: list[list[np.ndarray]] = []
        self.support: list[list[np.ndarray]] = []
        self.interface: list[list[np.ndarray]] = []
        self.solid_spacing = np.zeros(0)
        self.sparse_spacing = 0.0


def _filled(
    areas: np.ndarray, spacing: np.ndarray, angles: np.ndarray, link_max: float = np.inf
) -> list[list[np.ndarray]]:
    """Zig-zag lines in every area, linked along the boundary where the link is short."""
    links = np.minimum(2.5 * np.asarray(spacing, dtype=np.float64), link_max)
    return fill_lines(areas, spacing, angles, max_link=links)


def _fills(
    islands: Islands,
    heights: np.ndarray,
    width: float,
    settings: SliceSettings,
    supports: tuple[np.ndarray, np.ndarray] | None,
) -> _Fills:
    fills = _Fills()
    layer = islands.layer
    spacing = spacing_of(width, heights)
    solid_spacing = spacing[layer]
    angles = layer_angles(layer, settings.infill_angle, alternate=True)
    fills.solid = _filled(islands.solid, solid_spacing, angles)
    fills.top = _filled(islands.top, solid_spacing, angles)
    sparse_sp = infill_spacing(
        float(np.median(spacing)), settings.infill_density, settings.infill_pattern
    )
    fills.sparse_spacing = sparse_sp
    sparse_spacing = np.full(len(layer), sparse_sp)
    if settings.infill_pattern == "grid":
        base = np.full(len(layer), settings.infill_angle)
        first = _filled(islands.sparse, sparse_spacing, base, SPARSE_LINK_MAX)
        second = _filled(islands.sparse, sparse_spacing, base + 90.0, SPARSE_LINK_MAX)
        fills.sparse = [a + b for a, b in zip(first, second, strict=True)]
    else:
        fills.sparse = _filled(islands.sparse, sparse_spacing, angles, SPARSE_LINK_MAX)
    fills.solid_spacing = solid_spacing
    if supports is not None:
        body, top = supports
        n = len(body)
        fills.support = _filled(body, np.full(n, settings.support_spacing + width), np.zeros(n))
        fills.interface = _filled(
            top, np.full(n, settings.support_interface_spacing + width), np.full(n, 90.0)
        )
    return fills


class _LayerPlanner:
    """Turns one layer's areas and fill segments into ordered :class:`Path` objects."""

    def __init__(
        self,
        printer: PrinterProfile,
        material: MaterialProfile,
        settings: SliceSettings,
        width: float,
        *,
        islands: Islands,
        fills: _Fills,
        regions: np.ndarray,
        heights: np.ndarray,
    ) -> None:
        self.printer = printer
        self.settings = settings
        self.width = width
        self.islands = islands
        self.fills = fills
        self.regions = regions
        self.heights = heights
        self.filament_area = math.pi * (printer.filament_diameter / 2) ** 2
        self.by_layer = np.searchsorted(islands.layer, np.arange(len(regions) + 1))
        self.rings = [_rings_per_owner(wall, len(islands.geom)) for wall in islands.perimeters]
        self.centres = shapely.get_coordinates(shapely.point_on_surface(islands.geom))
        self.first_support: shapely.Geometry = shapely.MultiPolygon()

    def paths(self, index: int, pos: np.ndarray, warnings: list[str]) -> list[Path]:
        h = float(self.heights[index])
        e_mm = bead_area(self.width, h) / self.filament_area
        sp = self.printer.speeds
        first = index == 0
        speed = (lambda v: sp.first_layer) if first else (lambda v: v)
        out: list[Path] = []
        if first:
            out += self._loops_first_layer(e_mm, warnings)
        pos = out[-1].points[-1] if out else pos
        if self.fills.support:
            groups = (
                (self.fills.support, MoveType.SUPPORT, self.settings.support_spacing),
                (
                    self.fills.interface,
                    MoveType.SUPPORT_INTERFACE,
                    self.settings.support_interface_spacing,
                ),
            )
            for lines, kind, gap in groups:
                paths = _lines(
                    lines[index], kind, speed(sp.support), e_mm, gap + self.width, pos=pos
                )
                lines[index] = []
                if paths:
                    out += paths
                    pos = paths[-1].points[-1]
        lo, hi = self.by_layer[index], self.by_layer[index + 1]
        remaining = list(range(lo, hi))
        while remaining:
            dists = [float(np.hypot(*(self.centres[i] - pos))) for i in remaining]
            island = remaining.pop(int(np.argmin(dists)))
            island_paths = self._island(island, pos, e_mm, speed)
            if island_paths:
                out += island_paths
                pos = island_paths[-1].points[-1]
        return out

    def _island(self, island: int, pos: np.ndarray, e_mm: float, speed) -> list[Path]:
        sp = self.printer.speeds
        walls = range(len(self.rings))
        if not self.settings.external_perimeter_first:
            walls = reversed(walls)
        out: list[Path] = []
        for k in walls:
            kind = MoveType.EXTERNAL_PERIMETER if k == 0 else MoveType.PERIMETER
            v = speed(sp.external_perimeter if k == 0 else sp.perimeter)
            rings = list(self.rings[k][island])
            while rings:
                j = int(np.argmin([np.min(np.hypot(*(r[:-1] - pos).T)) for r in rings]))
                ring = _seam(rings.pop(j), pos)
                out.append(Path(kind, ring, v, e_mm))
                pos = ring[-1]
        spacing = float(self.fills.solid_spacing[island])
        groups = (
            (self.fills.solid[island], MoveType.SOLID_INFILL, sp.solid_infill, spacing),
            (self.fills.top[island], MoveType.TOP_SOLID_INFILL, sp.top_solid_infill, spacing),
            (self.fills.sparse[island], MoveType.INFILL, sp.infill, self.fills.sparse_spacing),
        )
        self.fills.solid[island] = self.fills.top[island] = self.fills.sparse[island] = []
        for lines, kind, v, gap in groups:
            paths = _lines(lines, kind, speed(v), e_mm, gap, pos=pos)
            if paths:
                out += paths
                pos = paths[-1].points[-1]
        return out

    def _loops_first_layer(self, e_mm: float, warnings: list[str]) -> list[Path]:
        base = shapely.union(self.regions[0], self.first_support)
        spacing = float(spacing_of(self.width, self.heights[0]))
        rings = skirt_loops(base, self.width, spacing, self.settings)
        rings += brim_loops(self.regions[0], self.width, spacing, self.settings)
        bed_x, bed_y, _ = self.printer.build_volume
        out = []
        v = self.printer.speeds.first_layer
        for ring in rings:
            coords = shapely.get_coordinates(ring)
            if (
                coords[:, 0].min() < 0
                or coords[:, 1].min() < 0
                or coords[:, 0].max() > bed_x
                or coords[:, 1].max() > bed_y
            ):
                warnings.append("a skirt or brim loop would leave the bed and was left out")
                continue
            out.append(Path(MoveType.SKIRT, coords, v, e_mm))
        return out


def _rings_per_owner(walls: np.ndarray, count: int) -> list[list[np.ndarray]]:
    """Closed coordinate rings of every wall geometry, grouped by island."""
    out: list[list[np.ndarray]] = [[] for _ in range(count)]
    parts, part_owner = shapely.get_parts(walls, return_index=True)
    rings, ring_part = shapely.get_rings(parts, return_index=True)
    owner = part_owner[ring_part]
    if not len(rings):
        return out
    coords, ring_idx = shapely.get_coordinates(rings, return_index=True)
    splits = np.searchsorted(ring_idx, np.arange(len(rings) + 1))
    for r in range(len(rings)):
        pts = coords[splits[r] : splits[r + 1]]
        if len(pts) >= 4:
            out[int(owner[r])].append(pts)
    return out


def _seam(ring: np.ndarray, pos: np.ndarray) -> np.ndarray:
    """Start a closed ring at its vertex nearest ``pos``."""
    pts = ring[:-1]
    j = int(np.argmin(((pts - pos) ** 2).sum(axis=1)))
    pts = np.roll(pts, -j, axis=0)
    return np.vstack([pts, pts[:1]])


def _lines(
    polylines: list[np.ndarray],
    kind: MoveType,
    speed: float,
    e_mm: float,
    spacing: float,
    *,
    pos: np.ndarray | None = None,
) -> list[Path]:
    """Paths for fill polylines, ordered nearest-first from ``pos`` (reversed when shorter)."""
    if pos is not None and len(polylines) > 1:
        polylines = _nearest_order(polylines, pos)
    link = 1.5 * spacing
    out = [Path(kind, line, speed, e_mm, link) for line in polylines]
    if out:
        out[0].link = 0.0
    return out


def _nearest_order(polylines: list[np.ndarray], pos: np.ndarray) -> list[np.ndarray]:
    """Greedy nearest-neighbour order of polylines, each entered at its nearer end."""
    if len(polylines) > 48:
        return _nearest_order_numpy(polylines, pos)
    ends = [(p[0][0], p[0][1], p[-1][0], p[-1][1]) for p in polylines]
    left = list(range(len(polylines)))
    hx, hy = float(pos[0]), float(pos[1])
    out = []
    while left:
        best, best_d, flip = 0, math.inf, False
        for slot, j in enumerate(left):
            sx, sy, ex, ey = ends[j]
            d0 = (sx - hx) ** 2 + (sy - hy) ** 2
            d1 = (ex - hx) ** 2 + (ey - hy) ** 2
            if d0 < best_d:
                best, best_d, flip = slot, d0, False
            if d1 < best_d:
                best, best_d, flip = slot, d1, True
        j = left.pop(best)
        line = polylines[j][::-1] if flip else polylines[j]
        out.append(line)
        hx, hy = float(line[-1][0]), float(line[-1][1])
    return out


def _nearest_order_numpy(polylines: list[np.ndarray], pos: np.ndarray) -> list[np.ndarray]:
    starts = np.array([p[0] for p in polylines])
    ends = np.array([p[-1] for p in polylines])
    left = np.ones(len(polylines), dtype=bool)
    here = np.asarray(pos, dtype=np.float64)
    out = []
    for _ in range(len(polylines)):
        d_start = ((starts - here) ** 2).sum(axis=1)
        d_end = ((ends - here) ** 2).sum(axis=1)
        d = np.where(left, np.minimum(d_start, d_end), np.inf)
        j = int(np.argmin(d))
        left[j] = False
        line = polylines[j] if d_start[j] <= d_end[j] else polylines[j][::-1]
        out.append(line)
        here = line[-1]
    return out
