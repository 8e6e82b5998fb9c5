"""The operator clock: real time by default, a file's time for tests."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from goreports.operator import clock


def test_real_time_without_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(clock.CLOCK_FILE_ENV, raising=False)
    got = clock.now()
    assert got.tzinfo is not None
    assert abs(got - datetime.now(timezone.utc)) < timedelta(seconds=5)


def test_time_from_the_file_is_read_on_every_call(monkeypatch: pytest.MonkeyPatch,
                                                   tmp_path: Path) -> None:
    path = tmp_path / "clock"
    monkeypatch.setenv(clock.CLOCK_FILE_ENV, str(path))
    path.write_text("2030-01-01T00:05:00Z\n")
    assert clock.now() == datetime(2030, 1, 1, 0, 5, tzinfo=timezone.utc)
    path.write_text("2030-01-01T02:05:00+02:00")
    assert clock.now() == datetime(2030, 1, 1, 0, 5, tzinfo=timezone.utc)
    assert clock.now().utcoffset() == timedelta(0)
    path.write_text("2030-01-01T00:10:00")  # naive: UTC
    assert clock.now() == datetime(2030, 1, 1, 0, 10, tzinfo=timezone.utc)


@pytest.mark.parametrize("content", [None, "", "soon"])
def test_unreadable_clock_file_is_a_clear_error(monkeypatch: pytest.MonkeyPatch,
                                                tmp_path: Path, content: str | None) -> None:
    path = tmp_path / "clock"
    if content is not None:
        path.write_text(content)
    monkeypatch.setenv(clock.CLOCK_FILE_ENV, str(path))
    with pytest.raises(clock.ClockError, match="GOREPORTS_CLOCK_FILE=.*ISO-8601"):
        clock.now()
