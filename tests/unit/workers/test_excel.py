"""The Excel generator: a SQLite -> Excel round trip, the formula guard, formats, and sheets
continued past Excel's row limit."""
from __future__ import annotations

import asyncio
import datetime as dt
import sqlite3
from decimal import Decimal
from pathlib import Path

import openpyxl
import pytest

from goreports.core import values
from goreports.core.bus.memory import MemoryBus
from goreports.core.errors import PermanentError
from goreports.proto import tasks_pb2
from goreports.workers.collectors.sqlite import collect_sqlite
from goreports.workers.generators import excel

from unit.workers.stagekit import UID, columns, feed, make_ctx, output, ref

HOSTILE = '=HYPERLINK("http://x","y")'


def make_db(path: Path, rows: int) -> None:
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE o (id INTEGER, customer TEXT, amount TEXT, qty INTEGER, "
                 "ratio REAL, day TEXT, at TEXT)")
    conn.executemany("INSERT INTO o VALUES (?, ?, ?, ?, ?, ?, ?)", [
        (i, HOSTILE if i == 5 else ("+1 Inc" if i == 6 else f"customer {i}"),
         f"{i * 3}.{i % 100:02d}", None if i % 10 == 0 else i % 7, i / 8,
         (dt.date(2024, 1, 1) + dt.timedelta(days=i % 400)).isoformat(),
         f"2024-05-06 07:{i % 60:02d}:{(i * 7) % 60:02d}")
        for i in range(1, rows + 1)])
    conn.commit()
    conn.close()


def open_sheet(tmp_path: Path, name: str) -> openpyxl.Workbook:
    return openpyxl.load_workbook(tmp_path / "artifacts" / UID / name)


async def test_sqlite_to_excel_round_trip(tmp_path: Path) -> None:
    rows = 3_000
    make_db(tmp_path / "o.db", rows)
    bus = MemoryBus()
    # a small window, so the collector really waits for the generator while both run
    collect = make_ctx(tmp_path, "collect", bus=bus, batch_rows=50, window_batches=4)
    generate = make_ctx(tmp_path, "excel", bus=bus)
    sql = ('SELECT id, customer, amount AS "amount [decimal]", qty, ratio, day, at '
           'FROM o ORDER BY id')
    collector_task = tasks_pb2.SqliteCollector(database=str(tmp_path / "o.db"), batch_rows=50)
    collector_task.query_list.add(name="orders", sql=sql,
                                  output=output(bus, "orders", readers=["excel"]))
    excel_task = tasks_pb2.ExcelGenerator(file_name="sales.xlsx", freeze_header=True,
                                          auto_filter=True)
    sheet = excel_task.sheets.add(name="Orders", dataset=ref(bus, "orders"))
    sheet.columns.add(name="amount", number_format="#,##0.00", width=14, header="Amount")

    collected, generated = await asyncio.wait_for(asyncio.gather(
        collect_sqlite(collector_task, collect), excel.generate_excel(excel_task, generate)), 60)
    assert collected.rows == generated.rows == rows
    [artifact] = generated.artifacts
    assert artifact.name == "sales.xlsx" and artifact.size > 0 and len(artifact.sha256) == 64

    ws = open_sheet(tmp_path, "sales.xlsx")["Orders"]
    got = list(ws.iter_rows(values_only=True))
    assert got[0] == ("id", "customer", "Amount", "qty", "ratio", "day", "at")
    source = sqlite3.connect(tmp_path / "o.db").execute(
        "SELECT id, customer, amount, qty, ratio, day, at FROM o ORDER BY id").fetchall()
    assert len(got) - 1 == len(source)
    for (i, customer, amount, qty, ratio, day, at), row in zip(source, got[1:]):
        assert row[0] == i and row[1] == customer
        assert Decimal(str(row[2])) == Decimal(amount)
        assert row[3] == qty  # None stays an empty cell
        assert row[4] == ratio
        assert row[5] == dt.datetime.fromisoformat(day)  # Excel dates read back as datetimes
        assert row[6] == dt.datetime.fromisoformat(at)

    assert ws["B6"].value == HOSTILE and ws["B6"].data_type == "s"  # text, not a formula
    assert ws["B7"].value == "+1 Inc" and ws["B7"].data_type == "s"
    assert ws["C2"].number_format == "#,##0.00"
    assert ws["F2"].number_format == "yyyy-mm-dd"
    assert ws["G2"].number_format == "yyyy-mm-dd hh:mm:ss"
    assert ws["A1"].font.bold
    assert ws.freeze_panes == "A2"
    assert ws.auto_filter.ref == f"A1:G{rows + 1}"
    assert ws.column_dimensions["C"].width == 14
    assert not any(p.name.startswith(".excel-") for p in (tmp_path / "work").rglob("*"))


