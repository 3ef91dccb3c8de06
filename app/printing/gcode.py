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
from dataclasses import dataclass, field
from enum import IntEnum
from pathlib import Path

import numpy as np

from app.errors import PrintingError
from app.printing.gcode_read import OP_G0, OP_G1, OP_SET, Lines, Text, read_lines
from app.progress import CancelToken, Progress, ensure


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


_TIME_CHUNK = 1 << 15  # moves per pass: the temporaries stay in the CPU cache


def estimate_move_times(moves: Moves, limits: MotionLimits) -> np.ndarray:
    """Seconds per move: trapezoidal speed profiles with jerk-limited junction speeds.

    A move's time depends on itself and its two neighbours (the junction speeds), so the moves
    are timed in cache-sized slices that overlap by one move.
    """
    n = len(moves)
    times = np.empty(n)
    for start in range(0, n, _TIME_CHUNK):
        stop = min(n, start + _TIME_CHUNK)
        lo, hi = max(start - 1, 0), min(stop + 1, n)
        part = Moves(*(getattr(moves, name)[lo:hi] for name in _MOVE_FIELDS))
        times[start:stop] = _slice_times(part, limits)[start - lo : stop - lo]
    return times


def _slice_times(moves: Moves, limits: MotionLimits) -> np.ndarray:
    """:func:`estimate_move_times` of consecutive moves, the first and last starting and
    ending at rest."""
    n = len(moves)
    delta = [(moves.end[:, i] - moves.start[:, i]).astype(np.float64) for i in range(3)]
    length = np.sqrt(delta[0] * delta[0] + delta[1] * delta[1] + delta[2] * delta[2])
    e_only = length < 1e-9
    dist = np.where(e_only, np.abs(moves.e.astype(np.float64)), length)
    feed = moves.feed.astype(np.float64)
    feed = np.where(feed > 0, feed, 1.0)
    safe_length = np.where(e_only, 1.0, length)
    unit = [np.where(e_only, 0.0, d / safe_length) for d in delta]  # columns: no strided passes
    z_frac = np.abs(unit[2])
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
    turn = [np.diff(u) for u in unit]
    change = np.sqrt(turn[0] * turn[0] + turn[1] * turn[1] + turn[2] * turn[2])
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
    two_acc = 2 * acc
    reach = two_acc * dist  # squared speed gained over the move (products made once)
    v0 = np.minimum(v0, np.sqrt(v1**2 + reach))
    v1 = np.minimum(v1, np.sqrt(v0**2 + reach))
    v_sq, v0_sq, v1_sq = v**2, v0**2, v1**2
    d_acc = (v_sq - v0_sq) / two_acc
    d_dec = (v_sq - v1_sq) / two_acc
    cruise = dist - d_acc - d_dec
    full = cruise >= 0
    t_full = (v - v0) / acc + (v - v1) / acc + np.maximum(cruise, 0) / v
    peak = np.sqrt(np.maximum((reach + v0_sq + v1_sq) / 2, 0))
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
_BATCH = 8  # chunks of text per run of the machine: fewer, longer NumPy calls
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
    arrays (:mod:`app.printing.gcode_read`), the others one by one (:class:`_LineReader`); a
    machine then runs over each chunk's rows at once (:class:`_Machine`).
    """
    progress = ensure(progress)
    text = Text(_read_bytes(source))
    reader = _LineReader()
    machine = _Machine()
    parts: list[Moves] = []
    batch: list[Lines] = []
    code_lines = 0
    for lines in read_lines(text, progress, cancel):
        reader.read_all(text, lines)
        batch.append(lines)
        code_lines += len(lines.line) + lines.noop
        if len(batch) == _BATCH:
            parts.append(machine.run(_Rows.of(batch, reader.take_rows()), *reader.take_modal()))
            batch = []
    parts.append(machine.run(_Rows.of(batch, reader.take_rows()), *reader.take_modal()))
    code_lines += reader.code_lines
    moves = Moves.concat(parts)
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
    """The lines of a chunk that move or set the position, in file order: ``op`` (OP_*) and
    ``values`` (5, n) float64 X Y Z E F, NaN where a word is absent (F holds a dwell's seconds)."""

    line: np.ndarray
    op: np.ndarray
    values: np.ndarray

    @classmethod
    def of(cls, batch: list[Lines], slow: list[tuple[float, ...]]) -> _Rows:
        """The rows read as arrays and those the line reader made, in line order."""
        line = np.concatenate([b.line for b in batch])
        op = np.concatenate([b.op for b in batch])
        values = np.concatenate([b.values for b in batch], axis=1)
        if not slow:
            return cls(line, op, values)
        more = np.array(slow, dtype=np.float64)
        line = np.concatenate([line, more[:, 0].astype(np.int64)])
        order = np.argsort(line, kind="stable")  # a line's own rows keep their order
        op = np.concatenate([op, more[:, 1].astype(np.int8)])
        values = np.concatenate([values, more[:, 2:].T], axis=1)
        return cls(line[order], op[order], values[:, order])


def _follow(
    value: np.ndarray, is_set: np.ndarray, is_add: np.ndarray | None, initial: float
) -> np.ndarray:
    """A register after each row: set to ``value`` where ``is_set``, increased where ``is_add``.

    Without increments the result is exactly the last value set (absolute coordinates).
    """
    last = np.where(is_set, np.arange(1, len(value) + 1), 0)  # 0: the initial value
    np.maximum.accumulate(last, out=last)
    out = np.concatenate([[initial], value])[last]
    if is_add is not None and is_add.any():
        total = np.concatenate([[0.0], np.cumsum(np.where(is_add, value, 0.0))])
        out += total[1:] - total[last]
    return out


def _before(after: np.ndarray, initial: float) -> np.ndarray:
    """A register before each row, given its value after each row."""
    before = np.empty_like(after)
    before[0] = initial
    before[1:] = after[:-1]
    return before


class _Machine:
    """Position, E and feed carried from chunk to chunk; each chunk's rows run at once."""

    def __init__(self) -> None:
        self.pos = [0.0, 0.0, 0.0]
        self.e = 0.0
        self.feed = 25.0  # mm/s until the file sets one

    def run(self, rows: _Rows, modal_lines: np.ndarray, modal_states: np.ndarray) -> Moves:
        """The moves of one chunk; ``modal_states[i]`` holds from line ``modal_lines[i]`` on."""
        if len(rows.line) == 0:
            return Moves.empty()
        changes = np.searchsorted(rows.line, modal_lines[1:])  # first row each state covers
        state = np.cumsum(np.bincount(changes, minlength=len(rows.line) + 1)[:-1])
        abs_xyz = _per_row(modal_states[:, _ABS_XYZ] > 0, state)
        abs_e = _per_row(modal_states[:, _ABS_E] > 0, state)
        op = rows.op
        move = op <= OP_G1
        after = [self._axis(axis, rows, move, abs_xyz) for axis in range(3)]
        before = [_before(a, p) for a, p in zip(after, self.pos, strict=True)]
        de = self._extrusion(rows, move, abs_e)
        moved = (after[0] != before[0]) | (after[1] != before[1]) | (after[2] != before[2])
        keep = np.flatnonzero((move & (moved | (de != 0.0))) | (op == OP_DWELL))
        feed = self._feed(rows, move)
        self.pos = [float(a[-1]) for a in after]
        return _moves(
            op[keep],
            modal_states,
            state[keep],
            start=_points(before, keep),
            end=_points(after, keep),
            de=de[keep],
            feed=feed[keep],
            moved=moved[keep],
            seconds=rows.values[4, keep],
        )

    def _axis(self, axis: int, rows: _Rows, move: np.ndarray, absolute: np.ndarray) -> np.ndarray:
        """One coordinate after each row: moves set it (absolute) or add to it, G92/G28 set it."""
        v = rows.values[axis]
        has = ~np.isnan(v)
        v = np.where(move, v + 0.0, v)  # a move's "X-0" is +0.0, as float(...) + 0.0 was
        if absolute.all():
            return _follow(v, has, None, self.pos[axis])
        return _follow(
            v, has & ((rows.op == OP_SET) | absolute), has & move & ~absolute, self.pos[axis]
        )

    def _extrusion(self, rows: _Rows, move: np.ndarray, absolute: np.ndarray) -> np.ndarray:
        """Filament each move row pushes (M82 absolute or M83 relative E)."""
        e = rows.values[3]
        has = ~np.isnan(e)
        if absolute.all():
            after = _follow(e, has, None, self.e)
            de = np.where(has & move, e - _before(after, self.e), 0.0)
        else:
            changes = has & (rows.op != OP_SET) & ~absolute
            after = _follow(e, has & ~changes, changes, self.e)
            relative = np.where(absolute, e - _before(after, self.e), e)
            de = np.where(has & move, relative, 0.0)
        self.e = float(after[-1])
        return de

    def _feed(self, rows: _Rows, move: np.ndarray) -> np.ndarray:
        """The feed (mm/s) in force at each row: the last positive F of a move line."""
        feed = rows.values[4] / 60.0
        carries = (move | (rows.op == OP_EF)) & (feed > 0)
        out = _follow(feed, carries, None, self.feed)
        self.feed = float(out[-1])
        return out


def _points(columns: list[np.ndarray], keep: np.ndarray) -> np.ndarray:
    """The kept rows of x/y/z columns as (n, 3) float32, cast while copied (no float64 stack)."""
    points = np.empty((len(keep), 3), np.float32)
    for axis, column in enumerate(columns):
        points[:, axis] = column[keep]
    return points


def _per_row(flags: np.ndarray, state: np.ndarray) -> np.ndarray:
    """A modal flag at each row (one value when it never changes)."""
    return np.full(len(state), flags[0]) if flags.all() or not flags.any() else flags[state]


def _moves(
    op: np.ndarray,
    modal: np.ndarray,
    state: np.ndarray,
    *,
    start: np.ndarray,
    end: np.ndarray,
    de: np.ndarray,
    feed: np.ndarray,
    moved: np.ndarray,
    seconds: np.ndarray,
) -> Moves:
    """The recorded rows as :class:`Moves`: typed by extrusion and ``;TYPE:`` (``modal[state]``
    at each row), ``start``/``end`` already float32; dwells last ``seconds`` (a zero-length
    retract-kind move with a negative acceleration)."""
    dwell = op == OP_DWELL
    typed = np.where(modal[:, _TYPED] > 0, modal[:, _KIND], MoveType.EXTRUDE)
    typed = np.where(typed == MoveType.TRAVEL, MoveType.EXTRUDE, typed).astype(np.int8)[state]
    extrude = (de > 0) & (op == OP_G1)
    kind = np.where(extrude, typed, MoveType.TRAVEL)
    kind = np.where(moved & ~dwell, kind, MoveType.RETRACT)
    travel_accel, print_accel = modal[:, _TRAVEL_ACCEL].copy(), modal[:, _ACCEL].copy()
    accel = np.where(kind == MoveType.TRAVEL, travel_accel[state], print_accel[state])
    return Moves(
        start=start,
        end=end,
        e=de.astype(np.float32),
        feed=np.where(dwell, 0.0, feed).astype(np.float32),
        kind=kind.astype(np.int8),
        accel=np.where(dwell, -seconds, accel).astype(np.float32),
    )


_ABS_XYZ, _ABS_E, _KIND, _TYPED, _ACCEL, _TRAVEL_ACCEL = range(6)


class _LineReader:
    """The lines :mod:`~app.printing.gcode_read` leaves, read one by one: the modal state they
    change (absolute/relative, ``;TYPE:``, M204), recorded per line, and the rows they add."""

    def __init__(self) -> None:
        self.abs_xyz = True
        self.abs_e = True
        self.relative_e_seen = False
        self.kind = int(MoveType.EXTRUDE)
        self.typed = False
        self.accel = 0.0
        self.travel_accel = 0.0
        self.type_of: dict[bytes, int] = {}  # a ;TYPE: line's bytes -> its MoveType
        self.modal_lines = [-1]
        self.modal_states = [self._modal()]
        self.rows: list[tuple[float, ...]] = []
        self.code_lines = 0
        self.bad = 0
        self.first_bad = 0

    def _modal(self) -> tuple:
        return (self.abs_xyz, self.abs_e, self.kind, self.typed, self.accel, self.travel_accel)

    def read_all(self, text: Text, lines: Lines) -> None:
        """Read a chunk's lines that were not read as arrays."""
        bounds = zip(
            lines.slow.tolist(), lines.slow_start.tolist(), lines.slow_end.tolist(), strict=True
        )
        data = text.data
        for number, start, end in bounds:
            raw = data[start:end]
            if raw.startswith(b";TYPE:"):  # one a feature: by far the most common of these
                self._set_type(number, raw)
            else:
                self.read(number, text.line_text(start, end))

    def _set_type(self, number: int, raw: bytes) -> None:
        """A ``;TYPE:`` line: only the move type changes (its label's type is looked up once)."""
        kind = self.type_of.get(raw)
        if kind is None:
            label = raw[6:].decode("utf-8", errors="replace").strip().lower()  # "\r" stripped
            kind = self.type_of[raw] = int(_TYPE_NAMES.get(label, MoveType.EXTRUDE))
        if kind != self.kind or not self.typed:
            self.kind, self.typed = kind, True
            self.modal_lines.append(number)
            self.modal_states.append(self._modal())

    def take_modal(self) -> tuple[np.ndarray, np.ndarray]:
        """The modal states since the last call and the line each starts at (-1: before)."""
        modal_lines = np.array(self.modal_lines, dtype=np.int64)
        modal_lines[0] = -1
        states = np.array(self.modal_states, dtype=np.float64)
        del self.modal_lines[:-1], self.modal_states[:-1]  # the next call starts from the last
        return modal_lines, states

    def take_rows(self) -> list[tuple[float, ...]]:
        """The rows made since the last call."""
        rows, self.rows = self.rows, []
        return rows

    def read(self, number: int, raw: str) -> None:
        """Apply line ``number`` (0-based); count it as code, and as garbage when it is."""
        result = self._line(number, raw)
        modal = self._modal()
        if modal != self.modal_states[-1]:
            self.modal_lines.append(number)
            self.modal_states.append(modal)
        if result is None:
            return
        self.code_lines += 1
        if result is False:
            self.bad += 1
            self.first_bad = self.first_bad or number + 1

    def _line(self, number: int, raw: str) -> bool | None:
        """None for blank/comment, False for garbage, True otherwise."""
        if raw.startswith(";TYPE:"):  # the common case: a comment that types what follows
            self.kind = int(_TYPE_NAMES.get(raw[6:].strip().lower(), MoveType.EXTRUDE))
            self.typed = True
            return None
        if raw.startswith(("G1 ", "G0 ")) and ";" not in raw and "*" not in raw and raw.isupper():
            return self._move(number, raw.split(), raw[1] == "0")
        code, _, comment = raw.partition(";")
        if comment.startswith("TYPE:"):
            self.kind = int(_TYPE_NAMES.get(comment[5:].strip().lower(), MoveType.EXTRUDE))
            self.typed = True
        code = code.strip().upper()
        if not code:
            return None
        words = code.split()
        if words[0][0] == "N" and len(words) > 1:
            words = words[1:]
        if "*" in words[-1]:
            words[-1] = words[-1].split("*")[0]
            if not words[-1]:
                words.pop()
        if not words or not _CMD_RE.match(words[0]):
            return False
        return self._command(number, words)

    def _command(self, number: int, words: list[str]) -> bool:
        cmd = words[0]
        try:
            if cmd in ("G1", "G0"):
                return self._move(number, words, cmd == "G0")
            if cmd == "G92":
                return self._set_position(number, words)
            if cmd in ("G90", "G91"):
                self.abs_xyz = self.abs_e = cmd == "G90"
                self.relative_e_seen |= cmd == "G91"
            elif cmd in ("M82", "M83"):
                self.abs_e = cmd == "M82"
                self.relative_e_seen |= cmd == "M83"
            elif cmd == "G28":
                self._home(number, words)
            elif cmd == "M204":
                self._set_accel(words)
            elif cmd == "G4":
                self._dwell(number, words)
        except ValueError:
            return False
        return True

    def _row(self, number: int, op: int, xyz: list[float], e: float, f: float) -> None:
        self.rows.append((number, op, *xyz, e, f))

    def _move(self, number: int, words: list[str], rapid: bool) -> bool:
        """A move's row (X/Y/Z as given: values, or summed offsets when relative)."""
        xyz = [math.nan, math.nan, math.nan]
        e_words: list[float] = []
        feed = math.nan
        try:
            for w in words[1:]:
                letter = w[0]
                if letter in ("X", "Y", "Z"):
                    i = "XYZ".index(letter)
                    value = float(w[1:])
                    xyz[i] = value if self.abs_xyz or math.isnan(xyz[i]) else value + xyz[i]
                elif letter == "E":
                    e_words.append(float(w[1:]))
                elif letter == "F":
                    value = float(w[1:])
                    feed = value if value / 60.0 > 0 else feed
        except ValueError:  # the E and F words before the bad one took effect
            self._e_and_feed(number, e_words, feed)
            return False
        self._e_and_feed(number, e_words[:-1], math.nan)  # all E words count; the last moves
        self._row(
            number, OP_G0 if rapid else OP_G1, xyz, e_words[-1] if e_words else math.nan, feed
        )
        return True

    def _e_and_feed(self, number: int, e_words: list[float], feed: float) -> None:
        """A row that changes E and the feed without moving."""
        if not e_words and math.isnan(feed):
            return
        e = math.nan
        if e_words:
            e = e_words[-1] if self.abs_e else math.fsum(e_words)
        self._row(number, OP_EF, [math.nan] * 3, e, feed)

    def _set_position(self, number: int, words: list[str]) -> bool:
        values = [0.0] * 4 if len(words) == 1 else [math.nan] * 4
        try:
            for w in words[1:]:
                letter, value = w[0], float(w[1:])
                if letter in ("X", "Y", "Z", "E"):
                    values["XYZE".index(letter)] = value
        except ValueError:  # the words before the bad one took effect
            self._row(number, OP_SET, values[:3], values[3], math.nan)
            return False
        self._row(number, OP_SET, values[:3], values[3], math.nan)
        return True

    def _home(self, number: int, words: list[str]) -> None:
        axes = [w[0] for w in words[1:] if w[0] in ("X", "Y", "Z")] or ["X", "Y", "Z"]
        xyz = [0.0 if letter in axes else math.nan for letter in "XYZ"]
        self._row(number, OP_SET, xyz, math.nan, math.nan)

    def _set_accel(self, words: list[str]) -> None:
        for w in words[1:]:
            letter, value = w[0], float(w[1:])
            if letter in ("P", "S"):
                self.accel = value
                if letter == "S":
                    self.travel_accel = value
            elif letter == "T":
                self.travel_accel = value

    def _dwell(self, number: int, words: list[str]) -> None:
        seconds = 0.0
        for w in words[1:]:
            letter, value = w[0], float(w[1:])
            seconds += value / 1000.0 if letter == "P" else value if letter == "S" else 0.0
        if seconds > 0:
            self._row(number, OP_DWELL, [math.nan] * 3, math.nan, seconds)


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
