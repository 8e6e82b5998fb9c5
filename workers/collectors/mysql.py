"""The `mysql` collector (the seed's MysqlCollector): queries on MySQL/MariaDB -> one dataset per
query, streamed in batches.

Why it looks like this:

- Read only, by the server. The connection's session is `READ ONLY` and all queries of the step
  run in one `START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY`: the server refuses any
  data change (error 1792 -> PermanentError naming the query), and the datasets of one step
  agree with each other. Statements a read-only transaction does not cover (SET, COMMIT, KILL,
  DDL, `INTO OUTFILE`, several statements) are refused before they are sent
  (goreports.workers.collectors._mysql_sql). The credentials' user should still have SELECT
  privileges only: defence in depth.
- Streaming. An unbuffered cursor (`SSCursor`) reads rows off the socket as they are fetched,
  `fetchmany(batch_rows)` at a time, each call in `asyncio.to_thread` so the event loop keeps
  serving heartbeats; memory stays flat whatever the row count. When the dataset's reader lags,
  the writer pauses and the server waits on a full socket; `net_write_timeout` is raised to the
  read timeout so such a pause does not drop the connection.
- Typed. Column types come from the server's column metadata, not from values
  (goreports.workers.collectors._mysql_types has the table).
- Fast. Rows go to the wire without becoming Python values where that only costs time: DECIMAL,
  DATE and DATETIME cells are read as the server's text and serialized as they come, with a
  leaner row parser than PyMySQL's (goreports.workers.collectors._mysql_wire). Reading a result
  this way costs less than PyMySQL's plain fetch of it. Not with `use_cache` (the cache keeps
  Python rows).
- Parameters are bound by the driver (`%(name)s`), never formatted into the text.
- Keyset pagination on request (`use_pagination`, `pagination_key`, `page_size`), never OFFSET;
  see _mysql_sql for the SQL and the key's requirements (unique, non-null, sortable).
- Errors say what to do next: cannot connect / lost connection / server busy -> TemporaryError
  naming host:port and database (the runtime retries with backoff); rejected credentials,
  missing privileges, unknown database, SQL errors, refused statements -> PermanentError.
  Messages never hold the password.
- `use_cache`: a result is kept on the bus for `cache_ttl_seconds` (goreports.workers.collectors.
  _cache); a run that finds every query cached does not connect to the database at all. The
  connection is opened at the first query that needs it.

Connection settings: `host`/`port` from the task, else the credentials' `host`/`port` files,
else localhost:3306; `user` and `password` from the credentials folder named by
`credentials_id` (a Secret mounted by the chart; `./credentials/<id>/` on a laptop).
"""
from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any, Sequence

import pymysql
import pymysql.cursors
from pymysql.constants import CLIENT

from goreports.core import values
from goreports.core.errors import GoReportsError, PermanentError, TemporaryError
from goreports.proto import dataset_pb2, tasks_pb2
from goreports.workers.collectors import _cache
from goreports.workers.collectors._mysql_sql import (AFTER_PARAM, PAGE_ALIAS, StatementRefused,
                                                     bind_parameters, check_statement,
                                                     error_kind, escape_percent, keyset_page)
from goreports.workers.collectors._mysql_types import (Convert, FieldInfo, columns_for,
                                                       convert_rows, split_hint)
from goreports.workers.collectors._mysql_wire import (EncodedRows, RowEncoder, fast_row_reader,
                                                      raw_columns)
from goreports.core.credentials import CredentialStore
from goreports.workers.registry import stage
from goreports.workers.stage import StageContext, StageResult

DEFAULT_PORT = 3306
DEFAULT_CONNECT_TIMEOUT = 10
DEFAULT_READ_TIMEOUT = 300
DEFAULT_CACHE_TTL = 3600
DEFAULT_PAGE_SIZE = 10_000
CANCEL_CHECK_BATCHES = 100  # a cancelled report stops a long read within this many batches

