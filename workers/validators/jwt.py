"""The `jwt` validator: check the caller's JWT, then enforce row-level access on datasets.

Why it exists: the seed's Broken Access Control check. A report may be requested on behalf of a
caller (the REST/gRPC API puts the caller's token on the task, or a Secret holds it); the rows
the report shows must be limited to what that caller may see, e.g. rows whose `tenant_id` is the
token's `tenant` claim. The token and row decisions live in `_rules` (pure, unit-tested); this
module reads keys and token, and moves rows.

How it runs:

1. The token is verified before any dataset is opened, so a refused token fails the report
   before a later step is even published. Token: `task.token`, else the file `token` of
   credentials `tokenCredentialsId`. Key: credentials `keyCredentialsId` (`secret` or
   `public.pem`, chosen by the algorithm family, see `_rules`). Neither is ever logged or put
   in an error.
2. Every input dataset is rewritten to its output (same name and columns, a new stream) by its
   own concurrent pipeline. Concurrent, not one after another: a producer writes its datasets in
   its own order and pauses when its first reader falls a window behind, so reading them in
   another order could deadlock. Each pipeline streams batch by batch: memory stays flat.
3. `filter` drops the rows that break a rule; `deny` stops the report at the first such row
   (reason AccessDenied, naming rule, dataset and row number, never the row's values).

Result: rows written in total; the message says how many rows were dropped per dataset.
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, Callable

from goreports.core.errors import PermanentError
from goreports.proto import tasks_pb2
from goreports.workers.registry import stage
from goreports.workers.stage import StageContext, StageResult
from goreports.workers.validators import _rules


@dataclass
class _Counts:
    dataset: str
    read: int = 0
    written: int = 0

    @property
    def dropped(self) -> int:
        return self.read - self.written


def _where(ctx: StageContext) -> str:
    return f"jwt validator step {ctx.step!r}"


def _load_token(task: tasks_pb2.JwtValidator, ctx: StageContext) -> str:
    if task.token:
        return task.token
    if not task.token_credentials_id:
        raise PermanentError(f"{_where(ctx)}: no token to check: set `token` (the API does) or "
                             f"`tokenCredentialsId` (credentials with a file `token`)",
                             reason="InvalidTask")
    return ctx.credentials.load(task.token_credentials_id).require("token")


def _key_loader(task: tasks_pb2.JwtValidator, ctx: StageContext) -> Callable[[str], str]:
    """key_for(file) for `_rules.verify_token`: reads only the key file the algorithm needs."""
    if not task.key_credentials_id:
        raise PermanentError(f"{_where(ctx)}: `keyCredentialsId` is empty; name the credentials "
                             f"that hold `secret` (HS*) or `public.pem` (RS*/ES*)",
                             reason="InvalidTask")
    creds = ctx.credentials.load(task.key_credentials_id)

    def key_for(file: str) -> str:
        key = creds.require(file)
        if not key.strip():
            raise PermanentError(f"{_where(ctx)}: credentials {creds.id!r} file {file!r} is "
                                 f"empty", reason="InvalidKey")
        return key

    return key_for


def _verify(task: tasks_pb2.JwtValidator, ctx: StageContext, algorithms: list[str]
            ) -> dict[str, Any]:
    """Blocking part (files, crypto): runs in a thread."""
    token = _load_token(task, ctx)
    return _rules.verify_token(token, algorithms=algorithms, key_for=_key_loader(task, ctx),
                               audience=task.audience, issuer=task.issuer, where=_where(ctx))


async def _pipe(ctx: StageContext, task: tasks_pb2.JwtValidator, claims: dict[str, Any],
                ref: tasks_pb2.DatasetRef, out: tasks_pb2.Output, counts: _Counts,
                progress: list[int]) -> None:
    """Rewrite one dataset through the rules."""
    where = _where(ctx)
    reader = ctx.read_dataset(ref)
    columns = await reader.open()
    rules = _rules.bind_rules(task.rules, claims, reader.column_names, ref.name, where)
    deny = task.mode == "deny"
    writer = await ctx.open_dataset(out, columns)
    async for batch in reader.batches():
        if deny:
            for i, row in enumerate(batch):
                broken = _rules.first_broken(row, rules)
                if broken is not None:
                    raise _rules.deny_error(where, broken, ref.name, counts.read + i + 1)
            kept = batch
        else:
            kept = _rules.filter_rows(batch, rules)
        counts.read += len(batch)
        if kept:
            await writer.write(kept)
            counts.written += len(kept)
        progress[0] += len(kept)
        await ctx.progress(progress[0])
    await writer.close()


def _first_error(eg: BaseExceptionGroup) -> BaseException:  # type: ignore[type-arg]
    exc: BaseException = eg
    while isinstance(exc, BaseExceptionGroup):
        exc = exc.exceptions[0]
    return exc


@stage("jwt", channel="validators", task=tasks_pb2.JwtValidator)
async def validate_jwt(task: tasks_pb2.JwtValidator, ctx: StageContext) -> StageResult:
    where = _where(ctx)
    mode = task.mode or "filter"
    if mode not in _rules.MODES:
        raise PermanentError(f"{where}: mode {task.mode!r} is not one of filter, deny",
                             reason="InvalidTask")
    task.mode = mode
    if len(task.inputs) != len(task.outputs):
        raise PermanentError(f"{where}: {len(task.inputs)} inputs but {len(task.outputs)} "
                             f"outputs; the task was not built by the compiler",
                             reason="InvalidTask")
    missing = [r.name for r in task.inputs if not r.stream] + \
        [o.dataset.name for o in task.outputs if not o.dataset.stream]
    if missing:
        raise PermanentError(f"{where}: dataset(s) {missing} have no stream",
                             reason="InvalidTask")
    algorithms = _rules.allowed_algorithms(task.algorithms, where)
    claims = await asyncio.to_thread(_verify, task, ctx, algorithms)
    if task.caller_tenant and not _rules.claim_allows(claims.get("tenant"), task.caller_tenant):
        raise PermanentError(f"{where}: the token's tenant claim does not match the tenant of the "
                             f"caller who created the report", reason="AccessDenied")
    ctx.log.info("token accepted (%s); checking %d dataset(s) with %d rule(s) in %s mode",
                 ", ".join(algorithms), len(task.inputs), len(task.rules), mode)

    counts = [_Counts(ref.name) for ref in task.inputs]
    progress = [0]
    try:
        async with asyncio.TaskGroup() as tg:
            for ref, out, c in zip(task.inputs, task.outputs, counts):
                tg.create_task(_pipe(ctx, task, claims, ref, out, c, progress))
    except BaseExceptionGroup as eg:
        raise _first_error(eg) from None
    written = sum(c.written for c in counts)
    dropped = sum(c.dropped for c in counts)
    detail = ", ".join(f"{c.dataset} {c.dropped}" for c in counts)
    message = f"{written} rows passed, {dropped} dropped" + (f" ({detail})" if counts else "")
    if not task.inputs:
        ctx.log.warning("%s: no datasets to check; only the token was verified", where)
    ctx.log.info("%s: %s", where, message)
    return StageResult(rows=written, message=message)
