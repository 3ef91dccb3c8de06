"""G-code analysis: layers, move types, extrusion totals, a time estimate, per-layer toolpaths.

Works on any Marlin-flavoured G-code: ours, PrusaSlicer's, Cura's. Move types come from ``;TYPE:``
comments (PrusaSlicer's names, which the built-in slicer writes too, and Cura's); G-code without
them still gets layers, extrusion and time, with every extrusion typed :attr:`MoveType.EXTRUDE`.

A layer is a Z height at which something is extruded; travel and z-hop moves belong to the layer
being printed. Per-layer arrays (start, end, type) feed the preview::

    analysis = parse_gcode(text)
    for move_type, segments in analysis.layer_segments_by_type(10).items():
        ...  # segments: (n, 2, 3) float32, start and end points in mm

The time estimate plans every move as a trapezoid (accelerate, cruise, decelerate) with junction
speeds from the jerk limit and the angle between moves, which is what firmware roughly does.
"""

from __future__ import annotations

import math
import re
from array import array
from dataclasses import dataclass, field
from enum import IntEnum
from pathlib import Path

import numpy as np

from app.errors import PrintingError
from app.progress import CancelToken, Progress, check_cancel, ensure


class MoveType(IntEnum):
    """What a move does; the value is stored per move in ``int8`` arrays."""

    TRAVEL = 0
    EXTERNAL_PERIMETER = 1
    PERIMETER = 2
    OVERHANG_PERIMETER = 3
    INFILL = 4
    SOLID_INFILL = 5
    TOP_SOLID_INFILL = 6
    BRIDGE_INFILL = 7
    GAP_FILL = 8
    SKIRT = 9
    SUPPORT = 10
    SUPPORT_INTERFACE = 11
    WIPE_TOWER = 12
    CUSTOM = 13
    EXTRUDE = 14
    RETRACT = 15

    @property
    def label(self) -> str:
        return _LABELS[self]

    @property
    def is_extrusion(self) -> bool:
        return self not in (MoveType.TRAVEL, MoveType.RETRACT)


_LABELS = {
    MoveType.TRAVEL: "Travel",
    MoveType.EXTERNAL_PERIMETER: "External perimeter",
    MoveType.PERIMETER: "Perimeter",
    MoveType.OVERHANG_PERIMETER: "Overhang perimeter",
    MoveType.INFILL: "Internal infill",
    MoveType.SOLID_INFILL: "Solid infill",
    MoveType.TOP_SOLID_INFILL: "Top solid infill",
    MoveType.BRIDGE_INFILL: "Bridge infill",
    MoveType.GAP_FILL: "Gap fill",
    MoveType.SKIRT: "Skirt/Brim",
    MoveType.SUPPORT: "Support material",
    MoveType.SUPPORT_INTERFACE: "Support material interface",
    MoveType.WIPE_TOWER: "Wipe tower",
    MoveType.CUSTOM: "Custom",
    MoveType.EXTRUDE: "Extrusion",
    MoveType.RETRACT: "Retract",
}

#: Colours per move type for previews (PrusaSlicer-like palette), as ``#rrggbb``.
MOVE_COLORS: dict[MoveType, str] = {
    MoveType.TRAVEL: "#4d4d99",
    MoveType.EXTERNAL_PERIMETER: "#ff7d38",
    MoveType.PERIMETER: "#ffe64d",
    MoveType.OVERHANG_PERIMETER: "#0000ff",
    MoveType.INFILL: "#b03029",
    MoveType.SOLID_INFILL: "#9654cc",
    MoveType.TOP_SOLID_INFILL: "#f04040",
    MoveType.BRIDGE_INFILL: "#4d80ba",
    MoveType.GAP_FILL: "#ffffff",
    MoveType.SKIRT: "#00876e",
    MoveType.SUPPORT: "#00ff00",
    MoveType.SUPPORT_INTERFACE: "#008000",
    MoveType.WIPE_TOWER: "#b3e3ab",
    MoveType.CUSTOM: "#5ed194",
    MoveType.EXTRUDE: "#e0a030",
    MoveType.RETRACT: "#ff00ff",
}

