"""The `mysql` collector against a real MariaDB (and a real Redis for the bus and the cache):
types, keyset pagination, the cache, read-only refusal, errors, the example report, and 1,000,000
rows through collector and generator worker processes into an .xlsx."""
from __future__ import annotations

import asyncio
import datetime as dt
import socket
import time
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any, Iterator

import openpyxl
import psutil
import pymysql
import pytest
import yaml
from google.protobuf import struct_pb2

from goreports.core import compiler, schema, values
from goreports.core.bus.redis import RedisBus
from goreports.core.errors import PermanentError, TemporaryError
from goreports.core.settings import Settings
from goreports.proto import events_pb2, tasks_pb2
from goreports.workers.collectors import mysql as collector
from goreports.workers.stage import StageContext
from support.mariadb import MariaDB, mariadb  # noqa: F401  (session fixture)
from support.workers import start_worker, stop
from unit.workers.stagekit import drain, make_ctx, output

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
DB = "shop"
CRED = "shop-db"
ORDERS = 20_000


# -- fixtures -------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def shop(mariadb: MariaDB) -> MariaDB:  # noqa: F811
    """Database `shop`: `orders` (20,000 rows, generated in SQL), `types` (one row per case)."""
    mariadb.create_database(DB)
    mariadb.execute_sql(f"""
        CREATE TABLE orders (
          id INT PRIMARY KEY, customer INT NOT NULL, code VARCHAR(12) NOT NULL,
          amount DECIMAL(12,2) NOT NULL, day DATE NOT NULL, created DATETIME NOT NULL,
          note VARCHAR(40) NULL, grp INT NOT NULL);
        INSERT INTO orders
          SELECT seq, seq % 97, CONCAT(ELT(seq % 3 + 1, 'A', 'B', 'C'), '-', seq % 1000),
                 (seq * 7919 % 1000000) / 100, '2023-01-01' + INTERVAL (seq % 700) DAY,
                 '2023-01-01 00:00:00' + INTERVAL (seq * 53) SECOND,
                 IF(seq % 4 = 0, NULL, CONCAT('note ', seq % 13)), seq % 10
          FROM seq_1_to_{ORDERS};
        CREATE TABLE types (
          id INT PRIMARY KEY, dec_exact DECIMAL(30,10), d DATE, dtm DATETIME(6), ts TIMESTAMP NULL,
          tm TIME(6), yr YEAR, flag BIT(1), bits BIT(12), doc JSON, blb BLOB, vb VARBINARY(8),
          txt TEXT, en ENUM('red','green'), st SET('a','b'), fl FLOAT, dbl DOUBLE,
          big BIGINT UNSIGNED, tiny TINYINT, nothing VARCHAR(5));
        INSERT INTO types VALUES
          (1, 12345678901234567890.0123456789, '2024-02-29', '2024-02-29 23:59:58.123456',
           '2024-03-01 12:00:00', '-838:59:59.000000', 2024, b'1', b'101010101010',
           '{{"a": [1, 2], "b": "x"}}', x'00ff10', x'cafe', 'héllo wörld', 'green', 'a,b',
           1.5, 2.25, 18446744073709551615, -128, NULL),
          (2, NULL, NULL, NULL, NULL, '12:34:56', NULL, b'0', NULL, NULL, NULL, NULL, NULL, NULL,
           NULL, NULL, NULL, NULL, NULL, NULL);
        CREATE TABLE dupes (k INT NOT NULL, v INT NOT NULL);
        INSERT INTO dupes SELECT seq, seq FROM seq_1_to_100;
        INSERT INTO dupes VALUES (50, 1000);
        CREATE FUNCTION wipe() RETURNS INT MODIFIES SQL DATA BEGIN DELETE FROM orders; RETURN 1; END;
    """, db=DB)
    return mariadb


