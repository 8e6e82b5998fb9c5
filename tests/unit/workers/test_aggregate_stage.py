"""The `aggregate` stage on the in-process bus: shared inputs read once, no deadlock with a
producer that throttles, union/join/group-by outputs, and errors that name the operation."""
from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path
from typing import Any, Sequence

import pytest

from goreports.core import values
from goreports.core.bus.memory import MemoryBus
from goreports.core.datasets import DatasetReader, DatasetWriter
from goreports.core.errors import PermanentError
from goreports.proto import dataset_pb2, tasks_pb2
from goreports.workers.aggregators import _ops
from goreports.workers.aggregators.aggregate import aggregate

from unit.workers.stagekit import PRODUCER, columns, make_ctx, output, ref

ORDERS = columns(("id", values.INTEGER), ("customer_id", values.INTEGER),
                 ("amount", values.DECIMAL))
CUSTOMERS = columns(("customer_id", values.INTEGER), ("region", values.STRING))


def orders(n: int, offset: int = 0) -> list[list[Any]]:
    return [[offset + i, i % 7, Decimal(i % 50) + Decimal("0.25")] for i in range(n)]


CUSTOMER_ROWS = [[c, ["EU", "US", "APAC"][c % 3]] for c in range(6)]  # customer 6 is unknown


async def produce(bus: MemoryBus, datasets: Sequence[tuple[str, list[dataset_pb2.Column],
                                                            list[list[Any]]]],
                  readers: list[str], *, batch_rows: int = 10, window: int = 4) -> None:
    """A collector-like producer: datasets one after the other, throttled on its readers."""
    for name, cols, rows in datasets:
        w = DatasetWriter(bus, ref(bus, name).stream, dataset=name, step=PRODUCER,
                          readers=readers, columns=cols, batch_rows=batch_rows,
                          window_batches=window)
        await w.start()
        for start in range(0, len(rows), 7):
            await w.write(rows[start:start + 7])
        await w.close()


async def read(bus: MemoryBus, name: str) -> tuple[list[str], list[list[Any]]]:
    r = ref(bus, name, "agg")
    rd = DatasetReader(bus, r.stream, dataset=name, reader="check", wait_timeout=5)
    cols = await rd.open()
    return [c.name for c in cols], [row async for row in rd.rows_iter()]


def agg_fn(function: str, column: str, name: str) -> tasks_pb2.AggregateFunction:
    a = tasks_pb2.AggregateFunction(column=column, function=function)
    setattr(a, "as", name)
    return a


def task_for(bus: MemoryBus) -> tasks_pb2.Aggregator:
    t = tasks_pb2.Aggregator()
    op = t.operations.add(output=output(bus, "with_region", producer="agg"))
    op.join.left.CopyFrom(ref(bus, "orders"))
    op.join.right.CopyFrom(ref(bus, "customers"))
    op.join.keys.append("customer_id")
    op.join.type = "left"
    op = t.operations.add(output=output(bus, "by_customer", producer="agg"))
    op.group_by.input.CopyFrom(ref(bus, "orders"))
    op.group_by.keys.append("customer_id")
    op.group_by.aggregates.extend([agg_fn("count", "", "n"), agg_fn("sum", "amount", "total")])
    op = t.operations.add(output=output(bus, "all_orders", producer="agg"))
    op.union.inputs.extend([ref(bus, "orders"), ref(bus, "refunds")])
    return t


async def test_throttled_producer_writing_left_before_right_does_not_deadlock(
        tmp_path: Path) -> None:
    """The producer writes orders (60 batches, window 4) before customers; the join needs
    customers first. The stage reads both at once and spools orders meanwhile."""
    ctx = make_ctx(tmp_path, "agg", batch_rows=25)
    bus = ctx.bus
    order_rows, refund_rows = orders(600), orders(30, offset=10_000)
    producer = produce(bus, [("orders", ORDERS, order_rows), ("refunds", ORDERS, refund_rows),
                             ("customers", CUSTOMERS, CUSTOMER_ROWS)], readers=["agg"])
    _, result = await asyncio.wait_for(asyncio.gather(producer, aggregate(task_for(bus), ctx)),
                                       30)
    assert result.rows == 600 + 7 + 630
    assert "with_region 600" in result.message and "by_customer 7" in result.message

    names, rows = await read(bus, "with_region")
    assert names == ["id", "customer_id", "amount", "region"]
    regions = {c: r for c, r in CUSTOMER_ROWS}
    assert rows == [o + [regions.get(o[1])] for o in order_rows]  # left join keeps order

    names, rows = await read(bus, "by_customer")
    assert names == ["customer_id", "n", "total"]
    expected: dict[int, list[Any]] = {}
    for _, c, amount in order_rows:
        e = expected.setdefault(c, [0, Decimal(0)])
        e[0] += 1
        e[1] += amount
    assert {r[0]: r[1:] for r in rows} == expected

    names, rows = await read(bus, "all_orders")
    assert rows == order_rows + refund_rows

    cursors = await bus.hash_get_all(bus.keys.cursors(ref(bus, "orders").stream))
    assert cursors["agg"] == "done"  # one reader for three uses of orders
    assert not list((tmp_path / "work" / "agg" / "spool").glob("*.bin"))  # spools removed