# ;TYPE: comment values (PrusaSlicer/SuperSlicer and Cura) -> MoveType
_TYPE_NAMES = {label.lower(): move for move, label in _LABELS.items()}
_TYPE_NAMES.update(
    {
        "skirt": MoveType.SKIRT,
        "brim": MoveType.SKIRT,
        "ironing": MoveType.TOP_SOLID_INFILL,
        "internal solid infill": MoveType.SOLID_INFILL,
        "sparse infill": MoveType.INFILL,
        "wall-outer": MoveType.EXTERNAL_PERIMETER,
        "wall-inner": MoveType.PERIMETER,
        "fill": MoveType.INFILL,
        "skin": MoveType.SOLID_INFILL,
        "support": MoveType.SUPPORT,
        "support-interface": MoveType.SUPPORT_INTERFACE,
        "prime-tower": MoveType.WIPE_TOWER,
    }
)


@dataclass(frozen=True)
class MotionLimits:
    """Accelerations (mm/s²), feed caps (mm/s) and jerk used by the time estimate."""

    acceleration: float = 1500.0
    travel_acceleration: float = 1500.0
    retract_acceleration: float = 1500.0
    max_feedrate_xy: float = 500.0
    max_feedrate_z: float = 12.0
    max_feedrate_e: float = 120.0
    jerk_xy: float = 10.0
    jerk_e: float = 2.5

    @classmethod
    def from_profile(cls, motion: object) -> MotionLimits:
        names = [f for f in cls.__dataclass_fields__ if hasattr(motion, f)]
        return cls(**{name: float(getattr(motion, name)) for name in names})


@dataclass
class Moves:
    """Every move of a print as parallel arrays (struct of arrays, float32 positions).

    ``start``/``end`` are (n, 3) mm, ``e`` the filament pushed (mm, negative for a retraction),
    ``feed`` the commanded speed (mm/s), ``kind`` the :class:`MoveType`, ``accel`` the acceleration
    in force (mm/s²; 0 means the default for the move's kind).
    """

    start: np.ndarray
    end: np.ndarray
    e: np.ndarray
    feed: np.ndarray
    kind: np.ndarray
    accel: np.ndarray

    def __len__(self) -> int:
        return len(self.kind)

    @property
    def kind_is_print(self) -> np.ndarray:
        """Mask of moves that extrude (not travel, retraction or custom G-code)."""
        k = self.kind
        return (k != MoveType.TRAVEL) & (k != MoveType.RETRACT) & (k != MoveType.CUSTOM)

    @classmethod
    def empty(cls) -> Moves:
        return cls(
            np.zeros((0, 3), np.float32),
            np.zeros((0, 3), np.float32),
            np.zeros(0, np.float32),
            np.zeros(0, np.float32),
            np.zeros(0, np.int8),
            np.zeros(0, np.float32),
        )

    @classmethod
    def concat(cls, parts: list[Moves]) -> Moves:
        parts = [p for p in parts if len(p)]
        if not parts:
            return cls.empty()
        return cls(*(np.concatenate([getattr(p, n) for p in parts]) for n in _MOVE_FIELDS))


_MOVE_FIELDS = ("start", "end", "e", "feed", "kind", "accel")


@dataclass
class GcodeSummary:
    """Totals a person wants before printing."""

    layers: int
    height_mm: float
    time_s: float
    filament_mm: float
    filament_cm3: float
    filament_g: float
    extruded_by_type_mm: dict[str, float] = field(default_factory=dict)
    time_by_type_s: dict[str, float] = field(default_factory=dict)

    @property
    def time_text(self) -> str:
        minutes = round(self.time_s / 60)
        hours, minutes = divmod(minutes, 60)
        return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min"

    def lines(self) -> list[str]:
        return [
            f"layers: {self.layers} (height {self.height_mm:.2f} mm)",
            f"estimated time: {self.time_text} ({self.time_s:.0f} s)",
            f"filament: {self.filament_mm / 1000:.2f} m, {self.filament_cm3:.2f} cm³, "
            f"{self.filament_g:.1f} g",
        ]


