"""Application logging: a size-capped file under the data folder's ``logs/``.

Log messages name cases by pseudonym only and never carry patient fields, file paths from
the user's media, or exception text (which can quote a DICOM value or a path named after a
patient). So every record passes :class:`Scrub` on its way out:

- an exception given as an argument or as the message becomes its type name;
- a traceback (``log.exception``, ``exc_info``) becomes the type and our own frames
  (:func:`crash_summary`), never the message;
- a record of a third-party logger (pydicom, VTK, urllib3, Python warnings) keeps its level,
  logger and category only: their text can quote what they read.

Uncaught exceptions (main thread or other threads) are logged and written to stderr (the
journal of a desktop session) the same way, by type and location; Qt's messages too
(:func:`log_qt_message`).
"""

from __future__ import annotations

import logging
import logging.handlers
import re
import sys
import threading
import traceback
from types import TracebackType

from app.settings import Paths

_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_OWN_LOGGERS = ("app", "medprint")
_WARNING_CATEGORY = re.compile(r":\d+: (\w+(?:Warning|Error))")


def setup_logging(paths: Paths, level: int = logging.INFO) -> None:
    paths.logs.mkdir(parents=True, exist_ok=True)
    handler = logging.handlers.RotatingFileHandler(
        paths.logs / "medprint.log", maxBytes=5 << 20, backupCount=3, encoding="utf-8"
    )
    handler.setFormatter(logging.Formatter(_FORMAT))
    handler.addFilter(Scrub())
    root = logging.getLogger()
    root.handlers[:] = [
        h for h in root.handlers if not isinstance(h, logging.handlers.RotatingFileHandler)
    ]
    root.addHandler(handler)
    root.setLevel(level)
    logging.captureWarnings(True)  # warnings reach the log (scrubbed), not stderr
    sys.excepthook = _log_uncaught
    threading.excepthook = _log_uncaught_in_thread


class Scrub(logging.Filter):
    """Make a record safe to write: no exception messages, no third-party text."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.exc_info[0] is not None:
            summary = crash_summary(record.exc_info[0], record.exc_info[2])
            record.msg, record.args = f"{_text(record.msg)} [%s]", (*_args(record), summary)
        else:
            record.msg, record.args = _text(record.msg), _args(record)
        record.exc_info, record.exc_text, record.stack_info = None, None, None
        if not record.name.startswith(_OWN_LOGGERS):
            record.msg, record.args = _withheld(record), ()
        return True


def _text(msg: object) -> str:
    return type(msg).__name__ if isinstance(msg, BaseException) else str(msg)


def _args(record: logging.LogRecord) -> tuple[object, ...]:
    args = record.args if isinstance(record.args, tuple) else (record.args,) if record.args else ()
    return tuple(type(a).__name__ if isinstance(a, BaseException) else a for a in args)


def _withheld(record: logging.LogRecord) -> str:
    """What stays of a third-party record: its logger (and a warning's category)."""
    if record.name == "py.warnings":
        found = _WARNING_CATEGORY.search(str(record.args[0]) if record.args else record.msg)
        return f"{found.group(1) if found else 'warning'} (text withheld)"
    return "message withheld (third-party text can quote what it read)"


def crash_summary(exc_type: type[BaseException], tb: TracebackType | None) -> str:
    """Exception type and our own frames (file:line in function), without the message text."""
    frames = [
        f"{frame.filename.rsplit('/', 1)[-1]}:{frame.lineno} in {frame.name}"
        for frame in traceback.extract_tb(tb)
        if "/app/" in frame.filename.replace("\\", "/")
    ]
    return f"{exc_type.__name__} at " + " <- ".join(frames[-6:][::-1] or ["?"])


def log_qt_message(kind: str, category: str | None) -> None:
    """A message of Qt's own (its text can hold a file path): logged by kind and category."""
    level = logging.WARNING if kind in ("warning", "critical", "fatal") else logging.DEBUG
    logging.getLogger("app.qt").log(level, "Qt %s (%s); text withheld", kind, category or "-")


def _log_uncaught(
    exc_type: type[BaseException], exc: BaseException | None, tb: TracebackType | None
) -> None:
    summary = crash_summary(exc_type, tb)
    logging.getLogger("medprint").critical("uncaught %s", summary)
    print(f"medprint: unexpected error: {summary}; details are in the log", file=sys.stderr)


def _log_uncaught_in_thread(args: threading.ExceptHookArgs) -> None:
    if args.exc_type is not SystemExit:
        _log_uncaught(args.exc_type, args.exc_value, args.exc_traceback)
