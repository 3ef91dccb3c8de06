"""Progress reporting and cancellation for long-running core functions.

Core functions take ``progress`` and ``cancel`` keyword arguments::

    def work(inputs, *, progress: Progress | None = None, cancel: CancelToken | None = None):
        progress = progress or Progress()
        for i, item in enumerate(items):
            check_cancel(cancel)
            progress.update(i / len(items), "reading slices")

The CLI wraps ``Progress`` around tqdm, the GUI around a progress bar fed by the worker adapter.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from app.errors import Cancelled

ProgressCallback = Callable[[float, str], None]


class CancelToken:
    """A thread-safe flag a caller sets to ask a running task to stop."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def raise_if_cancelled(self) -> None:
        if self._event.is_set():
            msg = "cancelled by the user; nothing was changed"
            raise Cancelled(msg)


def check_cancel(cancel: CancelToken | None) -> None:
    """Raise :class:`Cancelled` when ``cancel`` has been set; a ``None`` token never cancels."""
    if cancel is not None:
        cancel.raise_if_cancelled()


@dataclass
class Progress:
    """Fraction done (0..1) plus a short message, forwarded to an optional callback.

    ``sub(start, end)`` gives a child whose 0..1 maps onto ``start..end`` of this one, so a
    pipeline can hand each step its own Progress.
    """

    callback: ProgressCallback | None = None
    start: float = 0.0
    end: float = 1.0
    fraction: float = field(default=0.0, init=False)
    message: str = field(default="", init=False)

    def update(self, fraction: float, message: str = "") -> None:
        fraction = min(max(fraction, 0.0), 1.0)
        self.fraction = fraction
        if message:
            self.message = message
        if self.callback is not None:
            self.callback(self.start + (self.end - self.start) * fraction, self.message)

    def sub(self, start: float, end: float) -> Progress:
        span = self.end - self.start
        return Progress(self.callback, self.start + span * start, self.start + span * end)


def ensure(progress: Progress | None) -> Progress:
    """Return ``progress`` or a silent Progress when the caller passed none."""
    return progress if progress is not None else Progress()
