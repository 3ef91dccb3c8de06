"""The line-by-line G-code parser the vectorised one replaced, kept as the tests' reference.

``reference_parse(text)`` reads every line in Python exactly as MedPrint did before (one
``str.split`` and ``float`` per word) and returns the moves, ignored lines, the E mode and the
first garbage line; tests compare :func:`app.printing.gcode.parse_gcode` with it.
"""

from __future__ import annotations

import re
from array import array

import numpy as np

from app.printing.gcode import _TYPE_NAMES, Moves, MoveType

_CMD_RE = re.compile(r"^[GMT]\d+(\.\d+)?$")


class _MoveBuffer:
    """Growing typed arrays (``array.array``) for the parser: cheap appends, no Python floats kept."""

    def __init__(self) -> None:
        self.xyz = array("f")
        self.e = array("f")
        self.feed = array("f")
        self.kind = array("b")
        self.accel = array("f")

    def to_moves(self) -> Moves:
        xyz = np.frombuffer(self.xyz, dtype=np.float32).reshape(-1, 6)
        return Moves(
            start=xyz[:, :3].copy(),
            end=xyz[:, 3:].copy(),
            e=np.frombuffer(self.e, dtype=np.float32).copy(),
            feed=np.frombuffer(self.feed, dtype=np.float32).copy(),
            kind=np.frombuffer(self.kind, dtype=np.int8).copy(),
            accel=np.frombuffer(self.accel, dtype=np.float32).copy(),
        )


def reference_parse(text: str) -> tuple[Moves, int, bool, int]:
    """(moves, garbage lines, relative E seen, first garbage line number or 0) of ``text``."""
    buf = _MoveBuffer()
    state = _ParserState()
    bad = first_bad = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        if state.feed_line(raw, buf) is False:
            bad += 1
            first_bad = first_bad or number
    return buf.to_moves(), bad, state.relative_e_seen, first_bad


class _ParserState:
    """Modal state of a Marlin machine while reading lines."""

    def __init__(self) -> None:
        self.pos = [0.0, 0.0, 0.0]
        self.e = 0.0
        self.feed = 25.0  # mm/s until the file sets one
        self.abs_xyz = True
        self.abs_e = True
        self.relative_e_seen = False
        self.kind = MoveType.EXTRUDE
        self.typed = False
        self.accel = 0.0
        self.travel_accel = 0.0

    def feed_line(self, raw: str, buf: _MoveBuffer) -> bool | None:
        """Apply one line; None for blank/comment, False for garbage, True otherwise."""
        if raw.startswith(("G1 ", "G0 ")) and ";" not in raw and "*" not in raw and raw.isupper():
            try:  # the common case: a plain move without comment or checksum
                self._move(raw.split(), buf, raw[1] == "0")
            except ValueError:
                return False
            return True
        code, _, comment = raw.partition(";")
        if comment.startswith("TYPE:"):
            self.kind = _TYPE_NAMES.get(comment[5:].strip().lower(), MoveType.EXTRUDE)
            self.typed = True
        code = code.strip().upper()
        if not code:
            return None
        words = code.split()
        if words[0][0] in "Nn" and len(words) > 1:
            words = words[1:]
        if "*" in words[-1]:
            words[-1] = words[-1].split("*")[0]
            if not words[-1]:
                words.pop()
        cmd = words[0].upper()
        if not _CMD_RE.match(cmd):
            return False
        try:
            if cmd in ("G1", "G0"):
                self._move(words, buf, cmd == "G0")
            elif cmd == "G92":
                self._set_position(words)
            elif cmd in ("G90", "G91"):
                self.abs_xyz = self.abs_e = cmd == "G90"
                self.relative_e_seen |= cmd == "G91"
            elif cmd in ("M82", "M83"):
                self.abs_e = cmd == "M82"
                self.relative_e_seen |= cmd == "M83"
            elif cmd == "G28":
                self._home(words)
            elif cmd == "M204":
                self._accel(words)
            elif cmd == "G4":
                self._dwell(words, buf)
        except ValueError:
            return False
        return True

    def _move(self, words: list[str], buf: _MoveBuffer, rapid: bool) -> None:
        x, y, z = self.pos
        de = 0.0
        for w in words[1:]:
            letter = w[0]
            if letter == "X":
                x = float(w[1:]) + (0.0 if self.abs_xyz else x)
            elif letter == "Y":
                y = float(w[1:]) + (0.0 if self.abs_xyz else y)
            elif letter == "Z":
                z = float(w[1:]) + (0.0 if self.abs_xyz else z)
            elif letter == "E":
                value = float(w[1:])
                de = value - self.e if self.abs_e else value
                self.e = value if self.abs_e else self.e + value
            elif letter == "F":
                f = float(w[1:]) / 60.0
                if f > 0:
                    self.feed = f
        moved = (x, y, z) != tuple(self.pos)
        if not moved and de == 0.0:
            return
        if not moved:
            kind = MoveType.RETRACT
        elif de > 0 and not rapid:
            kind = self.kind if self.typed else MoveType.EXTRUDE
            if kind == MoveType.TRAVEL:
                kind = MoveType.EXTRUDE
        else:
            kind = MoveType.TRAVEL
        accel = self.travel_accel if kind == MoveType.TRAVEL else self.accel
        buf.xyz.extend((self.pos[0], self.pos[1], self.pos[2], x, y, z))
        buf.e.append(de)
        buf.feed.append(self.feed)
        buf.kind.append(int(kind))
        buf.accel.append(accel)
        self.pos = [x, y, z]

    def _set_position(self, words: list[str]) -> None:
        if len(words) == 1:
            self.pos = [0.0, 0.0, 0.0]
            self.e = 0.0
        for w in words[1:]:
            letter, value = w[0].upper(), float(w[1:])
            if letter == "E":
                self.e = value
            elif letter in "XYZ":
                self.pos["XYZ".index(letter)] = value

    def _home(self, words: list[str]) -> None:
        axes = [w[0].upper() for w in words[1:] if w[0].upper() in "XYZ"]
        for letter in axes or "XYZ":
            self.pos["XYZ".index(letter)] = 0.0

    def _accel(self, words: list[str]) -> None:
        for w in words[1:]:
            letter, value = w[0].upper(), float(w[1:])
            if letter in "PS":
                self.accel = value
                if letter == "S":
                    self.travel_accel = value
            elif letter == "T":
                self.travel_accel = value

    def _dwell(self, words: list[str], buf: _MoveBuffer) -> None:
        seconds = 0.0
        for w in words[1:]:
            letter, value = w[0].upper(), float(w[1:])
            seconds += value / 1000.0 if letter == "P" else value if letter == "S" else 0.0
        if seconds > 0:
            # a dwell is a zero-length retract-kind move whose e/feed give the time exactly
            buf.xyz.extend((*self.pos, *self.pos))
            buf.e.append(0.0)
            buf.feed.append(0.0)
            buf.kind.append(int(MoveType.RETRACT))
            buf.accel.append(-seconds)
