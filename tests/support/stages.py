"""Stages for runtime tests: a row producer, a streaming consumer, and a counted side effect.

Their tasks are google.protobuf.Struct so tests can steer them (rows, sleeps, failures) without
new messages; they are loaded into worker processes with GOREPORTS_STAGE_MODULES.
"""
from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path

from google.protobuf import struct_pb2
from google.protobuf.json_format import MessageToDict

from goreports.core import values
from goreports.core.errors import PermanentError, TemporaryError
from goreports.proto import dataset_pb2, events_pb2, tasks_pb2
from goreports.workers.registry import stage
from goreports.workers.stage import StageContext, StageResult


def _d(task: struct_pb2.Struct) -> dict:
    return MessageToDict(task)


@stage("test-produce", channel="collectors", task=struct_pb2.Struct)
async def produce(task: struct_pb2.Struct, ctx: StageContext) -> StageResult:
    t = _d(task)
    out = tasks_pb2.Output(dataset=tasks_pb2.DatasetRef(name=t["dataset"], stream=t["stream"],
                                                        producer_step=ctx.step),
                           readers=t.get("readers", []))
    cols = [dataset_pb2.Column(name="id", type=values.INTEGER),
            dataset_pb2.Column(name="label", type=values.STRING)]
    writer = await ctx.open_dataset(out, cols)
    n = int(t["rows"])
    chunk = 1000
    sleep = float(t.get("sleepPerChunk", 0))
    for start in range(0, n, chunk):
        await writer.write([(i, f"row-{i}") for i in range(start, min(n, start + chunk))])
        if sleep:
            await asyncio.sleep(sleep)
        if t.get("markFile") and start == 0:
            Path(t["markFile"]).write_text(str(os.getpid()))
    rows, _ = await writer.close()
    if t.get("doneFile"):
        Path(t["doneFile"]).write_text(str(time.time()))
    return StageResult(rows=rows)


@stage("test-consume", channel="generators", task=struct_pb2.Struct)
async def consume(task: struct_pb2.Struct, ctx: StageContext) -> StageResult:
    t = _d(task)
    reader = ctx.read_dataset(tasks_pb2.DatasetRef(name=t["dataset"], stream=t["stream"],
                                                   producer_step=t.get("producer", "")))
    await reader.open()
    first_batch_at = None
    count = 0
    async for batch in reader.batches():
        if first_batch_at is None:
            first_batch_at = time.time()
        count += len(batch)
        if t.get("sleepPerBatch"):
            await asyncio.sleep(float(t["sleepPerBatch"]))
    Path(t["resultFile"]).write_text(json.dumps(
        {"rows": count, "first_batch_at": first_batch_at, "checksum": reader.checksum}))
    return StageResult(rows=count)


@stage("test-effect", channel="dispatchers", task=struct_pb2.Struct)
async def effect(task: struct_pb2.Struct, ctx: StageContext) -> StageResult:
    """Appends one line per run to `effectFile`; can sleep (to be killed) or fail N times."""
    t = _d(task)
    if t.get("startedFile"):
        with open(t["startedFile"], "a") as f:
            f.write(f"{os.getpid()} {ctx.attempt}\n")
    if t.get("sleep"):
        await asyncio.sleep(float(t["sleep"]))
    if t.get("permanent"):
        raise PermanentError(t["permanent"], reason="TestRefused")
    fail_times = int(t.get("failTimes", 0))
    if ctx.attempt <= fail_times:
        raise TemporaryError(f"simulated failure on attempt {ctx.attempt}", delay=0.05)
    with open(t["effectFile"], "a") as f:
        f.write(f"{ctx.report.uid} {ctx.step} {os.getpid()}\n")
    return StageResult(artifacts=[events_pb2.Artifact(name="effect", location=t["effectFile"])])
