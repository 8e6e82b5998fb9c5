"""The `jwt` validator and the `aggregate` stage through real services.

- The aggregator's joins and group-bys give what MariaDB gives for the same SQL on the same data
  (compared as multisets of tuples; decimals exactly, averages even to MariaDB's scale). The rows
  go from MariaDB onto a real Redis (RedisBus), through two chained aggregate steps running
  concurrently with a throttled loader, and are read back from Redis.
- The validator keeps exactly the rows MariaDB's `WHERE tenant = ...` keeps, refuses another
  tenant's row in deny mode, and refuses bad tokens with a clear reason.
- A whole compiled report (sqlite -> jwt -> aggregate -> csv -> local) runs the way
  `goreports run` runs it (cli.run.execute) on Redis and succeeds with the right row counts.
"""
from __future__ import annotations

import asyncio
import base64
import csv
import json
import random
import sqlite3
import time
from collections import Counter
from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from typing import Any, AsyncIterator, Sequence

import jwt
import pytest
import redis.asyncio as aioredis
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from goreports.cli.run import execute
from goreports.core import values
from goreports.core.bus.redis import RedisBus
from goreports.core.datasets import DatasetReader, DatasetWriter
from goreports.core.errors import PermanentError
from goreports.core.keys import Keys
from goreports.core.settings import Settings
from goreports.proto import dataset_pb2, tasks_pb2
from goreports.workers.aggregators.aggregate import aggregate
from goreports.workers.stage import StageContext
from goreports.workers.validators.jwt import validate_jwt

from support.mariadb import MariaDB, mariadb  # noqa: F401
from support.servers import RedisServer
from unit.workers.stagekit import UID, make_ctx

pytestmark = pytest.mark.integration

DB = "aggtest"
SECRET = "integration-secret-0123456789abcdef-0123"
TENANTS = ["acme", "globex", "initech"]
SCHEMA = """
CREATE TABLE customers (
  customer_id INT PRIMARY KEY, name VARCHAR(60) NOT NULL, region VARCHAR(10) NULL,
  tenant VARCHAR(10) NOT NULL);
CREATE TABLE orders (
  id INT PRIMARY KEY, customer_id INT NULL, quantity INT NULL, amount DECIMAL(12,2) NULL,
  order_date DATE NOT NULL, status VARCHAR(10) NOT NULL, name VARCHAR(60) NOT NULL,
  tenant VARCHAR(10) NOT NULL);
"""
ORDER_COLUMNS = [("id", values.INTEGER), ("customer_id", values.INTEGER),
                 ("quantity", values.INTEGER), ("amount", values.DECIMAL),
                 ("order_date", values.DATE), ("status", values.STRING),
                 ("name", values.STRING), ("tenant", values.STRING)]
CUSTOMER_COLUMNS = [("customer_id", values.INTEGER), ("name", values.STRING),
                    ("region", values.STRING), ("tenant", values.STRING)]


def sql_literal(v: Any) -> str:
    if v is None:
        return "NULL"
    if isinstance(v, (int, Decimal)):
        return str(v)
    return "'" + str(v).replace("'", "''") + "'"


def make_data(seed: int = 7, orders: int = 4000, customers: int = 240
              ) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """Deterministic rows with the awkward cases: NULL keys and values, unknown customers,
    duplicate names on both sides (renamed right_name), a NULL region group."""
    rng = random.Random(seed)
    cust = [(c, f"Customer {c % 97}", None if c % 17 == 0 else rng.choice(["EU", "US", "APAC"]),
             TENANTS[c % 3]) for c in range(1, customers + 1)]
    rows = []
    for i in range(1, orders + 1):
        cid = None if i % 41 == 0 else rng.randint(1, customers + 20)  # 20 unknown customers
        qty = None if i % 23 == 0 else rng.randint(1, 9)
        amount = None if i % 19 == 0 else Decimal(rng.randint(1, 999_999)) / 100
        day = f"2024-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
        rows.append((i, cid, qty, amount, day, rng.choice(["paid", "refunded", "open"]),
                     f"Order {i % 13}", TENANTS[(cid or 0) % 3]))
    return rows, cust


