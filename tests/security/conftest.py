"""Fixtures of the security suite: the worker fleet, a database full of hostile values, and the
results file each test appends its proven outcomes to (scripts/security_table.py turns it into
the table of docs/security.md)."""
from __future__ import annotations

import json
import os
import sqlite3
import datetime as dt
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from security._fleet import Fleet
from support.machine import describe

ROOT = Path(__file__).resolve().parents[2]
RESULTS_ENV = "GOREPORTS_SECURITY_RESULTS"
HERE = Path(__file__).resolve().parent

BIG_CELL = 10 * 1024 * 1024  # a 10 MB text value

# (id, text): what a hostile source may hold
HOSTILE_ROWS: list[tuple[int, str]] = [
    (1, "=HYPERLINK(\"http://evil.example/\",\"click\")"),
    (2, "+1+cmd|' /C calc'!A0"),
    (3, "-2+3"),
    (4, "@SUM(1+1)*cmd|' /C calc'!A0"),
    (5, "\t=1+1"),
    (6, "\r=1+1"),
    (7, "<script>alert('x')</script>"),
    (8, "{{#lambda}}x{{/lambda}} {{{raw}}} & \"quotes\""),
    (9, "plain text"),
]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.security)


def results_path() -> Path:
    return Path(os.environ.get(RESULTS_ENV) or ROOT / "out" / "security-results.jsonl")


@pytest.fixture(scope="session")
def _results_file() -> Path:
    path = results_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    if not os.environ.get(RESULTS_ENV):  # the default file holds the latest run only
        path.write_text("")
    return path


Record = Callable[..., None]


@pytest.fixture
def record(request: pytest.FixtureRequest, _results_file: Path) -> Record:
    """record(area, input, outcome): one proven row of the refusal table (written only when the
    test gets there, i.e. after its assertions)."""
    def write(area: str, given: str, outcome: str, **extra: Any) -> None:
        row = {"area": area, "input": given, "outcome": outcome,
               "test": request.node.nodeid.split("tests/", 1)[-1],
               "at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
               "machine": describe(), **extra}
        with open(_results_file, "a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")
    return write


@pytest.fixture(scope="session")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    f = Fleet(tmp_path_factory.mktemp("fleet")).start()
    yield f
    f.stop()


@pytest.fixture(scope="session")
def hostile_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """SQLite file with table `hostile(id, txt)` and `big(id, txt)` (one 10 MB value)."""
    path = tmp_path_factory.mktemp("hostile") / "hostile.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE hostile (id INTEGER PRIMARY KEY, txt TEXT)")
    conn.executemany("INSERT INTO hostile VALUES (?, ?)", HOSTILE_ROWS)
    conn.execute("CREATE TABLE big (id INTEGER PRIMARY KEY, txt TEXT)")
    conn.execute("INSERT INTO big VALUES (1, ?)", ("x" * (BIG_CELL - 4) + "tail",))
    conn.commit()
    conn.close()
    return path
