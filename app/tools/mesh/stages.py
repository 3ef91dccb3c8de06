"""Wall time and peak resident memory of each stage of a mesh build, when asked for.

A :class:`StageMeter` samples the process's resident set size on a background thread every
few milliseconds and books it to the stage running at that moment; ``medprint mesh
--stages`` and the benchmark show the result next to the volume's size (the design limit is
12× the volume's int16 size per stage). A peak shorter than the sampling interval can be
missed; the whole process's peak is measured from outside (``ru_maxrss``).

Every stage ends by collecting the young garbage generations and giving the C heap's free
memory back to the system (glibc's ``malloc_trim``). The meshes a stage leaves behind sit in
trimesh's reference cycles (mesh <-> visuals, cache) until a collection, and VTK,
fast-simplification and numpy's small blocks free into the heap: either would count in the
resident size of the next stages, at whatever moment the collector happened to run (measured
on the TCIA CT, 134 slices: two dead meshes of 67 MiB after decimation, 160 MiB of heap after
smoothing, 127 MiB after repair). The young generations take about a millisecond.
"""

from __future__ import annotations

import ctypes
import gc
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext

import psutil

MIB = 1024 * 1024


class StageMeter:
    """Books wall time and peak RSS (MiB) to named stages: ``with meter.stage("smooth"): ...``."""

    def __init__(self, interval_s: float = 0.005) -> None:
        self.stages: dict[str, dict[str, float]] = {}
        self._interval = interval_s
        self._process = psutil.Process()
        self._current: str | None = None
        self._lock = threading.Lock()

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Measure the block as stage ``name`` (a repeated name adds up, peaks take the max)."""
        stop = threading.Event()
        with self._lock:
            self._current = name
            facts = self.stages.setdefault(name, {"seconds": 0.0, "peak_rss_mib": 0.0})
        self._sample()
        sampler = threading.Thread(target=self._run, args=(stop,), daemon=True)
        sampler.start()
        start = time.perf_counter()
        try:
            yield
        finally:
            facts["seconds"] += time.perf_counter() - start
            stop.set()
            sampler.join()
            self._sample()
            with self._lock:
                self._current = None

    def _run(self, stop: threading.Event) -> None:
        while not stop.wait(self._interval):
            self._sample()

    def _sample(self) -> None:
        rss = self._process.memory_info().rss / MIB
        with self._lock:
            if self._current is not None:
                facts = self.stages[self._current]
                facts["peak_rss_mib"] = max(facts["peak_rss_mib"], rss)


@contextmanager
def stage(meter: StageMeter | None, name: str) -> Iterator[None]:
    """``meter.stage(name)`` (or nothing, when no meter was asked for), then the stage's
    garbage is collected and :func:`give_back_memory`."""
    with meter.stage(name) if meter is not None else nullcontext():
        try:
            yield
        finally:
            gc.collect(1)
            give_back_memory()


def give_back_memory() -> None:
    """Return the free pages of the C heap to the system (glibc only; elsewhere nothing)."""
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)


def _malloc_trim() -> Callable[[int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):  # not glibc (musl has no malloc_trim)
        return None


_MALLOC_TRIM = _malloc_trim()
