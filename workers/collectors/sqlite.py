"""The `sqlite` collector: SELECT queries on a SQLite file -> one dataset per query, in batches.

Why it exists: the embedded default source, so `goreports run` works on a laptop with no
database server. Why it looks like this:

- Read only, three times over: the file is opened with `mode=ro`, `PRAGMA query_only` is on,
  and an authorizer allows nothing but reading (SELECT, column reads, functions, recursive CTEs),
  so an INSERT, ATTACH or PRAGMA fails at prepare time with the query's name in the error.
  All queries run in one read transaction, so the datasets of one report agree with each other.
- Streaming: rows leave with `fetchmany(batch_rows)`; every sqlite call that can block
  (connect, execute with its first fetch, later fetches) runs in a thread (`asyncio.to_thread`)
  so the event loop keeps serving heartbeats; connecting and the first query share a hop (a
  thread hop costs a small report about as much as a Redis round trip), so a report that fits
  in one batch costs one hop, and its dataset is written whole (`ctx.write_dataset`: the next
  step is published with this one's success rather than at the dataset's start, one round trip
  fewer).

Column types. SQLite is dynamically typed and the driver reports no types in
`cursor.description`. The driver's own answer (`detect_types` with `register_converter`) was
rejected: converters are process-global, apply only to plain table columns (not expressions
such as `SUM(amount)`), and a single malformed value raises in the middle of the stream. Instead:

1. An explicit hint in the column alias wins: `SELECT total AS "total [decimal]"` gives the
   column `total` of type DECIMAL. Hints: decimal, date, datetime/timestamp, integer/int,
   float/real, string/text, boolean/bool, json, bytes/blob. A bracket that is not a known hint
   (`"price [EUR]"`) is part of the name.
2. Otherwise the type is inferred from the non-null values of the first batch: all ints ->
   INTEGER; ints and floats -> FLOAT; bytes -> BYTES; text that is all ISO dates (YYYY-MM-DD)
   -> DATE; all ISO date-times -> DATETIME; other text -> STRING. Mixed kinds -> STRING (cells
   become text). A column with no non-null value in the first batch is STRING.
3. Later cells are converted to the column type when they can be; a cell that cannot (a bad
   date in a DATE column) keeps its own type, which the wire format carries faithfully.

`Query.use_pagination` does not apply: the read transaction is already one consistent stream.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import logging
import re
import sqlite3
from pathlib import Path
from typing import Any, Callable

from google.protobuf import json_format

from goreports.core import values
from goreports.core.errors import PermanentError, TemporaryError
from goreports.proto import dataset_pb2, tasks_pb2
from goreports.workers.registry import stage
from goreports.workers.stage import StageContext, StageResult

Convert = Callable[[Any], Any]

HINTS: dict[str, int] = {
    "decimal": values.DECIMAL, "date": values.DATE, "datetime": values.DATETIME,
    "timestamp": values.DATETIME, "integer": values.INTEGER, "int": values.INTEGER,
    "float": values.FLOAT, "real": values.FLOAT, "string": values.STRING, "text": values.STRING,
    "boolean": values.BOOLEAN, "bool": values.BOOLEAN, "json": values.JSON,
    "bytes": values.BYTES, "blob": values.BYTES,
}
_HINT_RE = re.compile(r"^(.*?\S)\s*\[(\w+)\]$")
_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_DATETIME_RE = re.compile(
    r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}:?\d{2})?$")
# What the authorizer lets a statement do: read, and nothing else.
_ALLOWED = {sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_FUNCTION,
            sqlite3.SQLITE_RECURSIVE}
_BUSY = ("locked", "busy")


# -- typing ---------------------------------------------------------------------------------------

def split_hint(name: str) -> tuple[str, int | None]:
    """`"total [decimal]"` -> ("total", DECIMAL); names without a known hint are unchanged."""
    m = _HINT_RE.match(name)
    if m and m.group(2).lower() in HINTS:
        return m.group(1), HINTS[m.group(2).lower()]
    return name, None


def _parse_date(v: Any) -> Any:
    if isinstance(v, str) and _DATE_RE.match(v):
        try:
            return dt.date.fromisoformat(v)
        except ValueError:
            pass
    return v


def _parse_datetime(v: Any) -> Any:
    if isinstance(v, str):
        try:
            return dt.datetime.fromisoformat(v)
        except ValueError:
            pass
    return v




def _to_int(v: Any) -> Any:
    if isinstance(v, float) and v.is_integer():
        return int(v)
    if isinstance(v, str):
        try:
            return int(v.strip())
        except ValueError:
            pass
    return v


def _to_float(v: Any) -> Any:
    if isinstance(v, (int, str)) and not isinstance(v, bool):
        try:
            return float(v)
        except ValueError:
            pass
    return v


def _to_bool(v: Any) -> Any:
    if isinstance(v, (int, float)):
        return bool(v)
    if isinstance(v, str) and v.strip().lower() in {"0", "1", "true", "false"}:
        return v.strip().lower() in {"1", "true"}
    return v


def _to_text(v: Any) -> Any:
    if isinstance(v, (bytes, memoryview)):
        return bytes(v).hex()
    return v if isinstance(v, str) else str(v)


CONVERTERS: dict[int, Convert | None] = {
    values.DECIMAL: values.to_decimal, values.DATE: _parse_date, values.DATETIME: _parse_datetime,
    values.INTEGER: _to_int, values.FLOAT: _to_float, values.BOOLEAN: _to_bool,
    values.JSON: lambda v: values.JsonText(v) if isinstance(v, str) else v,
    values.STRING: None, values.BYTES: None,
}


def infer_column(cells: list[Any]) -> tuple[int, Convert | None]:
    """Type of a column from its first-batch cells, and the converter for its later cells."""
    seen = [c for c in cells if c is not None]
    if not seen:
        return values.STRING, None
    kinds = {values.infer_type(c) for c in seen}
    if kinds == {values.INTEGER}:
        return values.INTEGER, None
    if kinds <= {values.INTEGER, values.FLOAT}:
        return values.FLOAT, _to_float
    if kinds == {values.BYTES}:
        return values.BYTES, None
    if kinds == {values.STRING}:
        if all(_DATE_RE.match(c) and _parse_date(c) is not c for c in seen):
            return values.DATE, _parse_date
        if all(_DATETIME_RE.match(c) and _parse_datetime(c) is not c for c in seen):
            return values.DATETIME, _parse_datetime
        return values.STRING, None
    return values.STRING, _to_text


def column_types(names: list[str], hints: list[int | None], first: list[tuple[Any, ...]]
                 ) -> tuple[list[dataset_pb2.Column], list[Convert | None]]:
    columns, converters = [], []
    for i, (name, hint) in enumerate(zip(names, hints)):
        if hint is not None:
            kind, conv = hint, CONVERTERS[hint]
        else:
            kind, conv = infer_column([row[i] for row in first])
        columns.append(dataset_pb2.Column(name=name, type=kind))
        converters.append(conv)
    return columns, converters


def convert_rows(rows: list[tuple[Any, ...]], converters: list[Convert | None]) -> list[list[Any]]:
    if not any(converters):
        return [list(r) for r in rows]
    return [[c if conv is None or c is None else conv(c) for c, conv in zip(r, converters)]
            for r in rows]


# -- parameters -----------------------------------------------------------------------------------

def bind_parameters(query: tasks_pb2.Query) -> dict[str, Any]:
    """QueryParameter values (google.protobuf.Value) -> driver values; whole numbers as ints."""
    out: dict[str, Any] = {}
    for p in query.parameters:
        v = json_format.MessageToDict(p.value) if p.HasField("value") else None
        if isinstance(v, float) and v.is_integer() and abs(v) < 2 ** 53:
            v = int(v)
        if isinstance(v, (dict, list)):
            raise PermanentError(f"query {query.name!r}: parameter {p.name!r} is a list or map; "
                                 f"only text, numbers, booleans and null can be bound",
                                 reason="InvalidParameter")
        out[p.name] = v
    return out


# -- the database ---------------------------------------------------------------------------------

def _authorize(action: int, *_: Any) -> int:
    return sqlite3.SQLITE_OK if action in _ALLOWED else sqlite3.SQLITE_DENY


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=30,
                           isolation_level=None, check_same_thread=False)
    try:
        conn.execute("PRAGMA query_only = ON")
        conn.execute("BEGIN")  # one read snapshot for every query of the report
        conn.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchall()  # takes the snapshot
        conn.set_authorizer(_authorize)
    except BaseException:
        conn.close()
        raise
    return conn


def _fail(query: tasks_pb2.Query, db: str, e: Exception) -> Exception:
    """A driver error as the error type that says what should happen next."""
    text = str(e)
    if "not authorized" in text or "readonly" in text or "read-only" in text:
        return PermanentError(f"query {query.name!r} on {db} was refused: only reading "
                              f"statements (SELECT/WITH) may run on a SQLite source ({text})",
                              reason="StatementRefused")
    if isinstance(e, sqlite3.OperationalError) and any(b in text for b in _BUSY):
        return TemporaryError(f"query {query.name!r}: SQLite database {db} is busy ({text})")
    return PermanentError(f"query {query.name!r} on {db} failed: {text}", reason="QueryFailed")


def _execute(conn: sqlite3.Connection, sql: str, params: dict[str, Any], batch: int
             ) -> tuple[sqlite3.Cursor, list[tuple[Any, ...]]]:
    """Run a query and fetch its first batch: one thread hop (most reports fit in one batch)."""
    cur = conn.execute(sql, params)
    return cur, (cur.fetchmany(batch) if cur.description is not None else [])


class _Opening:
    """What the loop and the thread opening the database share: the connection as soon as it
    exists (so that a cancellation can interrupt the first query) and whether the loop gave up
    waiting (then the thread runs nothing more and closes the connection itself)."""

    def __init__(self) -> None:
        self.conn: sqlite3.Connection | None = None
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True
        conn = self.conn
        if conn is not None:
            try:
                conn.interrupt()  # a first query may be running in the thread: stop it
            except sqlite3.ProgrammingError:  # the thread has closed it already
                pass


# The outcome of a query run ahead (`_open`): its cursor and first rows, or its driver error.
Started = tuple[sqlite3.Cursor, list[tuple[Any, ...]]] | Exception | None


def _open(path: Path, first: tuple[str, dict[str, Any], int] | None, opening: _Opening
          ) -> tuple[sqlite3.Connection, Started] | None:
    """Connect and run the first query (sql, params, batch) in the same thread hop: a small
    report pays one hop, not two. A driver error of the query is returned (the loop names the
    query in it); one of connecting is raised."""
    conn = _connect(path)
    opening.conn = conn
    started: Started = None
    try:
        if first is not None and not opening.cancelled:
            try:
                started = _execute(conn, *first)
            except (sqlite3.Error, sqlite3.Warning) as e:
                started = e
    except BaseException:  # anything else fails the stage: nobody gets the connection
        conn.close()
        raise
    if opening.cancelled:  # nobody waits for this connection any more
        conn.close()
        return None
    return conn, started


def _checked(query: tasks_pb2.Query) -> dict[str, Any]:
    """The query's bound parameters, once it is known to name its dataset."""
    if not query.output.dataset.stream:
        raise PermanentError(f"query {query.name!r} has no output dataset stream",
                             reason="InvalidTask")
    return bind_parameters(query)