_SESSION_SETUP = (
    "SET SESSION TRANSACTION READ ONLY",
    "SET SESSION net_write_timeout = %(timeout)s",
    "START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY",
)
_NOTHING: Any = object()


# -- where to connect -----------------------------------------------------------------------------

@dataclass(frozen=True)
class Target:
    host: str
    port: int
    database: str
    user: str
    password: str = field(repr=False)
    instance: str = ""
    credentials_id: str = ""

    @property
    def where(self) -> str:
        """How messages name the database (never the password)."""
        label = f" ({self.instance})" if self.instance else ""
        return f"MySQL {self.host}:{self.port} database {self.database!r}{label}"

    def scrub(self, text: str) -> str:
        """Belt and braces: a driver message never shows the password."""
        return text.replace(self.password, "***") if self.password else text


def resolve_target(task: tasks_pb2.MysqlCollector, credentials: CredentialStore) -> Target:
    if not task.credentials_id:
        raise PermanentError(f"MySQL collector{_label(task)} has no credentialsId: name the "
                             f"credentials folder (a Secret) that holds `user` and `password`",
                             reason="InvalidTask")
    creds = credentials.load(task.credentials_id)
    user = creds.require("user")
    password = creds.require("password")
    host = task.host or creds.get("host") or "localhost"
    port = task.port
    if not port:
        text = creds.get("port")
        try:
            port = int(text) if text else DEFAULT_PORT
        except ValueError:
            raise PermanentError(f"credentials {task.credentials_id!r}: the file `port` does not "
                                 f"hold a port number", reason="CredentialsIncomplete") from None
    return Target(host=host, port=port, database=task.db_name, user=user, password=password,
                  instance=task.instance, credentials_id=task.credentials_id)


def _label(task: tasks_pb2.MysqlCollector) -> str:
    return f" {task.instance!r}" if task.instance else ""


# -- errors ---------------------------------------------------------------------------------------

def _fail(target: Target, query: str | None, e: BaseException) -> GoReportsError:
    """A driver or socket error as the error type that says what should happen next."""
    args = e.args if isinstance(e, pymysql.err.Error) else ()
    code = args[0] if args and isinstance(args[0], int) else None
    text = target.scrub(str(args[1]) if code is not None and len(args) > 1
                        else str(e) or type(e).__name__)
    what = f"query {query!r} on {target.where}" if query else f"connecting to {target.where}"
    kind = error_kind(code)
    if kind == "temporary":
        return TemporaryError(f"{what}: the database cannot be reached or is busy ({code or '-'}: "
                              f"{text}); retrying. Check that the server is up and reachable.")
    if kind == "auth":
        return PermanentError(f"{what}: the server rejected user {target.user!r} from credentials "
                              f"{target.credentials_id!r} ({code}: {text}); fix the Secret",
                              reason="CredentialsRejected")
    if kind == "privilege":
        return PermanentError(f"{what}: permission denied ({code}: {text}); grant the user SELECT "
                              f"on what the query reads", reason="AccessDenied")
    if kind == "read_only":
        return PermanentError(f"{what} was refused: it changes data, and queries run in a READ "
                              f"ONLY transaction ({code}: {text})", reason="StatementRefused")
    if kind == "unknown_database":
        return PermanentError(f"{what}: the database does not exist ({code}: {text})",
                              reason="DatabaseNotFound")
    return PermanentError(f"{what} failed ({code or type(e).__name__}: {text})",
                          reason="QueryFailed")


# -- one connection, one read-only transaction ----------------------------------------------------

