"""Logging of a ``postroom`` process: text lines (default) or one JSON object per line.

JSON (``--log-format json``, opt-in) is for log shippers: each line has ``time`` (UTC,
ISO 8601), ``level``, ``logger``, ``message``, the process's ``role`` and ``instance``
(host:pid) and, for an exception, ``exception`` with the traceback; a record's
``extra`` fields that are JSON-serialisable come along.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import orjson

# Attributes every LogRecord has; anything else on a record came from ``extra``.
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    """One JSON object per record, with the process's role and instance."""

    def __init__(self, role: str, instance: str) -> None:
        super().__init__()
        self.role, self.instance = role, instance

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "role": self.role,
            "instance": self.instance,
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and key not in line:
                line[key] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(line, default=str).decode()


def configure(log_format: str, role: str, instance: str) -> None:
    """Set up the root logger (replacing earlier handlers) and quiet chatty libraries."""
    handler = logging.StreamHandler()
    tag = "" if role == "all" else f"[{role} {instance}] "
    if log_format == "json":
        handler.setFormatter(JsonFormatter(role, instance))
    else:
        handler.setFormatter(
            logging.Formatter(f"%(asctime)s {tag}%(name)s %(levelname)s %(message)s")
        )
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    # aiosmtpd logs every SMTP command at INFO (and a deprecation notice at each AUTH):
    # a log line per command costs more than the command itself.
    logging.getLogger("mail.log").setLevel(logging.ERROR)
