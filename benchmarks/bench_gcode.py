"""G-code analysis (preview arrays, layers, time estimate) of PrusaSlicer's skull G-code.

The input is PrusaSlicer 2.5's G-code of the GE head CT skull (100k triangles, the mesh of
``bench_slicer``) sliced with ``../shared/reference/prusaslicer-generic-220.ini``: 3.4 M lines.
Slicing takes ~100 s, so the file is made once and kept in ``~/.cache/medprint-bench``.
Ours is :func:`app.printing.gcode.parse_gcode` on the file; the anchor is the floor of any
line parser in Python, a ``for line in file: line.split()`` pass, in the same process. CPU
time (the machine is shared, so wall time is noisy) and wall time, each the best of a few runs;
the absolute CPU figure is also set against the 2 s goal.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from benchmarks.common import REPO, SHARED_DATA, Row

CACHE = Path.home() / ".cache" / "medprint-bench"
GCODE = CACHE / "skull-100k-prusaslicer.gcode"
INI = (REPO / ".." / "shared" / "reference" / "prusaslicer-generic-220.ini").resolve()
GOAL_S = 2.0


def skull_gcode() -> Path | None:
    """The cached skull G-code, sliced now if missing (None without PrusaSlicer or data)."""
    if GCODE.exists():
        return GCODE
    exe = shutil.which("prusa-slicer")
    if exe is None or not (SHARED_DATA / "dicom").is_dir():
        return None
    from benchmarks.bench_slicer import skull_mesh

    CACHE.mkdir(parents=True, exist_ok=True)
    stl = CACHE / "skull-100k.stl"
    if not stl.exists():
        skull_mesh(100_000).export(stl)
    print("bench_gcode: slicing the skull with PrusaSlicer (~100 s, once)", file=sys.stderr)
    partial = GCODE.with_suffix(".partial")
    cmd = [exe, "--export-gcode", "--load", str(INI), "--center", "110,110", "-o", str(partial)]
    subprocess.run([*cmd, str(stl)], check=True, capture_output=True)
    partial.rename(GCODE)
    return GCODE


def _split_floor(path: Path) -> int:
    """Read every line and split it into words: what any Python line parser does first."""
    words = 0
    with open(path, "rb") as lines:
        for line in lines:
            words += len(line.split())
    return words


def _best(fn: Callable[[], object], repeat: int) -> tuple[float, float]:
    """(best CPU seconds, best wall seconds) of ``repeat`` calls."""
    cpu = wall = float("inf")
    for _ in range(repeat):
        c, w = time.process_time(), time.perf_counter()
        fn()
        cpu = min(cpu, time.process_time() - c)
        wall = min(wall, time.perf_counter() - w)
    return cpu, wall


def _prusaslicer_time_s(path: Path) -> float:
    """PrusaSlicer's own estimate ("; estimated printing time (normal mode) = 1d 15h 28m 47s")."""
    with open(path, "rb") as f:
        f.seek(max(0, path.stat().st_size - 200_000))
        tail = f.read().decode("utf-8", errors="replace")
    found = re.search(r"estimated printing time \(normal mode\) = ([^\n]+)", tail)
    if found is None:
        return float("nan")
    units = {"d": 86400, "h": 3600, "m": 60, "s": 1}
    return sum(int(v) * units[u] for v, u in re.findall(r"(\d+)([dhms])", found.group(1)))


def run(quick: bool) -> list[Row]:
    from app.printing.gcode import parse_gcode

    path = skull_gcode()
    if path is None:
        print("bench_gcode: needs prusa-slicer and ../shared/data; skipped", file=sys.stderr)
        return []
    repeat = 1 if quick else 3
    analysis = parse_gcode(path)  # warm the file cache; its figures go in the notes
    ours_cpu, ours_wall = _best(lambda: parse_gcode(path), repeat)
    floor_cpu, floor_wall = _best(lambda: _split_floor(path), repeat)
    theirs = _prusaslicer_time_s(path)
    note = (
        f"{analysis.layer_count} layers, {len(analysis.moves)} moves; est. time "
        f"{analysis.summary().time_s / theirs:.3f}x PrusaSlicer's own"
    )
    anchor = "for line in file: line.split()"
    return [
        Row("G-code analysis, skull 3.4M lines: CPU", ours_cpu, anchor, floor_cpu, "s", "", note),
        Row("G-code analysis, skull 3.4M lines: wall", ours_wall, anchor, floor_wall, "s", ""),
        Row(
            "G-code analysis, skull 3.4M lines: CPU vs goal",
            ours_cpu,
            "the 2 s goal",
            GOAL_S,
            "s",
            "<= 1.0x",
        ),
    ]


if __name__ == "__main__":
    from benchmarks.__main__ import _print

    _print(run(quick="--quick" in sys.argv))
