"""The worker runtime against a real redis-server: ack after next, crashes, retries, dead
letters, streaming datasets and idempotent re-delivery."""
from __future__ import annotations

import asyncio
import json
import os
import signal
import time
import uuid
from dataclasses import replace
from pathlib import Path

import pytest
import redis

from goreports.core import values
from goreports.core.bus.redis import RedisBus
from goreports.core.settings import Settings
from goreports.proto import dataset_pb2, events_pb2
from goreports.workers import registry
from goreports.core.artifacts import LocalArtifactStore
from goreports.core.credentials import CredentialStore
from goreports.workers.runtime import Worker
from support import stages  # noqa: F401  (registers the test stages)
from support.workers import start_worker, stop, struct_job, wait_for

pytestmark = pytest.mark.integration


@pytest.fixture
def settings(tmp_path: Path, redis_server) -> Settings:  # type: ignore[no-untyped-def]
    return Settings(redis_addr=redis_server.addr, visibility_timeout=2.0, heartbeat_interval=0.5,
                    retry_base_delay=0.05, artifact_dir=tmp_path / "staging", work_dir=tmp_path / "work",
                    credentials_dir=tmp_path / "creds")


def in_process_worker(bus: RedisBus, settings: Settings, *patterns: str) -> Worker:
    return Worker(bus=bus, settings=settings, patterns=list(patterns),
                  artifacts=LocalArtifactStore(settings.artifact_dir),
                  credentials=CredentialStore(settings.credentials_dir), concurrency=4, block_ms=100)


async def events_of(bus: RedisBus, uid: str) -> list[events_pb2.StageEvent]:
    return [e for _, e in await bus.read_events("0", 10_000, 0) if e.report.uid == uid]


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


async def test_ack_only_after_next_is_published(bus: RedisBus, settings: Settings, tmp_path: Path) -> None:
    uid = uuid.uuid4().hex
    nxt = struct_job("notify-next", "dispatchers", "test-effect-next", {}, uid=uid, index=1, count=2)
    job = struct_job("deliver", "dispatchers", "test-effect",
                     {"sleep": 1.0, "effectFile": str(tmp_path / "effect")}, uid=uid, nxt=nxt, count=2)
    await bus.publish(job)
    worker = in_process_worker(bus, settings, "test-effect")
    stop_ev = asyncio.Event()
    run = asyncio.create_task(worker.run(stop_ev))
    try:
        async def running() -> bool:
            b = await bus.backlog("dispatchers", "test-effect")
            return b.pending == 1
        for _ in range(100):
            if await running():
                break
            await asyncio.sleep(0.02)
        # in flight: not acknowledged, and its next job not published yet
        assert (await bus.backlog("dispatchers", "test-effect")).pending == 1
        assert await bus.r.xlen(bus.keys.jobs("dispatchers", "test-effect-next")) == 0
        for _ in range(200):
            if (await bus.backlog("dispatchers", "test-effect")).pending == 0:
                break
            await asyncio.sleep(0.02)
        # acknowledged, and by then the next job exists
        assert (await bus.backlog("dispatchers", "test-effect")).pending == 0
        assert await bus.r.xlen(bus.keys.jobs("dispatchers", "test-effect-next")) == 1
    finally:
        stop_ev.set()
        await run


