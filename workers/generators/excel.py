"""The `excel` generator: datasets -> one .xlsx file, streamed row by row.

Why our own writer (goreports.workers.generators._xlsx) and not openpyxl: openpyxl's write-only
mode made an object and an XML element per cell, ~4,000 rows/s; a 1,000,000-row report took two
minutes, twenty times longer than reading its rows. The sheet XML is now written as text, a
column of a row batch at a time, by formatters chosen once from the dataset header's column types
(goreports.workers.generators._xlsx_cells), and deflated at a fast level. Memory stays flat: a
batch is formatted, compressed and gone.

- One sheet per `Sheet`, header row in bold (from `ColumnFormat.header`, else the column name),
  then typed cells (goreports.workers.generators.cells: numbers, dates with formats, formula-like
  text kept as text with the quote prefix). `Sheet.columns` formats columns by name; it does not
  select columns (the query does that).
- Excel holds 1,048,576 rows per sheet: a longer dataset continues on "Name (2)", "Name (3)", …
  each with its own header.
- All datasets are read at the same time (one reader per dataset, shared by the sheets that show
  it): reading them one after another could deadlock when the producer writes them in another
  order and throttles on the unread one.
- The file is built under `ctx.work_dir` and handed to the artifact store, which stores it
  atomically; a failed run leaves nothing behind.
"""
from __future__ import annotations

import asyncio
import os
import tempfile
from itertools import chain, repeat
from pathlib import Path
from typing import Any, Sequence

from goreports.core.artifacts import content_type_for, safe_name
from goreports.core.errors import PermanentError
from goreports.core.rowcodec import LightBatch
from goreports.proto import dataset_pb2, tasks_pb2
from goreports.workers.generators._xlsx import InvalidTitle, SheetPart, XlsxWriter
from goreports.workers.generators._xlsx_cells import ColumnFormatter, formatter, light_formatter
from goreports.workers.registry import stage
from goreports.workers.stage import StageContext, StageResult

EXCEL_MAX_ROWS = 1_048_576  # rows per sheet, header included
MAX_TITLE = 31


def sheet_title(name: str, part: int) -> str:
    """The title of part `part` (1-based) of a sheet: "Orders", "Orders (2)", … within 31 chars."""
    suffix = "" if part == 1 else f" ({part})"
    return name[: MAX_TITLE - len(suffix)] + suffix


class _SheetWriter:
    """Writes one `Sheet` spec; opens continuation sheets past the row limit."""

    def __init__(self, book: XlsxWriter, spec: tasks_pb2.Sheet, *, freeze: bool,
                 auto_filter: bool, max_rows: int) -> None:
        self.book = book
        self.name = spec.name or spec.dataset.name
        self.spec = spec
        self.freeze = freeze
        self.auto_filter = auto_filter
        self.max_rows = max_rows
        self.parts: list[SheetPart] = [self._create(1)]  # created now: keeps tab order
        self.rows = 0
        self.headers: list[str] = []
        self.widths: list[float] = []
        self.formatters: list[ColumnFormatter] = []
        self.light: list[ColumnFormatter] = []

    def _create(self, part: int) -> SheetPart:
        try:
            return self.book.sheet(sheet_title(self.name, part))
        except InvalidTitle as e:
            raise PermanentError(f"sheet name {self.name!r} is not allowed by Excel: {e}",
                                 reason="InvalidSheetName") from None

    def start(self, columns: Sequence[dataset_pb2.Column]) -> None:
        names = [c.name for c in columns]
        fmts = {f.name: f for f in self.spec.columns}
        unknown = [n for n in fmts if n not in names]
        if unknown:
            raise PermanentError(
                f"sheet {self.name!r}: column formats name {unknown} but dataset "
                f"{self.spec.dataset.name!r} has columns {names}", reason="UnknownColumn")
        self.headers = [(fmts[n].header if n in fmts and fmts[n].header else n) for n in names]
        self.widths = [fmts[n].width if n in fmts and fmts[n].width > 0
                       else min(max(10.0, len(h) + 2.0), 50.0)
                       for n, h in zip(names, self.headers)]
        number_formats = [(fmts[c.name].number_format or None) if c.name in fmts else None
                          for c in columns]
        self.formatters = [formatter(c.type, f, self.book.styles)
                           for c, f in zip(columns, number_formats)]
        self.light = [light_formatter(c.type, f, self.book.styles)
                      for c, f in zip(columns, number_formats)]
        self._begin(self.parts[0])

    def _begin(self, part: SheetPart) -> None:
        part.begin(self.headers, self.widths, freeze=self.freeze, auto_filter=self.auto_filter)

    def append(self, batch: list[list[Any]] | LightBatch) -> None:
        """A batch of rows, or of light columns (see goreports.core.rowcodec.RowDecoder.light)."""
        if isinstance(batch, LightBatch):
            count, columns, formatters = batch.count, batch.columns, self.light
        else:
            count, columns, formatters = len(batch), list(zip(*batch)), self.formatters
        done = 0
        while done < count:
            part = self.parts[-1]
            if part.rows >= self.max_rows:
                part.end()
                part = self._create(len(self.parts) + 1)
                self.parts.append(part)
                self._begin(part)
            n = min(self.max_rows - part.rows, count - done)
            chunk = columns if n == count else [c[done:done + n] for c in columns]
            self._write(part, formatters, chunk, n)
            done += n
        self.rows += count

    def _write(self, part: SheetPart, formatters: list[ColumnFormatter],
               columns: Sequence[Sequence[Any]], count: int) -> None:
        """A batch as XML: each column formatted at once, then the rows zipped together."""
        first = part.rows + 1
        cells = [f(col) for f, col in zip(formatters, columns)]
        starts = [f'<row r="{n}">' for n in range(first, first + count)]
        part.write("".join(chain.from_iterable(zip(starts, *cells, repeat("</row>")))))
        part.rows += count

    def finish(self) -> None:
        self.parts[-1].end()


