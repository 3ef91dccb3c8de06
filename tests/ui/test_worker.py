"""The worker adapter: jobs off the GUI thread, signals on it, cancel, readable errors."""

from __future__ import annotations

import itertools
import threading
import time

import pytest
from PySide6 import QtCore

from app.errors import DicomError
from app.progress import check_cancel
from app.ui.worker import Worker


def slow_job(seconds: float, *, progress=None, cancel=None) -> str:
    """Sleeps in small steps, reporting progress and honouring cancel."""
    steps = int(seconds / 0.01)
    for n in range(steps):
        check_cancel(cancel)
        time.sleep(0.01)
        progress.update((n + 1) / steps, f"step {n + 1}")
    return threading.current_thread().name


def test_event_loop_keeps_running_during_a_slow_job(styled_app, qtbot):
    worker = Worker()
    ticks: list[float] = []
    timer = QtCore.QTimer()
    timer.setInterval(20)
    timer.timeout.connect(lambda: ticks.append(time.monotonic()))
    timer.start()
    progress_threads: set = set()
    worker.progress.connect(lambda f, m: progress_threads.add(QtCore.QThread.currentThread()))
    with qtbot.waitSignal(worker.done, timeout=10_000) as done:
        worker.start(slow_job, 1.0, name="a slow job")
    timer.stop()
    assert done.args[0] != threading.main_thread().name  # ran off the GUI thread
    assert len(ticks) >= 20  # ~50 expected in 1 s; a blocked loop would give ~0
    gaps = [b - a for a, b in itertools.pairwise(ticks)]
    assert max(gaps) < 0.5
    assert progress_threads == {styled_app.thread()}  # progress delivered on the GUI thread


def test_a_new_job_cancels_the_old_one(styled_app, qtbot):
    worker = Worker()
    results: list[str] = []
    worker.done.connect(results.append)
    first = worker.start(slow_job, 5.0, name="first")
    cancelled = []
    first.cancelled.connect(lambda: cancelled.append(True))
    with qtbot.waitSignal(worker.done, timeout=10_000):
        worker.start(lambda inputs, **kw: "second", None, name="second")
    qtbot.waitUntil(lambda: bool(cancelled), timeout=5_000)
    assert results == ["second"]
    assert worker.wait(5.0)


def test_cancel_reports_cancelled_not_done(styled_app, qtbot):
    worker = Worker()
    outcomes: list[str] = []
    worker.done.connect(lambda r: outcomes.append("done"))
    worker.cancelled.connect(lambda: outcomes.append("cancelled"))
    worker.start(slow_job, 5.0)
    qtbot.wait(50)
    with qtbot.waitSignal(worker.finished, timeout=5_000):
        worker.cancel()
    assert outcomes == ["cancelled"]
    assert not worker.busy


def _fails_clearly(inputs, *, progress=None, cancel=None):
    msg = "slice 12 cannot be decoded; re-export the series"
    raise DicomError(msg)


def _fails_badly(inputs, *, progress=None, cancel=None):
    return {}["missing"]


@pytest.mark.parametrize(
    ("job", "expected"),
    [
        (_fails_clearly, "slice 12 cannot be decoded; re-export the series"),
        (_fails_badly, "unexpected error while reading (KeyError); nothing was changed"),
    ],
)
def test_errors_become_one_readable_line(styled_app, qtbot, job, expected):
    worker = Worker()
    with qtbot.waitSignal(worker.error, timeout=5_000) as error:
        worker.start(job, None, name="reading")
    message = error.args[0]
    assert message.startswith(expected)
    assert "Traceback" not in message and "\n" not in message


def test_unexpected_errors_are_logged_without_their_text(styled_app, qtbot, caplog):
    worker = Worker()

    def leaks(inputs, *, progress=None, cancel=None):
        msg = "PatientName=DOE^JANE"  # a reader quoting a header value
        raise ValueError(msg)

    with caplog.at_level("ERROR"), qtbot.waitSignal(worker.error, timeout=5_000) as error:
        worker.start(leaks, None, name="reading")
    assert "DOE^JANE" not in error.args[0]
    assert "DOE^JANE" not in caplog.text and "ValueError" in caplog.text


def test_exceptions_escaping_slots_become_a_message(styled_app, monkeypatch):
    import sys

    from PySide6 import QtWidgets

    from app.ui.app import install_error_hook

    shown: list[tuple[str, str]] = []
    window = QtWidgets.QMainWindow()
    window.report_error = lambda title, text: shown.append((title, text))
    monkeypatch.setattr(sys, "excepthook", lambda *a: None)
    install_error_hook(window)
    try:
        raise KeyError("PatientID=123")
    except KeyError:
        sys.excepthook(*sys.exc_info())
    assert shown and "KeyError" in shown[0][1] and "123" not in shown[0][1]
