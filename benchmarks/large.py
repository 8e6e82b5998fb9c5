"""Large reports: N rows from MariaDB through the real chain, beside the two baselines.

The chain is what runs in a cluster: a `mysql` collector, a generator (`excel`, `csv` or
`mustache`) and a `local` dispatcher, each a `goreports worker` process of its own, talking
through a real Redis. The clock runs from publishing the head Job to the dispatcher's Succeeded
event (the file is in its folder by then); the workers are started and consuming before it.
Peak RSS is sampled from outside for every process (children included).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

from data import CREDENTIALS_ID, DB, large_sql
from harness import (BenchError, MariaDB, PeakRss, compile_doc, last_event_id, log, new_bus,
                     report_doc, run_async, running_workers, wait_reports)
from results import Figure

HERE = Path(__file__).resolve().parent
RSS_TARGET_MB = 150.0
FLAT_TARGET = 1.2  # peak RSS at the largest N / at the smallest N
CHAIN_TARGET = 1.5  # end to end / bare fetch


@dataclass
class Env:
    """What every large figure shares: the servers, a scratch folder, measured baselines."""

    db: MariaDB
    redis_addr: str
    tmp: Path
    fetch_seconds: dict[int, float] = field(default_factory=dict)

    def flush(self) -> None:
        r = redis.Redis(*self.redis_addr.split(":"))
        r.flushall()
        r.close()


@dataclass
class ChainRun:
    rows: int
    seconds: float
    rss_mb: dict[str, float]
    file_bytes: int


def baseline(env: Env, kind: str, rows: int) -> tuple[float, float]:
    """(seconds, peak RSS MB) of benchmarks/baselines.py `kind` over the first `rows` rows."""
    out = env.tmp / f"plain-{rows}.xlsx"
    cmd = [sys.executable, str(HERE / "baselines.py"), kind, "--host", env.db.host, "--port",
           str(env.db.port), "--user", env.db.user, "--db", DB, "--sql", large_sql(rows),
           "--out", str(out)]
    sampler = PeakRss()
    proc = subprocess.Popen(cmd, env={**os.environ, "BENCH_DB_PASSWORD": env.db.password},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    sampler.watch(kind, proc.pid)
    sampler.start()
    stdout, stderr = proc.communicate()
    peak = sampler.stop()[kind]
    if proc.returncode:
        raise BenchError(f"baseline {kind} ({rows:,} rows) failed with {proc.returncode}:\n{stderr[-2000:]}")
    res = json.loads(stdout.strip().splitlines()[-1])
    if res["rows"] != rows:
        raise BenchError(f"baseline {kind} read {res['rows']:,} rows, expected {rows:,}")
    out.unlink(missing_ok=True)
    return float(res["seconds"]), peak


def bare_fetch(env: Env, rows: int) -> float:
    """Baseline (a), measured once per size and run."""
    if rows not in env.fetch_seconds:
        log(f"  bare fetch (a), {rows:,} rows")
        env.fetch_seconds[rows] = baseline(env, "fetch", rows)[0]
    return env.fetch_seconds[rows]


def run_chain(env: Env, rows: int, generator: str, body: dict[str, Any], file_name: str,
              timeout: float) -> ChainRun:
    """One report of `rows` rows: mysql -> `generator` -> local, each in its own worker."""
    log(f"  chain mysql -> {generator} -> local, {rows:,} rows")
    env.flush()
    tmp = env.tmp / f"{generator}-{rows}"
    out = tmp / "out"
    env.db.write_credentials(tmp / "credentials", CREDENTIALS_ID)
    doc = report_doc(f"{generator}-{rows}", [
        {"name": "collect", "mysql": {"instance": "bench", "dbName": DB,
                                      "credentialsId": CREDENTIALS_ID,
                                      "queries": [{"name": "rows", "sql": large_sql(rows)}]}},
        {"name": "generate", generator: {"fileName": file_name, **body}},
        {"name": "deliver", "local": {"path": str(out)}},
    ])
    uid, head = compile_doc(doc)
    sampler = PeakRss()
    with running_workers(env.redis_addr, tmp, "mysql", generator, "local", sampler=sampler) as w:
        sampler.start()
        try:
            events = run_async(_publish_and_wait(env.redis_addr, head, uid, w, timeout))
        finally:
            rss = sampler.stop()
    seconds, collected = events
    if collected != rows:
        raise BenchError(f"the {generator} report collected {collected:,} rows, expected {rows:,}")
    target = out / file_name
    if not target.is_file() or target.stat().st_size == 0:
        raise BenchError(f"the {generator} report delivered no {target}")
    size = target.stat().st_size
    target.unlink()
    return ChainRun(rows, seconds, rss, size)


async def _publish_and_wait(redis_addr: str, head: Any, uid: str, workers: Any,
                            timeout: float) -> tuple[float, int]:
    bus = new_bus(redis_addr)
    try:
        after = await last_event_id(bus)
        started = time.perf_counter()
        await bus.publish(head)
        events = await wait_reports(bus, {uid}, workers, timeout=timeout, after=after)
        seconds = time.perf_counter() - started
    finally:
        await bus.close()
    collected = max((e.rows for e in events[uid] if e.step == "collect"), default=0)
    return seconds, collected


def timeout_for(rows: int) -> float:
    return 120 + rows / 500  # 2,000 s at 1M rows: far above any sane run, but finite


# -- figures --------------------------------------------------------------------------------------

def large_report(env: Env, sizes: list[int]) -> list[Figure]:
    figures: list[Figure] = []
    peaks: dict[int, dict[str, float]] = {}
    for n in sizes:
        label = f"large {n:,}"
        fetch = bare_fetch(env, n)
        run = run_chain(env, n, "excel", {"sheets": [{"name": "Rows", "dataset": "rows"}]},
                        "large.xlsx", timeout_for(n))
        log(f"  plain openpyxl script (b), {n:,} rows")
        plain, plain_rss = baseline(env, "openpyxl", n)
        peaks[n] = run.rss_mb
        ratio = run.seconds / fetch
        figures += [
            Figure(f"{label}: bare fetch (a, SSCursor)", fetch, "s"),
            Figure(f"{label}: bare fetch rows/s", n / fetch, "rows/s"),
            Figure(f"{label}: plain openpyxl script (b)", plain, "s", "(a)", plain / fetch),
            Figure(f"{label}: chain to .xlsx, end to end", run.seconds, "s", "(a)", ratio,
                   f"<= {CHAIN_TARGET}x (a)", ratio <= CHAIN_TARGET),
            Figure(f"{label}: chain speed-up over plain script (b)", plain / run.seconds, "x",
                   target="~8x (follows from 1.5x (a))"),
            Figure(f"{label}: chain rows/s", n / run.seconds, "rows/s", "(a)",
                   (n / run.seconds) / (n / fetch)),
        ]
        for proc in ("mysql", "excel", "local"):
            mb = run.rss_mb.get(proc, 0.0)
            figures.append(Figure(f"{label}: peak RSS {proc} worker", mb, "MB", "", None,
                                  f"< {RSS_TARGET_MB:.0f} MB", mb < RSS_TARGET_MB))
        figures.append(Figure(f"{label}: peak RSS plain script (b)", plain_rss, "MB"))
    if len(sizes) > 1:
        small, big = min(sizes), max(sizes)
        for proc in ("mysql", "excel", "local"):
            growth = peaks[big].get(proc, 0.0) / max(peaks[small].get(proc, 0.0), 1e-9)
            figures.append(Figure(f"RSS growth {proc} worker, {small:,} -> {big:,} rows", growth,
                                  "x", "", None, f"<= {FLAT_TARGET}x (flat)", growth <= FLAT_TARGET))
    return figures


MUSTACHE_TEMPLATE = ("<table>{{#rows}}<tr><td>{{id}}</td><td>{{customer}}</td><td>{{quantity}}</td>"
                     "<td>{{amount}}</td><td>{{discount}}</td><td>{{order_date}}</td>"
                     "<td>{{created_at}}</td><td>{{sku}}</td><td>{{paid}}</td><td>{{note}}</td>"
                     "</tr>{{/rows}}</table>")


def other_formats(env: Env, csv_rows: int, html_rows: int) -> list[Figure]:
    figures: list[Figure] = []
    for generator, n, body, name in (
            ("csv", csv_rows, {"dataset": "rows", "header": True}, "large.csv"),
            ("mustache", html_rows, {"template": MUSTACHE_TEMPLATE, "datasets": ["rows"]},
             "large.html")):
        fetch = bare_fetch(env, n)
        run = run_chain(env, n, generator, body, name, timeout_for(n))
        label = f"{generator} {n:,}"
        figures += [
            Figure(f"{label}: chain rows/s", n / run.seconds, "rows/s", "(a)",
                   (n / run.seconds) / (n / fetch)),
            Figure(f"{label}: chain end to end", run.seconds, "s", "(a)", run.seconds / fetch),
            Figure(f"{label}: peak RSS {generator} worker", run.rss_mb.get(generator, 0.0), "MB"),
        ]
    return figures