async def _collect(conn: sqlite3.Connection, db: str, query: tasks_pb2.Query, batch: int,
                   ctx: StageContext, started: Started = None) -> int:
    """One query -> one dataset; `started` is the outcome of running it already (`_open`)."""
    if started is None:
        params = _checked(query)
        try:
            started = await asyncio.to_thread(_execute, conn, query.sql, params, batch)
        except (sqlite3.Error, sqlite3.Warning) as e:
            raise _fail(query, db, e) from None
    if isinstance(started, Exception):
        raise _fail(query, db, started) from None
    cur, first = started
    if cur.description is None:
        raise PermanentError(f"query {query.name!r} on {db} returns no rows: only SELECT "
                             f"statements can feed a dataset", reason="StatementRefused")
    names, hints = zip(*(split_hint(d[0]) for d in cur.description))
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise PermanentError(f"query {query.name!r} returns the column name(s) {dupes} more than "
                             f"once; give each column a unique alias", reason="DuplicateColumn")
    columns, converters = column_types(list(names), list(hints), first)
    if ctx.log.isEnabledFor(logging.INFO):
        ctx.log.info("query %s: columns %s", query.name,
                     ", ".join(f"{c.name}:{values.TYPE_NAMES[c.type]}" for c in columns))
    if len(first) < batch:  # the first fetch had every row: one write, no stream to follow
        count, _ = await ctx.write_dataset(query.output, columns, convert_rows(first, converters))
        return count
    writer = await ctx.open_dataset(query.output, columns)
    rows = convert_rows(first, converters)
    while rows:
        await writer.write(rows)
        if len(rows) < batch:
            break
        try:
            rows = await asyncio.to_thread(
                lambda: convert_rows(cur.fetchmany(batch), converters))
        except (sqlite3.Error, sqlite3.Warning) as e:
            raise _fail(query, db, e) from None
    count, _ = await writer.close()
    return count