@pytest.fixture(scope="module")
def loaded(mariadb: MariaDB) -> MariaDB:  # noqa: F811
    orders, customers = make_data()
    mariadb.create_database(DB)
    mariadb.execute_sql(SCHEMA, db=DB)
    for table, rows in (("customers", customers), ("orders", orders)):
        for start in range(0, len(rows), 1000):
            chunk = rows[start:start + 1000]
            mariadb.execute_sql(f"INSERT INTO {table} VALUES " + ",".join(
                "(" + ",".join(sql_literal(v) for v in r) + ")" for r in chunk), db=DB)
    return mariadb


def cols(spec: Sequence[tuple[str, int]]) -> list[dataset_pb2.Column]:
    return [dataset_pb2.Column(name=n, type=t) for n, t in spec]


@pytest.fixture
async def bus(redis_server: RedisServer) -> AsyncIterator[RedisBus]:
    host, port = redis_server.addr.split(":")
    client = aioredis.Redis(host=host, port=int(port))
    await client.flushall()
    b = RedisBus(client, Keys("goreports"))
    yield b
    await b.close()


def ctx_for(tmp_path: Path, step: str, bus: RedisBus, **kw: Any) -> StageContext:
    """stagekit's context, over the Redis bus."""
    return make_ctx(tmp_path, step, bus=bus, **kw)  # type: ignore[arg-type]


def ref(bus: RedisBus, name: str, producer: str) -> tasks_pb2.DatasetRef:
    return tasks_pb2.DatasetRef(name=name, stream=bus.keys.data(UID, name, producer),
                                producer_step=producer)


def out(bus: RedisBus, name: str, producer: str, readers: list[str]) -> tasks_pb2.Output:
    return tasks_pb2.Output(dataset=ref(bus, name, producer), readers=readers)


async def load(bus: RedisBus, db: MariaDB, datasets: list[tuple[str, str, list[Any]]],
               readers: list[str]) -> None:
    """A collector: each table from MariaDB onto Redis, one after the other, throttled by a
    small window on its readers (values exactly as pymysql gives them)."""
    for name, sql, spec in datasets:
        rows = await asyncio.to_thread(db.query, sql, None, DB)
        w = DatasetWriter(bus, ref(bus, name, "load").stream, dataset=name, step="load",
                          readers=readers, columns=cols(spec), batch_rows=100, window_batches=4)
        await w.start()
        for start in range(0, len(rows), 250):
            await w.write([list(r) for r in rows[start:start + 250]])
        await w.close()


async def read(bus: RedisBus, r: tasks_pb2.DatasetRef, reader: str = "check"
               ) -> tuple[list[str], list[tuple[Any, ...]]]:
    rd = DatasetReader(bus, r.stream, dataset=r.name, reader=reader, wait_timeout=30)
    columns = await rd.open()
    return [c.name for c in columns], [tuple(row) async for row in rd.rows_iter()]


def agg_fn(function: str, column: str, name: str) -> tasks_pb2.AggregateFunction:
    a = tasks_pb2.AggregateFunction(column=column, function=function)
    setattr(a, "as", name)
    return a


def multiset(rows: Sequence[Sequence[Any]]) -> Counter[tuple[Any, ...]]:
    return Counter(tuple(r) for r in rows)


ORDERS_SQL = ("SELECT id, customer_id, quantity, amount, order_date, status, name, tenant "
              "FROM orders")
CUSTOMERS_SQL = "SELECT customer_id, name, region, tenant FROM customers"
JOIN_SELECT = ("SELECT o.id, o.customer_id, o.quantity, o.amount, o.order_date, o.status, "
               "o.name, o.tenant, c.name, c.region, c.tenant FROM orders o {kind} JOIN customers c "
               "ON c.customer_id = o.customer_id")


