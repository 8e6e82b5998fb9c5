"""`goreports dlq`, `goreports status` and `goreports audit tail` against a real redis-server
and a real worker process, without a cluster (`--no-status`): a job dead-lettered by a failing
SQLite query is replayed after the table is created, and its chain delivers the file.

With the API server and the operator (the Failed report back to Succeeded):
tests/e2e/test_observability.py.
"""
from __future__ import annotations

import asyncio
import json
import time
import uuid
from pathlib import Path
from typing import AsyncIterator, Iterator

import pytest
import redis.asyncio as aioredis

from goreports.core import audit, compiler
from goreports.core.bus.base import Delivery
from goreports.core.bus.redis import RedisBus
from goreports.core.keys import Keys
from goreports.proto import events_pb2
from support.observability import make_db, run_cli, sqlite_report
from support.workers import start_worker, stop, struct_job

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


@pytest.fixture
async def bus(redis_client: aioredis.Redis) -> AsyncIterator[RedisBus]:  # flushed per test
    b = RedisBus(redis_client, Keys("goreports"))
    yield b


@pytest.fixture
def env(redis_server, tmp_path: Path) -> dict[str, str]:  # type: ignore[no-untyped-def]
    # No cluster: no KUBECONFIG and a HOME without ~/.kube/config.
    return {"REDIS_ADDR": redis_server.addr, "KUBECONFIG": "", "HOME": str(tmp_path),
            "KUBERNETES_SERVICE_HOST": "", "USER": "alice"}


@pytest.fixture
def worker(redis_server, tmp_path: Path) -> Iterator[None]:  # type: ignore[no-untyped-def]
    proc = start_worker(redis_server.addr, "sqlite", "csv", "local", log=tmp_path / "worker.log",
                        GOREPORTS_ARTIFACT_DIR=str(tmp_path / "staging"))
    yield
    stop(proc)


