"""The `aggregate` stage: union, join and group-by over datasets, each writing a new dataset.

Why it exists: the seed's aggregators, so a report can combine what several collectors (or
queries) produced without a database that holds all of it. The semantics of each operation
(columns, types, NULLs, Decimals, memory limits) are in `_ops`; this module moves batches.

Design: read every input stream once, all at the same time, and fan its batches out.

- One step, one reader per stream. The compiler registers this step once as a reader of each
  stream its operations name, and a stream's cursor is kept per reader step; the producer trims
  what that cursor has passed. So a stream is read exactly once per run, however many
  operations use it (a second read by the same step would find the start trimmed); each batch
  goes to every operation that needs it, through a `Spool` per (stream, operation) use.
- All inputs are read concurrently, from the start. A producer writes its datasets in its own
  order and pauses while its first reader lags a window behind; reading one input to its end
  before starting another (e.g. a join's right side first) would deadlock whenever the producer
  writes the other one first and it is longer than the window. Readers therefore never wait for
  an operation: a batch an operation is not ready for waits in its spool (a few batches in
  memory, the rest in a file under the step's work directory). The producers are throttled only
  by how fast this step reads; memory stays bounded, disk holds the lag.
- All operations run concurrently, each as soon as its inputs' headers are known, and each
  opens its output at once (the next step is published with the first output). Concurrent
  outputs for the same reason as concurrent inputs: a later step may read them in any order.
- union streams its inputs one after the other (spooling the later ones meanwhile); join loads
  the right side into a hash table (at most MAX_JOIN_RIGHT_ROWS rows, else JoinTooLarge), then
  streams the left side (spooled while the right side loads); group_by streams its input into
  one accumulator per group (at most MAX_GROUPS) and writes the groups at the end.
- `Aggregator.passthrough` datasets (not set by today's compiler) are copied unchanged.

Output datasets are rewritten from the start if the stage runs again (a new generation); a
failed operation fails the step (and with it the other operations).
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Awaitable, Callable

from goreports.core.errors import PermanentError
from goreports.proto import tasks_pb2
from goreports.workers.aggregators import _ops
from goreports.workers.aggregators._spool import Spool
from goreports.workers.registry import stage
from goreports.workers.stage import StageContext, StageResult

SPOOL_MEMORY_BATCHES = 4


@dataclass
class _Plan:
    """Which streams to read and which spool each use of a stream feeds."""

    ctx: StageContext
    streams: dict[str, tuple[tasks_pb2.DatasetRef, list[Spool]]] = field(default_factory=dict)
    spools: list[Spool] = field(default_factory=list)

    def use(self, ref: tasks_pb2.DatasetRef, where: str) -> Spool:
        if not ref.stream:
            raise PermanentError(f"{where}: input dataset {ref.name!r} has no stream; the task "
                                 f"was not built by the compiler", reason="InvalidTask")
        spool = Spool(self.ctx.work_dir / "spool" / f"{len(self.spools)}.bin",
                      memory_batches=SPOOL_MEMORY_BATCHES)
        self.spools.append(spool)
        self.streams.setdefault(ref.stream, (ref, []))[1].append(spool)
        return spool


@dataclass
class _Written:
    """Rows written per output, and progress across all outputs."""

    ctx: StageContext
    per_output: dict[str, int] = field(default_factory=dict)

    async def add(self, output: str, rows: int) -> None:
        self.per_output[output] = self.per_output.get(output, 0) + rows
        await self.ctx.progress(sum(self.per_output.values()))


async def _read(ctx: StageContext, ref: tasks_pb2.DatasetRef, spools: list[Spool]) -> None:
    """Read one stream once, to its end, into every spool that uses it."""
    reader = ctx.read_dataset(ref)
    columns = await reader.open()
    for s in spools:
        s.set_columns(columns)
    async for batch in reader.batches():
        for s in spools:
            await s.put(batch)
    for s in spools:
        s.close()


async def _union(ctx: StageContext, op: tasks_pb2.AggregateOperation, where: str,
                 inputs: list[tuple[str, Spool]], written: _Written) -> None:
    headers = [(name, await spool.header()) for name, spool in inputs]
    plan = _ops.plan_union(headers, where)
    writer = await ctx.open_dataset(op.output, plan.columns)
    for i, (_, spool) in enumerate(inputs):
        async for batch in spool.batches():
            await writer.write(plan.project(i, batch))
            await written.add(op.output.dataset.name, len(batch))
    await writer.close()


async def _join(ctx: StageContext, op: tasks_pb2.AggregateOperation, where: str,
                left: Spool, right: Spool, written: _Written) -> None:
    j = op.join
    join = _ops.HashJoin(await left.header(), await right.header(), list(j.keys), j.type, where,
                         left_name=j.left.name, right_name=j.right.name,
                         max_right_rows=_ops.MAX_JOIN_RIGHT_ROWS)
    writer = await ctx.open_dataset(op.output, join.columns)
    async for batch in right.batches():
        join.add_right(batch)
    ctx.log.info("%s: right side %r loaded: %d rows", where, j.right.name, join.right_rows)
    async for batch in left.batches():
        for chunk in join.probe(batch):
            await writer.write(chunk)
            await written.add(op.output.dataset.name, len(chunk))
    await writer.close()


async def _group_by(ctx: StageContext, op: tasks_pb2.AggregateOperation, where: str,
                    source: Spool, written: _Written) -> None:
    g = op.group_by
    group = _ops.plan_group_by(await source.header(), list(g.keys), list(g.aggregates), where,
                               g.input.name, max_groups=_ops.MAX_GROUPS)
    writer = await ctx.open_dataset(op.output, group.columns)
    async for batch in source.batches():
        group.add(batch)
    rows = group.results()
    step = max(1, ctx.settings.batch_rows)
    for start in range(0, len(rows), step):
        chunk = rows[start:start + step]
        await writer.write(chunk)
        await written.add(op.output.dataset.name, len(chunk))
    await writer.close()


async def _copy(ctx: StageContext, out: tasks_pb2.Output, source: Spool,
                written: _Written) -> None:
    writer = await ctx.open_dataset(out, await source.header())
    async for batch in source.batches():
        await writer.write(batch)
        await written.add(out.dataset.name, len(batch))
    await writer.close()


def _operation(ctx: StageContext, plan: _Plan, index: int, op: tasks_pb2.AggregateOperation,
               written: _Written) -> Callable[[], Awaitable[None]]:
    """Check one operation, subscribe it to its inputs, and return its runner."""
    kind = op.WhichOneof("op")
    where = (f"aggregate step {ctx.step!r}, operation [{index}] {kind or 'empty'} -> "
             f"{op.output.dataset.name!r}")
    if not op.output.dataset.stream:
        raise PermanentError(f"{where}: the output has no stream; the task was not built by the "
                             f"compiler", reason="InvalidTask")
    if kind == "union":
        if not op.union.inputs:
            raise PermanentError(f"{where}: union has no inputs", reason="InvalidTask")
        inputs = [(r.name, plan.use(r, where)) for r in op.union.inputs]
        return lambda: _union(ctx, op, where, inputs, written)
    if kind == "join":
        left, right = plan.use(op.join.left, where), plan.use(op.join.right, where)
        return lambda: _join(ctx, op, where, left, right, written)
    if kind == "group_by":
        source = plan.use(op.group_by.input, where)
        return lambda: _group_by(ctx, op, where, source, written)
    raise PermanentError(f"{where}: the operation has no union, join or groupBy",
                         reason="InvalidTask")


def _first_error(eg: BaseExceptionGroup) -> BaseException:  # type: ignore[type-arg]
    exc: BaseException = eg
    while isinstance(exc, BaseExceptionGroup):
        exc = exc.exceptions[0]
    return exc


@stage("aggregate", channel="aggregators", task=tasks_pb2.Aggregator)
async def aggregate(task: tasks_pb2.Aggregator, ctx: StageContext) -> StageResult:
    if not task.operations and not task.passthrough:
        raise PermanentError(f"aggregate step {ctx.step!r} has no operations",
                             reason="InvalidTask")
    if len(task.passthrough) != len(task.passthrough_outputs):
        raise PermanentError(f"aggregate step {ctx.step!r}: {len(task.passthrough)} passthrough "
                             f"inputs but {len(task.passthrough_outputs)} outputs",
                             reason="InvalidTask")
    plan = _Plan(ctx)
    written = _Written(ctx)
    runners = [_operation(ctx, plan, i, op, written) for i, op in enumerate(task.operations)]
    for ref, out in zip(task.passthrough, task.passthrough_outputs):
        source = plan.use(ref, f"aggregate step {ctx.step!r}, passthrough {ref.name!r}")
        runners.append(lambda out=out, source=source: _copy(ctx, out, source, written))
    for out in list(task.passthrough_outputs) + [op.output for op in task.operations]:
        written.per_output.setdefault(out.dataset.name, 0)
    ctx.log.info("aggregate: %d operation(s) over %d input stream(s)", len(task.operations),
                 len(plan.streams))
    try:
        async with asyncio.TaskGroup() as tg:
            for ref, spools in plan.streams.values():
                tg.create_task(_read(ctx, ref, spools))
            for run in runners:
                tg.create_task(run())
    except BaseExceptionGroup as eg:
        raise _first_error(eg) from None
    finally:
        spilled = sum(s.spilled_total for s in plan.spools)
        for s in plan.spools:
            await asyncio.to_thread(s.cleanup)
    if spilled:
        ctx.log.info("aggregate: %d batch(es) waited on disk for their operation", spilled)
    message = "rows written: " + ", ".join(f"{name} {rows}"
                                           for name, rows in written.per_output.items())
    ctx.log.info("aggregate step %r: %s", ctx.step, message)
    return StageResult(rows=sum(written.per_output.values()), message=message)
