"""A template's parameter reaches SQL only as a bound parameter: against a real MariaDB, a value
full of SQL stays data (no rows, no injected clause, no dropped table)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from goreports.core import compiler, schema, templates
from goreports.core.bus.redis import RedisBus
from goreports.proto import tasks_pb2
from goreports.workers.collectors import mysql as collector
from support.mariadb import MariaDB, mariadb  # noqa: F401  (session fixture)
from unit.workers.stagekit import drain, make_ctx, output

pytestmark = pytest.mark.integration

DB = "catalog"
CRED = "catalog-db"
SQL = "SELECT id, name FROM customers WHERE name = %(name)s AND id <= %(upTo)s ORDER BY id"

TEMPLATE: dict[str, Any] = {
    "apiVersion": "goreports.io/v1alpha1", "kind": "ReportTemplate", "metadata": {"name": "cust"},
    "spec": {
        "parameters": [
            {"name": "customer", "type": "string", "required": True, "description": "a name"},
            {"name": "upTo", "type": "integer", "default": 1000, "description": "highest id"}],
        "report": {"steps": [
            {"name": "collect", "mysql": {"dbName": DB, "credentialsId": CRED, "queries": [
                {"name": "customers", "sql": SQL,
                 "parameters": {"name": "$(params.customer)", "upTo": "$(params.upTo)"}}]}},
            {"name": "table", "csv": {"fileName": "customers-$(params.customer).csv",
                                      "dataset": "customers"}},
            {"name": "deliver", "local": {"path": "out"}}]}},
}


@pytest.fixture(scope="module")
def catalog_db(mariadb: MariaDB) -> MariaDB:  # noqa: F811
    mariadb.create_database(DB)
    mariadb.execute_sql("""
        CREATE TABLE customers (id INT PRIMARY KEY, name VARCHAR(80) NOT NULL);
        INSERT INTO customers VALUES (1, 'Ann'), (2, 'Bob'), (3, 'Ann'), (4, 'Eve');
    """, db=DB)
    return mariadb


def compiled_query(values: dict[str, Any]) -> tasks_pb2.Query:
    """Resolve the template, validate and compile the spec like the operator, return the query."""
    spec = templates.resolve(TEMPLATE, values).spec
    doc = {"apiVersion": schema.API_VERSION, "kind": "ReportRequest", "metadata": {"name": "r"},
           "spec": spec}
    schema.validate_report(doc)
    task = tasks_pb2.MysqlCollector()
    compiler.compile_report(doc, uid="u").task.Unpack(task)
    return task.query_list[0]


async def run(tmp_path: Path, bus: RedisBus, db: MariaDB, values: dict[str, Any],
              dataset: str) -> list[list[Any]]:
    ctx = make_ctx(tmp_path, "collect", bus=bus)  # type: ignore[arg-type]
    db.write_credentials(ctx.settings.credentials_dir, CRED)
    q = tasks_pb2.Query()
    q.CopyFrom(compiled_query(values))
    q.name = dataset
    q.output.CopyFrom(output(bus, dataset))  # type: ignore[arg-type]
    task = tasks_pb2.MysqlCollector(instance="catalog", db_name=DB, credentials_id=CRED,
                                    batch_rows=100, query_list=[q])
    await collector.collect_mysql(task, ctx)
    _, rows = await drain(bus, dataset)  # type: ignore[arg-type]
    return rows


async def test_values_are_bound_never_spliced_into_the_sql(tmp_path: Path, bus: RedisBus,
                                                           catalog_db: MariaDB) -> None:
    assert await run(tmp_path, bus, catalog_db, {"customer": "Ann"}, "plain") == [
        [1, "Ann"], [3, "Ann"]]
    assert await run(tmp_path, bus, catalog_db, {"customer": "Ann", "upTo": 2}, "typed") == [
        [1, "Ann"]]  # the integer is bound as an integer

    injected = "x' OR '1'='1"
    query = compiled_query({"customer": injected})
    assert query.sql == SQL  # the SQL text is the template's, whatever the value
    assert {p.name: p.value.string_value for p in query.parameters}["name"] == injected
    assert await run(tmp_path, bus, catalog_db, {"customer": injected}, "inject") == []

    dropper = "Ann'; DROP TABLE customers; -- "
    assert await run(tmp_path, bus, catalog_db, {"customer": dropper}, "drop") == []
    assert catalog_db.query("SELECT COUNT(*) FROM customers", db=DB) == [(4,)]

    # A name that really holds quotes is found as data, by equality.
    catalog_db.execute_sql("INSERT INTO customers VALUES (9, 'O''Brien'' OR 1=1')", db=DB)
    assert await run(tmp_path, bus, catalog_db, {"customer": "O'Brien' OR 1=1"}, "quoted") == [
        [9, "O'Brien' OR 1=1"]]
