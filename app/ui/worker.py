"""The one worker adapter: run ``fn(inputs, *, progress, cancel)`` off the GUI thread.

Every long job in the GUI (scan, import, load, segmentation tools, meshing, slicing...) goes
through :class:`Worker`. The job runs in a thread pool; its ``progress``, ``done`` and ``error``
arrive as Qt signals on the GUI thread, so panels update widgets directly in their slots.
Starting a new job on a worker cancels the one it was running (its late result is dropped).
A :class:`~app.errors.MedPrintError` becomes its one-line message; anything else becomes a
short "unexpected error" message while the traceback goes to the log, never to a dialog.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from PySide6 import QtCore

from app.errors import Cancelled, MedPrintError
from app.log import crash_summary
from app.progress import CancelToken, Progress

log = logging.getLogger(__name__)

JobFn = Callable[..., Any]
_PROGRESS_INTERVAL_S = 0.05  # at most 20 progress signals a second reach the GUI


def error_message(exc: BaseException, task: str = "") -> str:
    """The text a user sees for an exception raised by a job."""
    if isinstance(exc, MedPrintError):
        return str(exc) or exc.__class__.__name__
    where = f" while {task}" if task else ""
    return (
        f"unexpected error{where} ({exc.__class__.__name__}); nothing was changed. "
        "The details are in the log; please report them"
    )


class Task(QtCore.QObject):
    """One submitted job; lives on the GUI thread, so its signals are delivered there."""

    progress = QtCore.Signal(float, str)
    done = QtCore.Signal(object)
    error = QtCore.Signal(str)
    cancelled = QtCore.Signal()
    finished = QtCore.Signal()

    # Emitted from the pool thread; queued onto the GUI thread by the slots below.
    _progress_from_thread = QtCore.Signal(float, str)
    _result_from_thread = QtCore.Signal(str, object)

    def __init__(self, name: str, parent: QtCore.QObject | None = None) -> None:
        super().__init__(parent)
        self.name = name
        self.token = CancelToken()
        self.state = "pending"  # pending, running, done, error, cancelled
        self.message = ""
        self.result: Any = None
        self._last_emit = 0.0
        self._lock = threading.Lock()
        self._pending_progress: tuple[float, str] | None = None
        self._progress_from_thread.connect(
            self._deliver_progress, QtCore.Qt.ConnectionType.QueuedConnection
        )
        self._result_from_thread.connect(
            self._deliver_result, QtCore.Qt.ConnectionType.QueuedConnection
        )

    def cancel(self) -> None:
        """Ask the job to stop; its result, if it still arrives, is dropped."""
        self.token.cancel()

    @property
    def is_running(self) -> bool:
        return self.state in ("pending", "running")

    # -- called on the pool thread ------------------------------------------------------------
    def _report(self, fraction: float, message: str) -> None:
        now = time.monotonic()
        with self._lock:
            if fraction < 1.0 and now - self._last_emit < _PROGRESS_INTERVAL_S:
                return
            self._last_emit = now
        self._progress_from_thread.emit(float(fraction), message)

    def _run(self, fn: JobFn, inputs: Any) -> None:
        self.state = "running"
        try:
            result = fn(inputs, progress=Progress(self._report), cancel=self.token)
        except Cancelled:
            self._result_from_thread.emit("cancelled", None)
        except MedPrintError as exc:
            self._result_from_thread.emit("error", error_message(exc, self.name))
        except Exception as exc:  # the one boundary where any failure becomes a message
            # Type and our own frames only: exception text from readers can quote header values.
            log.error("job '%s' failed: %s", self.name, crash_summary(type(exc), exc.__traceback__))
            self._result_from_thread.emit("error", error_message(exc, self.name))
        else:
            self._result_from_thread.emit("cancelled" if self.token.cancelled else "done", result)

    # -- GUI thread ---------------------------------------------------------------------------
    @QtCore.Slot(float, str)
    def _deliver_progress(self, fraction: float, message: str) -> None:
        if not self.token.cancelled:
            self.progress.emit(fraction, message)

    @QtCore.Slot(str, object)
    def _deliver_result(self, outcome: str, payload: object) -> None:
        if outcome == "done" and self.token.cancelled:
            outcome = "cancelled"
        self.state = outcome
        if outcome == "done":
            self.result = payload
            self.done.emit(payload)
        elif outcome == "error":
            self.message = str(payload)
            self.error.emit(self.message)
        else:
            self.message = "cancelled; nothing was changed"
            self.cancelled.emit()
        self.finished.emit()


class _Runnable(QtCore.QRunnable):
    def __init__(self, task: Task, fn: JobFn, inputs: Any) -> None:
        super().__init__()
        self.task, self.fn, self.inputs = task, fn, inputs
        self.setAutoDelete(True)

    def run(self) -> None:
        self.task._run(self.fn, self.inputs)


class Worker(QtCore.QObject):
    """Runs one job at a time for its owner (a panel, a dialog); a new job cancels the old.

    Signals mirror the current task's, so an owner can connect once::

        worker = Worker(self)
        worker.done.connect(self.show_result)
        worker.error.connect(self.show_error)
        worker.start(build_surface, params, name="building the surface")
    """

    started = QtCore.Signal(str)
    progress = QtCore.Signal(float, str)
    done = QtCore.Signal(object)
    error = QtCore.Signal(str)
    cancelled = QtCore.Signal()
    finished = QtCore.Signal()

    _pool: QtCore.QThreadPool | None = None

    def __init__(self, parent: QtCore.QObject | None = None) -> None:
        super().__init__(parent)
        self.task: Task | None = None
        self._all: list[Task] = []

    @classmethod
    def pool(cls) -> QtCore.QThreadPool:
        if cls._pool is None:
            cls._pool = QtCore.QThreadPool()
            cls._pool.setMaxThreadCount(max(2, QtCore.QThread.idealThreadCount()))
        return cls._pool

    @property
    def busy(self) -> bool:
        return self.task is not None and self.task.is_running

    def start(
        self,
        fn: JobFn,
        inputs: Any = None,
        *,
        name: str = "",
        on_done: Callable[[Any], None] | None = None,
        on_error: Callable[[str], None] | None = None,
    ) -> Task:
        """Run ``fn(inputs, progress=..., cancel=...)`` in the pool; cancels the running job.

        ``on_done`` / ``on_error`` are called for this task only, on the GUI thread.
        """
        self.cancel()
        # No Qt parent: a task lives as long as Python references it (this worker until it
        # finishes, the pool thread while it runs). Parenting plus deleteLater crashes PySide
        # when the worker goes first.
        task = Task(name or getattr(fn, "__name__", "job"))
        task.progress.connect(lambda f, m, t=task: self._relay(t, self.progress, f, m))
        task.done.connect(lambda r, t=task: self._relay(t, self.done, r))
        task.error.connect(lambda m, t=task: self._relay(t, self.error, m))
        task.cancelled.connect(lambda t=task: self._relay(t, self.cancelled))
        task.finished.connect(lambda t=task: self._forget(t))
        if on_done is not None:
            task.done.connect(on_done)
        if on_error is not None:
            task.error.connect(on_error)
        self.task = task
        self._all.append(task)
        self.started.emit(task.name)
        self.pool().start(_Runnable(task, fn, inputs))
        return task

    def cancel(self) -> None:
        """Cancel the running job, if any (the call returns at once)."""
        if self.task is not None and self.task.is_running:
            self.task.cancel()

    def wait(self, timeout_s: float = 5.0) -> bool:
        """Block until every job of this worker has finished (for shutdown and tests)."""
        deadline = time.monotonic() + timeout_s
        while any(t.is_running for t in self._all):
            if time.monotonic() > deadline:
                return False
            QtCore.QCoreApplication.processEvents(QtCore.QEventLoop.ProcessEventsFlag.AllEvents, 20)
            time.sleep(0.005)
        return True

    def _relay(self, task: Task, signal: QtCore.SignalInstance, *args: object) -> None:
        if task is self.task:
            signal.emit(*args)

    def _forget(self, task: Task) -> None:
        if task in self._all:
            self._all.remove(task)
        task.result = None  # the owner got it through ``done``; do not keep big results alive
        if task is self.task:
            self.task = None
            self.finished.emit()
