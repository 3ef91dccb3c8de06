"""Shared pieces of the benchmarks: a result row, timing and peak-memory helpers.

Each ``benchmarks/bench_*.py`` module exposes ``run(quick: bool) -> list[Row]``; ``python -m
benchmarks`` runs them all and prints one table. Every figure is a ratio against an anchor
measured in the same run on the same input.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = (REPO / ".." / "shared" / "data").resolve()


@dataclass
class Row:
    """One benchmark figure: ours vs the anchor, with the goal stated as text."""

    name: str
    ours: float
    anchor_name: str
    anchor: float
    unit: str = "s"
    goal: str = ""
    note: str = ""

    @property
    def ratio(self) -> float:
        return self.ours / self.anchor if self.anchor else float("nan")


def best_of(fn: Callable[[], object], repeat: int = 3) -> float:
    """Best wall time of ``repeat`` calls, in seconds."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


_MEASURE = """
import json, os, subprocess, sys
proc = subprocess.Popen(sys.argv[1:])
_, status, usage = os.wait4(proc.pid, 0)
print(json.dumps([os.waitstatus_to_exitcode(status), usage.ru_maxrss / 1024]), file=sys.stderr)
"""


def measured(args: list[str]) -> list[str]:
    """``args`` started by a small Python that reports, as its last line on standard error,
    their exit code and peak RSS in MiB (with every child they waited for; see
    :func:`measured_result`).

    ``ru_maxrss`` from ``wait4`` on a direct child of a big process is wrong on Linux: the
    child starts by ``vfork`` + ``exec`` (or ``fork``), and ``exec`` records the old address
    space's high-water mark, i.e. this process's own peak, as the child's.
    """
    return [sys.executable, "-c", _MEASURE, *args]


def measured_result(stderr: str) -> tuple[int, float, str]:
    """``(exit code, peak MiB, the command's own standard error)`` from a :func:`measured`
    run's standard error."""
    *errors, last = stderr.rstrip().splitlines() or [""]
    code, peak = json.loads(last)
    return int(code), float(peak), "\n".join(errors)


def peak_rss_mib_of(code: str, env: dict[str, str] | None = None) -> tuple[float, float]:
    """Run ``code`` in a fresh interpreter; return (baseline MiB after imports, peak MiB).

    The code calls ``_baseline()`` once its imports are done (current RSS then); the peak is
    the child's own ``VmHWM`` (``ru_maxrss`` would carry the parent's high-water mark across
    fork/exec on Linux). Imports that peak above the baseline can hide a
    smaller working set, never inflate it.
    """
    wrapper = (
        "import psutil\n"
        "def _hwm_kib():\n"
        "    for line in open('/proc/self/status'):\n"
        "        if line.startswith('VmHWM:'):\n"
        "            return int(line.split()[1])\n"
        "def _baseline():\n"
        "    print('BASELINE', psutil.Process().memory_info().rss // 1024, flush=True)\n"
        f"{code}\n"
        "print('PEAK', _hwm_kib(), flush=True)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", wrapper],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        cwd=REPO,
    ).stdout
    values = {
        line.split()[0]: float(line.split()[1]) / 1024
        for line in out.splitlines()
        if line.startswith(("BASELINE", "PEAK"))
    }
    return values["BASELINE"], values["PEAK"]
