"""The enrollment service's log: one structured line per event on the logger f2.enroll.

`log_event(level, "enroll.refused", status=403, ...)` writes `enroll.refused status=403 ...` as the message
and the same fields under `fields`, which `JsonLogFormatter` turns into top-level JSON keys. Claiming codes,
CSRs, keys and request bodies are never passed to it.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

log = logging.getLogger("f2.enroll")


def log_event(level: int, event: str, **fields: object) -> None:
    """One log line: `event key=value ...` as the message, the same fields under `fields` for JSON."""
    present = {key: value for key, value in fields.items() if value is not None}
    text = " ".join(f"{key}={value}" for key, value in present.items())
    log.log(level, "%s %s", event, text, extra={"fields": {"event": event, **present}})


class JsonLogFormatter(logging.Formatter):
    """One JSON object per line; the fields of `log_event` become top-level keys."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            entry.update(fields)
        else:
            entry["msg"] = record.getMessage()
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def configure_logging(level: int = logging.INFO) -> None:
    """JSON lines on stderr, unless the process has configured logging already."""
    root = logging.getLogger()
    if root.handlers:
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonLogFormatter())
    root.addHandler(handler)
    root.setLevel(level)
    # uvicorn's info lines repeat ours (listening, stopping) and its warnings are per-request noise any
    # client can trigger (a malformed request, an Upgrade header), each already logged as enroll.refused.
    # Its errors (an exception that escaped the application) stay visible.
    logging.getLogger("uvicorn.error").setLevel(logging.ERROR)


__all__ = ["JsonLogFormatter", "configure_logging", "log", "log_event"]
