"""Chain overhead: many small reports (10 rows, sqlite -> csv -> local, one worker per stage).

What is timed, with what is already recorded (no extra timing in the product):
- end to end: from the harness publishing the head Job to the dispatcher's Succeeded event
  (`StageEvent.at`);
- per hop: from a Job's XADD (the millisecond in its stream entry id, set by Redis) to the
  Running event of the worker that took it (`StageEvent.at`). The first hop is the harness's
  publish; the others are published by the previous stage (a collector publishes its `next` as
  soon as its dataset starts, so hops overlap with work, as they do in production).
Two runs: one report at a time (latency without queueing) and a burst of many published at
once (throughput: reports/s from the first publish to the last Succeeded).
"""
from __future__ import annotations

import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import psutil

from goreports.proto import events_pb2, job_pb2

from data import SMALL_SQL, small_sqlite
from harness import (Workers, compile_doc, last_event_id, new_bus, report_doc, run_async,
                     running_workers, wait_reports)
from results import Figure, percentile

HOP_TARGET_MS = 5.0
RATE_TARGET = 200.0
STREAMS = (("collectors", "sqlite"), ("generators", "csv"), ("dispatchers", "local"))


def _doc(i: int, db: Path, out: Path) -> dict[str, Any]:
    return report_doc(f"small-{i}", [
        {"name": "collect", "sqlite": {"database": str(db),
                                       "queries": [{"name": "items", "sql": SMALL_SQL}]}},
        {"name": "generate", "csv": {"fileName": f"small-{i}.csv", "dataset": "items"}},
        {"name": "deliver", "local": {"path": str(out)}},
    ])


async def _run(redis_addr: str, heads: list[tuple[str, job_pb2.Job]], workers: Workers,
               one_at_a_time: bool) -> tuple[float, dict[str, float], dict[str, list[events_pb2.StageEvent]],
                                             dict[tuple[str, str], float]]:
    """Publish the reports; return (seconds, publish epoch per uid, events per uid, XADD epoch
    per (uid, step))."""
    bus = new_bus(redis_addr)
    published: dict[str, float] = {}
    events: dict[str, list[events_pb2.StageEvent]] = {}
    try:
        after = await last_event_id(bus)
        started = time.perf_counter()
        if one_at_a_time:
            for uid, head in heads:
                published[uid] = time.time()
                await bus.publish(head)
                got = await wait_reports(bus, {uid}, workers, timeout=60, after=after)
                events.update(got)
                after = await last_event_id(bus)
        else:
            for uid, head in heads:
                published[uid] = time.time()
                await bus.publish(head)
            events = await wait_reports(bus, {u for u, _ in heads}, workers,
                                        timeout=60 + 2 * len(heads), after=after)
        seconds = time.perf_counter() - started
        xadds: dict[tuple[str, str], float] = {}
        for channel, pattern in STREAMS:
            for eid, fields in await bus.r.xrange(bus.keys.jobs(channel, pattern)):
                job = job_pb2.Job.FromString(fields[b"job"])
                xadds.setdefault((job.report.uid, job.name), int(eid.split(b"-")[0]) / 1000)
    finally:
        await bus.close()
    return seconds, published, events, xadds


def _latencies(published: dict[str, float], events: dict[str, list[events_pb2.StageEvent]],
               xadds: dict[tuple[str, str], float]) -> tuple[list[float], dict[str, list[float]]]:
    """(end-to-end ms per report, hop ms per step name)."""
    e2e: list[float] = []
    hops: dict[str, list[float]] = defaultdict(list)
    for uid, evs in events.items():
        done = [e for e in evs if e.state == events_pb2.STEP_STATE_SUCCEEDED
                and e.step_index == e.step_count - 1]
        e2e.append((done[0].at.ToNanoseconds() / 1e9 - published[uid]) * 1000)
        started: set[str] = set()
        for e in evs:  # the first Running event of a step is its start; later ones are progress
            if e.state != events_pb2.STEP_STATE_RUNNING or e.step in started:
                continue
            started.add(e.step)
            if (uid, e.step) in xadds:
                hops[e.step].append(max(0.0, e.at.ToNanoseconds() / 1e9 - xadds[(uid, e.step)]) * 1000)
    return e2e, hops


def _cpu(w: Workers) -> float:
    """User + system CPU seconds of the worker processes so far."""
    return sum(sum(psutil.Process(p.pid).cpu_times()[:2]) for p in w.procs.values())


def chain_overhead(redis_addr: str, tmp: Path, sequential: int, burst: int) -> list[Figure]:
    tmp.mkdir(parents=True, exist_ok=True)
    db = small_sqlite(tmp / "small.db")
    out = tmp / "out"
    seq_heads = [compile_doc(_doc(i, db, out)) for i in range(sequential)]
    burst_heads = [compile_doc(_doc(sequential + i, db, out)) for i in range(burst)]
    warm = [compile_doc(_doc(-1 - i, db, out)) for i in range(3)]
    with running_workers(redis_addr, tmp, "sqlite", "csv", "local") as w:
        run_async(_run(redis_addr, warm, w, True))  # imports, connections, consumer groups
        _, pub, evs, xadds = run_async(_run(redis_addr, seq_heads, w, True))
        cpu0 = _cpu(w)
        burst_s, bpub, bevs, bxadds = run_async(_run(redis_addr, burst_heads, w, False))
        cpu = _cpu(w) - cpu0
    e2e, hops = _latencies(pub, evs, xadds)
    be2e, bhops = _latencies(bpub, bevs, bxadds)
    all_hops = [v for vs in hops.values() for v in vs]
    p50_hop = percentile(all_hops, 50)
    rate = burst / burst_s
    figures = [
        Figure(f"chain, one at a time ({sequential}): end to end p50", percentile(e2e, 50), "ms"),
        Figure(f"chain, one at a time ({sequential}): end to end p99", percentile(e2e, 99), "ms"),
        Figure(f"chain, one at a time ({sequential}): per hop p50", p50_hop, "ms", "", None,
               f"< {HOP_TARGET_MS:.0f} ms", p50_hop < HOP_TARGET_MS),
        Figure(f"chain, one at a time ({sequential}): per hop p99", percentile(all_hops, 99), "ms"),
    ]
    for step in ("collect", "generate", "deliver"):
        if hops.get(step):
            figures.append(Figure(f"chain, one at a time: hop to {step} p50",
                                  percentile(hops[step], 50), "ms"))
    for step in ("collect", "generate", "deliver"):
        took = [e.duration_seconds * 1000 for evs_ in evs.values() for e in evs_
                if e.step == step and e.state == events_pb2.STEP_STATE_SUCCEEDED]
        if took:
            figures.append(Figure(f"chain, one at a time: {step} step duration p50",
                                  percentile(took, 50), "ms"))
    bhop = [v for vs in bhops.values() for v in vs]
    figures += [
        Figure(f"chain, burst of {burst}: reports/s", rate, "reports/s", "", None,
               f">= {RATE_TARGET:.0f}/s", rate >= RATE_TARGET),
        Figure(f"chain, burst of {burst}: end to end p50", percentile(be2e, 50), "ms"),
        Figure(f"chain, burst of {burst}: end to end p99", percentile(be2e, 99), "ms"),
        Figure(f"chain, burst of {burst}: per hop p50", percentile(bhop, 50), "ms"),
        Figure(f"chain, burst of {burst}: per hop p99", percentile(bhop, 99), "ms"),
        Figure(f"chain, burst of {burst}: workers' CPU per report", cpu / burst * 1000, "CPU ms"),
    ]
    return figures
