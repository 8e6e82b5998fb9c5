"""Worker metrics through a real `goreports worker` process and a real redis-server: /metrics
moves by exactly what a report did (started, succeeded, retried, failed per pattern; rows;
artifact bytes; the duration histogram), and /healthz answers on the configured ports."""
from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import AsyncIterator, Iterator

import pytest
import redis.asyncio as aioredis

from goreports.core import compiler
from goreports.core.bus.redis import RedisBus
from goreports.core.keys import Keys
from goreports.proto import events_pb2
from support.observability import (Samples, health, make_db, scrape, scrape_until, sqlite_report,
                                   value, wait_scrape)
from support.servers import free_port
from support.workers import start_worker, stop, struct_job

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

PATTERNS = ("sqlite", "csv", "local", "test-effect")


PREFIX = "metrics-test"


@pytest.fixture(scope="module")
def worker(redis_server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, int, Path]]:  # type: ignore[no-untyped-def]
    """One worker process serving four patterns, /metrics on one port and /healthz on another."""
    tmp = tmp_path_factory.mktemp("metrics")
    metrics_port, health_port = free_port(), free_port()
    proc = start_worker(redis_server.addr, *PATTERNS, log=tmp / "worker.log",
                        GOREPORTS_METRICS_PORT=str(metrics_port), GOREPORTS_HEALTH_PORT=str(health_port),
                        GOREPORTS_ARTIFACT_DIR=str(tmp / "staging"),
                        # its own prefix: the session's Redis holds other tests' test-effect jobs
                        GOREPORTS_PREFIX=PREFIX)
    try:
        wait_scrape(metrics_port)
        yield metrics_port, health_port, tmp
    finally:
        stop(proc)


@pytest.fixture
async def bus(redis_server) -> AsyncIterator[RedisBus]:  # type: ignore[no-untyped-def]
    host, port = redis_server.addr.split(":")
    b = RedisBus(aioredis.Redis(host=host, port=int(port)), Keys(PREFIX))
    yield b
    await b.close()


async def wait_event(bus: RedisBus, uid: str, step: str, state: int, timeout: float = 30) -> events_pb2.StageEvent:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        for _, ev in await bus.read_events("0", 100_000, 0):
            if ev.report.uid == uid and ev.step == step and ev.state == state:
                return ev
        await asyncio.sleep(0.05)
    raise TimeoutError(f"no event {state} of step {step} for {uid}")


async def test_a_report_moves_the_counters_and_histograms_by_its_amounts(
        worker: tuple[int, int, Path], bus: RedisBus, tmp_path: Path) -> None:
    port, _, _ = worker
    rows = 137
    db = make_db(tmp_path / "sales.db", rows)
    uid = uuid.uuid4().hex
    head = compiler.compile_report(sqlite_report("m1", db, tmp_path / "out"), uid=uid)
    before = scrape(port)
    await bus.publish(head)
    csv_done = await wait_event(bus, uid, "table", events_pb2.STEP_STATE_SUCCEEDED)
    await wait_event(bus, uid, "deliver", events_pb2.STEP_STATE_SUCCEEDED)
    # the worker counts a job just after emitting its Succeeded event: wait for the counts
    after = await asyncio.to_thread(scrape_until, port, lambda s: all(
        value(s, "goreports_jobs_succeeded_total", pattern=p)
        > value(before, "goreports_jobs_succeeded_total", pattern=p) for p in ("sqlite", "csv", "local")),
        what="a success counted for each pattern")

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    for pattern in ("sqlite", "csv", "local"):
        assert delta("goreports_jobs_started_total", pattern=pattern) == 1, pattern
        assert delta("goreports_jobs_succeeded_total", pattern=pattern) == 1, pattern
        assert delta("goreports_jobs_failed_total", pattern=pattern) == 0, pattern
        assert delta("goreports_jobs_retried_total", pattern=pattern) == 0, pattern
        assert delta("goreports_stage_duration_seconds_count", pattern=pattern, outcome="success") == 1
        assert delta("goreports_stage_duration_seconds_bucket", pattern=pattern, outcome="success", le="+Inf") == 1
        assert delta("goreports_stage_duration_seconds_sum", pattern=pattern, outcome="success") > 0
        assert value(after, "goreports_jobs_in_progress", pattern=pattern) == 0
    assert delta("goreports_rows_processed_total", pattern="sqlite") == rows
    assert delta("goreports_rows_processed_total", pattern="csv") == rows
    [artifact] = csv_done.artifacts
    delivered = tmp_path / "out" / "m1.csv"
    assert artifact.size == delivered.stat().st_size > 0
    assert delta("goreports_bytes_processed_total", pattern="csv") == artifact.size
    assert delta("goreports_bytes_processed_total", pattern="local") == delivered.stat().st_size


