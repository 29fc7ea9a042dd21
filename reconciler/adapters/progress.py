"""Progress of a long pass on the terminal, drawn by rich; nothing when stderr is no terminal.

The only module importing rich. The bar goes to stderr and disappears when done, so output
that is piped or logged stays one line per result.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

#: below this many objects a pass is quick: no bar
MIN_OBJECTS = 50


@contextmanager
def terminal_progress(total: int, description: str) -> Iterator[Callable[[int], None]]:
    """A callable advancing a bar of ``total`` steps; a no-op off a terminal or for small
    totals."""
    if total < MIN_OBJECTS or not sys.stderr.isatty():
        yield lambda _n: None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn(), TimeRemainingColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(description, total=total)
        yield lambda n: bar.advance(task, n)


@contextmanager
def terminal_status(text: str) -> Iterator[None]:
    """A spinner with ``text`` while a step of unknown length runs; nothing off a terminal."""
    if not sys.stderr.isatty():
        yield
        return
    from rich.console import Console

    with Console(stderr=True).status(text):
        yield
