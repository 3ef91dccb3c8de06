"""The whole ``medprint mesh`` command vs the 3D Slicer-style pipeline, as child processes.

Inputs (``benchmarks/inputs.py``, cached outside the repo): the shared TCIA CT as it is
(134 slices, 3 mm) and resampled to 536 slices (0.75 mm, the 4× thin-slice case); ``--quick``
runs the 134 only. Ours: ``medprint mesh --volume CT.nrrd --threshold 226 --out F.stl --json
--stages`` (default settings, all QA). Anchor: ``benchmarks/slicer_anchor.py`` (SimpleITK read,
threshold 226, discrete flying edges, windowed sinc 40 / passband 0.01, fast-simplification
80 %, STL). Each runs in its own process, three times, paired and in turn first; each side's
median run is reported. Wall time and peak RSS come from ``wait4`` through a small measuring
parent (``common.measured``). Our command also reports each stage's peak RSS, shown as a
multiple of the volume's int16 size (design limit 12×), and the QA figures. The machine's load
average before and after is noted with the wall times: on a shared machine they are only
comparable at a similar load.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from benchmarks.common import REPO, Row, measured, measured_result
from benchmarks.inputs import TCIA, nrrd

THRESHOLD = "226"
STAGE_LIMIT = 12.0  # × the volume's int16 size
REPEATS = 3  # paired runs per input; the median is reported


@dataclass
class Run:
    """One child process: wall seconds, peak RSS in MiB, its standard output."""

    wall_s: float
    peak_mib: float
    stdout: str


def run_child(args: list[str]) -> Run:
    """Run ``args`` from the repository; wall time and their peak RSS (see ``measured``)."""
    start = time.perf_counter()
    with tempfile.TemporaryFile("w+") as errors:
        proc = subprocess.Popen(
            measured(args), cwd=REPO, stdout=subprocess.PIPE, stderr=errors, text=True
        )
        out, _ = proc.communicate()
        wall = time.perf_counter() - start
        errors.seek(0)
        code, peak, _ = measured_result(errors.read())
    if code not in (0, 1):  # 1: built, but the QA report fails a check
        msg = f"{' '.join(args[:4])} ... exited with {code}"
        raise RuntimeError(msg)
    return Run(wall, peak, out)


def ours(image: Path, out: Path) -> Run:
    """``medprint mesh`` on ``image`` in a fresh process."""
    return run_child([
        sys.executable, "-m", "app", "mesh", "--volume", str(image), "--threshold", THRESHOLD,
        "--out", str(out), "--json", "--stages",
    ])  # fmt: skip


def anchor(image: Path, out: Path) -> Run:
    """The Slicer-style pipeline on ``image`` in a fresh process."""
    return run_child([sys.executable, "-m", "benchmarks.slicer_anchor", str(image), THRESHOLD,
                      str(out)])  # fmt: skip


def paired(image: Path, repeats: int) -> tuple[Run, Run]:
    """Ours and the anchor ``repeats`` times, in turn first (neither always meets a cold
    cache or a busy core); each side's run with the median wall time."""
    image.read_bytes()  # in the page cache for both
    mine: list[Run] = []
    theirs: list[Run] = []
    with tempfile.TemporaryDirectory() as tmp:  # public data only; nothing of a case
        for turn in range(repeats):
            order = [(theirs, anchor), (mine, ours)]
            for runs, command in order[:: 1 if turn % 2 == 0 else -1]:
                runs.append(command(image, Path(tmp) / "out.stl"))
    return _median(mine), _median(theirs)


def _median(runs: list[Run]) -> Run:
    return sorted(runs, key=lambda run: run.wall_s)[len(runs) // 2]


def _rows(slices: int, repeats: int) -> list[Row]:
    image = nrrd(slices)
    load_before = os.getloadavg()[0]
    mine, theirs = paired(image, repeats)
    load = (
        f"median of {repeats} paired runs; load average {load_before:.1f} -> "
        f"{os.getloadavg()[0]:.1f} (2 cores shared)"
    )
    report = json.loads(mine.stdout)
    stages = report["build"]["stages"]
    volume_mib = stages.pop("volume")["int16_mib"]
    worst = max(stages.items(), key=lambda kv: kv[1]["peak_rss_mib"])
    per_stage = ", ".join(
        f"{name} {facts['peak_rss_mib'] / volume_mib:.1f}x/{facts['seconds']:.0f}s"
        for name, facts in stages.items()
    )
    qa = report["qa"]
    dev = qa["deviation"] or {}
    smooth = report["build"]["builds"]["part"]["smoothing"]
    name = f"medprint mesh, TCIA CT {slices} slices"
    return [
        Row(f"{name}: wall", mine.wall_s, "Slicer-style DFE+sinc40+fast-simpl.", theirs.wall_s,
            "s", "<= 1.5x", f"{qa['triangles']} triangles, all QA; {load}"),
        Row(f"{name}: peak RSS", mine.peak_mib, "same, same run", theirs.peak_mib, "M",
            "<= 1.0x", f"volume int16 {volume_mib:.0f} MiB"),
        Row(f"{name}: worst stage peak", worst[1]["peak_rss_mib"], "12x volume int16",
            STAGE_LIMIT * volume_mib, "M", "<= 1.0x", f"per stage (x volume/s): {per_stage}"),
        Row(f"{name}: deviation p95", dev.get("p95_mm", float("nan")), "QA tolerance",
            qa["tolerance_mm"], "m",  "<= 1.0x",
            f"mean {dev.get('mean_mm', float('nan')):.3f}, max {dev.get('max_mm', float('nan')):.3f}"
            f" mm; smoothing volume {smooth['volume_change_percent']:+.2f}%; watertight "
            f"{qa['checks'][0]['passed']}, manifold {qa['checks'][1]['passed']}, "
            f"{qa['self_intersections']} self-intersections"),
    ]  # fmt: skip


def run(quick: bool) -> list[Row]:
    if not TCIA.is_dir():
        return []
    rows = _rows(134, 1 if quick else REPEATS)
    if not quick:
        rows += _rows(536, REPEATS)
    return rows