async def test_sheets_continue_past_the_row_limit(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(excel, "EXCEL_MAX_ROWS", 4)  # header + 3 rows per sheet
    ctx = make_ctx(tmp_path, "excel")
    cols = columns(("n", values.INTEGER))
    big = await feed(ctx.bus, "big", cols, [[i] for i in range(7)], batch_rows=2)
    small = await feed(ctx.bus, "small", cols, [[42]])
    task = tasks_pb2.ExcelGenerator(file_name="x.xlsx", auto_filter=True)
    task.sheets.add(name="Big", dataset=big)
    task.sheets.add(name="Small", dataset=small)
    task.sheets.add(name="Big again", dataset=big)  # one reader serves both sheets
    result = await excel.generate_excel(task, ctx)
    assert result.rows == 8
    wb = open_sheet(tmp_path, "x.xlsx")
    assert wb.sheetnames == ["Big", "Big (2)", "Big (3)", "Small", "Big again", "Big again (2)",
                             "Big again (3)"]
    parts = [[r[0] for r in wb[n].iter_rows(values_only=True)]
             for n in ("Big", "Big (2)", "Big (3)")]
    assert parts == [["n", 0, 1, 2], ["n", 3, 4, 5], ["n", 6]]
    assert wb["Big (3)"].auto_filter.ref == "A1:A2"


async def test_header_and_names_are_checked(tmp_path: Path) -> None:
    ctx = make_ctx(tmp_path, "excel")
    data = await feed(ctx.bus, "d", columns(("a", values.STRING)), [["=1+2"]])
    task = tasks_pb2.ExcelGenerator(file_name="x.xlsx")
    task.sheets.add(name="S", dataset=data).columns.add(name="missing", width=3)
    with pytest.raises(PermanentError, match="missing"):
        await excel.generate_excel(task, ctx)
    bad = tasks_pb2.ExcelGenerator(file_name="../x.xlsx")
    bad.sheets.add(name="S", dataset=data)
    with pytest.raises(PermanentError, match="plain file name"):
        await excel.generate_excel(bad, ctx)
    assert excel.sheet_title("A" * 40, 1) == "A" * 31
    assert excel.sheet_title("A" * 40, 12) == "A" * 26 + " (12)"


async def test_a_failed_workbook_leaves_no_files(tmp_path: Path) -> None:
    from openpyxl.worksheet import _writer

    ctx = make_ctx(tmp_path, "excel")
    cols = columns(("n", values.INTEGER))
    good = await feed(ctx.bus, "good", cols, [[i] for i in range(500)])
    bad = await feed(ctx.bus, "bad", cols, [[1]])
    task = tasks_pb2.ExcelGenerator(file_name="x.xlsx")
    task.sheets.add(name="Good", dataset=good)
    task.sheets.add(name="Bad", dataset=bad).columns.add(name="nope")
    before = set(_writer.ALL_TEMP_FILES)
    with pytest.raises(PermanentError, match="nope"):
        await excel.generate_excel(task, ctx)
    assert set(_writer.ALL_TEMP_FILES) == before
    assert not list(tmp_path.rglob("*.xlsx"))