class _Session:
    """The step's connection, opened on first need; every blocking call runs in a thread."""

    def __init__(self, target: Target, connect_timeout: int, read_timeout: int) -> None:
        self.target = target
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.conn: pymysql.connections.Connection | None = None  # type: ignore[type-arg]
        self.cursor: pymysql.cursors.SSCursor | None = None
        self.clean = True

    async def execute(self, sql: str, params: dict[str, Any] | None, query: str
                      ) -> list[FieldInfo] | None:
        """Run one statement unbuffered; the result's fields (None: it returned no rows)."""
        if self.conn is None:
            try:
                self.conn = await asyncio.to_thread(self._open)
            except (pymysql.err.Error, OSError) as e:
                raise _fail(self.target, None, e) from None
        try:
            return await asyncio.to_thread(self._execute, sql, params)
        except (pymysql.err.Error, OSError) as e:
            self.clean = False
            raise _fail(self.target, query, e) from None
        except (KeyError, ValueError, TypeError) as e:  # pyformat binding, before anything is sent
            raise PermanentError(
                f"query {query!r}: its parameters cannot be bound ({type(e).__name__}: {e}); "
                f"every %(name)s needs a parameter of that name, and once a query has "
                f"parameters a literal % is written %%", reason="InvalidParameter") from None

    def _open(self) -> pymysql.connections.Connection:  # type: ignore[type-arg]
        t = self.target
        conn = pymysql.connect(
            host=t.host, port=t.port, user=t.user, password=t.password,
            database=t.database or None, charset="utf8mb4", autocommit=True,
            connect_timeout=self.connect_timeout, read_timeout=self.read_timeout,
            write_timeout=self.read_timeout, client_flag=0, local_infile=False,
            program_name="goreports-mysql")
        try:
            if conn.client_flag & CLIENT.MULTI_STATEMENTS:  # never: PyMySQL only adds it on request
                raise RuntimeError("the MySQL connection allows several statements per query")
            with conn.cursor() as cur:
                for sql in _SESSION_SETUP:
                    cur.execute(sql, {"timeout": self.read_timeout} if "%(" in sql else None)
        except BaseException:
            conn.close()
            raise
        return conn

    def _execute(self, sql: str, params: dict[str, Any] | None) -> list[FieldInfo] | None:
        assert self.conn is not None
        cur = self.conn.cursor(pymysql.cursors.SSCursor)
        self.cursor = cur
        cur.execute(sql, params)
        if cur.description is None:
            return None
        # PyMySQL's description lacks the character set and flags (binary or text? unsigned?);
        # the field packets it keeps on the result have them.
        packets = getattr(getattr(cur, "_result", None), "fields", None)
        if packets and len(packets) == len(cur.description):
            return [FieldInfo.from_packet(p) for p in packets]
        return [FieldInfo.from_description(d) for d in cur.description]

    def encoder(self, fields: list[FieldInfo], columns: list[dataset_pb2.Column],
                converters: list[Convert | None], keep: int | None = None) -> RowEncoder:
        """A RowEncoder for the open statement: DECIMAL, DATE and DATETIME columns are read as
        the server's text (their driver converters are switched off for this result; see
        goreports.workers.collectors._mysql_wire)."""
        raw = raw_columns(fields, columns, converters, keep)
        result = getattr(self.cursor, "_result", None)
        driver = getattr(result, "converters", None)  # PyMySQL: [(encoding, converter)]
        if not isinstance(driver, list) or len(driver) != len(raw):
            raw = [None] * len(raw)  # a driver we do not know: its values, as they come
        else:
            for i, kind in enumerate(raw):
                if kind is not None:
                    driver[i] = (driver[i][0], None)
            if callable(getattr(result, "_read_row_from_packet", None)):
                result._read_row_from_packet = fast_row_reader(driver)  # type: ignore[union-attr]
        return RowEncoder(raw, converters)

    async def fetch(self, n: int, converters: Sequence[Convert | None], key: int | None,
                    query: str, encoder: RowEncoder | None = None
                    ) -> tuple[list[Any], list[list[Any]] | EncodedRows]:
        """Up to n rows of the open statement: (raw pagination keys, converted rows, or rows
        ready for the wire when an encoder is given)."""
        try:
            return await asyncio.to_thread(self._fetch, n, converters, key, encoder)
        except (pymysql.err.Error, OSError) as e:
            self.clean = False
            raise _fail(self.target, query, e) from None

    def _fetch(self, n: int, converters: Sequence[Convert | None], key: int | None,
               encoder: RowEncoder | None) -> tuple[list[Any], list[list[Any]] | EncodedRows]:
        assert self.cursor is not None
        raw = self.cursor.fetchmany(n)
        keys = [r[key] for r in raw] if key is not None else []
        if encoder is not None:
            return keys, encoder.encode(raw)
        return keys, convert_rows(raw, converters)

    async def finish(self, query: str) -> None:
        """Close a statement whose rows were all read."""
        cur, self.cursor = self.cursor, None
        if cur is not None:
            try:
                await asyncio.to_thread(cur.close)
            except (pymysql.err.Error, OSError) as e:
                self.clean = False
                raise _fail(self.target, query, e) from None

    async def close(self) -> None:
        conn, self.conn = self.conn, None
        cur, self.cursor = self.cursor, None
        if cur is not None:
            # Rows are still on the wire (the step failed mid-read). An unbuffered cursor and its
            # result would read every one of them on close or garbage collection; the socket is
            # closed instead, so mark both finished.
            self.clean = False
            result = getattr(cur, "_result", None)
            if result is not None:
                result.unbuffered_active = False
            cur.connection = None
        if conn is None:
            return
        await asyncio.to_thread(_close, conn, self.clean)