async def test_join_and_group_by_match_mariadb(loaded: MariaDB, bus: RedisBus,
                                               tmp_path: Path) -> None:
    enrich = tasks_pb2.Aggregator()
    for name, kind in (("joined_inner", "inner"), ("joined_left", "left")):
        op = enrich.operations.add(output=out(bus, name, "enrich",
                                              ["summarize", "check"] if kind == "left"
                                              else ["check"]))
        op.join.left.CopyFrom(ref(bus, "orders", "load"))
        op.join.right.CopyFrom(ref(bus, "customers", "load"))
        op.join.keys.append("customer_id")
        op.join.type = kind
    op = enrich.operations.add(output=out(bus, "by_status", "enrich", ["check"]))
    op.group_by.input.CopyFrom(ref(bus, "orders", "load"))
    op.group_by.keys.append("status")
    op.group_by.aggregates.extend([
        agg_fn("count", "", "n"), agg_fn("count", "amount", "n_amount"),
        agg_fn("sum", "amount", "total"), agg_fn("avg", "amount", "avg_amount"),
        agg_fn("sum", "quantity", "units"), agg_fn("avg", "quantity", "avg_units"),
        agg_fn("min", "order_date", "first"), agg_fn("max", "amount", "top")])
    summarize = tasks_pb2.Aggregator()
    op = summarize.operations.add(output=out(bus, "by_region", "summarize", ["check"]))
    op.group_by.input.CopyFrom(ref(bus, "joined_left", "enrich"))
    op.group_by.keys.extend(["region", "right_tenant"])
    op.group_by.aggregates.extend([
        agg_fn("count", "", "n"), agg_fn("count", "customer_id", "n_customer"),
        agg_fn("sum", "amount", "total"), agg_fn("avg", "amount", "avg_amount"),
        agg_fn("min", "order_date", "first"), agg_fn("max", "order_date", "last")])

    loader = load(bus, loaded, [("orders", ORDERS_SQL, ORDER_COLUMNS),
                                ("customers", CUSTOMERS_SQL, CUSTOMER_COLUMNS)],
                  readers=["enrich"])
    outputs = ["joined_inner", "joined_left", "by_status"]
    results = await asyncio.wait_for(asyncio.gather(
        loader,
        aggregate(enrich, ctx_for(tmp_path, "enrich", bus, batch_rows=100, window_batches=4)),
        aggregate(summarize, ctx_for(tmp_path, "summarize", bus, batch_rows=100,
                                     window_batches=4)),
        *(read(bus, ref(bus, n, "enrich")) for n in outputs),
        read(bus, ref(bus, "by_region", "summarize"))), 120)
    (inner_cols, inner), (left_cols, left), (_, by_status), (_, by_region) = results[3:]

    assert inner_cols == left_cols == ["id", "customer_id", "quantity", "amount", "order_date",
                                       "status", "name", "tenant", "right_name", "region",
                                       "right_tenant"]
    sql_inner = loaded.query(JOIN_SELECT.format(kind="INNER"), db=DB)
    sql_left = loaded.query(JOIN_SELECT.format(kind="LEFT"), db=DB)
    assert 3000 < len(sql_inner) < len(sql_left) == 4000  # unknown and NULL customers exist
    assert multiset(inner) == multiset(sql_inner)
    assert multiset(left) == multiset(sql_left)

    sql_status = loaded.query(
        "SELECT status, COUNT(*), COUNT(amount), SUM(amount), AVG(amount), SUM(quantity), "
        "AVG(quantity), MIN(order_date), MAX(amount) FROM orders GROUP BY status", db=DB)
    assert multiset(by_status) == multiset(sql_status)
    sql_region = loaded.query(
        "SELECT c.region, c.tenant, COUNT(*), COUNT(o.customer_id), SUM(o.amount), AVG(o.amount),"
        " MIN(o.order_date), MAX(o.order_date) FROM orders o LEFT JOIN customers c "
        "ON c.customer_id = o.customer_id GROUP BY c.region, c.tenant", db=DB)
    assert multiset(by_region) == multiset(sql_region)
    assert any(r[0] is None and r[1] is None for r in by_region)  # the unmatched orders' group
    # Exactly, not just numerically: the averages even have MariaDB's scale (+4 places).
    text = lambda rows: sorted(tuple(str(v) for v in r) for r in rows)  # noqa: E731
    assert text(by_status) == text(sql_status)
    assert text(by_region) == text(sql_region)
    assert all(isinstance(r[3], Decimal) and isinstance(r[4], Decimal) for r in by_status)

    # Each input stream was read once by the enrich step (three uses of `orders`).
    cursors = await bus.hash_get_all(bus.keys.cursors(ref(bus, "orders", "load").stream))
    assert cursors.get("enrich") == "done"
    assert results[1].rows == len(inner) + len(left) + len(by_status)


