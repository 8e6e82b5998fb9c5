"""Helpers for the observability tests: scrape a /metrics endpoint, run the operator CLI
commands (`goreports dlq | status | audit`) in a subprocess, build a small SQLite report.

`run_cli` uses the real `goreports` parser when it has the sub-command, else one built from
the command modules themselves (the same `add_parser` functions), so the tests run the code
users run either way.
"""
from __future__ import annotations

import argparse
import json
import os
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any, Callable

from prometheus_client.parser import text_string_to_metric_families

TESTS = Path(__file__).resolve().parents[1]
ROOT = TESTS.parent

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(port: int, timeout: float = 5.0) -> Samples:
    """Every sample of a Prometheus endpoint: (name, sorted labels) -> value."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=timeout) as resp:
        text = resp.read().decode()
    out: Samples = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(samples: Samples, name: str, **labels: str) -> float:
    """The sum of the samples named `name` whose labels include `labels` (0 when none)."""
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and want <= set(ls))


def health(port: int) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def wait_scrape(port: int, timeout: float = 90.0) -> Samples:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return scrape(port)
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def scrape_until(port: int, done: Callable[[Samples], bool], timeout: float = 60.0,
                 what: str = "the expected samples") -> Samples:
    """Scrape until `done(samples)`, and return those samples.

    Why: a worker counts a job just *after* the event (or the status that follows from it) that
    tells a test the job finished, so a single scrape at that moment can come a moment early on
    a loaded machine. Tests wait for the counts to arrive here, then assert them exactly."""
    deadline = time.monotonic() + timeout
    while True:
        samples = scrape(port)
        if done(samples):
            return samples
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what} on port {port}")
        time.sleep(0.1)


def build_parser() -> argparse.ArgumentParser:
    from goreports.cli.main import build_parser as real

    parser = real()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    from goreports.cli import audit, dlq, status

    for name, module in (("status", status), ("dlq", dlq), ("audit", audit)):
        if name not in sub.choices:  # not wired into cli/main.py yet
            module.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


def run_cli(*argv: str, env: dict[str, str] | None = None, timeout: float = 120,
            cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """`goreports <argv>` in a subprocess (its own event loop, its own Kubernetes client)."""
    full = dict(os.environ)
    full["PYTHONPATH"] = os.pathsep.join(p for p in (str(TESTS), full.get("PYTHONPATH", "")) if p)
    full["COLUMNS"] = "200"  # rich tables: no wrapping in assertions
    full.update(env or {})
    code = "import sys; from support.observability import main; sys.exit(main(sys.argv[1:]))"
    return subprocess.run([sys.executable, "-c", code, *argv], env=full, cwd=cwd or ROOT,
                          capture_output=True, text=True, timeout=timeout)


def make_db(path: Path, rows: int | None) -> Path:
    """A SQLite file; with `rows`, an `orders` table holding that many rows; without, no such
    table (a query on it fails: the cause an operator fixes before a replay)."""
    with sqlite3.connect(path) as c:
        c.execute("CREATE TABLE IF NOT EXISTS other (x INTEGER)")
        if rows is not None:
            c.execute("DROP TABLE IF EXISTS orders")
            c.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, region TEXT, amount REAL)")
            c.executemany("INSERT INTO orders VALUES (?, ?, ?)",
                          [(i, ("EU", "US", "APAC")[i % 3], i * 1.5) for i in range(1, rows + 1)])
    return path


def sqlite_report(name: str, db: Path, out: Path, **spec: Any) -> dict[str, Any]:
    """sqlite -> csv -> local: three patterns, one row count to check."""
    return {"apiVersion": "goreports.io/v1alpha1", "kind": "ReportRequest",
            "metadata": {"name": name},
            "spec": {"steps": [
                {"name": "collect", "sqlite": {"database": str(db), "queries": [
                    {"name": "orders", "sql": "SELECT id, region, amount FROM orders ORDER BY id"}]}},
                {"name": "table", "csv": {"dataset": "orders", "fileName": f"{name}.csv"}},
                {"name": "deliver", "local": {"path": str(out)}}], **spec}}
