"""Where log lines go and how they look: stderr, a timestamp on every text line, or JSON."""
from __future__ import annotations

import logging
import sys

from reconciler.adapters.logformat import JsonFormatter, TextFormatter


def configure_logging(*, verbose: bool, log_format: str, long_running: bool = False) -> None:
    """Log to stderr: DEBUG with ``verbose``; INFO for JSON and for the long-running controller
    (its log is the record of what it did); else WARNING, so one-shot commands print only
    their results."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    level = logging.DEBUG if verbose else logging.INFO if log_format == "json" or long_running \
        else logging.WARNING
    logging.basicConfig(level=level, handlers=[handler], force=True)
    for noisy in ("urllib3", "kubernetes", "apscheduler"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # the phases of a large pass (only passes over thousands of objects log them)
    logging.getLogger("reconciler.progress").setLevel(logging.DEBUG if verbose else logging.INFO)