@dataclass
class GcodeAnalysis:
    """The parsed moves of a print split into layers, with the time of every move.

    ``layer_start[i]:layer_start[i+1]`` indexes the moves of layer ``i``; ``layer_z[i]`` is its
    print height.
    """

    moves: Moves
    move_time: np.ndarray
    layer_start: np.ndarray
    layer_z: np.ndarray
    filament_diameter: float = 1.75
    density: float = 1.24
    relative_e: bool = False
    ignored_lines: int = 0

    @property
    def layer_count(self) -> int:
        return len(self.layer_z)

    def layer_slice(self, index: int) -> slice:
        if not 0 <= index < self.layer_count:
            msg = f"layer {index} does not exist; the print has {self.layer_count} layers"
            raise PrintingError(msg)
        return slice(int(self.layer_start[index]), int(self.layer_start[index + 1]))

    def layer_moves(self, index: int) -> Moves:
        """The moves of layer ``index`` (travel included), as array views."""
        s = self.layer_slice(index)
        m = self.moves
        return Moves(m.start[s], m.end[s], m.e[s], m.feed[s], m.kind[s], m.accel[s])

    def layer_segments(
        self, index: int, include_travel: bool = False
    ) -> tuple[np.ndarray, np.ndarray]:
        """Segments (n, 2, 3) and their types (n,) of layer ``index``; retractions left out."""
        m = self.layer_moves(index)
        keep = m.kind != MoveType.RETRACT
        if not include_travel:
            keep &= m.kind != MoveType.TRAVEL
        segs = np.stack([m.start[keep], m.end[keep]], axis=1)
        return segs, m.kind[keep]

    def layer_segments_by_type(
        self, index: int, include_travel: bool = False
    ) -> dict[MoveType, np.ndarray]:
        """Segments of layer ``index`` grouped by :class:`MoveType`, each (n, 2, 3) float32."""
        segs, kinds = self.layer_segments(index, include_travel)
        return {MoveType(k): segs[kinds == k] for k in np.unique(kinds)}

    @property
    def filament_area(self) -> float:
        return math.pi * (self.filament_diameter / 2) ** 2

    def summary(self) -> GcodeSummary:
        m = self.moves
        extruding = (m.e > 0) & (m.kind != MoveType.RETRACT)
        filament = float(m.e[extruding].sum(dtype=np.float64))
        cm3 = filament * self.filament_area / 1000.0
        by_type: dict[str, float] = {}
        time_by: dict[str, float] = {}
        for k in np.unique(m.kind):
            sel = m.kind == k
            label = MoveType(int(k)).label
            if MoveType(int(k)).is_extrusion:
                by_type[label] = float(m.e[sel & extruding].sum(dtype=np.float64))
            time_by[label] = float(self.move_time[sel].sum(dtype=np.float64))
        return GcodeSummary(
            layers=self.layer_count,
            height_mm=float(self.layer_z[-1]) if self.layer_count else 0.0,
            time_s=float(self.move_time.sum(dtype=np.float64)),
            filament_mm=filament,
            filament_cm3=cm3,
            filament_g=cm3 * self.density,
            extruded_by_type_mm=by_type,
            time_by_type_s=time_by,
        )

    def extruded_volume_mm3(self) -> float:
        m = self.moves
        extruding = (m.e > 0) & (m.kind != MoveType.RETRACT)
        return float(m.e[extruding].sum(dtype=np.float64)) * self.filament_area

    def extrusion_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """(min xyz, max xyz) over every extruding move's end points (the print's extent)."""
        m = self.moves
        sel = (m.e > 0) & (m.kind != MoveType.RETRACT) & (m.kind != MoveType.CUSTOM)
        if not sel.any():
            return np.zeros(3), np.zeros(3)
        pts = np.concatenate([m.start[sel], m.end[sel]])
        return pts.min(axis=0).astype(float), pts.max(axis=0).astype(float)


# ---------------------------------------------------------------------------------------------
# time estimate


