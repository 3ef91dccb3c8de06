"""Event-loop stall measurement: how long the GUI thread went without running its timers.

A ``QTimer`` ticks every ~10 ms on the GUI thread; the longest gap between two ticks is the
longest time the window could not repaint or react. A watcher thread notes the GUI thread's
stack while a gap is open, so a stall can be traced to the code that caused it::

    with StallMeter() as meter:
        window.open_case(pseudonym)
        qtbot.waitSignal(...)
    assert meter.longest_s < 1.0, meter.report()

Used by ``tests/ui/test_responsiveness.py`` and ``benchmarks/bench_gui.py``.
"""

from __future__ import annotations

import faulthandler
import gc
import sys
import tempfile
import threading
import time
import traceback
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from PySide6 import QtCore

TICK_MS = 10
_APP = str(Path(__file__).resolve().parents[2] / "app")


def _queued_s() -> float:
    """Seconds this thread has spent ready to run but waiting for a CPU (Linux's schedstat;
    0 where there is none): how much of a stall the machine's load, not the code, caused."""
    try:
        with open("/proc/thread-self/schedstat", encoding="ascii") as f:
            return int(f.read().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return 0.0


@dataclass
class Stall:
    """One gap between timer ticks: when it began (s after start), how long, and where."""

    at_s: float
    length_s: float
    stack: str = ""
    busy_s: float = 0.0  # CPU time the GUI thread itself used meanwhile
    queued_s: float = 0.0  # time it was ready to run but had no CPU (Linux; else 0)
    samples: list[str] = field(default_factory=list)


@dataclass
class StallMeter:
    """Record the gaps between ticks of a 10 ms timer on the GUI thread.

    ``threshold_s``: gaps at least this long are kept in ``stalls`` with the GUI thread's
    stack as the watcher saw it midway, and its innermost frames sampled every quarter
    threshold while the gap lasted (``trace=False`` skips the watcher thread).

    A stall with no stack seen means some thread held the GIL all along (the watcher needs it
    too): ``gil_dump_s`` arms :func:`faulthandler.dump_traceback_later`, which writes every
    thread's stack from C, without the GIL, once a gap has lasted half to all of it
    (``gil_dumps``). It is re-armed every half ``gil_dump_s``, not at every tick: re-arming
    joins the previous watchdog thread while holding the GIL, 20-45 ms at the 99th percentile
    at load 6 on two cores, which the meter would otherwise add to the stalls it measures.

    Garbage collections of at least ``collection_s`` are noted too (``collections``: when,
    how long, which generation, in which thread): a collection holds the GIL throughout.
    """

    threshold_s: float = 0.1
    trace: bool = True
    gil_dump_s: float | None = None
    gil_dumps: str = ""
    stalls: list[Stall] = field(default_factory=list)
    collection_s: float = 0.02
    collections: list[str] = field(default_factory=list)
    longest_s: float = 0.0
    ticks: int = 0

    def __post_init__(self) -> None:
        self._timer = QtCore.QTimer()
        self._timer.setTimerType(QtCore.Qt.TimerType.PreciseTimer)
        self._timer.setInterval(TICK_MS)
        self._timer.timeout.connect(self._tick)
        self._start = self._last = self._last_cpu = self._last_queued = self._armed = 0.0
        self._gui_thread = threading.get_ident()
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None
        self._seen_stack = ""
        self._samples: list[str] = []
        self._collecting: dict[int, float] = {}

    def __enter__(self) -> StallMeter:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        self._gui_thread = threading.get_ident()
        self._start = self._last = time.perf_counter()
        self._last_cpu, self._last_queued = time.thread_time(), _queued_s()
        self._timer.start()
        gc.callbacks.append(self._collection)
        if self.gil_dump_s is not None:
            self._dump_file = tempfile.TemporaryFile("w+")  # noqa: SIM115 (closed in stop)
            self._arm_dump()
        if self.trace:
            self._stop.clear()
            self._watcher = threading.Thread(target=self._watch, daemon=True)
            self._watcher.start()

    def stop(self) -> None:
        self._tick()  # a stall still open counts
        self._timer.stop()
        if self._collection in gc.callbacks:
            gc.callbacks.remove(self._collection)
        if self.gil_dump_s is not None:
            faulthandler.cancel_dump_traceback_later()
            self._dump_file.seek(0)
            self.gil_dumps = self._dump_file.read()
            self._dump_file.close()
        self._stop.set()
        if self._watcher is not None:
            self._watcher.join(1.0)
            self._watcher = None

    def _tick(self) -> None:
        now, cpu, queued = time.perf_counter(), time.thread_time(), _queued_s()
        gap = now - self._last
        self.ticks += 1
        # The timer's own period is not a stall: count what exceeds it.
        stalled = max(0.0, gap - TICK_MS / 1000)
        self.longest_s = max(self.longest_s, stalled)
        if stalled >= self.threshold_s:
            at = self._last - self._start
            busy, waited = cpu - self._last_cpu, queued - self._last_queued
            self.stalls.append(Stall(at, stalled, self._seen_stack, busy, waited, self._samples))
        self._seen_stack = ""
        self._samples = []
        self._last, self._last_cpu, self._last_queued = now, cpu, queued
        if self.gil_dump_s is not None and now - self._armed >= self.gil_dump_s / 2:
            self._arm_dump()

    def _collection(self, phase: str, info: dict) -> None:
        now, thread = time.perf_counter(), threading.current_thread()
        if phase == "start":
            self._collecting[thread.ident or 0] = now
            return
        began = self._collecting.pop(thread.ident or 0, now)
        if now - began >= self.collection_s:
            self.collections.append(
                f"{(now - began) * 1000:.0f} ms at {began - self._start:.2f} s: generation "
                f"{info['generation']} collected in {thread.name}"
            )

    def _arm_dump(self) -> None:
        faulthandler.dump_traceback_later(self.gil_dump_s, file=self._dump_file)
        self._armed = time.perf_counter()

    def _watch(self) -> None:
        """Note the GUI thread's stack once a gap is half the threshold old, and its innermost
        frames at every later wake-up while the gap lasts."""
        while not self._stop.wait(self.threshold_s / 4):
            if time.perf_counter() - self._last < self.threshold_s / 2:
                continue
            if not self._seen_stack:
                self._seen_stack = self._stacks()
            self._samples.append(self._gui_frames())

    def _gui_frames(self) -> str:
        """The GUI thread's innermost frame and its two innermost frames in ``app/``."""
        frame = sys._current_frames().get(self._gui_thread)
        if frame is None:
            return "?"
        summary = traceback.extract_stack(frame)
        ours = [f for f in summary[:-1] if f.filename.startswith(_APP)][-2:]
        return " < ".join(
            f"{f.filename.rsplit('/', 1)[-1]}:{f.lineno} {f.name}"
            for f in reversed([*ours, summary[-1]])
        )

    def _stacks(self) -> str:
        """The GUI thread's stack, then the last frames of every other thread (a worker that
        holds the GIL stalls the GUI thread wherever it waits).

        This thread's own frame leaves the snapshot first: kept in a local, it would make a
        reference cycle holding every thread's frames, and the worker data their finished
        frames own (a 0.5 GB volume buffer, 1 GB label images), until a garbage collection
        freed them in whichever thread it ran."""
        frames = sys._current_frames()
        frames.pop(threading.get_ident(), None)
        gui = frames.pop(self._gui_thread, None)
        parts = ["".join(traceback.format_stack(gui)[-12:])] if gui is not None else []
        for ident, frame in frames.items():
            parts.append(f"  [thread {ident}]\n" + "".join(traceback.format_stack(frame)[-4:]))
        return "".join(parts)

    def report(self, top: int = 3) -> str:
        """The longest stall and the stacks of the ``top`` longest ones."""
        lines = [f"longest stall {self.longest_s * 1000:.0f} ms over {self.ticks} ticks"]
        for stall in sorted(self.stalls, key=lambda s: -s.length_s)[:top]:
            lines.append(
                f"- {stall.length_s * 1000:.0f} ms at {stall.at_s:.2f} s (GUI thread busy "
                f"{stall.busy_s * 1000:.0f} ms of it, waiting for a CPU "
                f"{stall.queued_s * 1000:.0f} ms; the rest blocked: GIL, locks, X, OpenGL):"
            )
            lines.append(stall.stack or "  (no stack seen: a thread held the GIL)")
            for sample, count in Counter(stall.samples).most_common(4):
                lines.append(f"  sampled {count}x: {sample}")
        if self.collections:
            lines.append("garbage collections: " + "; ".join(self.collections))
        if self.gil_dumps:
            lines.append("stacks written without the GIL during stalls (faulthandler):")
            lines.append(self.gil_dumps[-30000:])
        return "\n".join(lines)