async def test_outputs_can_be_read_in_any_order(tmp_path: Path) -> None:
    """A later step reading the outputs one after the other, last first, still finishes."""
    ctx = make_ctx(tmp_path, "agg", batch_rows=10, window_batches=2)
    bus = ctx.bus
    t = task_for(bus)
    for op in t.operations:
        op.output.readers.append("check")
    await produce(bus, [("orders", ORDERS, orders(300)), ("refunds", ORDERS, orders(40)),
                        ("customers", CUSTOMERS, CUSTOMER_ROWS)], readers=[])

    async def later_step() -> list[int]:
        return [len((await read(bus, n))[1]) for n in ("all_orders", "by_customer",
                                                       "with_region")]
    _, counts = await asyncio.wait_for(asyncio.gather(aggregate(t, ctx), later_step()), 30)
    assert counts == [340, 7, 300]


async def test_inner_join_self_join_and_passthrough(tmp_path: Path) -> None:
    ctx = make_ctx(tmp_path, "agg")
    bus = ctx.bus
    await produce(bus, [("customers", CUSTOMERS, CUSTOMER_ROWS)], readers=[])
    t = tasks_pb2.Aggregator()
    op = t.operations.add(output=output(bus, "pairs", producer="agg"))
    op.join.left.CopyFrom(ref(bus, "customers"))
    op.join.right.CopyFrom(ref(bus, "customers"))
    op.join.keys.append("region")
    t.passthrough.append(ref(bus, "customers"))
    t.passthrough_outputs.append(output(bus, "customers", producer="agg"))
    result = await aggregate(t, ctx)
    names, rows = await read(bus, "pairs")
    assert names == ["customer_id", "region", "right_customer_id"]
    assert len(rows) == 12  # 3 regions x 2 x 2
    assert (await read(bus, "customers"))[1] == CUSTOMER_ROWS
    assert result.rows == 18


async def test_errors_name_the_operation(tmp_path: Path) -> None:
    ctx = make_ctx(tmp_path, "agg")
    bus = ctx.bus
    await produce(bus, [("orders", ORDERS, orders(20)), ("refunds", ORDERS, orders(5)),
                        ("customers", CUSTOMERS, CUSTOMER_ROWS)], readers=[])
    t = task_for(bus)
    t.operations[1].group_by.keys[0] = "country"
    with pytest.raises(PermanentError) as e:
        await aggregate(t, ctx)
    assert e.value.reason == "UnknownColumn"
    assert "operation [1] group_by -> 'by_customer'" in str(e.value)
    assert "'country'" in str(e.value) and "'orders'" in str(e.value)


async def test_join_too_large(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_ops, "MAX_JOIN_RIGHT_ROWS", 5)
    ctx = make_ctx(tmp_path, "agg")
    bus = ctx.bus
    await produce(bus, [("orders", ORDERS, orders(20)), ("refunds", ORDERS, orders(5)),
                        ("customers", CUSTOMERS, CUSTOMER_ROWS)], readers=[])
    with pytest.raises(PermanentError) as e:
        await aggregate(task_for(bus), ctx)
    assert e.value.reason == "JoinTooLarge" and "'customers'" in str(e.value)


async def test_invalid_tasks(tmp_path: Path) -> None:
    ctx = make_ctx(tmp_path, "agg")
    with pytest.raises(PermanentError, match="no operations"):
        await aggregate(tasks_pb2.Aggregator(), ctx)
    t = tasks_pb2.Aggregator()
    t.operations.add(output=output(ctx.bus, "x", producer="agg"))
    with pytest.raises(PermanentError, match="no union, join or groupBy"):
        await aggregate(t, ctx)
    t = task_for(ctx.bus)
    t.operations[0].join.right.stream = ""
    with pytest.raises(PermanentError, match="'customers' has no stream"):
        await aggregate(t, ctx)
