"""The `http` collector: JSON pages from an HTTP API -> one dataset, in batches.

Why it looks like this:

- Every request goes through goreports.workers._net.HttpClient: only http/https, no private,
  loopback, link-local or cluster-internal hosts unless listed in `allowHosts` (SSRF, DESIGN §9),
  connections pinned to the checked addresses, each page (and each redirect) checked again.
- Bounded memory: one page is held at a time and its body is read in chunks and abandoned past
  `maxResponseBytes` (ResponseTooLarge); rows leave in batches through the dataset writer.
- Throttling and hiccups are retried in the stage (429/5xx/connection errors, waiting
  `Retry-After` when the server says so, else exponential backoff) up to `maxRetries`; then the
  step raises TemporaryError and the runtime retries the whole job (a new dataset generation).
- Credentials (`token`, `username`/`password`, `value`) are read from the credentials folder and
  sent only to the origin of the first URL: a next link that points to another host does not get
  them.

Rows and types: see goreports.workers.collectors._http_pages. Defaults for unset fields:
method GET, timeoutSeconds 30, maxRetries 3, maxResponseBytes 10 MiB, startPage 0.
"""
from __future__ import annotations

import asyncio
import json
from typing import Any

from yarl import URL

from goreports.core import values
from goreports.core.datasets import DatasetWriter
from goreports.core.errors import PermanentError
from goreports.proto import tasks_pb2
from goreports.workers._net import HttpClient, http_failure, redact
from goreports.workers.collectors._http_pages import (PageRequest, Pager, Shaper, auth_headers,
                                                     records_of)
from goreports.workers.registry import stage
from goreports.workers.stage import StageContext, StageResult

DEFAULT_TIMEOUT = 30
DEFAULT_RETRIES = 3
DEFAULT_MAX_RESPONSE_BYTES = 10 * 1024 * 1024
_PARSE_IN_THREAD = 256 * 1024  # bigger pages are parsed off the event loop


async def _parse(body: bytes, where: str, content_type: str) -> Any:
    try:
        if len(body) > _PARSE_IN_THREAD:
            return await asyncio.to_thread(json.loads, body)
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as e:
        raise PermanentError(f"{where}: the response ({content_type or 'no content type'}, "
                             f"{len(body)} bytes) is not JSON: {e}", reason="ResponseNotJson"
                             ) from None


@stage("http", channel="collectors", task=tasks_pb2.HttpApiCollector)
async def collect_http(task: tasks_pb2.HttpApiCollector, ctx: StageContext) -> StageResult:
    what = f"step {ctx.step!r} (http collector{' ' + task.instance if task.instance else ''})"
    if not task.url:
        raise PermanentError(f"{what} has no url", reason="InvalidTask")
    if not task.output.dataset.stream:
        raise PermanentError(f"{what} has no output dataset stream", reason="InvalidTask")
    method = (task.method or "GET").upper()
    if method not in ("GET", "POST"):
        raise PermanentError(f"{what}: method {method!r} is not supported (GET or POST)",
                             reason="InvalidTask")
    creds = ctx.credentials.load(task.credentials_id) if task.credentials_id else None
    auth = auth_headers(task.auth_type, task.auth_header, creds, what)
    pager = Pager(task.pagination, task.url, dict(task.query), what)
    batch = task.batch_rows or ctx.settings.batch_rows
    limit = task.max_response_bytes or DEFAULT_MAX_RESPONSE_BYTES
    home = URL(task.url).origin()
    writer: DatasetWriter | None = None
    shaper: Shaper | None = None
    records_total = 0
    async with HttpClient(what=what, allow_hosts=task.allow_hosts,
                          timeout=task.timeout_seconds or DEFAULT_TIMEOUT,
                          max_retries=task.max_retries or DEFAULT_RETRIES) as client:
        req: PageRequest | None = pager.first()
        warned = False
        while req is not None:
            if pager.pages > 1 and await ctx.is_cancelled():  # long page runs stop early
                raise PermanentError(f"{what}: the report was cancelled", reason="Cancelled")
            headers = dict(task.headers)
            if auth and URL(req.url).origin() == home:
                headers.update(auth)
            elif auth and not warned:
                warned = True
                ctx.log.warning("%s: page %d is on another host (%s); credentials not sent there",
                                what, pager.pages, redact(req.url))
            reply = await client.request(method, req.url, headers=headers, params=req.params,
                                         max_bytes=limit, follow_redirects=True,
                                         strip_on_redirect=("Authorization", *auth))
            if not 200 <= reply.status < 300:
                raise http_failure(what, method, reply, credentials_id=task.credentials_id)
            where = f"{what}, page {pager.pages} ({redact(reply.url)})"
            doc = await _parse(reply.body, where, reply.headers.get("Content-Type", ""))
            records = records_of(doc, task.records_path, where)
            if shaper is None:
                shaper = Shaper.from_first_page(records, list(task.columns))
                if not shaper.columns:
                    ctx.log.warning("%s: the first page has no records and no columns are set; "
                                    "the dataset has no columns", what)
                ctx.log.info("%s: columns %s", what, ", ".join(
                    f"{c.name}:{values.TYPE_NAMES[c.type]}" for c in shaper.columns))
                writer = await ctx.open_dataset(task.output, shaper.columns)
            assert writer is not None
            rows = shaper.rows(records)
            nxt = pager.next(doc, len(rows), req)
            del doc, records, reply  # one page in memory at a time
            for start in range(0, len(rows), batch):
                await writer.write(rows[start:start + batch])
            records_total += len(rows)
            req = nxt
        if pager.truncated:
            ctx.log.warning("%s: stopped after maxPages=%d; the API has more pages", what,
                            pager.max_pages)
    assert writer is not None
    count, _ = await writer.close()
    more = ", more pages left (maxPages)" if pager.truncated else ""
    return StageResult(rows=count,
                       message=f"{records_total} records from {pager.pages} page(s){more}")
