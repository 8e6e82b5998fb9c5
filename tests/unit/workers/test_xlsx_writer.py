"""The streaming .xlsx writer: what openpyxl reads back from it (values, types, formats, the
formula guard, characters XML cannot hold), and that the light-column path writes the same
sheet as the Python-value path."""
from __future__ import annotations

import datetime as dt
import zipfile
from decimal import Decimal
from pathlib import Path
from typing import Any

import openpyxl
import pytest

from goreports.core import rowcodec, values
from goreports.proto import tasks_pb2
from goreports.workers.generators import excel
from goreports.workers.generators._xlsx import XlsxWriter, column_letter
from goreports.workers.generators.cells import EXCEL_MAX_CHARS, cut_for_excel

from unit.workers.stagekit import UID, columns, feed, make_ctx

COLS = columns(("n", values.INTEGER), ("x", values.FLOAT), ("amount", values.DECIMAL),
               ("ok", values.BOOLEAN), ("day", values.DATE), ("at", values.DATETIME),
               ("text", values.STRING), ("doc", values.JSON), ("raw", values.BYTES))
LONG = "é" * (EXCEL_MAX_CHARS + 100)
TEXTS = ["plain", "=1+1", '=HYPERLINK("http://x","y")', "+49 30 1234", "-x", "@SUM(A1)",
         "#N/A", "a & b <c> \"d\" 'e'", "tab\there", "line\nbreak", "cr\rhere", "  padded  ",
         "ctrl\x00\x01\x1f end", "nonchar \ufffe\uffff", "日本語 ✓ 🎉",
         LONG, "", None, "x" * 300, "€ 5"]


def row(i: int) -> list[Any]:
    return [i - 3, i / 8, Decimal(f"{i}.{i:02d}"), i % 2 == 0,
            dt.date(2024, 1, 1) + dt.timedelta(days=i), dt.datetime(2024, 5, 6, 7, 8, 9) +
            dt.timedelta(seconds=i * 37), TEXTS[i % len(TEXTS)], values.JsonText('{"a": 1}'),
            bytes([i % 256, 255])]


ODD = [  # values a fast path does not take: the general path decides
    [10 ** 18, float("nan"), Decimal("Infinity"), None, dt.date(1899, 12, 31),
     dt.datetime(2024, 1, 2, 12, 0, tzinfo=dt.timezone(dt.timedelta(hours=2))), 12,
     values.JsonText("{\"k\":[1]}"), None],
    [None, None, Decimal("1E+3"), None, None, dt.datetime(2024, 1, 2, 3, 4, 5, 678000), "7",
     None, b""],
]


def expected(value: Any) -> Any:
    """What openpyxl reads back for a dataset value."""
    if isinstance(value, str):
        for bad in ("\x00", "\x01", "\x1f", "\ud800", "\ufffe", "\uffff"):
            value = value.replace(bad, "\ufffd")
        return (cut_for_excel(value) if len(value) > EXCEL_MAX_CHARS else value) or None
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, dt.datetime):
        return value
    if isinstance(value, dt.date):
        return dt.datetime.combine(value, dt.time())
    if isinstance(value, bytes):
        return value.hex() or None
    return value


async def make_book(tmp_path: Path, rows: list[list[Any]], **task: Any) -> openpyxl.Workbook:
    ctx = make_ctx(tmp_path, "excel")
    data = await feed(ctx.bus, "d", COLS, rows, batch_rows=7)
    t = tasks_pb2.ExcelGenerator(file_name="w.xlsx", **task)
    sheet = t.sheets.add(name="Data", dataset=data)
    sheet.columns.add(name="amount", number_format="#,##0.00", width=14, header="=Amount")
    result = await excel.generate_excel(t, ctx)
    assert result.rows == len(rows)
    path = tmp_path / "artifacts" / UID / "w.xlsx"
    with zipfile.ZipFile(path) as z:
        assert z.testzip() is None
        assert all(i.compress_type == zipfile.ZIP_DEFLATED for i in z.infolist())
    return openpyxl.load_workbook(path)


async def test_openpyxl_reads_back_values_types_and_formats(tmp_path: Path) -> None:
    rows = [row(i) for i in range(60)]
    ws = (await make_book(tmp_path, rows, freeze_header=True, auto_filter=True))["Data"]
    got = list(ws.iter_rows(values_only=True))
    assert got[0] == ("n", "x", "=Amount", "ok", "day", "at", "text", "doc", "raw")
    assert all(c.font.bold and c.data_type == "s" for c in ws[1])  # a header is never a formula
    for i, (src, back) in enumerate(zip(rows, got[1:])):
        want = tuple(expected(v) for v in src)
        assert back == want, (i, back, want)
        assert type(back[0]) is int and type(back[3]) is bool and type(back[1]) is float
    texts = {c.value: c for c in ws["G"][1:] if isinstance(c.value, str)}
    for formula in ("=1+1", '=HYPERLINK("http://x","y")', "+49 30 1234", "-x", "@SUM(A1)", "#N/A"):
        assert texts[formula].data_type == "s" and texts[formula].quotePrefix, formula
    assert not texts["plain"].quotePrefix
    assert ws["C2"].number_format == "#,##0.00" and ws["E2"].number_format == "yyyy-mm-dd"
    assert ws["F2"].number_format == "yyyy-mm-dd hh:mm:ss" and ws["A2"].number_format == "General"
    assert ws.freeze_panes == "A2" and ws.auto_filter.ref == f"A1:I{len(rows) + 1}"
    assert ws.column_dimensions["C"].width == 14 and ws.column_dimensions["F"].width == 10