def _close(conn: pymysql.connections.Connection, clean: bool) -> None:  # type: ignore[type-arg]
    try:
        if clean:
            conn.rollback()  # ends the read-only transaction (nothing to undo)
        conn.close()
    except Exception:  # noqa: BLE001 - a dead connection: nothing to tell anyone
        conn._force_close()  # pymysql's close without the QUIT round trip


# -- where rows go --------------------------------------------------------------------------------

class _Sink:
    """The dataset writer, and the cache writer beside it when `use_cache` is on."""

    def __init__(self, ctx: StageContext, query: tasks_pb2.Query,
                 cache: _cache.CacheWriter | None) -> None:
        self.ctx = ctx
        self.query = query
        self.cache = cache
        self.writer: Any = None
        self.batches = 0

    async def open(self, columns: list[dataset_pb2.Column]) -> None:
        names = [c.name for c in columns]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise PermanentError(f"query {self.query.name!r} returns the column name(s) {dupes} "
                                 f"more than once; give each column a unique alias",
                                 reason="DuplicateColumn")
        self.ctx.log.info("query %s: columns %s", self.query.name,
                          ", ".join(f"{c.name}:{values.TYPE_NAMES[c.type]}" for c in columns))
        self.writer = await self.ctx.open_dataset(self.query.output, columns)
        if self.cache is not None:
            await self.cache.start(columns)

    @property
    def encodes(self) -> bool:
        """Whether rows may arrive encoded (the cache stores Python rows)."""
        return self.cache is None

    async def write(self, rows: list[list[Any]] | EncodedRows) -> None:
        if not rows:
            return
        if isinstance(rows, EncodedRows):
            await self.writer.write_encoded(rows.rows, rows.lines)
        else:
            await self.writer.write(rows)
            if self.cache is not None:
                await self.cache.add(rows)
        self.batches += 1
        if self.batches % CANCEL_CHECK_BATCHES == 0 and await self.ctx.is_cancelled():
            raise PermanentError(f"report cancelled while reading query {self.query.name!r}",
                                 reason="Cancelled")

    async def close(self) -> tuple[int, str]:
        count, checksum = await self.writer.close()
        if self.cache is not None and await self.cache.commit(count, checksum):
            self.ctx.log.info("query %s: result cached for %ss", self.query.name, self.cache.ttl)
        return count, checksum


# -- reading --------------------------------------------------------------------------------------

