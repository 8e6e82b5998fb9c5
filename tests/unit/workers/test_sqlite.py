"""The SQLite collector: typing, parameters, read-only refusal, and errors an operator can act
on."""
from __future__ import annotations

import datetime as dt
import sqlite3
from decimal import Decimal
from pathlib import Path

import pytest
from google.protobuf import struct_pb2

from goreports.core import values
from goreports.core.bus.memory import MemoryBus
from goreports.core.errors import PermanentError
from goreports.proto import tasks_pb2
from goreports.workers.collectors import sqlite as collector

from unit.workers.stagekit import drain, make_ctx, output


def make_db(path: Path, rows: int = 250) -> Path:
    conn = sqlite3.connect(path)
    conn.executescript("""
        CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, amount TEXT, price REAL, day TEXT,
                        ts TEXT, mixed, blob BLOB);
    """)
    conn.executemany("INSERT INTO t VALUES (?, ?, ?, ?, ?, ?, ?, ?)", [
        (i, None if i % 7 == 0 else f"name {i}", f"{i}.{i % 100:02d}", i / 4,
         f"2024-01-{1 + i % 28:02d}", f"2024-02-03 04:05:{i % 60:02d}",
         i if i % 2 else f"text {i}", bytes([i % 256]))
        for i in range(1, rows + 1)])
    conn.commit()
    conn.close()
    return path


def task(db: Path, bus: MemoryBus, *queries: tuple[str, str],
         **params: object) -> tasks_pb2.SqliteCollector:
    t = tasks_pb2.SqliteCollector(database=str(db), batch_rows=40)
    for name, sql in queries:
        q = t.query_list.add(name=name, sql=sql, output=output(bus, name))
        for k, v in params.items():
            value = struct_pb2.Value()
            if isinstance(v, str):
                value.string_value = v
            else:
                value.number_value = float(v)  # type: ignore[arg-type]
            q.parameters.add(name=k, value=value)
    return t


def test_split_hint() -> None:
    assert collector.split_hint("total [decimal]") == ("total", values.DECIMAL)
    assert collector.split_hint("d [DATE]") == ("d", values.DATE)
    assert collector.split_hint("price [EUR]") == ("price [EUR]", None)
    assert collector.split_hint("plain") == ("plain", None)


def test_infer_column() -> None:
    assert collector.infer_column([None, 1, 2])[0] == values.INTEGER
    assert collector.infer_column([1, 2.5])[0] == values.FLOAT
    assert collector.infer_column(["2024-01-01", None])[0] == values.DATE
    assert collector.infer_column(["2024-01-01 10:00:00", "2024-01-01T10:00"])[0] == values.DATETIME
    assert collector.infer_column(["2024-01-01", "soon"])[0] == values.STRING
    assert collector.infer_column(["2024-02-30"])[0] == values.STRING  # not a real date
    assert collector.infer_column([None, None])[0] == values.STRING
    kind, conv = collector.infer_column([1, "a"])
    assert kind == values.STRING and conv is not None and conv(1) == "1"


async def test_collects_typed_rows_in_batches(tmp_path: Path) -> None:
    db = make_db(tmp_path / "t.db")
    ctx = make_ctx(tmp_path, "collect")
    sql = ('SELECT id, name, amount AS "amount [decimal]", price, day, ts, mixed, blob '
           'FROM t WHERE id >= :low ORDER BY id')
    result = await collector.collect_sqlite(task(db, ctx.bus, ("rows", sql), low=3), ctx)
    assert result.rows == 248
    cols, rows = await drain(ctx.bus, "rows")
    assert [(c.name, c.type) for c in cols] == [
        ("id", values.INTEGER), ("name", values.STRING), ("amount", values.DECIMAL),
        ("price", values.FLOAT), ("day", values.DATE), ("ts", values.DATETIME),
        ("mixed", values.STRING), ("blob", values.BYTES)]
    assert rows[0] == [3, "name 3", Decimal("3.03"), 0.75, dt.date(2024, 1, 4),
                       dt.datetime(2024, 2, 3, 4, 5, 3), "3", b"\x03"]
    assert rows[4][1] is None  # id 7


async def test_empty_result_still_has_columns(tmp_path: Path) -> None:
    db = make_db(tmp_path / "t.db")
    ctx = make_ctx(tmp_path, "collect")
    result = await collector.collect_sqlite(
        task(db, ctx.bus, ("none", 'SELECT id, day AS "day [date]" FROM t WHERE 0')), ctx)
    assert result.rows == 0
    cols, rows = await drain(ctx.bus, "none")
    assert [(c.name, c.type) for c in cols] == [("id", values.STRING), ("day", values.DATE)]
    assert rows == []


@pytest.mark.parametrize("sql", ["DELETE FROM t", "INSERT INTO t (id) VALUES (99999)",
                                 "ATTACH DATABASE 'x.db' AS x", "PRAGMA journal_mode = WAL",
                                 "CREATE TABLE u (a)"])
async def test_refuses_anything_but_reading(tmp_path: Path, sql: str) -> None:
    db = make_db(tmp_path / "t.db")
    ctx = make_ctx(tmp_path, "collect")
    with pytest.raises(PermanentError) as err:
        await collector.collect_sqlite(task(db, ctx.bus, ("bad", sql)), ctx)
    assert "'bad'" in str(err.value)
    assert sqlite3.connect(db).execute("SELECT count(*) FROM t").fetchone() == (250,)
    assert not (tmp_path / "x.db").exists()


async def test_missing_database(tmp_path: Path) -> None:
    ctx = make_ctx(tmp_path, "collect")
    with pytest.raises(PermanentError, match="not found") as err:
        await collector.collect_sqlite(task(tmp_path / "nope.db", ctx.bus, ("q", "SELECT 1")), ctx)
    assert err.value.reason == "DatabaseNotFound"


async def test_query_errors_name_the_query(tmp_path: Path) -> None:
    db = make_db(tmp_path / "t.db")
    ctx = make_ctx(tmp_path, "collect")
    with pytest.raises(PermanentError, match="'orders'.*no such table"):
        await collector.collect_sqlite(task(db, ctx.bus, ("orders", "SELECT * FROM nope")), ctx)
    with pytest.raises(PermanentError, match="more than once"):
        await collector.collect_sqlite(task(db, ctx.bus, ("dup", "SELECT id, id FROM t")), ctx)
    with pytest.raises(PermanentError, match="'p'"):  # a parameter the task does not bind
        await collector.collect_sqlite(task(db, ctx.bus, ("p", "SELECT :x")), ctx)
