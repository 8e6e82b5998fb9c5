"""The aggregator's spool: order kept across memory and disk, exact types, bounded memory."""
from __future__ import annotations

import asyncio
import datetime as dt
from decimal import Decimal
from pathlib import Path

from goreports.core import values
from goreports.workers.aggregators._spool import Spool


def batch(i: int) -> list[list[object]]:
    return [[i, Decimal(f"{i}.10"), dt.date(2024, 1, 1 + i % 28), None, f"r{i}"]]


async def test_order_is_kept_across_memory_and_file(tmp_path: Path) -> None:
    s = Spool(tmp_path / "s.bin", memory_batches=2)
    for i in range(5):
        await s.put(batch(i))
    assert s.spilled_total == 3 and (tmp_path / "s.bin").stat().st_size > 0
    got = [await s.get() for _ in range(3)]  # 0, 1 from memory, 2 from the file
    for i in range(5, 8):
        await s.put(batch(i))  # the file still has unread batches: these go to the file too
    s.close()
    got += [b async for b in s.batches()]
    assert got == [batch(i) for i in range(8)]
    assert (tmp_path / "s.bin").stat().st_size == 0  # emptied once the consumer caught up
    assert await s.get() is None
    s.cleanup()
    assert not (tmp_path / "s.bin").exists()


async def test_cells_keep_their_exact_types(tmp_path: Path) -> None:
    s = Spool(tmp_path / "s.bin", memory_batches=0)  # everything through the file
    rows = [[Decimal("0.10"), 1.5, True, b"\x00\x01", values.JsonText('{"a":1}'),
             dt.datetime(2024, 1, 2, 3, 4, 5), "", None]]
    await s.put(rows)
    s.close()
    got = await s.get()
    assert got == rows and str(got[0][0]) == "0.10"  # type: ignore[index]
    assert isinstance(got[0][4], values.JsonText)  # type: ignore[index]
    s.cleanup()


async def test_consumer_waits_for_producer(tmp_path: Path) -> None:
    s = Spool(tmp_path / "s.bin", memory_batches=1)
    consumer = asyncio.create_task(s.header())
    await asyncio.sleep(0)
    assert not consumer.done()
    s.set_columns([])
    assert await consumer == []

    async def produce() -> None:
        for i in range(50):
            await s.put(batch(i))
            if i % 7 == 0:
                await asyncio.sleep(0)
        s.close()

    async def consume() -> list[list[list[object]]]:
        out = []
        async for b in s.batches():
            out.append(b)
            await asyncio.sleep(0)
        return out

    _, got = await asyncio.gather(produce(), consume())
    assert got == [batch(i) for i in range(50)]
    s.cleanup()