async def _read_all(session: _Session, sql: str, params: dict[str, Any], batch: int,
                    query: tasks_pb2.Query, sink: _Sink) -> None:
    fields = await session.execute(sql, params or None, query.name)
    if fields is None:
        raise _no_rows(query, session.target)
    columns, converters = columns_for(fields)
    await sink.open(columns)
    encoder = session.encoder(fields, columns, converters) if sink.encodes else None

    def next_batch() -> asyncio.Future[tuple[list[Any], list[list[Any]] | EncodedRows]]:
        return asyncio.ensure_future(session.fetch(batch, converters, None, query.name, encoder))

    # One batch read ahead: the driver thread reads and encodes batch n+1 while the event loop
    # sends batch n to Redis (and waits for the readers' window), instead of taking turns.
    ahead = next_batch()
    try:
        while True:
            _, rows = await ahead
            last = len(rows) < batch
            if not last:
                ahead = next_batch()
            await sink.write(rows)
            if last:
                break
    finally:
        if not ahead.done():  # the write failed: the read in flight owns the connection
            await asyncio.wait([ahead])
        if ahead.done() and not ahead.cancelled():
            ahead.exception()  # retrieved, so a failure after ours is not logged as unhandled
    await session.finish(query.name)


async def _read_pages(session: _Session, sql: str, params: dict[str, Any], batch: int,
                      query: tasks_pb2.Query, sink: _Sink) -> int:
    """Keyset pagination; returns the number of pages."""
    page_size = query.page_size or DEFAULT_PAGE_SIZE
    key = query.pagination_key
    base = sql if params else escape_percent(sql)  # pyformat binding is on for every page
    after: Any = _NOTHING
    key_index: int | None = None
    converters: list[Convert | None] = []
    columns: list[dataset_pb2.Column] = []
    pages = 0
    while True:
        page_params = dict(params)
        if after is not _NOTHING:
            page_params[AFTER_PARAM] = after
        try:
            fields = await session.execute(
                keyset_page(base, key, first=after is _NOTHING, limit=page_size + 1),
                page_params, query.name)
        except PermanentError as e:
            if f"'{PAGE_ALIAS}.{key}'" in str(e):  # 1054 unknown column: the key is not there
                raise PermanentError(f"query {query.name!r}: the pagination key {key!r} is not a "
                                     f"column of the result", reason="InvalidPaginationKey") from None
            raise
        if fields is None:
            raise _no_rows(query, session.target)
        if key_index is None:
            key_index = _key_index(fields, key, query)
            columns, converters = columns_for(fields)
            await sink.open(columns)
        encoder = (session.encoder(fields, columns, converters, keep=key_index)
                   if sink.encodes else None)
        pages += 1
        got, last = 0, _NOTHING
        while got <= page_size:  # the page plus one row: does the key repeat past the page?
            keys, rows = await session.fetch(min(batch, page_size + 1 - got), converters,
                                             key_index, query.name, encoder)
            if not rows:
                break
            for k in keys:
                if k is None:
                    raise PermanentError(f"query {query.name!r}: the pagination key "
                                         f"{key!r} is NULL in a row; a pagination key must be "
                                         f"unique and never NULL", reason="InvalidPaginationKey")
                if last is not _NOTHING and k == last:
                    raise PermanentError(f"query {query.name!r}: the pagination key {key!r} "
                                         f"is not unique (the value {k!r} repeats), so pages "
                                         f"would lose rows; choose a unique key or turn "
                                         f"usePagination off", reason="InvalidPaginationKey")
                last = k
            keep = min(len(rows), page_size - got)
            await sink.write(rows[:keep])
            if keep:
                after = keys[keep - 1]
            got += len(rows)
        await session.finish(query.name)
        if got <= page_size:
            return pages


