"""Application logging: a size-capped file under the data folder's ``logs/``.

Log messages name cases by pseudonym only and never carry patient fields, file paths from
the user's media, or exception text from third-party readers (which can quote header values).
Uncaught exceptions are logged by type and location only.
"""

from __future__ import annotations

import logging
import logging.handlers
import sys
import traceback
from types import TracebackType

from app.settings import Paths

_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def setup_logging(paths: Paths, level: int = logging.INFO) -> None:
    paths.logs.mkdir(parents=True, exist_ok=True)
    handler = logging.handlers.RotatingFileHandler(
        paths.logs / "medprint.log", maxBytes=5 << 20, backupCount=3, encoding="utf-8"
    )
    handler.setFormatter(logging.Formatter(_FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [
        h for h in root.handlers if not isinstance(h, logging.handlers.RotatingFileHandler)
    ]
    root.addHandler(handler)
    root.setLevel(level)
    sys.excepthook = _log_uncaught


def crash_summary(exc_type: type[BaseException], tb: TracebackType | None) -> str:
    """Exception type and our own frames (file:line in function), without the message text."""
    frames = [
        f"{frame.filename.rsplit('/', 1)[-1]}:{frame.lineno} in {frame.name}"
        for frame in traceback.extract_tb(tb)
        if "/app/" in frame.filename.replace("\\", "/")
    ]
    return f"{exc_type.__name__} at " + " <- ".join(reversed(frames[-6:]) or ["?"])


def _log_uncaught(
    exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None
) -> None:
    logging.getLogger("medprint").critical("uncaught %s", crash_summary(exc_type, tb))
    sys.__excepthook__(exc_type, exc, tb)
