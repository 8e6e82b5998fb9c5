"""What makes a small report cheap without changing what it means: a dataset written whole
leaves the next job to the step's success, the SQLite collector connects and runs its first
query in one thread hop (and still stops that query when cancelled), and a job's heartbeat is
a timer that never renews after it is stopped."""
from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from goreports.core import values
from goreports.core.errors import PermanentError
from goreports.proto import tasks_pb2
from goreports.workers.collectors import sqlite as collector
from goreports.workers.runtime import Heartbeat
from goreports.workers.stage import StageContext

from unit.workers.stagekit import columns, drain, make_ctx, output

COLS = columns(("id", values.INTEGER), ("name", values.STRING))


def counting_publish(ctx: StageContext) -> list[int]:
    """Make ctx.publish_next record its calls."""
    calls: list[int] = []

    async def publish_next() -> None:
        calls.append(1)

    ctx.publish_next = publish_next
    return calls


def make_db(path: Path, rows: int) -> Path:
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT)")
    conn.executemany("INSERT INTO t VALUES (?, ?)", [(i, f"n{i}") for i in range(rows)])
    conn.commit()
    conn.close()
    return path


def sqlite_task(db: Path, ctx: StageContext, *queries: tuple[str, str],
                batch: int = 40) -> tasks_pb2.SqliteCollector:
    t = tasks_pb2.SqliteCollector(database=str(db), batch_rows=batch)
    for name, sql in queries:
        t.query_list.add(name=name, sql=sql, output=output(ctx.bus, name))  # type: ignore[arg-type]
    return t


# -- StageContext.write_dataset -------------------------------------------------------------------

async def test_a_dataset_smaller_than_a_batch_leaves_next_to_the_steps_success(tmp_path: Path) -> None:
    ctx = make_ctx(tmp_path, "collect", batch_rows=100)
    published = counting_publish(ctx)
    rows = [[i, f"n{i}"] for i in range(10)]
    count, checksum = await ctx.write_dataset(output(ctx.bus, "items", ["generate"]), COLS, rows)
    assert (count, published) == (10, [])
    assert checksum == values.checksum(tuple(r) for r in rows)
    cols, got = await drain(ctx.bus, "items")  # type: ignore[arg-type]
    assert [c.name for c in cols] == ["id", "name"] and got == rows


async def test_a_dataset_of_a_batch_or_more_publishes_its_reader_first(tmp_path: Path) -> None:
    """Batches leave before the end marker, and a writer waits for its first reader once a
    window is full: that reader must have been published, or the chain would deadlock."""
    ctx = make_ctx(tmp_path, "collect", batch_rows=10, window_batches=1)
    out = output(ctx.bus, "items", ["generate"])  # type: ignore[arg-type]
    entries_when_published: list[int] = []

    async def publish_next() -> None:
        entries_when_published.append(await ctx.bus.stream_len(out.dataset.stream))

    ctx.publish_next = publish_next
    # no reader runs here: the one published is marked done so that the writer can go on
    await ctx.bus.hash_set(ctx.bus.keys.cursors(out.dataset.stream), "generate", "done")
    rows = [[i, f"n{i}"] for i in range(25)]
    count, _ = await ctx.write_dataset(out, COLS, rows)
    assert count == 25
    assert entries_when_published == [1]  # right after the header, before any batch
    assert (await drain(ctx.bus, "items"))[1] == rows  # type: ignore[arg-type]


# -- the SQLite collector -------------------------------------------------------------------------

async def test_a_query_that_fits_its_first_fetch_publishes_nothing_itself(tmp_path: Path) -> None:
    db = make_db(tmp_path / "t.db", 30)
    ctx = make_ctx(tmp_path, "collect", batch_rows=100)
    published = counting_publish(ctx)
    result = await collector.collect_sqlite(
        sqlite_task(db, ctx, ("items", "SELECT id, name FROM t ORDER BY id")), ctx)
    assert result.rows == 30 and published == []
    assert (await drain(ctx.bus, "items"))[1] == [[i, f"n{i}"] for i in range(30)]  # type: ignore[arg-type]