async def test_sigkill_mid_job_is_completed_by_another_worker(
        bus: RedisBus, redis_server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    uid = uuid.uuid4().hex
    started, effect = tmp_path / "started", tmp_path / "effect"
    job = struct_job("deliver", "dispatchers", "test-effect",
                     {"sleep": 3.0, "startedFile": str(started), "effectFile": str(effect)}, uid=uid)
    await bus.publish(job)
    first = start_worker(redis_server.addr, "test-effect", log=tmp_path / "w1.log")
    second = None
    try:
        wait_for(lambda: lines(started), 30, what="the first worker to start the job")
        os.kill(first.pid, signal.SIGKILL)
        first.wait()
        second = start_worker(redis_server.addr, "test-effect", log=tmp_path / "w2.log")
        wait_for(lambda: lines(effect), 40, what="the second worker to finish the job")
        time.sleep(0.5)
        assert len(lines(effect)) == 1, "the effect happened more than once"
        pids = {line.split()[0] for line in lines(started)}
        assert len(pids) == 2 and str(first.pid) in pids
        assert (await bus.backlog("dispatchers", "test-effect")).pending == 0
        states = [e.state for e in await events_of(bus, uid)]
        assert events_pb2.STEP_STATE_SUCCEEDED in states
    finally:
        stop(first)
        if second is not None:
            stop(second)


async def test_retries_then_succeeds_or_dead_letters(bus: RedisBus, settings: Settings, tmp_path: Path) -> None:
    ok_uid, bad_uid = uuid.uuid4().hex, uuid.uuid4().hex
    await bus.publish(struct_job("deliver", "dispatchers", "test-effect",
                                 {"failTimes": 2, "effectFile": str(tmp_path / "ok")}, uid=ok_uid))
    await bus.publish(struct_job("deliver", "dispatchers", "test-effect",
                                 {"failTimes": 10, "effectFile": str(tmp_path / "bad")}, uid=bad_uid))
    worker = in_process_worker(bus, settings, "test-effect")
    stop_ev = asyncio.Event()
    run = asyncio.create_task(worker.run(stop_ev))
    try:
        for _ in range(300):
            if await bus.dead_letters("dispatchers", "test-effect") and lines(tmp_path / "ok"):
                break
            await asyncio.sleep(0.05)
    finally:
        stop_ev.set()
        await run
    assert len(lines(tmp_path / "ok")) == 1 and not lines(tmp_path / "bad")
    [dead] = await bus.dead_letters("dispatchers", "test-effect")
    assert dead.job.report.uid == bad_uid and dead.job.attempt == 3
    assert dead.reason.startswith("RetriesExhausted")
    bad = await events_of(bus, bad_uid)
    assert [e.state for e in bad].count(events_pb2.STEP_STATE_RETRYING) == 2
    assert bad[-1].state == events_pb2.STEP_STATE_FAILED and "after 3 attempts" in bad[-1].error
    # a failed report's other jobs are dropped
    assert await bus.get_marker(bus.keys.cancelled(bad_uid)) is not None


async def test_permanent_error_dead_letters_at_once(bus: RedisBus, settings: Settings, tmp_path: Path) -> None:
    uid = uuid.uuid4().hex
    await bus.publish(struct_job("deliver", "dispatchers", "test-effect",
                                 {"permanent": "target refused the file", "effectFile": "x"}, uid=uid))
    worker = in_process_worker(bus, settings, "test-effect")
    stop_ev = asyncio.Event()
    run = asyncio.create_task(worker.run(stop_ev))
    for _ in range(100):
        if await bus.dead_letters("dispatchers", "test-effect"):
            break
        await asyncio.sleep(0.05)
    stop_ev.set()
    await run
    [dead] = await bus.dead_letters("dispatchers", "test-effect")
    assert dead.job.attempt == 1 and "target refused the file" in dead.reason
    [failed] = [e for e in await events_of(bus, uid) if e.state == events_pb2.STEP_STATE_FAILED]
    assert failed.reason == "TestRefused"


async def test_poison_task_is_dead_lettered_and_worker_keeps_serving(
        bus: RedisBus, settings: Settings, tmp_path: Path) -> None:
    poison_uid, good_uid = uuid.uuid4().hex, uuid.uuid4().hex
    poison = struct_job("deliver", "dispatchers", "test-effect", {}, uid=poison_uid)
    poison.task.type_url = "type.googleapis.com/google.protobuf.Struct"
    poison.task.value = b"\xff\xff\xff not a protobuf"
    await bus.publish(poison)
    await bus.publish(struct_job("deliver", "dispatchers", "test-effect",
                                 {"effectFile": str(tmp_path / "good")}, uid=good_uid))
    worker = in_process_worker(bus, settings, "test-effect")
    stop_ev = asyncio.Event()
    run = asyncio.create_task(worker.run(stop_ev))
    for _ in range(100):
        if await bus.dead_letters("dispatchers", "test-effect") and lines(tmp_path / "good"):
            break
        await asyncio.sleep(0.05)
    stop_ev.set()
    await run
    [dead] = await bus.dead_letters("dispatchers", "test-effect")
    assert dead.job.report.uid == poison_uid and "InvalidTask" in dead.reason
    assert len(lines(tmp_path / "good")) == 1


async def test_redelivered_job_does_not_repeat_its_effect(bus: RedisBus, settings: Settings, tmp_path: Path) -> None:
    uid = uuid.uuid4().hex
    nxt = struct_job("after", "dispatchers", "test-effect-next", {}, uid=uid, index=1, count=2)
    job = struct_job("deliver", "dispatchers", "test-effect", {"effectFile": str(tmp_path / "e")},
                     uid=uid, nxt=nxt, count=2)
    await bus.publish(job)
    await bus.publish(job)  # the same job delivered twice (as after a lost acknowledgement)
    worker = in_process_worker(bus, settings, "test-effect")
    stop_ev = asyncio.Event()
    run = asyncio.create_task(worker.run(stop_ev))
    for _ in range(200):
        if worker.handled.get("duplicate") and lines(tmp_path / "e"):
            break
        await asyncio.sleep(0.05)
    stop_ev.set()
    await run
    assert len(lines(tmp_path / "e")) == 1
    assert await bus.r.xlen(bus.keys.jobs("dispatchers", "test-effect-next")) == 1
    assert worker.handled.get("duplicate") == 1


async def test_200k_rows_stream_in_batches_while_being_produced(
        bus: RedisBus, redis_server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    uid = uuid.uuid4().hex
    stream = bus.keys.data(uid, "rows", "collect")
    result, done = tmp_path / "result.json", tmp_path / "done"
    consume = struct_job("generate", "generators", "test-consume",
                         {"dataset": "rows", "stream": stream, "producer": "collect",
                          "resultFile": str(result)}, uid=uid, index=1, count=2)
    produce = struct_job("collect", "collectors", "test-produce",
                         {"dataset": "rows", "stream": stream, "readers": ["generate"], "rows": 200_000,
                          "sleepPerChunk": 0.005, "doneFile": str(done)}, uid=uid, nxt=consume, count=2)
    procs = [start_worker(redis_server.addr, "test-produce", log=tmp_path / "p.log"),
             start_worker(redis_server.addr, "test-consume", log=tmp_path / "c.log")]
    sync = redis.Redis(*redis_server.addr.split(":"))
    max_len = 0
    try:
        await bus.publish(produce)
        deadline = time.monotonic() + 120
        while not result.exists() and time.monotonic() < deadline:
            max_len = max(max_len, sync.xlen(stream))
            time.sleep(0.01)
        assert result.exists(), (tmp_path / "c.log").read_text()[-2000:]
        info = sync.xinfo_stream(stream)
    finally:
        for p in procs:
            stop(p)
    got = json.loads(result.read_text())
    assert got["rows"] == 200_000
    assert got["checksum"] == values.checksum((i, f"row-{i}") for i in range(200_000))
    # the generator had rows long before the collector finished
    assert got["first_batch_at"] < float(done.read_text())
    # rows crossed in batches (header + 400 batches of 500 + end), and Redis held a window only
    assert info["entries-added"] == 402
    assert max_len <= Settings().window_batches + 4


async def test_reader_killed_mid_dataset_gets_the_dataset_again(
        bus: RedisBus, redis_server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The stream was trimmed behind the dead reader, so its successor asks the producer to run
    again; the old producer stops as superseded and the dataset arrives whole, once."""
    uid = uuid.uuid4().hex
    stream = bus.keys.data(uid, "rows", "collect")
    result = tmp_path / "result.json"
    consume = struct_job("generate", "generators", "test-consume",
                         {"dataset": "rows", "stream": stream, "producer": "collect",
                          "resultFile": str(result), "sleepPerBatch": 0.01}, uid=uid, index=1, count=2)
    produce = struct_job("collect", "collectors", "test-produce",
                         {"dataset": "rows", "stream": stream, "readers": ["generate"],
                          "rows": 100_000}, uid=uid, nxt=consume, count=2)
    producer = start_worker(redis_server.addr, "test-produce", log=tmp_path / "p.log")
    reader = start_worker(redis_server.addr, "test-consume", log=tmp_path / "c1.log")
    sync = redis.Redis(*redis_server.addr.split(":"))
    reader2 = None
    try:
        await bus.publish(produce)

        def trimmed() -> bool:
            first = sync.xrange(stream, count=1)
            cursor = sync.hget(bus.keys.cursors(stream), "generate")
            if not first or cursor is None:
                return False
            entry = dataset_pb2.DatasetEntry.FromString(first[0][1][b"d"])
            return entry.WhichOneof("kind") != "header"
        wait_for(trimmed, 60, what="the reader to be mid-dataset with the start trimmed")
        os.kill(reader.pid, signal.SIGKILL)
        reader.wait()
        reader2 = start_worker(redis_server.addr, "test-consume", log=tmp_path / "c2.log")
        wait_for(result.exists, 90, what="the second reader to finish")
    finally:
        for p in (producer, reader, reader2):
            if p is not None:
                stop(p)
    got = json.loads(result.read_text())
    assert got["rows"] == 100_000
    assert got["checksum"] == values.checksum((i, f"row-{i}") for i in range(100_000))
    log = (tmp_path / "p.log").read_text()
    assert "restarted by a newer run" in log or "produce its dataset again" in (tmp_path / "c2.log").read_text()


async def test_sigterm_releases_an_unfinished_job_at_once(
        bus: RedisBus, redis_server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    uid = uuid.uuid4().hex
    started, effect = tmp_path / "started", tmp_path / "effect"
    await bus.publish(struct_job("deliver", "dispatchers", "test-effect",
                                 {"sleep": 30, "startedFile": str(started), "effectFile": str(effect)},
                                 uid=uid))
    proc = start_worker(redis_server.addr, "test-effect", log=tmp_path / "w2.log",
                        cli_args=("--grace-period", "0.5"), GOREPORTS_VISIBILITY_TIMEOUT="60")
    try:
        wait_for(lambda: lines(started), 30, what="the job to start")
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        proc.wait(15)
        assert time.monotonic() - t0 < 10
        # released, not left pending until the 60 s visibility timeout
        b = await bus.backlog("dispatchers", "test-effect")
        assert (b.pending, b.lag) == (0, 1), b
        assert not lines(effect)
        assert "released deliver on shutdown" in (tmp_path / "w2.log").read_text()
    finally:
        stop(proc)