def _key_index(fields: list[FieldInfo], key: str, query: tasks_pb2.Query) -> int:
    names = [f.name for f in fields]
    plain = [split_hint(n)[0] for n in names]
    for candidates in (names, plain):
        if key in candidates:
            return candidates.index(key)
    raise PermanentError(f"query {query.name!r}: the pagination key {key!r} is not a column of "
                         f"the result (columns: {', '.join(plain)})", reason="InvalidPaginationKey")


def _no_rows(query: tasks_pb2.Query, target: Target) -> PermanentError:
    return PermanentError(f"query {query.name!r} on {target.where} returns no rows: only SELECT "
                          f"statements can feed a dataset", reason="StatementRefused")


async def _replay(cached: _cache.CachedResult, query: tasks_pb2.Query, ctx: StageContext) -> int:
    writer = await ctx.open_dataset(query.output, cached.columns)
    try:
        async for rows in cached.batches():
            await writer.write(rows)
    except _cache.CacheBroken as e:
        # Rows of a broken entry may already be on the dataset: start the step over; the broken
        # pointer is gone, so the next attempt reads the database.
        raise TemporaryError(f"query {query.name!r}: {e}; reading the database instead",
                             delay=0.0) from None
    count, _ = await writer.close()
    return count


async def _collect(task: tasks_pb2.MysqlCollector, query: tasks_pb2.Query, target: Target,
                   session: _Session, batch: int, ctx: StageContext) -> int:
    if not query.output.dataset.stream:
        raise PermanentError(f"query {query.name!r} has no output dataset stream",
                             reason="InvalidTask")
    if query.use_pagination and not query.pagination_key:
        raise PermanentError(f"query {query.name!r}: usePagination needs paginationKey (a unique, "
                             f"sortable column of the result)", reason="InvalidTask")
    try:
        sql = check_statement(query.sql)
        params = bind_parameters(query)
    except StatementRefused as e:
        raise PermanentError(f"query {query.name!r} on {target.where} was refused: {e}",
                             reason="StatementRefused") from None

    started = time.monotonic()
    cache: _cache.CacheWriter | None = None
    if task.use_cache:
        pointer = ctx.bus.keys.cache(_cache.digest(
            instance=task.instance, host=target.host, port=target.port, database=target.database,
            user=target.user, sql=sql, params=params))
        cached = await _cache.open_cached(ctx.bus, pointer)
        if cached is not None:
            rows = await _replay(cached, query, ctx)
            ctx.log.info("query %s: %d rows from the cache (%.1fs)", query.name, rows,
                         time.monotonic() - started)
            return rows
        cache = _cache.CacheWriter(ctx.bus, pointer, ttl=task.cache_ttl_seconds or DEFAULT_CACHE_TTL,
                                   dataset=query.name)

    sink = _Sink(ctx, query, cache)
    pages = 1
    if query.use_pagination:
        pages = await _read_pages(session, sql, params, batch, query, sink)
    else:
        await _read_all(session, sql, params, batch, query, sink)
    count, _ = await sink.close()
    ctx.log.info("query %s: %d rows from %s in %d page(s) (%.1fs)", query.name, count,
                 target.where, pages, time.monotonic() - started)
    return count


@stage("mysql", channel="collectors", task=tasks_pb2.MysqlCollector)
async def collect_mysql(task: tasks_pb2.MysqlCollector, ctx: StageContext) -> StageResult:
    if not task.query_list:
        raise PermanentError(f"MySQL collector{_label(task)} has no queries", reason="InvalidTask")
    target = resolve_target(task, ctx.credentials)
    session = _Session(target, task.connect_timeout_seconds or DEFAULT_CONNECT_TIMEOUT,
                       task.read_timeout_seconds or DEFAULT_READ_TIMEOUT)
    batch = task.batch_rows or ctx.settings.batch_rows
    total = 0
    try:
        for query in task.query_list:
            total += await _collect(task, query, target, session, batch, ctx)
    except BaseException:
        session.clean = False
        raise
    finally:
        await session.close()
    return StageResult(rows=total)