async def test_values_only_the_general_path_takes(tmp_path: Path) -> None:
    ws = (await make_book(tmp_path, ODD))["Data"]
    first, second = list(ws.iter_rows(min_row=2, values_only=True))
    assert first[:3] == (str(10 ** 18), "nan", "Infinity")  # Excel cannot hold them as numbers
    assert first[4] == "1899-12-31"  # before Excel's first faithful date
    assert first[5] == dt.datetime(2024, 1, 2, 10, 0)  # aware: its UTC wall time
    assert first[6] == 12 and first[7] == '{"k":[1]}'  # mistyped cells keep their own type
    assert second[2] == 1000 and second[5] == dt.datetime(2024, 1, 2, 3, 4, 5, 678000)
    assert second[6] == "7" and second[0] is None and second[8] is None
    assert not ws.freeze_panes and ws.auto_filter.ref is None


def sheet_xml(tmp_path: Path, name: str, batches: list[Any]) -> str:
    book = XlsxWriter(tmp_path / name)
    w = excel._SheetWriter(book, tasks_pb2.Sheet(name="S"), freeze=False, auto_filter=False,
                           max_rows=excel.EXCEL_MAX_ROWS)
    w.start(COLS)
    for b in batches:
        w.append(b)
    w.finish()
    book.close()
    with zipfile.ZipFile(tmp_path / name) as z:
        return z.read("xl/worksheets/sheet1.xml").decode()


def test_light_columns_write_the_same_sheet_as_python_values(tmp_path: Path) -> None:
    rows = [row(i) for i in range(200)] + ODD
    decoder = rowcodec.RowDecoder([c.type for c in COLS])
    encoded = rowcodec.encode_row_bytes(rows)
    light = decoder.light(encoded)
    assert light is not None
    cols, lines = light
    assert len(lines) == len(rows)
    sums = values.RowChecksum(), values.RowChecksum()
    sums[0].update(rows)
    sums[1].update_lines(lines)
    assert sums[0].hexdigest() == sums[1].hexdigest()
    by_values = sheet_xml(tmp_path, "a.xlsx", [decoder.rows(encoded)])
    by_light = sheet_xml(tmp_path, "b.xlsx", [rowcodec.LightBatch(cols, len(rows))])
    assert by_light == by_values


def test_text_the_wire_cannot_carry_is_still_written_safely(tmp_path: Path) -> None:
    """A lone surrogate has no UTF-8 form (the dataset wire refuses it), but a sheet written
    from Python values replaces it like any character XML cannot hold."""
    sheet_xml(tmp_path, "s.xlsx", [[[1, 1.0, None, None, None, None, "a\ud800b", None, None]]])
    ws = openpyxl.load_workbook(tmp_path / "s.xlsx")["S"]
    assert ws["G2"].value == "a\ufffdb"


def test_titles_and_columns() -> None:
    assert [column_letter(i) for i in (1, 26, 27, 52, 703, 16384)] == [
        "A", "Z", "AA", "AZ", "AAA", "XFD"]


@pytest.mark.parametrize("title", ["a/b", "x[1]", "what?", "a:b", "star*", "back\\slash"])
async def test_titles_excel_refuses_fail_permanently(tmp_path: Path, title: str) -> None:
    from goreports.core.errors import PermanentError

    ctx = make_ctx(tmp_path, "excel")
    data = await feed(ctx.bus, "d", columns(("n", values.INTEGER)), [[1]])
    t = tasks_pb2.ExcelGenerator(file_name="t.xlsx")
    t.sheets.add(name=title, dataset=data)
    with pytest.raises(PermanentError) as err:
        await excel.generate_excel(t, ctx)
    assert err.value.reason == "InvalidSheetName"
    assert not list(tmp_path.rglob("*.xlsx"))


async def test_sheets_of_two_datasets_fill_at_once(tmp_path: Path) -> None:
    """Two datasets read at the same time: one sheet streams into the zip, the other spools to
    a temporary file that is copied in afterwards; both come out whole, in tab order, with
    duplicate titles made unique as openpyxl does."""
    ctx = make_ctx(tmp_path, "excel")
    one = await feed(ctx.bus, "one", columns(("n", values.INTEGER)), [[i] for i in range(1000)])
    two = await feed(ctx.bus, "two", columns(("s", values.STRING)),
                     [[f"s{i}"] for i in range(700)], batch_rows=10)
    t = tasks_pb2.ExcelGenerator(file_name="two.xlsx", auto_filter=True)
    t.sheets.add(name="Same", dataset=one)
    t.sheets.add(name="Same", dataset=two)
    await excel.generate_excel(t, ctx)
    wb = openpyxl.load_workbook(tmp_path / "artifacts" / UID / "two.xlsx")
    assert wb.sheetnames == ["Same", "Same1"]
    assert [r[0] for r in wb["Same"].iter_rows(min_row=2, values_only=True)] == list(range(1000))
    assert [r[0] for r in wb["Same1"].iter_rows(min_row=2, values_only=True)] == [
        f"s{i}" for i in range(700)]
    assert wb["Same1"].auto_filter.ref == "A1:A701"
    assert not [p for p in (tmp_path / "work").rglob("*") if p.is_file()]


@pytest.mark.parametrize("accelerated", [True, False])
async def test_sheets_deflate_with_or_without_isal(tmp_path: Path, accelerated: bool,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from goreports.workers.generators import _xlsx

    if not accelerated:
        monkeypatch.setattr(_xlsx, "_fast_deflate", None)
    rows = [row(i) for i in range(300)]
    ws = (await make_book(tmp_path, rows))["Data"]
    assert [r[0] for r in ws.iter_rows(min_row=2, values_only=True)] == [r[0] for r in rows]