async def _fill(ctx: StageContext, ref: tasks_pb2.DatasetRef, writers: list[_SheetWriter]) -> int:
    """Read one dataset into every sheet that shows it; return its row count."""
    reader = ctx.read_dataset(ref)
    columns = await reader.open()
    for w in writers:
        w.start(columns)
    rows = 0
    async for batch in reader.light_batches():
        for w in writers:
            w.append(batch)
        rows += batch.count if isinstance(batch, LightBatch) else len(batch)
        await ctx.progress(rows)
    for w in writers:
        w.finish()
    return rows


def _first_error(eg: BaseExceptionGroup) -> BaseException:  # type: ignore[type-arg]
    """The first failure inside a TaskGroup's exception group, so the runtime sees its type."""
    exc: BaseException = eg
    while isinstance(exc, BaseExceptionGroup):
        exc = exc.exceptions[0]
    return exc


@stage("excel", channel="generators", task=tasks_pb2.ExcelGenerator)
async def generate_excel(task: tasks_pb2.ExcelGenerator, ctx: StageContext) -> StageResult:
    file_name = safe_name(task.file_name)
    if not task.sheets:
        raise PermanentError(f"excel file {file_name!r} has no sheets", reason="InvalidTask")
    for spec in task.sheets:
        if not spec.dataset.stream:
            raise PermanentError(f"sheet {spec.name!r} of {file_name!r} names no dataset stream",
                                 reason="InvalidTask")
    ctx.work_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=".excel-", suffix=".xlsx", dir=ctx.work_dir)
    os.close(fd)
    tmp = Path(tmp_name)
    book = XlsxWriter(tmp, spool_dir=ctx.work_dir)
    saved = False
    try:
        writers: list[_SheetWriter] = []
        groups: dict[str, tuple[tasks_pb2.DatasetRef, list[_SheetWriter]]] = {}
        for spec in task.sheets:
            writer = _SheetWriter(book, spec, freeze=task.freeze_header,
                                  auto_filter=task.auto_filter, max_rows=EXCEL_MAX_ROWS)
            writers.append(writer)
            groups.setdefault(spec.dataset.stream, (spec.dataset, []))[1].append(writer)
        try:
            async with asyncio.TaskGroup() as tg:
                tasks = [tg.create_task(_fill(ctx, ref, ws)) for ref, ws in groups.values()]
        except BaseExceptionGroup as eg:
            raise _first_error(eg) from None
        # Continuation sheets were created while rows arrived: put each after its first part.
        book.order([part for w in writers for part in w.parts])
        await asyncio.to_thread(book.close)
        saved = True
        artifact = await ctx.artifacts.put(ctx.report.uid, file_name, tmp,
                                           content_type_for(file_name))
    finally:
        if not saved:
            book.discard()
        tmp.unlink(missing_ok=True)
    return StageResult(rows=sum(t.result() for t in tasks), artifacts=[artifact])