async def wait_event(bus: RedisBus, uid: str, step: str, state: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(ev.report.uid == uid and ev.step == step and ev.state == state
               for _, ev in await bus.read_events("0", 100_000, 0)):
            return
        await asyncio.sleep(0.05)
    raise TimeoutError(f"no event {state} of {step} for {uid}")


def cli(env: dict[str, str], *argv: str) -> tuple[int, str, str]:
    res = run_cli(*argv, env=env)
    return res.returncode, res.stdout, res.stderr


async def test_dead_letter_replayed_after_the_cause_is_fixed(bus: RedisBus, env: dict[str, str],
                                                            worker: None, tmp_path: Path) -> None:
    db = make_db(tmp_path / "sales.db", rows=None)  # no `orders` table yet
    uid = uuid.uuid4().hex
    head = compiler.compile_report(sqlite_report("late", db, tmp_path / "out"), uid=uid)
    await bus.publish(head)
    await wait_event(bus, uid, "collect", events_pb2.STEP_STATE_FAILED)
    assert await bus.get_marker(bus.keys.cancelled(uid)) is not None

    code, out, err = cli(env, "dlq", "list", "--pattern", "sqlite", "--json")
    assert code == 0, err
    [row] = [json.loads(line) for line in out.splitlines()]
    assert row["uid"] == uid and row["step"] == "collect" and row["attempt"] == 1
    assert row["reason"].startswith("QueryFailed") and "no such table: orders" in row["reason"]

    code, out, _ = cli(env, "dlq", "list")
    assert code == 0 and row["id"] in out and "QueryFailed" in out  # the table

    code, out, _ = cli(env, "dlq", "show", row["id"])
    shown = json.loads(out)
    assert shown["report"]["uid"] == uid and shown["nextSteps"] == ["table", "deliver"]
    assert shown["task"]["database"] == str(db) and shown["stream"] == "dead:collectors:sqlite"

    code, _, err = cli(env, "dlq", "replay", row["id"])
    assert code == 1 and "--no-status" in err  # no cluster: says how to go on

    make_db(db, rows=42)  # the cause is fixed
    code, out, err = cli(env, "dlq", "replay", row["id"], "--no-status")
    assert code == 0, err
    assert f"replayed {row['id']} (sqlite, step collect" in out
    await wait_event(bus, uid, "deliver", events_pb2.STEP_STATE_SUCCEEDED)
    assert len((tmp_path / "out" / "late.csv").read_text().splitlines()) == 43  # header + rows
    assert await bus.dead_letters("collectors", "sqlite") == []
    assert await bus.get_marker(bus.keys.cancelled(uid)) is None
    replayed = [e for _, e in await bus.read_events("0", 100_000, 0)
                if e.report.uid == uid and e.step == "collect" and e.state == events_pb2.STEP_STATE_SUCCEEDED]
    assert [e.attempt for e in replayed] == [1]

    code, out, _ = cli(env, "audit", "tail", "-n", "5", "--json")
    [record] = [json.loads(line) for line in out.splitlines()]
    assert record["action"] == "replayed" and record["uid"] == uid
    assert record["who"].startswith("alice") and "QueryFailed" in record["message"]
    code, out, _ = cli(env, "audit", "tail", "--action", "accepted")
    assert code == 0 and out == ""


async def test_replay_refuses_a_job_past_its_deadline(bus: RedisBus, env: dict[str, str]) -> None:
    job = struct_job("deliver", "dispatchers", "test-effect", {}, uid=uuid.uuid4().hex)
    job.deadline.FromSeconds(int(time.time()) - 60)
    await bus.dead_letter(Delivery("1-0", "dispatchers", "test-effect", job), "RetriesExhausted: x")
    code, _, err = cli(env, "dlq", "replay", "--all", "--no-status")
    assert code == 1 and "deadline" in err and "create a new ReportRequest" in err
    assert len(await bus.dead_letters("dispatchers", "test-effect")) == 1  # still there


async def test_purge_by_pattern_and_age(bus: RedisBus, env: dict[str, str]) -> None:
    for pattern in ("a", "a", "b"):
        job = struct_job("s", "dispatchers", pattern, {}, uid=uuid.uuid4().hex)
        await bus.dead_letter(Delivery("1-0", "dispatchers", pattern, job), "Boom: x")
    code, out, _ = cli(env, "dlq", "purge", "--older-than", "1h")
    assert code == 0 and "removed 0" in out
    code, out, _ = cli(env, "dlq", "purge", "--older-than", "forever")
    assert code == 2
    code, out, _ = cli(env, "dlq", "purge", "--pattern", "a")
    assert code == 0 and "removed 2" in out
    assert len(await bus.dead_letters("dispatchers", "b")) == 1
    time.sleep(1.1)
    code, out, _ = cli(env, "dlq", "purge", "--older-than", "1s")
    assert code == 0 and "removed 1 dead letter(s) (b: 1)" in out
    code, _, err = cli(env, "dlq", "show", "1-0")
    assert code == 1 and "no dead letter 1-0" in err


async def test_status_without_a_cluster_shows_streams(bus: RedisBus, env: dict[str, str]) -> None:
    for i in range(3):
        await bus.publish(struct_job("s", "dispatchers", "test-effect", {}, uid=f"u{i}"))
    job = struct_job("s", "collectors", "sqlite", {}, uid="dead")
    await bus.dead_letter(Delivery("1-0", "collectors", "sqlite", job), "QueryFailed: x")
    await audit.AuditLog(bus).append(audit.build_record("accepted", namespace="ns", name="r", who="bob"))
    code, out, err = cli(env, "status", "--json")
    assert code == 0, err
    got = json.loads(out)
    assert got["reports"] is None and "KUBECONFIG" in got["note"]
    streams = {s["pattern"]: s for s in got["streams"]}
    assert streams["test-effect"]["backlog"] == 3 and streams["test-effect"]["lag"] == 3
    assert streams["test-effect"]["workers"] == 0 and streams["sqlite"]["dead"] == 1
    # read only: looking did not create consumer groups
    assert await bus.r.exists(bus.keys.jobs("collectors", "sqlite")) == 0
    code, out, _ = cli(env, "status")
    assert code == 0 and "test-effect" in out and "reports by phase skipped" in out
    code, out, _ = cli(env, "audit", "tail")
    assert "accepted  ns/r by bob" in out