@stage("sqlite", channel="collectors", task=tasks_pb2.SqliteCollector)
async def collect_sqlite(task: tasks_pb2.SqliteCollector, ctx: StageContext) -> StageResult:
    path = Path(task.database)
    if not path.is_file():
        raise PermanentError(f"SQLite database {task.database!r} not found (resolved to "
                             f"{path.resolve()}); relative paths start at the worker's working "
                             f"directory", reason="DatabaseNotFound")
    if not task.query_list:
        raise PermanentError(f"SQLite collector for {task.database!r} has no queries",
                             reason="InvalidTask")
    batch = task.batch_rows or ctx.settings.batch_rows
    head = task.query_list[0]
    invalid: PermanentError | None = None
    try:  # the first query runs in the hop that connects; a fault in it fails after connecting
        first: tuple[str, dict[str, Any], int] | None = (head.sql, _checked(head), batch)
    except PermanentError as e:
        first, invalid = None, e
    opening = _Opening()
    try:
        opened = await asyncio.to_thread(_open, path, first, opening)
    except sqlite3.Error as e:
        raise PermanentError(f"cannot open SQLite database {task.database!r} read-only: {e}",
                             reason="DatabaseUnreadable") from None
    except Exception:  # raised by the thread, which closed its connection
        raise
    except BaseException:  # cancelled while the thread works: it must stop and clean up
        opening.cancel()
        raise
    assert opened is not None  # None only for a loop that stopped waiting
    conn, started = opened
    total = 0
    try:
        if invalid is not None:
            raise invalid
        for i, query in enumerate(task.query_list):
            total += await _collect(conn, task.database, query, batch, ctx,
                                    started if i == 0 else None)
    except BaseException:
        conn.interrupt()  # a fetch may still run in its thread (cancellation): stop it
        await asyncio.to_thread(conn.close)
        raise
    conn.close()  # nothing runs on it any more, and a read-only close does no I/O: no thread
    return StageResult(rows=total)
