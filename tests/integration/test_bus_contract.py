"""The bus contract, run against both implementations: Redis Streams and the in-process bus."""
from __future__ import annotations

import asyncio
import time

import pytest

from goreports.core.bus.base import Bus
from goreports.proto import events_pb2, job_pb2


@pytest.fixture
def bus(either_bus: Bus) -> Bus:
    """Every test here runs against both buses (`either_bus`, tests/conftest.py)."""
    return either_bus


def job(name: str = "collect", uid: str = "u1", nxt: job_pb2.Job | None = None) -> job_pb2.Job:
    j = job_pb2.Job(name=name, channel="collectors", pattern="sqlite", attempt=1, max_attempts=3,
                    report=job_pb2.ReportRef(namespace="ns", name="r", uid=uid))
    if nxt is not None:
        j.next.CopyFrom(nxt)
    return j


def gen_job(uid: str = "u1") -> job_pb2.Job:
    return job_pb2.Job(name="excel", channel="generators", pattern="excel", attempt=1,
                       max_attempts=3, report=job_pb2.ReportRef(namespace="ns", name="r", uid=uid))


async def test_publish_fetch_ack(bus: Bus) -> None:
    await bus.publish(job())
    [d] = await bus.fetch("collectors", "sqlite", "w1", 10, 100)
    assert d.job.name == "collect" and d.deliveries == 1
    assert (await bus.backlog("collectors", "sqlite")).pending == 1
    await bus.complete(d, next_job=None, next_marker=None, done_marker=None)
    b = await bus.backlog("collectors", "sqlite")
    assert (b.pending, b.lag) == (0, 0)
    assert await bus.fetch("collectors", "sqlite", "w1", 10, 50) == []


async def test_complete_publishes_next_once_then_acks(bus: Bus) -> None:
    await bus.publish(job(nxt=gen_job()))
    [d] = await bus.fetch("collectors", "sqlite", "w1", 1, 100)
    marker = bus.keys.marker("u1", "next", "collect")
    # the producer published next early (streaming hand-off) ...
    assert await bus.publish_once(d.job.next, marker) is True
    assert await bus.publish_once(d.job.next, marker) is False
    # ... and completion does not publish it a second time
    await bus.complete(d, next_job=d.job.next, next_marker=marker,
                       done_marker=bus.keys.marker("u1", "done", "collect"))
    assert (await bus.backlog("generators", "excel")).lag == 1
    assert (await bus.backlog("collectors", "sqlite")).pending == 0
    assert await bus.get_marker(bus.keys.marker("u1", "done", "collect")) == "1"
    stored = await bus.stored_job("u1", "excel")
    assert stored is not None and stored.pattern == "excel"


async def test_not_acked_until_complete(bus: Bus) -> None:
    await bus.publish(job(nxt=gen_job()))
    [d] = await bus.fetch("collectors", "sqlite", "w1", 1, 100)
    assert (await bus.backlog("collectors", "sqlite")).pending == 1
    assert (await bus.backlog("generators", "excel")).lag == 0


async def test_reclaim_idle_delivery_counts(bus: Bus) -> None:
    await bus.publish(job())
    [d] = await bus.fetch("collectors", "sqlite", "dead-worker", 1, 100)
    assert await bus.reclaim("collectors", "sqlite", "w2", 10_000, 10) == []  # not idle yet
    await asyncio.sleep(0.15)
    [r] = await bus.reclaim("collectors", "sqlite", "w2", 100, 10)
    assert r.entry_id == d.entry_id and r.deliveries == 2


async def test_touch_keeps_claim(bus: Bus) -> None:
    """Untouched, the delivery would be idle 1.5 s (> the 1 s reclaim threshold); touched every
    0.5 s it never is. The margins are wide so that a loaded machine pausing this process
    between the last touch and the reclaim does not make the delivery look idle."""
    await bus.publish(job())
    [d] = await bus.fetch("collectors", "sqlite", "w1", 1, 100)
    for _ in range(3):
        await asyncio.sleep(0.5)
        await bus.touch(d, "w1")
    assert await bus.reclaim("collectors", "sqlite", "w2", 1000, 10) == []
    # and the same delivery, left alone past the threshold, is reclaimed
    await asyncio.sleep(1.1)
    [r] = await bus.reclaim("collectors", "sqlite", "w2", 1000, 10)
    assert r.entry_id == d.entry_id