# -- the validator ---------------------------------------------------------------------------------

def token(key: Any = SECRET, alg: str = "HS256", **extra: Any) -> str:
    now = int(time.time())
    return jwt.encode({"sub": "alice", "tenant": "acme", "aud": "goreports", "iat": now,
                       "exp": now + 600, **extra}, key, alg)


def validator(bus: RedisBus, tmp_path: Path, **kw: Any) -> tasks_pb2.JwtValidator:
    folder = tmp_path / "credentials" / "jwt-key"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "secret").write_text(SECRET + "\n")
    t = tasks_pb2.JwtValidator(key_credentials_id="jwt-key", algorithms=["HS256"],
                               audience="goreports", **kw)
    t.rules.add(name="same-tenant", column="tenant", claim="tenant")
    for name in ("orders", "customers"):
        t.inputs.append(ref(bus, name, "load"))
        t.outputs.append(out(bus, name, "validate", ["check"]))
    return t


async def run_validator(bus: RedisBus, db: MariaDB, task: tasks_pb2.JwtValidator,
                        tmp_path: Path) -> Any:
    ctx = ctx_for(tmp_path, "validate", bus, batch_rows=100, window_batches=4)
    tasks = [asyncio.ensure_future(c) for c in (
        load(bus, db, [("orders", ORDERS_SQL, ORDER_COLUMNS),
                       ("customers", CUSTOMERS_SQL, CUSTOMER_COLUMNS)], readers=["validate"]),
        validate_jwt(task, ctx),
        read(bus, task.outputs[0].dataset), read(bus, task.outputs[1].dataset))]
    try:
        return await asyncio.wait_for(asyncio.gather(*tasks), 60)
    finally:
        # When the validator refuses, the producer and the readers are still waiting on Redis:
        # stop them here, with a bound (a cancellation can be lost inside the Redis client's
        # blocking read under load), instead of leaving them to the event loop's teardown.
        for t in tasks:
            t.cancel()
        await asyncio.wait(tasks, timeout=5)


async def test_validator_filter_keeps_what_sql_where_keeps(loaded: MariaDB, bus: RedisBus,
                                                           tmp_path: Path) -> None:
    task = validator(bus, tmp_path, token=token(), mode="filter")
    _, result, (_, orders), (_, customers) = await run_validator(bus, loaded, task, tmp_path)
    want_orders = loaded.query(ORDERS_SQL + " WHERE tenant = 'acme'", db=DB)
    want_customers = loaded.query(CUSTOMERS_SQL + " WHERE tenant = 'acme'", db=DB)
    assert multiset(orders) == multiset(want_orders) and len(orders) > 1000
    assert multiset(customers) == multiset(want_customers)
    assert result.rows == len(orders) + len(customers)
    dropped = 4000 + 240 - result.rows
    assert f"{result.rows} rows passed, {dropped} dropped" in result.message


async def test_validator_deny_refuses_another_tenants_row(loaded: MariaDB, bus: RedisBus,
                                                          tmp_path: Path) -> None:
    task = validator(bus, tmp_path, token=token(), mode="deny")
    with pytest.raises(PermanentError) as e:
        await run_validator(bus, loaded, task, tmp_path)
    assert e.value.reason == "AccessDenied"
    assert "breaks rule 'same-tenant'" in str(e.value)
    assert "globex" not in str(e.value) and "initech" not in str(e.value)
    first_foreign = loaded.query("SELECT MIN(id) FROM orders WHERE tenant <> 'acme'", db=DB)[0][0]
    foreign_customer = loaded.query("SELECT MIN(customer_id) FROM customers "
                                    "WHERE tenant <> 'acme'", db=DB)[0][0]
    assert (f"row {first_foreign} of dataset 'orders'" in str(e.value)
            or f"row {foreign_customer} of dataset 'customers'" in str(e.value))