def context(tmp_path: Path, bus: RedisBus, db: MariaDB, *, cred: str = CRED,
            **cred_kw: Any) -> StageContext:
    ctx = make_ctx(tmp_path, "collect", bus=bus)  # type: ignore[arg-type]
    db.write_credentials(ctx.settings.credentials_dir, cred, **cred_kw)
    return ctx


def task(bus: RedisBus, *queries: tasks_pb2.Query, **kw: Any) -> tasks_pb2.MysqlCollector:
    kw = {"instance": "shop", "db_name": DB, "credentials_id": CRED, "batch_rows": 300, **kw}
    t = tasks_pb2.MysqlCollector(**kw)
    for q in queries:
        q.output.CopyFrom(output(bus, q.name))  # type: ignore[arg-type]
        t.query_list.append(q)
    return t


def query(name: str, sql: str, **kw: Any) -> tasks_pb2.Query:
    params = kw.pop("params", {})
    q = tasks_pb2.Query(name=name, sql=sql, **kw)
    for k, v in params.items():
        value = struct_pb2.Value()
        if isinstance(v, str):
            value.string_value = v
        else:
            value.number_value = v
        q.parameters.add(name=k, value=value)
    return q


def source_rows(db: MariaDB, sql: str, args: Any = None) -> list[tuple[Any, ...]]:
    conn = db.connect(DB)
    try:
        with conn.cursor() as cur:
            cur.execute(sql, args)
            return list(cur.fetchall())
    finally:
        conn.close()


def table_checksum(db: MariaDB) -> tuple[int, str]:
    rows = source_rows(db, "SELECT * FROM orders ORDER BY id")
    return len(rows), values.checksum(rows)


# -- types ----------------------------------------------------------------------------------------

async def test_types_round_trip(tmp_path: Path, bus: RedisBus, shop: MariaDB) -> None:
    ctx = context(tmp_path, bus, shop)
    sql = ("SELECT id, dec_exact, d, dtm, ts, tm, yr, flag, bits, doc AS `doc [json]`, blb, vb, "
           "txt, en, st, fl, dbl, big, tiny, nothing, NULL AS nil FROM types ORDER BY id")
    result = await collector.collect_mysql(task(bus, query("types", sql)), ctx)
    assert result.rows == 2
    cols, rows = await drain(bus, "types")  # type: ignore[arg-type]
    V = values
    assert [(c.name, c.type) for c in cols] == [
        ("id", V.INTEGER), ("dec_exact", V.DECIMAL), ("d", V.DATE), ("dtm", V.DATETIME),
        ("ts", V.DATETIME), ("tm", V.STRING), ("yr", V.INTEGER), ("flag", V.BOOLEAN),
        ("bits", V.INTEGER), ("doc", V.JSON), ("blb", V.BYTES), ("vb", V.BYTES),
        ("txt", V.STRING), ("en", V.STRING), ("st", V.STRING), ("fl", V.FLOAT),
        ("dbl", V.FLOAT), ("big", V.INTEGER), ("tiny", V.INTEGER), ("nothing", V.STRING),
        ("nil", V.STRING)]
    first, second = rows
    assert first == [
        1, Decimal("12345678901234567890.0123456789"), dt.date(2024, 2, 29),
        dt.datetime(2024, 2, 29, 23, 59, 58, 123456), dt.datetime(2024, 3, 1, 12, 0),
        "-838:59:59", 2024, True, 0b101010101010, '{"a": [1, 2], "b": "x"}', b"\x00\xff\x10",
        b"\xca\xfe", "héllo wörld", "green", "a,b", 1.5, 2.25, Decimal(2 ** 64 - 1), -128, None,
        None]
    assert isinstance(first[1], Decimal) and isinstance(first[9], values.JsonText)
    assert second[0] == 2 and second[5] == "12:34:56" and second[7] is False
    assert all(v is None for i, v in enumerate(second) if i not in (0, 5, 7))


# -- pagination -----------------------------------------------------------------------------------