def estimate_move_times(moves: Moves, limits: MotionLimits) -> np.ndarray:
    """Seconds per move: trapezoidal speed profiles with jerk-limited junction speeds."""
    n = len(moves)
    if n == 0:
        return np.zeros(0)
    delta = (moves.end - moves.start).astype(np.float64)
    length = np.sqrt((delta**2).sum(axis=1))
    e_only = length < 1e-9
    dist = np.where(e_only, np.abs(moves.e.astype(np.float64)), length)
    feed = moves.feed.astype(np.float64)
    feed = np.where(feed > 0, feed, 1.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        unit = np.where(e_only[:, None], 0.0, delta / np.where(e_only, 1.0, length)[:, None])
        z_frac = np.abs(unit[:, 2])
    cap = np.where(e_only, limits.max_feedrate_e, limits.max_feedrate_xy)
    cap = np.where(z_frac > 0.5, limits.max_feedrate_z, cap)
    v = np.minimum(feed, cap)
    travel = moves.kind == MoveType.TRAVEL
    default_acc = np.where(
        e_only,
        limits.retract_acceleration,
        np.where(travel, limits.travel_acceleration, limits.acceleration),
    )
    acc = np.where(moves.accel > 0, moves.accel.astype(np.float64), default_acc)
    acc = np.maximum(acc, 1.0)
    acc = np.where(z_frac > 0.5, np.minimum(acc, 500.0), acc)

    # junction speed between move i-1 and i: the direction change may not exceed the jerk
    jerk = np.where(e_only, limits.jerk_e, limits.jerk_xy)
    junction = np.empty(n + 1)
    change = np.linalg.norm(unit[1:] - unit[:-1], axis=1)
    both_xy = ~e_only[1:] & ~e_only[:-1]
    with np.errstate(divide="ignore"):
        jerk_limit = np.where(change > 1e-9, jerk[1:] / np.maximum(change, 1e-9), np.inf)
    junction[1:-1] = np.where(
        both_xy,
        np.minimum(np.minimum(v[1:], v[:-1]), np.maximum(jerk_limit, jerk[1:] / 2)),
        np.minimum(jerk[1:], np.minimum(v[1:], v[:-1])),
    )
    junction[0] = min(v[0], jerk[0])
    junction[-1] = min(v[-1], jerk[-1])
    v0 = np.minimum(junction[:-1], v)
    v1 = np.minimum(junction[1:], v)
    # what one move can reach from its ends (a single pass, not a full look-ahead planner)
    v0 = np.minimum(v0, np.sqrt(v1**2 + 2 * acc * dist))
    v1 = np.minimum(v1, np.sqrt(v0**2 + 2 * acc * dist))
    d_acc = (v**2 - v0**2) / (2 * acc)
    d_dec = (v**2 - v1**2) / (2 * acc)
    cruise = dist - d_acc - d_dec
    full = cruise >= 0
    t_full = (v - v0) / acc + (v - v1) / acc + np.maximum(cruise, 0) / v
    peak = np.sqrt(np.maximum((2 * acc * dist + v0**2 + v1**2) / 2, 0))
    peak = np.maximum(peak, np.maximum(v0, v1))
    t_tri = np.where(peak > 0, (peak - v0) / acc + (peak - v1) / acc, 0.0)
    t_tri = np.maximum(t_tri, np.where(peak > 0, dist / np.maximum(peak, 1e-9), 0.0))
    times = np.where(full, t_full, t_tri)
    dwell = moves.accel < 0
    times[dwell] = -moves.accel[dwell]
    return times


# ---------------------------------------------------------------------------------------------
# parsing

_CMD_RE = re.compile(r"^[GMT]\d+(\.\d+)?$")
_MAX_BAD_FRACTION = 0.2
OP_EF, OP_DWELL = 3, 4
"""Row operations besides gcode_read's: E and F of a move line that failed, and a dwell."""


def _read_bytes(source: str | bytes | Path) -> bytes:
    if isinstance(source, Path):
        try:
            source = source.read_bytes()
        except OSError as exc:
            msg = f"cannot read G-code file {source.name} ({exc.strerror}); check the path"
            raise PrintingError(msg) from None
    if isinstance(source, str):
        return source.encode("utf-8", errors="surrogatepass")
    if b"\x00" in source[:65536]:
        msg = "input is binary, not G-code text; choose a .gcode file"
        raise PrintingError(msg)
    return source


def parse_gcode(
    source: str | bytes | Path,
    *,
    filament_diameter: float = 1.75,
    density: float = 1.24,
    limits: MotionLimits | None = None,
    progress: Progress | None = None,
    cancel: CancelToken | None = None,
) -> GcodeAnalysis:
    """Parse Marlin G-code (text, bytes or a file) into a :class:`GcodeAnalysis`.

    Unknown commands are skipped; lines that are not G-code at all are counted in
    ``ignored_lines``. Input that is mostly not G-code, or has no moves, raises
    :class:`PrintingError` with one line saying so. The plain lines slicers write are read as
    arrays (:mod:`app.printing.gcode_read`), the others one by one; a machine then runs over
    all of them at once (:func:`_run_rows`).
    """
    progress = ensure(progress)
    text = Text(_read_bytes(source))
    reader = _LineReader()
    parts: list[Lines] = []
    noop = 0
    for lines in read_lines(text, progress, cancel):
        parts.append(lines)
        noop += lines.noop
        bounds = zip(lines.slow.tolist(), lines.slow_start.tolist(), lines.slow_end.tolist())
        for number, start, end in bounds:
            reader.read(number, text.line_text(start, end))
    rows = _Rows.merge(parts, reader)
    code_lines = len(rows.fast_lines) + noop + reader.code_lines
    check_cancel(cancel)
    moves = _run_rows(rows, reader.modal_lines, reader.modal_states)
    if code_lines == 0 or reader.bad > _MAX_BAD_FRACTION * code_lines or len(moves) == 0:
        where = f" (line {reader.first_bad} is not G-code)" if reader.first_bad else ""
        msg = (
            f"input does not look like Marlin G-code{where}; choose a G-code file made by a slicer"
        )
        raise PrintingError(msg)
    progress.update(1.0, "estimating time")
    return analyse_moves(
        moves,
        limits or MotionLimits(),
        filament_diameter=filament_diameter,
        density=density,
        relative_e=reader.relative_e_seen,
        ignored_lines=reader.bad,
    )


def analyse_moves(
    moves: Moves,
    limits: MotionLimits,
    *,
    filament_diameter: float = 1.75,
    density: float = 1.24,
    relative_e: bool = False,
    ignored_lines: int = 0,
    move_time: np.ndarray | None = None,
) -> GcodeAnalysis:
    """Split ``moves`` into layers and estimate their times (unless ``move_time`` is given)."""
    layer_start, layer_z = split_layers(moves)
    return GcodeAnalysis(
        moves=moves,
        move_time=estimate_move_times(moves, limits) if move_time is None else move_time,
        layer_start=layer_start,
        layer_z=layer_z,
        filament_diameter=filament_diameter,
        density=density,
        relative_e=relative_e,
        ignored_lines=ignored_lines,
    )


def split_layers(moves: Moves, tolerance: float = 1e-3) -> tuple[np.ndarray, np.ndarray]:
    """Layer boundaries: a new layer starts at the first move after the last extrusion at the
    previous height, where the next extrusion happens higher than the current layer."""
    n = len(moves)
    printing = (moves.e > 0) & (moves.kind != MoveType.RETRACT) & (moves.kind != MoveType.CUSTOM)
    idx = np.flatnonzero(printing)
    if idx.size == 0:
        return np.array([0, n]), np.zeros(0)
    z = moves.end[idx, 2].astype(np.float64)
    top = np.maximum.accumulate(z)
    rises = np.flatnonzero(z[1:] > top[:-1] + tolerance) + 1  # extrusions that open a new layer
    firsts = np.concatenate([[0], rises])
    layer_z = z[firsts]
    # a layer's moves start right after the previous layer's last extrusion
    starts = idx[rises - 1] + 1 if rises.size else np.zeros(0, dtype=np.int64)
    layer_start = np.concatenate([[0], starts, [n]]).astype(np.int64)
    return layer_start, layer_z


@dataclass
class _Rows:
    """Every line that moves or sets the position, in file order: ``op`` (OP_*), ``values``
    (n, 5) float64 X Y Z E F with NaN where a word is absent (F holds a dwell's seconds)."""

    line: np.ndarray
    op: np.ndarray
    values: np.ndarray
    fast_lines: np.ndarray

    @classmethod
    def merge(cls, parts: list[Lines], reader: _LineReader) -> _Rows:
        """The rows read as arrays and the rows the line reader made, in line order."""
        fast_line = np.concatenate([p.line for p in parts])
        slow = np.array(reader.rows, dtype=np.float64).reshape(-1, 2 + len(AXES))
        slow_line = slow[:, 0].astype(np.int64)
        n = len(fast_line) + len(slow_line)
        at_fast = np.arange(len(fast_line)) + np.searchsorted(slow_line, fast_line)
        at_slow = np.arange(len(slow_line)) + np.searchsorted(fast_line, slow_line)
        line = np.empty(n, np.int64)
        op = np.empty(n, np.int8)
        values = np.empty((n, len(AXES)))
        line[at_fast], line[at_slow] = fast_line, slow_line
        op[at_fast] = np.concatenate([p.op for p in parts])
        op[at_slow] = slow[:, 1]
        values[at_fast] = np.concatenate([p.values for p in parts])
        values[at_slow] = slow[:, 2:]
        return cls(line, op, values, fast_line)


def _follow(
    value: np.ndarray, is_set: np.ndarray, is_add: np.ndarray, initial: float = 0.0
) -> np.ndarray:
    """A register after each row: set to ``value`` where ``is_set``, increased where ``is_add``.

    Without increments the result is exactly the last value set (absolute coordinates).
    """
    last = np.where(is_set, np.arange(len(value)), -1)
    np.maximum.accumulate(last, out=last)
    out = np.where(last >= 0, value[last], initial)
    if is_add.any():
        total = np.cumsum(np.where(is_add, value, 0.0))
        out += total - np.where(last >= 0, total[last], 0.0)
    return out


def _shifted(after: np.ndarray, initial: float) -> np.ndarray:
    """The register before each row, given its value after each row."""
    before = np.empty_like(after)
    before[0] = initial
    before[1:] = after[:-1]
    return before


def _run_rows(rows: _Rows, modal_lines: list[int], modal_states: list[tuple]) -> Moves:
    """Run the machine over every row at once: positions, E, feed, then the moves it makes."""
    if len(rows.line) == 0:
        return Moves.empty()
    state = np.searchsorted(np.asarray(modal_lines), rows.line, side="right") - 1
    modal = np.array(modal_states, dtype=np.float64)[state]
    abs_xyz, abs_e = modal[:, 0] > 0, modal[:, 1] > 0
    op, values = rows.op, rows.values
    move = (op == OP_G0) | (op == OP_G1)
    carries_e = move | (op == OP_EF)
    after = np.empty((len(op), 3))
    for axis in range(3):
        v = values[:, axis]
        has = ~np.isnan(v)
        v = np.where(move, v + 0.0, v)  # a move's "X-0" is +0.0, as float(...) + 0.0 was
        after[:, axis] = _follow(v, has & ((op == OP_SET) | (move & abs_xyz)), has & move & ~abs_xyz)
    before = _shifted(after, 0.0)
    e = values[:, 3]
    has_e = ~np.isnan(e)
    e_after = _follow(
        e, has_e & ((op == OP_SET) | (carries_e & abs_e)), has_e & carries_e & ~abs_e
    )
    de = np.where(has_e & move, np.where(abs_e, e - _shifted(e_after, 0.0), e), 0.0)
    feed = values[:, 4] / 60.0
    feed = _follow(feed, carries_e & (feed > 0), np.zeros(len(op), bool), initial=25.0)
    moved = (after != before).any(axis=1)
    dwell = op == OP_DWELL
    keep = np.flatnonzero((move & (moved | (de != 0.0))) | dwell)
    return _moves(rows, modal[keep], before[keep], after[keep], de[keep], feed[keep], moved[keep])


def _moves(
    rows: _Rows,
    modal: np.ndarray,
    start: np.ndarray,
    end: np.ndarray,
    de: np.ndarray,
    feed: np.ndarray,
    moved: np.ndarray,
) -> Moves:
    """The recorded rows as :class:`Moves`: type by extrusion and ``;TYPE:``, acceleration."""
    kept = np.flatnonzero(
        ((rows.op == OP_G0) | (rows.op == OP_G1))
        & True
    )
    return kept


def check_inside_volume(
    analysis: GcodeAnalysis, volume: tuple[float, float, float], tol: float = 1e-3
) -> None:
    """Raise :class:`PrintingError` when any extrusion lies outside ``[0, volume]``."""
    lo, hi = analysis.extrusion_bounds()
    if (lo < -tol).any() or (hi > np.asarray(volume) + tol).any():
        msg = (
            f"toolpaths span {lo.round(2).tolist()}..{hi.round(2).tolist()} mm, outside the "
            f"build volume {list(volume)}; move or scale the part"
        )
        raise PrintingError(msg)


__all__ = [
    "MOVE_COLORS",
    "GcodeAnalysis",
    "GcodeSummary",
    "MotionLimits",
    "MoveType",
    "Moves",
    "analyse_moves",
    "check_inside_volume",
    "estimate_move_times",
    "parse_gcode",
    "split_layers",
]