async def test_retry_is_delayed_then_promoted(bus: Bus) -> None:
    await bus.publish(job())
    [d] = await bus.fetch("collectors", "sqlite", "w1", 1, 100)
    again = job_pb2.Job()
    again.CopyFrom(d.job)
    again.attempt = 2
    await bus.retry(d, again, 30)  # not due for a while, however slow this machine is
    assert await bus.promote_due() == 0
    assert (await bus.backlog("collectors", "sqlite")).pending == 0
    assert await bus.promote_due(now=time.time() + 31) == 1
    [d2] = await bus.fetch("collectors", "sqlite", "w1", 1, 100)
    assert d2.job.attempt == 2


async def test_dead_letter(bus: Bus) -> None:
    await bus.publish(job())
    [d] = await bus.fetch("collectors", "sqlite", "w1", 1, 100)
    await bus.dead_letter(d, "InvalidTask: cannot parse")
    [dl] = await bus.dead_letters("collectors", "sqlite")
    assert dl.reason == "InvalidTask: cannot parse" and dl.job.name == "collect"
    assert (await bus.backlog("collectors", "sqlite")).pending == 0


async def test_release_gives_job_back(bus: Bus) -> None:
    await bus.publish(job())
    [d] = await bus.fetch("collectors", "sqlite", "w1", 1, 100)
    await bus.release(d)
    [d2] = await bus.fetch("collectors", "sqlite", "w2", 1, 100)
    assert d2.job.name == "collect"


async def test_markers_and_events(bus: Bus) -> None:
    assert await bus.set_marker("t:m", "a", ttl=10) is True
    assert await bus.set_marker("t:m", "b", ttl=10) is False
    assert await bus.get_marker("t:m") == "a"
    await bus.delete_marker("t:m")
    assert await bus.get_marker("t:m") is None
    ev = events_pb2.StageEvent(step="collect", rows=5)
    await bus.emit(ev)
    [(eid, got)] = await bus.read_events("0", 10, 100)
    assert got.rows == 5
    assert await bus.read_events(eid, 10, 50) == []


async def test_streams_read_trim_and_cleanup(bus: Bus) -> None:
    key = bus.keys.data("u1", "orders", "collect")
    ids = [await bus.stream_add(key, f"e{i}".encode(), ttl=60) for i in range(5)]
    got = await bus.stream_read(key, "0", 100, 0)
    assert [d for _, d in got] == [b"e0", b"e1", b"e2", b"e3", b"e4"]
    assert await bus.stream_read(key, ids[-1], 10, 50) == []
    await bus.stream_trim(key, ids[2])
    assert await bus.stream_len(key) == 3
    await bus.hash_set(bus.keys.cursors(key), "excel", ids[2])
    assert (await bus.hash_get_all(bus.keys.cursors(key)))["excel"] == ids[2]
    await bus.set_marker(bus.keys.marker("u1", "done", "collect"))
    assert await bus.delete_report("u1") >= 3
    assert await bus.stream_len(key) == 0
    assert await bus.get_marker(bus.keys.marker("u1", "done", "collect")) is None


async def test_blocking_read_wakes_on_add(bus: Bus) -> None:
    key = bus.keys.data("u1", "orders", "collect")

    async def later() -> None:
        await asyncio.sleep(0.1)
        await bus.stream_add(key, b"x")

    t = asyncio.create_task(later())
    got = await bus.stream_read(key, "0", 10, 20_000)  # returns on the add, long before
    await t
    assert [d for _, d in got] == [b"x"]


async def test_group_reads_share_and_reclaim(bus: Bus) -> None:
    key = bus.keys.events()
    for i in range(4):
        await bus.emit(events_pb2.StageEvent(step=f"s{i}"))
    a = await bus.stream_group_read(key, "operator", "op-a", 2, 100)
    b = await bus.stream_group_read(key, "operator", "op-b", 10, 100)
    assert len(a) == 2 and len(b) == 2 and not {i for i, _ in a} & {i for i, _ in b}
    await bus.stream_group_ack(key, "operator", [i for i, _ in b])
    await asyncio.sleep(0.12)
    taken = await bus.stream_group_reclaim(key, "operator", "op-b", 100, 10)
    assert sorted(i for i, _ in taken) == sorted(i for i, _ in a)