async def test_a_query_larger_than_its_first_fetch_streams_and_publishes_at_once(
        tmp_path: Path) -> None:
    db = make_db(tmp_path / "t.db", 100)
    ctx = make_ctx(tmp_path, "collect", batch_rows=100)
    published = counting_publish(ctx)
    result = await collector.collect_sqlite(
        sqlite_task(db, ctx, ("small", "SELECT id, name FROM t WHERE id < 5"),
                    ("big", "SELECT id, name FROM t ORDER BY id"), batch=40), ctx)
    assert result.rows == 105
    assert len(published) == 1  # by the streaming dataset, at its start
    assert len((await drain(ctx.bus, "big"))[1]) == 100  # type: ignore[arg-type]
    assert len((await drain(ctx.bus, "small"))[1]) == 5  # type: ignore[arg-type]


async def test_an_unreadable_database_is_reported_before_an_invalid_first_query(
        tmp_path: Path) -> None:
    bad = tmp_path / "not-a.db"
    bad.write_bytes(b"this is not a database file" * 100)
    ctx = make_ctx(tmp_path, "collect")
    t = sqlite_task(bad, ctx, ("q", "SELECT 1"))
    t.query_list[0].output.dataset.stream = ""  # invalid as well
    with pytest.raises(PermanentError) as err:
        await collector.collect_sqlite(t, ctx)
    assert err.value.reason == "DatabaseUnreadable"
    db = make_db(tmp_path / "t.db", 3)
    t = sqlite_task(db, ctx, ("q", "SELECT 1"))
    t.query_list[0].output.dataset.stream = ""
    with pytest.raises(PermanentError) as err:
        await collector.collect_sqlite(t, ctx)
    assert err.value.reason == "InvalidTask"


SLOW = ("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 2000000000) "
        "SELECT max(x) FROM c")


async def test_cancelling_while_the_first_query_runs_interrupts_and_closes_it(tmp_path: Path) -> None:
    db = make_db(tmp_path / "t.db", 3)
    opening = collector._Opening()
    hop = asyncio.ensure_future(asyncio.to_thread(
        collector._open, db, (SLOW, {}, 10), opening))
    for _ in range(200):  # until the thread has connected and started the query
        if opening.conn is not None:
            break
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.1)
    opening.cancel()
    got = await asyncio.wait_for(hop, timeout=10)  # the query alone would run for minutes
    assert got is None
    with pytest.raises(sqlite3.ProgrammingError):  # closed by the thread itself
        opening.conn.execute("SELECT 1")  # type: ignore[union-attr]


async def test_a_stage_cancelled_in_its_first_query_stops_promptly(tmp_path: Path) -> None:
    db = make_db(tmp_path / "t.db", 3)
    ctx = make_ctx(tmp_path, "collect")
    run = asyncio.ensure_future(collector.collect_sqlite(sqlite_task(db, ctx, ("q", SLOW)), ctx))
    await asyncio.sleep(0.3)
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run
    # the default executor's threads are free again: a new hop runs at once
    assert await asyncio.wait_for(asyncio.to_thread(lambda: 42), timeout=10) == 42


# -- Heartbeat ------------------------------------------------------------------------------------

async def test_heartbeat_beats_every_interval_until_stopped() -> None:
    beats: list[float] = []

    async def beat() -> None:
        beats.append(asyncio.get_running_loop().time())

    hb = Heartbeat(beat, 0.02)
    await asyncio.sleep(0.15)
    await hb.stop(timeout=1)
    n = len(beats)
    assert n >= 3
    await asyncio.sleep(0.1)
    assert len(beats) == n  # never again once stopped


async def test_a_short_job_never_beats() -> None:
    beats: list[Any] = []

    async def beat() -> None:
        beats.append(1)

    hb = Heartbeat(beat, 0.2)
    await asyncio.sleep(0.01)
    await hb.stop(timeout=1)
    await asyncio.sleep(0.3)
    assert beats == []


async def test_a_beat_that_swallows_its_cancellation_does_not_hang_stop() -> None:
    """A client library may lose a cancellation: stop waits for the running beat only up to its
    timeout, and that beat does not schedule another one."""
    started, finished = asyncio.Event(), asyncio.Event()
    calls = 0

    async def beat() -> None:
        nonlocal calls
        calls += 1
        started.set()
        try:
            await asyncio.sleep(0.5)
        except asyncio.CancelledError:
            await asyncio.sleep(0.5)  # swallowed
        finished.set()

    hb = Heartbeat(beat, 0.01)
    await asyncio.wait_for(started.wait(), timeout=5)
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    await hb.stop(timeout=0.1)
    assert loop.time() - t0 < 0.4  # did not wait for the swallowed cancellation
    await asyncio.wait_for(finished.wait(), timeout=5)
    await asyncio.sleep(0.1)
    assert calls == 1
