"""Wall time and peak resident memory of each stage of a mesh build, when asked for.

A :class:`StageMeter` samples the process's resident set size on a background thread every
few milliseconds and books it to the stage running at that moment; ``medprint mesh
--stages`` and the benchmark show the result next to the volume's size (the design limit is
12× the volume's int16 size per stage). A peak shorter than the sampling interval can be
missed; the whole process's peak is measured from outside (``ru_maxrss``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext

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


def stage(meter: StageMeter | None, name: str) -> AbstractContextManager[None]:
    """``meter.stage(name)``, or a no-op when no meter was asked for."""
    return meter.stage(name) if meter is not None else nullcontext()
