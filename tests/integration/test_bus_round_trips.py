"""The bus's merged operations (one round trip each on Redis), run against both buses: what a
worker does before and after a stage (`start_job`, `finish_job`) and a dataset's start and
end (`stream_begin`, `stream_end`) must mean the same as the single steps they replace."""
from __future__ import annotations

import pytest

from goreports.core.bus.base import Bus, Start
from goreports.proto import events_pb2, job_pb2

UID = "u1"


@pytest.fixture
def bus(either_bus: Bus) -> Bus:
    """Every test here runs against both buses (`either_bus`, tests/conftest.py)."""
    return either_bus


def chain() -> job_pb2.Job:
    j = job_pb2.Job(name="collect", channel="collectors", pattern="sqlite", attempt=1,
                    max_attempts=3, report=job_pb2.ReportRef(namespace="ns", name="r", uid=UID))
    j.next.CopyFrom(job_pb2.Job(name="excel", channel="generators", pattern="excel", attempt=1,
                                report=job_pb2.ReportRef(namespace="ns", name="r", uid=UID)))
    return j


def running(step: str = "collect") -> events_pb2.StageEvent:
    return events_pb2.StageEvent(step=step, state=events_pb2.STEP_STATE_RUNNING)


async def start(bus: Bus, **over: object) -> tuple[Start, str | None]:
    k = bus.keys
    args: dict[str, object] = dict(cancelled=k.cancelled(UID), done_marker=k.marker(UID, "done", "collect"),
                                   lease=k.marker(UID, "lock", "collect"), holder="w1 1-0",
                                   lease_ttl=30, event=running())
    args.update(over)
    return await bus.start_job(**args)  # type: ignore[arg-type]


async def test_start_takes_the_lease_and_emits_running(bus: Bus) -> None:
    assert await start(bus) == (Start.STARTED, None)
    assert await bus.get_marker(bus.keys.marker(UID, "lock", "collect")) == "w1 1-0"
    [(_, ev)] = await bus.read_events("0", 10, 0)
    assert ev.state == events_pb2.STEP_STATE_RUNNING
    # a second delivery of the same step finds the lease held, and emits nothing
    assert await start(bus, holder="w2 2-0", event=running("second")) == (Start.BUSY, None)
    assert len(await bus.read_events("0", 10, 0)) == 1
    # a rerun does not ask for the lease
    assert await start(bus, lease=None, done_marker=None) == (Start.STARTED, None)


async def test_start_checks_in_order_cancelled_done_lease(bus: Bus) -> None:
    k = bus.keys
    await bus.set_marker(k.marker(UID, "lock", "collect"), "someone", ttl=30)
    await bus.set_marker(k.marker(UID, "done", "collect"), ttl=30)
    assert await start(bus) == (Start.DONE, None)
    await bus.set_marker(k.cancelled(UID), "Deleted: by kubectl", ttl=30)
    assert await start(bus) == (Start.CANCELLED, "Deleted: by kubectl")
    # a failure notifier does not look at the cancelled marker
    assert await start(bus, cancelled=None) == (Start.DONE, None)
    assert await bus.read_events("0", 10, 0) == []


async def test_finish_emits_publishes_once_acks_and_drops_the_lease(bus: Bus) -> None:
    k = bus.keys
    await bus.publish(chain())
    [d] = await bus.fetch("collectors", "sqlite", "w1", 1, 100)
    lease, nxt = k.marker(UID, "lock", "collect"), k.marker(UID, "next", "collect")
    assert await start(bus, event=None) == (Start.STARTED, None)
    assert await bus.publish_once(d.job.next, nxt)  # the streaming hand-off published it early
    done = events_pb2.StageEvent(step="collect", state=events_pb2.STEP_STATE_SUCCEEDED, rows=3)
    got = await bus.finish_job(d, event=done, next_job=d.job.next, next_marker=nxt,
                               done_marker=k.marker(UID, "done", "collect"), lease=lease,
                               cancelled=k.cancelled(UID))
    assert got is None
    assert (await bus.backlog("collectors", "sqlite")).pending == 0
    assert (await bus.backlog("generators", "excel")).lag == 1  # not published twice
    assert await bus.get_marker(k.marker(UID, "done", "collect")) == "1"
    assert await bus.get_marker(lease) is None
    [(_, ev)] = await bus.read_events("0", 10, 0)
    assert ev.state == events_pb2.STEP_STATE_SUCCEEDED and ev.rows == 3


async def test_finish_reports_a_cancellation_that_came_meanwhile(bus: Bus) -> None:
    k = bus.keys
    await bus.publish(chain())
    [d] = await bus.fetch("collectors", "sqlite", "w1", 1, 100)
    await bus.set_marker(k.cancelled(UID), "Failed: excel broke", ttl=30)
    got = await bus.finish_job(d, event=None, next_job=d.job.next,
                               next_marker=k.marker(UID, "next", "collect"),
                               done_marker=k.marker(UID, "done", "collect"), lease=None,
                               cancelled=k.cancelled(UID))
    assert got == "Failed: excel broke"
    assert (await bus.backlog("generators", "excel")).lag == 1
    assert (await bus.backlog("collectors", "sqlite")).pending == 0


async def test_stream_begin_and_end_of_a_generation(bus: Bus) -> None:
    k = bus.keys
    key = k.data(UID, "orders", "collect")
    gen_key = f"{key}:gen"
    g1 = 1_795_862_376_599_955_210  # nanoseconds: above 2^53, compared exactly
    first = await bus.stream_begin(key, b"header", ttl=60, generation_key=gen_key, generation=g1,
                                   cursors_key=k.cursors(key), producer="collect")
    assert (await bus.hash_get_all(k.cursors(key)))["__producer__"] == "collect"
    assert await bus.get_marker(gen_key) == str(g1)
    ids = await bus.stream_end(key, [b"batch", b"end"], ttl=60, generation_key=gen_key,
                               generation=g1)
    assert ids is not None and len(ids) == 2
    got = await bus.stream_read(key, "0", 10, 0)
    assert [(i, d) for i, d in got] == [(first, b"header"), (ids[0], b"batch"), (ids[1], b"end")]
    # a newer generation (one nanosecond later) supersedes: the older one appends nothing
    await bus.stream_begin(key, b"header2", ttl=60, generation_key=gen_key, generation=g1 + 1,
                           cursors_key=k.cursors(key), producer="collect")
    assert await bus.stream_end(key, [b"late"], ttl=60, generation_key=gen_key,
                                generation=g1) is None
    assert [d for _, d in await bus.stream_read(key, "0", 10, 0)][-1] == b"header2"
    assert await bus.stream_end(key, [b"end2"], ttl=60, generation_key=gen_key,
                                generation=g1 + 1) is not None
