"""The MySQL collector's result cache over the in-process bus: write, replay, first complete entry
wins, broken entries are misses, size cap, and what the digest depends on."""
from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from goreports.core import values
from goreports.core.bus.memory import MemoryBus
from goreports.workers.collectors import _cache

from unit.workers.stagekit import columns

COLS = columns(("id", values.INTEGER), ("amount", values.DECIMAL), ("day", values.DATE))
ROWS = [[i, Decimal(f"{i}.50"), dt.date(2024, 1, 1 + i % 28)] for i in range(250)]


def digest(**over: object) -> str:
    base: dict[str, object] = dict(instance="sales", host="db", port=3306, database="shop",
                                   user="reader", sql="SELECT 1", params={"a": 1, "b": "x"})
    base.update(over)
    return _cache.digest(**base)  # type: ignore[arg-type]


def test_digest_covers_what_decides_the_rows() -> None:
    d = digest()
    assert d == digest(params={"b": "x", "a": 1})  # order of parameters does not matter
    assert d == digest(host="DB")
    for change in ({"instance": "other"}, {"host": "db2"}, {"port": 3307}, {"database": "x"},
                   {"user": "admin"}, {"sql": "SELECT 2"}, {"params": {"a": "1", "b": "x"}},
                   {"params": {"a": 1}}):
        assert digest(**change) != d, change


async def fill(bus: MemoryBus, pointer: str, rows: list[list[object]], **kw: object
               ) -> _cache.CacheWriter:
    w = _cache.CacheWriter(bus, pointer, ttl=60, dataset="orders", **kw)  # type: ignore[arg-type]
    await w.start(COLS)
    for i in range(0, len(rows), 100):
        await w.add(rows[i:i + 100])
    w.committed = await w.commit(len(rows), values.checksum(rows))  # type: ignore[attr-defined]
    return w


async def replay(bus: MemoryBus, pointer: str) -> tuple[list[str], list[list[object]]] | None:
    cached = await _cache.open_cached(bus, pointer)
    if cached is None:
        return None
    return [c.name for c in cached.columns], [r async for b in cached.batches() for r in b]


async def test_miss_then_hit() -> None:
    bus = MemoryBus()
    pointer = bus.keys.cache(digest())
    assert await replay(bus, pointer) is None
    w = await fill(bus, pointer, ROWS)
    assert w.committed  # type: ignore[attr-defined]
    assert await replay(bus, pointer) == (["id", "amount", "day"], ROWS)


async def test_first_complete_entry_wins() -> None:
    bus = MemoryBus()
    pointer = bus.keys.cache(digest())
    first = await fill(bus, pointer, ROWS)
    second = await fill(bus, pointer, ROWS[:10])
    assert first.committed and not second.committed  # type: ignore[attr-defined]
    assert await bus.stream_len(second.key) == 0  # the loser's rows are dropped
    got = await replay(bus, pointer)
    assert got is not None and got[1] == ROWS


async def test_incomplete_entry_is_never_committed() -> None:
    bus = MemoryBus()
    pointer = bus.keys.cache(digest())
    w = _cache.CacheWriter(bus, pointer, ttl=60, dataset="orders")
    await w.start(COLS)
    await w.add(ROWS[:50])  # the run dies here: no end mark, no pointer
    assert await bus.get_marker(pointer) is None
    assert await replay(bus, pointer) is None


async def test_broken_entry_is_dropped() -> None:
    bus = MemoryBus()
    pointer = bus.keys.cache(digest())
    w = await fill(bus, pointer, ROWS)
    # the stream lost its tail (eviction): the end mark is gone
    entries = await bus.stream_read(w.key, "0", 1000, 0)
    await bus.stream_trim(w.key, "0")
    bus._streams[w.key].entries = entries[:-1]  # type: ignore[attr-defined]
    cached = await _cache.open_cached(bus, pointer)
    assert cached is not None
    with pytest.raises(_cache.CacheBroken, match="before its end mark"):
        [r async for r in cached.batches()]
    assert await bus.get_marker(pointer) is None  # the next run reads the database
    # a pointer to a stream that is gone entirely is a miss and is dropped
    await bus.set_marker(pointer, "nothing-here", ttl=60)
    assert await _cache.open_cached(bus, pointer) is None
    assert await bus.get_marker(pointer) is None


async def test_checksum_mismatch_is_broken() -> None:
    bus = MemoryBus()
    pointer = bus.keys.cache(digest())
    w = _cache.CacheWriter(bus, pointer, ttl=60, dataset="orders")
    await w.start(COLS)
    await w.add(ROWS)
    assert await w.commit(len(ROWS), "0" * 64)
    cached = await _cache.open_cached(bus, pointer)
    assert cached is not None
    with pytest.raises(_cache.CacheBroken, match="do not match"):
        [r async for r in cached.batches()]


async def test_results_over_the_cap_are_not_cached() -> None:
    bus = MemoryBus()
    pointer = bus.keys.cache(digest())
    w = await fill(bus, pointer, ROWS, max_bytes=2000)
    assert w.given_up and not w.committed  # type: ignore[attr-defined]
    assert await replay(bus, pointer) is None
    assert await bus.stream_len(w.key) == 0
