"""Log line formats: text with a timestamp, or one JSON object per line.

Only formatting; which handler and level is the composition root's choice.
"""

from __future__ import annotations

import json
import logging
from typing import Any

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class TextFormatter(logging.Formatter):
    """``2026-12-01T15:04:05+0000 WARNING logger: message [object]``: a timestamp on every line."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT, datefmt="%Y-%m-%dT%H:%M:%S%z")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        key = getattr(record, "object", None)
        return f"{line} [{key}]" if key is not None and str(key) not in line else line


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, and the object's key."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        key = getattr(record, "object", None)
        if key is not None:
            data["object"] = str(key)
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            data.update({k: v for k, v in fields.items() if k not in data})
        if record.exc_info:
            data["error"] = self.formatException(record.exc_info).splitlines()[-1]
        return json.dumps(data, ensure_ascii=False)