async def test_paginated_and_unpaginated_runs_agree(tmp_path: Path, bus: RedisBus,
                                                    shop: MariaDB) -> None:
    ctx = context(tmp_path, bus, shop)
    sql = "SELECT id, customer, code, amount, day, created, note FROM orders"
    like = sql + " WHERE code LIKE 'A%'"  # a literal % in a query without parameters
    params = sql + " WHERE grp < %(grp)s AND code LIKE 'B%%'"
    before = shop.user_statistics(shop.user)["SELECT_COMMANDS"]
    t = task(bus,
             query("plain", sql + " ORDER BY id"),
             query("paged", sql, use_pagination=True, pagination_key="id", page_size=777),
             query("like_plain", like + " ORDER BY id"),
             query("like_paged", like, use_pagination=True, pagination_key="id", page_size=500),
             query("param_plain", params + " ORDER BY id", params={"grp": 5}),
             query("param_paged", params, use_pagination=True, pagination_key="id",
                   page_size=1000, params={"grp": 5}))
    await collector.collect_mysql(t, ctx)
    selects = shop.user_statistics(shop.user)["SELECT_COMMANDS"] - before

    source = source_rows(shop, sql + " ORDER BY id")
    assert len(source) == ORDERS
    _, plain = await drain(bus, "plain")  # type: ignore[arg-type]
    _, paged = await drain(bus, "paged")  # type: ignore[arg-type]
    assert len(plain) == len(paged) == ORDERS
    assert values.checksum(plain) == values.checksum(paged) == values.checksum(source)
    for a, b in (("like_plain", "like_paged"), ("param_plain", "param_paged")):
        _, rows_a = await drain(bus, a)  # type: ignore[arg-type]
        _, rows_b = await drain(bus, b)  # type: ignore[arg-type]
        assert rows_a and values.checksum(rows_a) == values.checksum(rows_b), (a, b)
    _, like_rows = await drain(bus, "like_plain")  # type: ignore[arg-type]
    assert {r[2][0] for r in like_rows} == {"A"}
    _, param_rows = await drain(bus, "param_plain")  # type: ignore[arg-type]
    assert len(param_rows) == len(source_rows(
        shop, "SELECT id FROM orders WHERE grp < 5 AND code LIKE 'B%'"))
    # one statement per page: 20,000 rows in pages of 777 are 26 pages (not one long cursor)
    like_n, param_n = len(like_rows), len(param_rows)
    assert selects == 3 + (ORDERS // 777 + 1) + (like_n // 500 + 1) + (param_n // 1000 + 1)


async def test_pagination_key_must_be_unique(tmp_path: Path, bus: RedisBus, shop: MariaDB) -> None:
    ctx = context(tmp_path, bus, shop)
    # k = 50 appears twice. Pages of 50 end on the first 50: only the page's extra row shows the
    # repeat (else page 2 would start after 50 and silently lose a row); a page of 1000 sees it.
    for size in (50, 1000):
        t = task(bus, query("d", "SELECT k, v FROM dupes", use_pagination=True,
                            pagination_key="k", page_size=size))
        with pytest.raises(PermanentError, match="'k' is not unique") as err:
            await collector.collect_mysql(t, ctx)
        assert err.value.reason == "InvalidPaginationKey"
    t = task(bus, query("d", "SELECT k, v FROM dupes", use_pagination=True,
                        pagination_key="nope", page_size=10))
    with pytest.raises(PermanentError, match="'nope' is not a column"):
        await collector.collect_mysql(t, ctx)


# -- cache ----------------------------------------------------------------------------------------

async def test_cached_run_does_not_touch_the_server(tmp_path: Path, bus: RedisBus,
                                                    shop: MariaDB) -> None:
    user, password = f"cache_{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    shop.create_user(user, password, "SELECT", f"{DB}.*")
    sql = "SELECT id, amount, day, created, note FROM orders WHERE customer = %(c)s ORDER BY id"
    q = query("cached", sql, params={"c": 7})
    t = task(bus, q, use_cache=True, cache_ttl_seconds=120)

    first = context(tmp_path / "1", bus, shop, user=user, password=password)
    rows = (await collector.collect_mysql(t, first)).rows
    _, dataset1 = await drain(bus, "cached")  # type: ignore[arg-type]
    assert rows == len(dataset1) > 0
    stats1 = shop.user_statistics(user)
    assert stats1["TOTAL_CONNECTIONS"] == 1
    assert await bus.stream_keys("goreports:cache:*")

    com_select, connections = shop.global_status("Com_select"), shop.global_status("Connections")
    second = context(tmp_path / "2", bus, shop, user=user, password=password)
    again = task(bus, query("again", sql, params={"c": 7}), use_cache=True, cache_ttl_seconds=120)
    assert (await collector.collect_mysql(again, second)).rows == rows
    # the server saw nothing: no connection at all, no SELECT (SHOW STATUS is not a SELECT)
    assert shop.global_status("Connections") == connections
    assert shop.global_status("Com_select") == com_select
    stats2 = shop.user_statistics(user)
    assert (stats2["TOTAL_CONNECTIONS"], stats2["SELECT_COMMANDS"]) == (
        stats1["TOTAL_CONNECTIONS"], stats1["SELECT_COMMANDS"])
    _, dataset2 = await drain(bus, "again")  # type: ignore[arg-type]
    assert values.checksum(dataset2) == values.checksum(dataset1) == values.checksum(
        source_rows(shop, sql, {"c": 7}))

    # other parameters are another cache entry: the server is asked again
    other = task(bus, query("cached", sql, params={"c": 8}), use_cache=True)
    await collector.collect_mysql(other, context(tmp_path / "3", bus, shop, user=user,
                                                 password=password))
    assert shop.user_statistics(user)["TOTAL_CONNECTIONS"] == 2


# -- read only ------------------------------------------------------------------------------------

@pytest.mark.parametrize("sql, expected", [
    ("DELETE FROM orders", "READ ONLY transaction"),
    ("UPDATE orders SET amount = 0", "READ ONLY transaction"),
    ("INSERT INTO orders SELECT id + 100000, customer, code, amount, day, created, note, grp "
     "FROM orders", "READ ONLY transaction"),
    ("REPLACE INTO orders SELECT * FROM orders", "READ ONLY transaction"),
    ("SELECT wipe()", "READ ONLY transaction"),  # a write hidden in a stored function
    ("SELECT * FROM orders WHERE id = 1 FOR UPDATE", "READ ONLY transaction"),
    ("SELECT 1; DELETE FROM orders", "more than one statement"),
    ("DROP TABLE orders", "'DROP' statement"),
    ("TRUNCATE orders", "'TRUNCATE' statement"),
    ("SET SESSION TRANSACTION READ WRITE", "'SET' statement"),
    ("SELECT * FROM orders INTO OUTFILE '/tmp/goreports-orders.txt'", "INTO OUTFILE"),
    ("SELECT id INTO @x FROM orders LIMIT 1", "returns no rows"),
])
async def test_writes_are_refused(tmp_path: Path, bus: RedisBus, shop: MariaDB, sql: str,
                                  expected: str) -> None:
    before = table_checksum(shop)
    ctx = context(tmp_path, bus, shop)  # the test user may write: only the transaction stops it
    with pytest.raises(PermanentError, match=expected) as err:
        await collector.collect_mysql(task(bus, query("sneaky", sql)), ctx)
    assert "'sneaky'" in str(err.value)
    assert err.value.reason == "StatementRefused"
    assert shop.password not in str(err.value)
    assert table_checksum(shop) == before
    assert not Path("/tmp/goreports-orders.txt").exists()


async def test_a_refused_query_stops_the_step_before_later_queries(
        tmp_path: Path, bus: RedisBus, shop: MariaDB) -> None:
    before = table_checksum(shop)
    ctx = context(tmp_path, bus, shop)
    t = task(bus, query("first", "SELECT 1 AS x"), query("bad", "DELETE FROM orders"),
             query("later", "SELECT 2 AS x"))
    with pytest.raises(PermanentError, match="'bad'"):
        await collector.collect_mysql(t, ctx)
    assert table_checksum(shop) == before


async def test_the_server_refuses_writes_even_past_the_text_check(
        tmp_path: Path, bus: RedisBus, shop: MariaDB) -> None:
    """Defence in depth: statements sent on the collector's connection without the text check
    are refused by the server: READ ONLY session + transaction, no multi-statements."""
    before = table_checksum(shop)
    ctx = context(tmp_path, bus, shop)
    session = collector._Session(collector.resolve_target(task(bus), ctx.credentials), 5, 30)
    try:
        fields = await session.execute("SELECT @@session.tx_read_only, @@in_transaction", None, "s")
        assert fields is not None
        _, rows = await session.fetch(10, [None, None], None, "s")
        await session.finish("s")
        assert rows == [[1, 1]]
        for sql, code in (("DELETE FROM orders", "1792"), ("DROP TABLE orders", "1792"),
                          ("CREATE TABLE sneaky (a INT)", "1792"),
                          ("SET SESSION TRANSACTION READ WRITE", None),
                          ("SELECT 1; DELETE FROM orders", "1064")):
            if code is None:  # the session could be switched back, which is why SET is refused
                await session.execute(sql, None, "raw")
                continue
            with pytest.raises(PermanentError, match=code):
                await session.execute(sql, None, "raw")
    finally:
        await session.close()
    assert table_checksum(shop) == before
    assert not shop.query("SHOW TABLES LIKE 'sneaky'", db=DB)


async def test_a_cancelled_report_stops_a_long_read(tmp_path: Path, bus: RedisBus,
                                                    shop: MariaDB) -> None:
    ctx = context(tmp_path, bus, shop)

    async def cancelled() -> bool:
        return True

    ctx.is_cancelled = cancelled  # type: ignore[method-assign]
    t = task(bus, query("q", "SELECT * FROM orders ORDER BY id"), batch_rows=50)
    with pytest.raises(PermanentError, match="cancelled") as err:
        await collector.collect_mysql(t, ctx)
    assert err.value.reason == "Cancelled"


# -- errors ---------------------------------------------------------------------------------------

async def test_server_not_listening_is_temporary(tmp_path: Path, bus: RedisBus,
                                                 shop: MariaDB) -> None:
    with socket.socket() as held:  # bound, never listening: no other server can take it meanwhile
        held.bind(("127.0.0.1", 0))
        port = int(held.getsockname()[1])
        ctx = context(tmp_path, bus, shop)
        t = task(bus, query("q", "SELECT 1"), port=port, host="127.0.0.1", connect_timeout_seconds=2)
        with pytest.raises(TemporaryError) as err:
            await collector.collect_mysql(t, ctx)
    text = str(err.value)
    assert f"127.0.0.1:{port}" in text and f"database '{DB}'" in text
    assert shop.password not in text


async def test_server_down_then_up(tmp_path: Path, bus: RedisBus) -> None:
    """A short-lived server of its own: stopped, the step is retried (TemporaryError); started
    again, the same task succeeds."""
    server = MariaDB(buffer_pool="32M").start()
    try:
        server.create_database(DB)
        server.execute_sql("CREATE TABLE t (id INT PRIMARY KEY); INSERT INTO t VALUES (1), (2);",
                           db=DB)
        ctx = context(tmp_path, bus, server)
        t = task(bus, query("t", "SELECT id FROM t ORDER BY id"), connect_timeout_seconds=2)
        server.stop()
        with pytest.raises(TemporaryError, match=f"{server.addr} database '{DB}'") as err:
            await collector.collect_mysql(t, ctx)
        assert server.password not in str(err.value)
        server.start()
        assert (await collector.collect_mysql(t, ctx)).rows == 2
    finally:
        server.cleanup()


async def test_permanent_errors(tmp_path: Path, bus: RedisBus, shop: MariaDB) -> None:
    secret = "wrong-" + uuid.uuid4().hex
    ctx = context(tmp_path, bus, shop, password=secret)
    with pytest.raises(PermanentError) as err:
        await collector.collect_mysql(task(bus, query("q", "SELECT 1")), ctx)
    assert err.value.reason == "CredentialsRejected" and secret not in str(err.value)
    assert f"127.0.0.1:{shop.port}" in str(err.value)

    ctx = context(tmp_path, bus, shop)
    cases = [
        (task(bus, query("q", "SELECT 1"), db_name="no_such_db"), "DatabaseNotFound"),
        (task(bus, query("q", "SELEKT 1")), "StatementRefused"),
        (task(bus, query("q", "SELECT FROM WHERE")), "QueryFailed"),
        (task(bus, query("q", "SELECT * FROM no_such_table")), "QueryFailed"),
        (task(bus, query("q", "SELECT %(missing)s")), "QueryFailed"),  # no params: literal text
        (task(bus, query("q", "SELECT %(missing)s, %(x)s", params={"x": 1})), "InvalidParameter"),
        (task(bus, query("q", "SELECT 1 AS a, 2 AS a")), "DuplicateColumn"),
    ]
    for t, reason in cases:
        with pytest.raises(PermanentError) as err:
            await collector.collect_mysql(t, ctx)
        assert err.value.reason == reason, (t.query_list[0].sql, err.value)
        assert "'q'" in str(err.value) or reason == "DatabaseNotFound"

    reader = f"narrow_{uuid.uuid4().hex[:6]}"
    shop.create_user(reader, "pw-" + reader, "SELECT", f"{DB}.types")
    ctx = context(tmp_path, bus, shop, user=reader, password="pw-" + reader)
    with pytest.raises(PermanentError) as err:
        await collector.collect_mysql(task(bus, query("q", "SELECT * FROM orders")), ctx)
    assert err.value.reason == "AccessDenied"

    empty = make_ctx(tmp_path / "empty", "collect", bus=bus)  # type: ignore[arg-type]
    with pytest.raises(PermanentError, match="not found") as err:
        await collector.collect_mysql(task(bus, query("q", "SELECT 1")), empty)
    assert err.value.reason == "CredentialsNotFound"


# -- the example ----------------------------------------------------------------------------------

async def test_example_report(tmp_path: Path, mariadb: MariaDB) -> None:  # noqa: F811
    from goreports.cli.run import execute, override_out

    doc = yaml.safe_load((ROOT / "examples" / "mysql-report.yaml").read_text())
    schema.validate_report(doc)
    mariadb.create_database("sales")
    mariadb.execute_sql((ROOT / "examples" / "data" / "mysql-sales.sql").read_text(), db="sales")
    creds = tmp_path / "credentials"
    mariadb.write_credentials(creds, "sales-db")
    settings = Settings(artifact_dir=tmp_path / "staging", work_dir=tmp_path / "work",
                        credentials_dir=creds)
    override_out(doc, tmp_path / "out")
    st = await execute(doc, settings)
    assert st["phase"] == "Succeeded", st
    wb = openpyxl.load_workbook(tmp_path / "out" / "mysql-sales.xlsx", read_only=True)
    orders = list(wb["Orders"].iter_rows(values_only=True))
    regions = list(wb["By region"].iter_rows(values_only=True))
    assert orders[0][:3] == ("Order", "Date", "Customer") and len(orders) == 17
    assert orders[1][0] == 1001 and orders[1][1] == dt.datetime(2024, 1, 3)
    assert orders[1][9] == pytest.approx(493.62)  # 4 * 129.90 * 0.95, computed by the server
    assert orders[1][13] == '{"channel": "web", "coupon": "NEWYEAR"}'
    assert any(r[2] == '=HYPERLINK("x") Ltd' for r in orders[1:])  # kept as text
    assert regions[0] == ("Region", "Orders", "Units", "Revenue", "First order", "Last order")
    assert sum(r[1] for r in regions[1:]) == 12  # paid orders
    wb.close()


# -- 1,000,000 rows through worker processes ------------------------------------------------------

BIG_ROWS = 1_000_000
BIG_SQL = ("SELECT id, customer_id, quantity, amount, discount, region, sku, order_date, "
           "created_at, note FROM big ORDER BY id")


@pytest.fixture(scope="module")
def big(mariadb: MariaDB) -> Iterator[MariaDB]:  # noqa: F811
    """`bigdb.big`: 1,000,000 rows of 10 mixed columns, generated by the server in one statement."""
    started = time.monotonic()
    mariadb.create_database("bigdb")
    mariadb.execute_sql(f"""
        CREATE TABLE big (
          id INT PRIMARY KEY, customer_id INT NOT NULL, quantity SMALLINT NOT NULL,
          amount DECIMAL(12,2) NOT NULL, discount DECIMAL(5,4) NULL, region VARCHAR(8) NOT NULL,
          sku CHAR(10) NOT NULL, order_date DATE NOT NULL, created_at DATETIME NOT NULL,
          note VARCHAR(24) NULL);
        INSERT INTO big
          SELECT seq, seq % 5003 + 1, seq % 50 + 1, (seq * 7919 % 10000000) / 100,
                 IF(seq % 7 = 0, NULL, (seq % 300) / 10000),
                 ELT(seq % 5 + 1, 'North', 'South', 'East', 'West', '-Other'),
                 CONCAT('SKU', LPAD(seq % 99991, 7, '0')),
                 '2020-01-01' + INTERVAL (seq % 1500) DAY,
                 '2020-01-01 00:00:00' + INTERVAL (seq * 37) SECOND,
                 IF(seq % 3 = 0, NULL, CONCAT('note ', seq % 977))
          FROM seq_1_to_{BIG_ROWS};
    """, db="bigdb")
    print(f"\nloaded {BIG_ROWS:,} rows in {time.monotonic() - started:.1f}s")
    yield mariadb


def canonical_row(row: tuple[Any, ...] | list[Any]) -> list[Any]:
    """A row as both MariaDB and the workbook can give it: decimals (floats in Excel) as fixed
    text of their scale, dates (datetimes in Excel) as dates, the rest as it is. A read-only
    workbook leaves out trailing empty cells, so short rows are padded."""
    (i, customer, qty, amount, discount, region, sku, day, created, note) = (
        tuple(row) + (None,) * (10 - len(row)))
    return [i, customer, qty, f"{float(amount):.2f}",
            None if discount is None else f"{float(discount):.4f}", region, sku,
            day.date() if isinstance(day, dt.datetime) else day, created, note]


def peak_rss(pid: int) -> int:
    """VmHWM of a live process, in bytes (the peak resident set)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return psutil.Process(pid).memory_info().rss


@pytest.mark.slow
@pytest.mark.timeout(1200)
async def test_million_rows_reach_excel_through_worker_processes(
        tmp_path: Path, bus: RedisBus, big: MariaDB, redis_server) -> None:  # type: ignore[no-untyped-def]
    creds, staging, out = tmp_path / "credentials", tmp_path / "staging", tmp_path / "out"
    big.write_credentials(creds, "big-db")
    doc = {
        "apiVersion": "goreports.io/v1alpha1", "kind": "ReportRequest",
        "metadata": {"name": "million", "namespace": "default"},
        "spec": {"deadlineSeconds": 3600, "steps": [
            {"name": "collect", "mysql": {"instance": "big", "dbName": "bigdb",
                                          "credentialsId": "big-db",
                                          "queries": [{"name": "big", "sql": BIG_SQL}]}},
            {"name": "workbook", "excel": {"fileName": "million.xlsx",
                                           "sheets": [{"name": "Big", "dataset": "big"}]}},
            {"name": "deliver", "local": {"path": str(out)}},
        ]},
    }
    schema.validate_report(doc)
    uid = str(uuid.uuid4())
    head = compiler.compile_report(doc, uid=uid)
    env = {"GOREPORTS_CREDENTIALS_DIR": str(creds), "GOREPORTS_ARTIFACT_DIR": str(staging),
           "GOREPORTS_WORK_DIR": str(tmp_path / "work"), "GOREPORTS_VISIBILITY_TIMEOUT": "30",
           "GOREPORTS_HEARTBEAT_INTERVAL": "2"}
    (tmp_path / "work").mkdir()
    workers = {p: start_worker(redis_server.addr, p, log=tmp_path / f"{p}.log", **env)
               for p in ("mysql", "excel", "local")}
    started = time.monotonic()
    try:
        await bus.publish(head)
        target = out / "million.xlsx"
        deadline = time.monotonic() + 1000
        while not target.exists():
            for p, proc in workers.items():
                assert proc.poll() is None, f"{p} worker died:\n{(tmp_path / f'{p}.log').read_text()[-3000:]}"
            failed = [e for _, e in await bus.read_events("0", 10_000, 0)
                      if e.state == events_pb2.STEP_STATE_FAILED]
            assert not failed, failed[0].error
            assert time.monotonic() < deadline, "no workbook after 1000s"
            await asyncio.sleep(1.0)
        wall = time.monotonic() - started
        rss = {p: peak_rss(proc.pid) for p, proc in workers.items()}
    finally:
        for proc in workers.values():
            stop(proc)

    events = [e for _, e in await bus.read_events("0", 100_000, 0) if e.report.uid == uid]
    done = {e.step: e.rows for e in events if e.state == events_pb2.STEP_STATE_SUCCEEDED}
    assert done.get("collect") == BIG_ROWS
    steps = {e.step: round(e.duration_seconds, 1) for e in events
             if e.state == events_pb2.STEP_STATE_SUCCEEDED}

    # the source's side, streamed (the test itself must not hold 1M rows twice either)
    conn = big.connect("bigdb", cursorclass=pymysql.cursors.SSCursor)
    src = values.RowChecksum()
    try:
        with conn.cursor() as cur:
            cur.execute(BIG_SQL)
            while batch := cur.fetchmany(10_000):
                src.update(canonical_row(r) for r in batch)
    finally:
        conn.close()

    read_started = time.monotonic()
    wb = openpyxl.load_workbook(target, read_only=True)
    sheet = wb["Big"]
    rows = sheet.iter_rows(values_only=True)
    header = next(rows)
    assert list(header) == ["id", "customer_id", "quantity", "amount", "discount", "region",
                            "sku", "order_date", "created_at", "note"]
    xlsx = values.RowChecksum()
    xlsx.update(canonical_row(r) for r in rows)
    wb.close()
    read_s = time.monotonic() - read_started

    assert src.count == xlsx.count == BIG_ROWS
    assert xlsx.hexdigest() == src.hexdigest()
    mb = {p: round(v / 2 ** 20, 1) for p, v in rss.items()}
    print(f"\n1M rows MariaDB -> mysql worker -> Redis -> excel worker -> local: {wall:.1f}s wall; "
          f"step seconds: {steps}; peak RSS MB: {mb}; xlsx {target.stat().st_size / 2 ** 20:.1f} MB, "
          f"read back in {read_s:.1f}s")
    assert max(rss.values()) < 400 * 2 ** 20, mb  # flat: far below 1M rows in memory

