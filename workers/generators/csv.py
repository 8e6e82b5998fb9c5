"""The `csv` generator: one dataset -> one CSV file, streamed batch by batch.

Why so plain: CSV is what other programs import, so the output is RFC 4180 (`csv.writer`,
minimal quoting, CRLF line ends, UTF-8 without BOM). Cells are rendered by
goreports.workers.generators.cells.csv_text: dates as ISO text, decimals exactly, bytes as hex,
None empty, and text that a spreadsheet would run as a formula (`=`, `+`, `-`, `@`, tab, CR)
prefixed with `'` as OWASP advises. The file is built under `ctx.work_dir` and stored atomically
by the artifact store (moved there, not copied, when it can).
"""
from __future__ import annotations

import asyncio
import csv
import os
import tempfile
from pathlib import Path
from typing import Any

from goreports.core.errors import PermanentError
from goreports.proto import tasks_pb2
from goreports.core.artifacts import content_type_for, safe_name
from goreports.workers.generators.cells import csv_text
from goreports.workers.registry import stage
from goreports.workers.stage import StageContext, StageResult


# A batch this small is rendered on the event loop: it takes less time than the thread hop.
INLINE_ROWS = 64


def _write_batch(writer: Any, rows: list[list[Any]]) -> None:
    writer.writerows([csv_text(c) for c in row] for row in rows)


@stage("csv", channel="generators", task=tasks_pb2.CsvGenerator)
async def generate_csv(task: tasks_pb2.CsvGenerator, ctx: StageContext) -> StageResult:
    file_name = safe_name(task.file_name)
    delimiter = task.delimiter or ","
    if len(delimiter) != 1 or delimiter in "\r\n\"'":
        raise PermanentError(f"csv file {file_name!r}: delimiter {delimiter!r} must be one "
                             f"character other than a quote or line break", reason="InvalidTask")
    if not task.dataset.stream:
        raise PermanentError(f"csv file {file_name!r} names no dataset stream",
                             reason="InvalidTask")
    ctx.work_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=".csv-", suffix=".csv", dir=ctx.work_dir)
    tmp = Path(tmp_name)
    rows = 0
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as out:
            writer = csv.writer(out, delimiter=delimiter, lineterminator="\r\n")
            reader = ctx.read_dataset(task.dataset)
            columns = await reader.open()
            if task.header:
                writer.writerow([csv_text(c.name) for c in columns])
            async for batch in reader.batches():
                if len(batch) <= INLINE_ROWS:
                    _write_batch(writer, batch)
                else:
                    await asyncio.to_thread(_write_batch, writer, batch)
                rows += len(batch)
                await ctx.progress(rows)
        artifact = await ctx.artifacts.take(ctx.report.uid, file_name, tmp,
                                           content_type_for(file_name))
    finally:
        tmp.unlink(missing_ok=True)
    return StageResult(rows=rows, artifacts=[artifact])