async def test_retries_failures_and_in_progress_are_counted(
        worker: tuple[int, int, Path], bus: RedisBus, tmp_path: Path) -> None:
    port, _, _ = worker
    before = scrape(port)
    # Running: in progress while the stage sleeps. The stage writes `startedFile` first thing,
    # inside the in-progress gauge; its 3 s sleep leaves room to scrape on a loaded machine.
    slow = uuid.uuid4().hex
    started = tmp_path / "slow-started"
    await bus.publish(struct_job("deliver", "dispatchers", "test-effect",
                                 {"sleep": 3, "effectFile": str(tmp_path / "slow"),
                                  "startedFile": str(started)}, uid=slow))
    await wait_event(bus, slow, "deliver", events_pb2.STEP_STATE_RUNNING)
    for _ in range(600):  # 30 s at most
        if started.exists():
            break
        await asyncio.sleep(0.05)
    during = scrape(port)
    assert value(during, "goreports_jobs_in_progress", pattern="test-effect") == 1
    await wait_event(bus, slow, "deliver", events_pb2.STEP_STATE_SUCCEEDED)
    # Fails once (retried), then succeeds; and one refused for good (dead-lettered).
    flaky, refused = uuid.uuid4().hex, uuid.uuid4().hex
    await bus.publish(struct_job("deliver", "dispatchers", "test-effect",
                                 {"failTimes": 1, "effectFile": str(tmp_path / "flaky")}, uid=flaky))
    await bus.publish(struct_job("deliver", "dispatchers", "test-effect",
                                 {"permanent": "target refused", "effectFile": "x"}, uid=refused))
    await wait_event(bus, flaky, "deliver", events_pb2.STEP_STATE_SUCCEEDED)
    await wait_event(bus, refused, "deliver", events_pb2.STEP_STATE_FAILED)
    p = "test-effect"

    def counted(s: Samples) -> bool:
        """Every job's counts are in (a success is counted just after its event)."""
        return (value(s, "goreports_jobs_started_total", pattern=p)
                - value(before, "goreports_jobs_started_total", pattern=p) >= 4
                and value(s, "goreports_jobs_succeeded_total", pattern=p)
                - value(before, "goreports_jobs_succeeded_total", pattern=p) >= 2
                and value(s, "goreports_jobs_failed_total", pattern=p)
                - value(before, "goreports_jobs_failed_total", pattern=p) >= 1)
    after = await asyncio.to_thread(scrape_until, port, counted, what="the four runs counted")

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("goreports_jobs_started_total", pattern=p) == 4  # slow, flaky x2, refused
    assert delta("goreports_jobs_succeeded_total", pattern=p) == 2
    assert delta("goreports_jobs_retried_total", pattern=p) == 1
    assert delta("goreports_jobs_failed_total", pattern=p, reason="TestRefused") == 1
    assert delta("goreports_jobs_failed_total", pattern=p) == 1
    assert delta("goreports_stage_duration_seconds_count", pattern=p, outcome="success") == 2
    assert delta("goreports_stage_duration_seconds_count", pattern=p, outcome="error") == 2
    # the slow run (3 s) landed in the 5 s bucket, not below 2.5 s; the other below 1 s
    assert delta("goreports_stage_duration_seconds_bucket", pattern=p, outcome="success", le="5.0") == 2
    assert delta("goreports_stage_duration_seconds_bucket", pattern=p, outcome="success", le="2.5") == 1
    assert delta("goreports_stage_duration_seconds_bucket", pattern=p, outcome="success", le="1.0") == 1
    assert value(after, "goreports_jobs_in_progress", pattern=p) == 0


def test_both_ports_serve_metrics_and_health(worker: tuple[int, int, Path]) -> None:
    metrics_port, health_port, _ = worker
    for port in (metrics_port, health_port):
        status, body = health(port)
        assert status == 200 and body["status"] == "ok", body
        assert body["patterns"] == list(PATTERNS) and body["worker"]
        samples = scrape(port)
        assert value(samples, "goreports_build_info") == 1
        assert any(n == "process_resident_memory_bytes" for n, _ in samples)
