"""A tqdm progress bar on stderr wrapped as a :class:`~app.progress.Progress`."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator

from tqdm import tqdm

from app.progress import Progress


@contextlib.contextmanager
def cli_progress(label: str) -> Iterator[Progress]:
    """A Progress that drives a percentage bar (hidden when stderr is not a terminal)."""
    bar = tqdm(
        total=100,
        desc=label,
        unit="%",
        file=sys.stderr,
        disable=not sys.stderr.isatty(),
        leave=False,
    )

    def update(fraction: float, message: str) -> None:
        bar.n = round(fraction * 100, 1)
        if message:
            bar.set_postfix_str(message, refresh=False)
        bar.refresh()

    try:
        yield Progress(update)
    finally:
        bar.close()
