"""The `revenue-at-risk` collector: sales orders -> customers at risk, as a typed dataset.

A specialized collector of the kind the seed invited beside the generic ones: it reads the
orders of a sales database (the SQLite sample, `examples/data/sales.db`), applies the business
rules of `rules` with the thresholds and filters of the step's `task`, and writes one dataset
through the normal dataset writer, so the stock generators (excel, csv, mustache) render it and
the stock dispatchers deliver it. In a report:

    - name: at-risk
      custom:
        pattern: revenue-at-risk
        channel: collectors          # the channel this stage registers with
        datasets: [revenue_at_risk]  # the compiler wires this dataset's stream into the task
        task: {database: examples/data/sales.db, asOf: "2024-12-31", inactiveDays: 90, ...}

Like the built-in SQLite collector, the file is opened read-only (`mode=ro`, `query_only`), the
blocking calls run in a thread, and rows leave in batches: memory stays flat whatever the
number of orders. Errors carry the retry meaning: bad settings or data are permanent, a busy
database is temporary.
"""
from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from google.protobuf import struct_pb2

from goreports.core import custom_task, values
from goreports.core.errors import PermanentError, TemporaryError
from goreports.proto import dataset_pb2
from goreports.workers.registry import stage
from goreports.workers.stage import StageContext, StageResult

from goreports_example_stages import PATTERN
from goreports_example_stages.rules import (COLUMNS, Assessor, BadOrder, InvalidRules, Rules,
                                            build_query, parse_rules)

TYPES = {name: kind for kind, name in values.TYPE_NAMES.items()}
DEFAULT_DATASET = "revenue_at_risk"


def columns() -> list[dataset_pb2.Column]:
    return [dataset_pb2.Column(name=name, type=TYPES[kind]) for name, kind in COLUMNS]


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=30,
                           check_same_thread=False)
    conn.execute("PRAGMA query_only = ON")
    return conn


def _settings(task: custom_task.CustomTask) -> tuple[Path, str, Rules]:
    """(database file, output dataset name, rules) from the task, or a PermanentError."""
    settings = dict(task.settings)
    database = settings.pop("database", None)
    dataset = settings.pop("dataset", DEFAULT_DATASET)
    if not isinstance(database, str) or not database:
        raise PermanentError(f"step {task.step!r}: task.database must name the sales SQLite file "
                             f"(e.g. examples/data/sales.db)", reason="InvalidTask")
    try:
        rules = parse_rules(settings)
    except InvalidRules as e:
        raise PermanentError(f"step {task.step!r}: task.{e}", reason="InvalidTask") from None
    path = Path(database)
    if not path.is_file():
        raise PermanentError(f"step {task.step!r}: sales database {database!r} not found "
                             f"(resolved to {path.resolve()}); relative paths start at the "
                             f"worker's working directory", reason="DatabaseNotFound")
    return path, str(dataset), rules


@stage(PATTERN, channel="collectors", task=struct_pb2.Struct)
async def revenue_at_risk(task: struct_pb2.Struct, ctx: StageContext) -> StageResult:
    wired = custom_task.unpack(task, ctx.step)
    path, dataset, rules = _settings(wired)
    output = wired.output(dataset)  # before any I/O: a spec without the dataset fails at once
    sql, params = build_query(rules)
    batch = ctx.settings.batch_rows
    conn = await asyncio.to_thread(_connect, path)
    try:
        try:
            cur = await asyncio.to_thread(conn.execute, sql, params)
        except sqlite3.OperationalError as e:
            if "locked" in str(e) or "busy" in str(e):
                raise TemporaryError(f"sales database {path} is busy: {e}") from None
            raise PermanentError(f"sales database {path} has no readable orders, customers and "
                                 f"regions tables ({e})", reason="QueryFailed") from None
        assessor = Assessor(rules)
        writer = await ctx.open_dataset(output, columns())
        while rows := await asyncio.to_thread(cur.fetchmany, batch):
            await writer.write(assessor.feed(rows))
        await writer.write(assessor.finish())
        count, _ = await writer.close()
    except BadOrder as e:
        raise PermanentError(f"sales database {path}: {e}", reason="BadData") from None
    except BaseException:
        conn.interrupt()  # a fetch may still run in its thread (cancellation): stop it
        raise
    finally:
        await asyncio.to_thread(conn.close)
    ctx.log.info("revenue at risk: %d of %d customers (%d orders) as of %s", count,
                 assessor.customers, assessor.orders, rules.as_of)
    return StageResult(rows=count, message=f"{count} of {assessor.customers} customers at risk "
                                           f"({assessor.orders} orders read)")
