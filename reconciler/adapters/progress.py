"""Progress of a long pass on the terminal, drawn by rich; nothing when stderr is no terminal.

The only module importing rich. What it shows goes to stderr and disappears when done, so
output that is piped or logged stays one line per result.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

#: below this many objects a pass is quick: no bar
MIN_OBJECTS = 50


@contextmanager
def terminal_status(text: str, *, total: int | None = None) -> Iterator[None]:
    """A spinner with ``text`` and the time elapsed while a step runs; nothing off a terminal,
    nor for a ``total`` of objects too small to wait for."""
    if not sys.stderr.isatty() or (total is not None and total < MIN_OBJECTS):
        yield
        return
    from rich.console import Console
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    columns = (SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as shown:
        task = shown.add_task(text, total=None)
        # the pass's progress lines (``reconciler.progress``) become the line shown, so the
        # count moves in place instead of scrolling (and never tears the spinner's line)
        steps = logging.getLogger(PROGRESS_LOGGER)
        handler = _TaskLine(lambda line: shown.update(task, description=f"{text}: {line}"))
        steps.addHandler(handler)
        propagate, steps.propagate = steps.propagate, False
        try:
            yield
        finally:
            steps.removeHandler(handler)
            steps.propagate = propagate


PROGRESS_LOGGER = "reconciler.progress"


class _TaskLine(logging.Handler):
    """Shows each progress record as the status line's text."""

    def __init__(self, show: Any) -> None:
        super().__init__(logging.INFO)
        self._show = show

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._show(record.getMessage())
        except Exception:  # a drawing problem must never stop a pass
            self.handleError(record)
