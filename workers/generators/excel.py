"""The `excel` generator: datasets -> one .xlsx file, streamed row by row.

Why write-only openpyxl: a write-only workbook sends each row to a temporary file as it is
appended, so memory stays flat for any row count. Its rules shape this module: column widths and
frozen panes must be set before a sheet's first row; the auto-filter range is written when the
sheet closes, so it can be set once the row count is known.

- One sheet per `Sheet`, header row in bold (from `ColumnFormat.header`, else the column name),
  then typed cells (goreports.workers.generators.cells: numbers, dates with formats, formula-like
  text kept as text). `Sheet.columns` formats columns by name; it does not select columns (the
  query does that).
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
from pathlib import Path
from typing import Any, Sequence

from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.styles import Font
from openpyxl.utils import get_column_letter
from openpyxl.worksheet._write_only import WriteOnlyWorksheet

from goreports.core.errors import PermanentError
from goreports.proto import dataset_pb2, tasks_pb2
from goreports.core.artifacts import content_type_for, safe_name
from goreports.workers.generators.cells import excel_value
from goreports.workers.registry import stage
from goreports.workers.stage import StageContext, StageResult

EXCEL_MAX_ROWS = 1_048_576  # rows per sheet, header included
MAX_TITLE = 31
_BOLD = Font(bold=True)


def sheet_title(name: str, part: int) -> str:
    """The title of part `part` (1-based) of a sheet: "Orders", "Orders (2)", … within 31 chars."""
    suffix = "" if part == 1 else f" ({part})"
    return name[: MAX_TITLE - len(suffix)] + suffix


class _SheetWriter:
    """Writes one `Sheet` spec; opens continuation sheets past the row limit."""

    def __init__(self, wb: Workbook, spec: tasks_pb2.Sheet, *, freeze: bool, auto_filter: bool,
                 max_rows: int) -> None:
        self.wb = wb
        self.name = spec.name or spec.dataset.name
        self.spec = spec
        self.freeze = freeze
        self.auto_filter = auto_filter
        self.max_rows = max_rows
        self.parts: list[WriteOnlyWorksheet] = [self._create(1)]  # created now: keeps tab order
        self.rows_in_part = 0
        self.rows = 0
        self.headers: list[str] = []
        self.formats: list[str | None] = []
        self.widths: list[float] = []

    def _create(self, part: int) -> WriteOnlyWorksheet:
        try:
            return self.wb.create_sheet(sheet_title(self.name, part))
        except ValueError as e:
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
        self.formats = [(fmts[n].number_format or None) if n in fmts else None for n in names]
        self.widths = [fmts[n].width if n in fmts and fmts[n].width > 0
                       else min(max(10.0, len(h) + 2.0), 50.0)
                       for n, h in zip(names, self.headers)]
        self._begin(self.parts[0])

    def _begin(self, ws: WriteOnlyWorksheet) -> None:
        for i, width in enumerate(self.widths, 1):
            ws.column_dimensions[get_column_letter(i)].width = width
        if self.freeze:
            ws.freeze_panes = "A2"
        header = []
        for h in self.headers:
            cell = WriteOnlyCell(ws, value=h)
            cell.data_type = "s"  # a header is text even if it looks like a formula
            cell.font = _BOLD
            header.append(cell)
        ws.append(header)
        self.rows_in_part = 0

    def append(self, rows: list[list[Any]]) -> None:
        ws = self.parts[-1]
        formats = self.formats
        for row in rows:
            if self.rows_in_part >= self.max_rows - 1:
                self._end_part()
                ws = self._create(len(self.parts) + 1)
                self.parts.append(ws)
                self._begin(ws)
            out: list[Any] = []
            for value, col_fmt in zip(row, formats):
                v, fmt, text = excel_value(value)
                fmt = col_fmt or fmt
                if v is None or not (fmt or text):
                    out.append(v)
                    continue
                cell = WriteOnlyCell(ws, value=v)
                if text:
                    cell.data_type = "s"
                    cell.quotePrefix = True
                if fmt:
                    cell.number_format = fmt
                out.append(cell)
            ws.append(out)
            self.rows_in_part += 1
            self.rows += 1

    def _end_part(self) -> None:
        if self.auto_filter and self.headers:
            last = get_column_letter(len(self.headers))
            self.parts[-1].auto_filter.ref = f"A1:{last}{self.rows_in_part + 1}"

    def finish(self) -> None:
        self._end_part()


async def _fill(ctx: StageContext, ref: tasks_pb2.DatasetRef, writers: list[_SheetWriter]) -> int:
    """Read one dataset into every sheet that shows it; return its row count."""
    reader = ctx.read_dataset(ref)
    columns = await reader.open()
    for w in writers:
        w.start(columns)
    rows = 0
    async for batch in reader.batches():
        for w in writers:
            w.append(batch)
        rows += len(batch)
        await ctx.progress(rows)
    for w in writers:
        w.finish()
    return rows


def _discard(wb: Workbook) -> None:
    """Remove the temporary files of a workbook that will not be saved (openpyxl keeps one per
    write-only sheet until the process exits otherwise)."""
    for ws in wb.worksheets:
        writer = getattr(ws, "_writer", None)
        if writer is None:
            continue
        try:
            if ws._rows is not None:
                ws._rows.close()  # ends the row generator first, or closing the file fails
            writer.close()
        except Exception:  # noqa: BLE001 - best effort: the file is removed below either way
            pass
        try:
            writer.cleanup()
        except (OSError, ValueError):
            pass


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
    wb = Workbook(write_only=True)
    writers: list[_SheetWriter] = []
    groups: dict[str, tuple[tasks_pb2.DatasetRef, list[_SheetWriter]]] = {}
    for spec in task.sheets:
        if not spec.dataset.stream:
            raise PermanentError(f"sheet {spec.name!r} of {file_name!r} names no dataset stream",
                                 reason="InvalidTask")
        writer = _SheetWriter(wb, spec, freeze=task.freeze_header, auto_filter=task.auto_filter,
                              max_rows=EXCEL_MAX_ROWS)
        writers.append(writer)
        groups.setdefault(spec.dataset.stream, (spec.dataset, []))[1].append(writer)

    ctx.work_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=".excel-", suffix=".xlsx", dir=ctx.work_dir)
    os.close(fd)
    tmp = Path(tmp_name)
    saved = False
    try:
        try:
            async with asyncio.TaskGroup() as tg:
                tasks = [tg.create_task(_fill(ctx, ref, ws)) for ref, ws in groups.values()]
        except BaseExceptionGroup as eg:
            raise _first_error(eg) from None
        # Continuation sheets were created while rows arrived: put each after its first part.
        wb._sheets = [ws for w in writers for ws in w.parts]
        await asyncio.to_thread(wb.save, tmp)
        saved = True
        artifact = await ctx.artifacts.put(ctx.report.uid, file_name, tmp,
                                           content_type_for(file_name))
    finally:
        if not saved:
            _discard(wb)
        tmp.unlink(missing_ok=True)
    return StageResult(rows=sum(t.result() for t in tasks), artifacts=[artifact])
