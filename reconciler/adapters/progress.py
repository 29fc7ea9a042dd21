"""Progress of a long pass on the terminal, drawn by rich; nothing when stderr is no terminal.

The only module importing rich. What it shows goes to stderr and disappears when done, so
output that is piped or logged stays one line per result.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

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
        shown.add_task(text, total=None)
        yield
