"""Peak resident memory of a command run from the test process (see
:func:`benchmarks.common.measured`: ``wait4`` on a direct child of pytest reports pytest's own
high-water mark, 1-2 GiB late in a suite)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from benchmarks.common import measured, measured_result


def run_with_peak(args: list[str], cwd: Path) -> tuple[int, float, str]:
    """``(exit code, peak RSS in MiB, output)`` of ``args`` run in ``cwd``; the output is its
    standard output followed by its standard error."""
    done = subprocess.run(measured(args), cwd=cwd, capture_output=True, text=True, check=False)
    code, peak, errors = measured_result(done.stderr)
    return code, peak, done.stdout + errors
