"""The operator's clock: real time, or a time that tests set from another process.

Why: schedules fire on wall-clock minutes. A test that waited for real cron minutes would take
minutes per assertion, so every schedule decision reads the time here, and an end-to-end test
points `GOREPORTS_CLOCK_FILE` at a file holding an ISO-8601 timestamp that it advances at will.
Never set that variable in production.
"""
from __future__ import annotations

import os
from datetime import datetime, timezone
from pathlib import Path

CLOCK_FILE_ENV = "GOREPORTS_CLOCK_FILE"


class ClockError(RuntimeError):
    """The clock file named by GOREPORTS_CLOCK_FILE cannot be read or parsed."""


def parse_time(text: str) -> datetime:
    """An ISO-8601 timestamp as an aware UTC datetime (`Z` accepted; naive means UTC)."""
    value = datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)


def now() -> datetime:
    """The current time, timezone-aware UTC.

    Read again on every call (the file changes under a running operator). Writers should
    replace the file atomically (write a temporary file, then rename it).
    """
    path = os.environ.get(CLOCK_FILE_ENV)
    if not path:
        return datetime.now(timezone.utc)
    try:
        text = Path(path).read_text(encoding="utf-8")
        return parse_time(text)
    except (OSError, ValueError) as e:
        raise ClockError(f"{CLOCK_FILE_ENV}={path}: cannot read an ISO-8601 time from it "
                         f"({e}); write e.g. 2030-01-01T00:00:00Z, or unset the variable to "
                         f"use the real clock") from e