def unsigned(claims: dict[str, Any]) -> str:
    def part(d: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(d).encode()).rstrip(b"=").decode()
    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}."


def rsa_public_pem(key: rsa.RSAPrivateKey) -> str:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


async def test_bad_tokens_fail_with_a_clear_reason(bus: RedisBus, tmp_path: Path) -> None:
    now = int(time.time())
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    cases = [
        ("expired", token(exp=now - 3600, iat=now - 7200), ["HS256"], "TokenExpired",
         "expired"),
        ("alg none", unsigned({"tenant": "acme", "aud": "goreports", "exp": now + 600}),
         ["HS256"], "AlgorithmNotAllowed", "unsigned"),
        ("wrong key", token(key="some-other-secret-0123456789abcdef-99"), ["HS256"],
         "TokenInvalid", "signature"),
        ("HS256 when only RS256", token(), ["RS256"], "AlgorithmNotAllowed", "HS256"),
    ]
    folder = tmp_path / "credentials" / "jwt-key"
    folder.mkdir(parents=True)
    (folder / "public.pem").write_text(rsa_public_pem(rsa_key))
    for label, tok, algs, reason, words in cases:
        task = validator(bus, tmp_path, token=tok)
        del task.algorithms[:]
        task.algorithms.extend(algs)
        ctx = ctx_for(tmp_path, "validate", bus)
        with pytest.raises(PermanentError) as e:
            await asyncio.wait_for(validate_jwt(task, ctx), 10)  # fails before reading data
        assert e.value.reason == reason, (label, str(e.value))
        assert words in str(e.value), (label, str(e.value))
        assert tok not in str(e.value) and SECRET not in str(e.value), label
    # A correctly signed RS256 token passes the same check.
    task = validator(bus, tmp_path, token=token(key=rsa_key, alg="RS256"))
    del task.algorithms[:]
    task.algorithms.append("RS256")
    del task.inputs[:], task.outputs[:]
    assert (await validate_jwt(task, ctx_for(tmp_path, "v2", bus))).rows == 0


# -- a whole compiled report -----------------------------------------------------------------------

def sqlite_source(path: Path) -> Path:
    orders, customers = make_data(seed=11, orders=2500, customers=120)
    con = sqlite3.connect(path)
    con.executescript("""
        CREATE TABLE customers (customer_id INTEGER PRIMARY KEY, name TEXT, region TEXT,
                                tenant TEXT);
        CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER, quantity INTEGER,
                             amount TEXT, order_date TEXT, status TEXT, name TEXT, tenant TEXT);
    """)
    con.executemany("INSERT INTO customers VALUES (?,?,?,?)", customers)
    con.executemany("INSERT INTO orders VALUES (?,?,?,?,?,?,?,?)",
                    [tuple(str(v) if isinstance(v, Decimal) else v for v in r) for r in orders])
    con.commit()
    con.close()
    return path


