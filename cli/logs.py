"""Logging set-up shared by every program: text for people, JSON lines for collectors."""
from __future__ import annotations

import json
import logging
import sys
from datetime import datetime, timezone

_EXTRA = ("report", "step", "pattern", "trace_id")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out = {"ts": datetime.fromtimestamp(record.created, timezone.utc).isoformat(),
               "level": record.levelname.lower(), "logger": record.name, "msg": record.getMessage()}
        for k in _EXTRA:
            if hasattr(record, k):
                out[k] = getattr(record, k)
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


def setup(level: str = "INFO", fmt: str = "text") -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    handler.addFilter(_quiet_kopf_ticks)


def _quiet_kopf_ticks(record: logging.LogRecord) -> bool:
    """kopf reports every timer tick ("Timer 'x' succeeded.") at INFO: noise for operators."""
    return not (record.name == "kopf.objects" and record.levelno <= logging.INFO
                and record.getMessage().startswith("Timer "))
