"""Fixtures of the fault-injection suite: the results file every test appends its outcome to
(rendered into docs/reliability.md by scripts/reliability_table.py), and the test's outcome."""
from __future__ import annotations

from typing import Any, Iterator

import pytest

from support.faults import Outcome, Results, Stopwatch, results_path


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: Any) -> Iterator[None]:
    rep = yield
    report = rep.get_result()
    if report.when == "call":
        item.stash[_PASSED] = report.passed


_PASSED = pytest.StashKey[bool]()


@pytest.fixture(scope="session")
def results() -> Results:
    return Results(results_path())


@pytest.fixture
def outcome(request: pytest.FixtureRequest, results: Results) -> Iterator[Outcome]:
    """The test fills in its figures; they are written at teardown, pass or fail (a failed
    test's line says so, and the table shows it)."""
    out = Outcome(fault=request.node.name, test=request.node.nodeid)
    watch = Stopwatch()
    yield out
    if not out.seconds:
        out.seconds = watch.seconds
    if not request.node.stash.get(_PASSED, False):
        out.note = ("TEST FAILED. " + out.note).strip()
    results.record(out)