def report_doc(db: Path, out_dir: Path) -> dict[str, Any]:
    return {
        "apiVersion": "goreports.io/v1alpha1", "kind": "ReportRequest",
        "metadata": {"name": "tenant-revenue"},
        "spec": {"maxAttempts": 1, "deadlineSeconds": 300, "steps": [
            {"name": "collect", "sqlite": {"database": str(db), "queries": [
                {"name": "orders", "sql": 'SELECT id, customer_id, quantity, amount AS '
                                          '"amount [decimal]", order_date, status, tenant '
                                          'FROM orders ORDER BY id'},
                {"name": "customers", "sql": "SELECT customer_id, name, region, tenant "
                                             "FROM customers ORDER BY customer_id"}]}},
            {"name": "check-access", "jwt": {
                "tokenCredentialsId": "caller", "keyCredentialsId": "jwt-key",
                "algorithms": ["HS256"], "audience": "goreports", "mode": "filter",
                "rules": [{"name": "same-tenant", "column": "tenant", "claim": "tenant"}]}},
            {"name": "combine", "aggregate": {"operations": [
                {"output": "orders_with_customer", "join": {
                    "left": "orders", "right": "customers", "keys": ["customer_id"],
                    "type": "left"}},
                {"output": "revenue_by_status", "groupBy": {
                    "input": "orders", "keys": ["status"], "aggregates": [
                        {"function": "count", "as": "orders"},
                        {"column": "amount", "function": "sum", "as": "revenue"}]}}]}},
            {"name": "status-csv", "csv": {"fileName": "revenue_by_status.csv",
                                           "dataset": "revenue_by_status"}},
            {"name": "orders-csv", "csv": {"fileName": "orders.csv",
                                           "dataset": "orders_with_customer"}},
            {"name": "deliver", "local": {"path": str(out_dir)}}]}}


async def test_compiled_report_with_validator_and_aggregator_succeeds(
        redis_server: RedisServer, tmp_path: Path) -> None:
    db = sqlite_source(tmp_path / "tenants.db")
    creds = tmp_path / "credentials"
    (creds / "jwt-key").mkdir(parents=True)
    (creds / "jwt-key" / "secret").write_text(SECRET + "\n")
    (creds / "caller").mkdir()
    (creds / "caller" / "token").write_text(token(tenant="globex") + "\n")
    settings = replace(Settings.from_env({}), artifact_dir=tmp_path / "staging",
                       work_dir=tmp_path / "work", credentials_dir=creds,
                       visibility_timeout=30.0, batch_rows=200, window_batches=4,
                       prefix="goreports-rr")
    out_dir = tmp_path / "out"
    st = await asyncio.wait_for(execute(report_doc(db, out_dir), settings,
                                        redis_addr=redis_server.addr), 120)
    assert st["phase"] == "Succeeded", st

    con = sqlite3.connect(db)
    n_orders = con.execute("SELECT COUNT(*) FROM orders WHERE tenant = 'globex'").fetchone()[0]
    n_customers = con.execute("SELECT COUNT(*) FROM customers WHERE tenant = 'globex'"
                              ).fetchone()[0]
    steps = {s["name"]: s for s in st["steps"]}
    assert 0 < n_orders < 2500
    assert steps["collect"]["rows"] == 2500 + 120
    assert steps["check-access"]["rows"] == n_orders + n_customers
    want = {status: (n, Decimal(total or 0)) for status, n, total in con.execute(
        "SELECT status, COUNT(*), SUM(CAST(amount AS TEXT) + 0) FROM orders "
        "WHERE tenant = 'globex' GROUP BY status")}
    with open(out_dir / "revenue_by_status.csv", newline="") as f:
        got_rows = list(csv.reader(f))
    assert got_rows[0] == ["status", "orders", "revenue"]
    got = {r[0]: (int(r[1]), Decimal(r[2])) for r in got_rows[1:]}
    assert set(got) == set(want)
    assert {k: v[0] for k, v in got.items()} == {k: v[0] for k, v in want.items()}
    exact = {s: sum((Decimal(a) for (a,) in con.execute(
        "SELECT amount FROM orders WHERE tenant = 'globex' AND status = ? AND amount "
        "IS NOT NULL", (s,))), Decimal(0)) for s in want}
    assert {k: v[1] for k, v in got.items()} == exact
    assert steps["combine"]["rows"] == n_orders + len(want)
    with open(out_dir / "orders.csv", newline="") as f:
        joined = list(csv.reader(f))
    assert joined[0] == ["id", "customer_id", "quantity", "amount", "order_date", "status",
                         "tenant", "name", "region", "right_tenant"]
    assert len(joined) - 1 == n_orders
    # The right side was filtered too: no order shows another tenant's customer.
    assert {r[9] for r in joined[1:]} <= {"globex", ""}
