"""The CSV generator: streamed RFC 4180 output with the formula guard."""
from __future__ import annotations

import csv
import datetime as dt
from decimal import Decimal
from pathlib import Path

import pytest

from goreports.core import values
from goreports.core.errors import PermanentError
from goreports.proto import tasks_pb2
from goreports.workers.generators.csv import generate_csv

from unit.workers.stagekit import UID, columns, feed, make_ctx

COLS = columns(("name", values.STRING), ("amount", values.DECIMAL), ("day", values.DATE),
               ("n", values.INTEGER))


async def test_csv_guard_and_types(tmp_path: Path) -> None:
    ctx = make_ctx(tmp_path, "csv")
    data = await feed(ctx.bus, "orders", COLS, [
        ['=HYPERLINK("http://x","y")', Decimal("1.50"), dt.date(2024, 1, 2), -5],
        ["+49 30 1234", None, None, 7],
        ["a;b \"quoted\"\nline", Decimal("2"), dt.date(2024, 1, 3), 0],
        ["@SUM(A1)", Decimal("0.1"), dt.date(2024, 1, 4), None],
    ], batch_rows=3)
    task = tasks_pb2.CsvGenerator(file_name="orders.csv", dataset=data, delimiter=";", header=True)
    result = await generate_csv(task, ctx)
    assert result.rows == 4 and result.artifacts[0].content_type == "text/csv"
    raw = (tmp_path / "artifacts" / UID / "orders.csv").read_bytes()
    assert raw.startswith(b"name;amount;day;n\r\n")
    with open(tmp_path / "artifacts" / UID / "orders.csv", newline="", encoding="utf-8") as f:
        got = list(csv.reader(f, delimiter=";"))
    assert got == [["name", "amount", "day", "n"],
                   ["'=HYPERLINK(\"http://x\",\"y\")", "1.50", "2024-01-02", "-5"],
                   ["'+49 30 1234", "", "", "7"],
                   ["a;b \"quoted\"\nline", "2", "2024-01-03", "0"],
                   ["'@SUM(A1)", "0.1", "2024-01-04", ""]]


async def test_csv_without_header_and_bad_delimiter(tmp_path: Path) -> None:
    ctx = make_ctx(tmp_path, "csv")
    data = await feed(ctx.bus, "orders", COLS, [["x", Decimal("1"), dt.date(2024, 1, 1), 1]])
    await generate_csv(tasks_pb2.CsvGenerator(file_name="o.csv", dataset=data), ctx)
    assert (tmp_path / "artifacts" / UID / "o.csv").read_bytes() == b"x,1,2024-01-01,1\r\n"
    with pytest.raises(PermanentError, match="delimiter"):
        await generate_csv(tasks_pb2.CsvGenerator(file_name="o.csv", dataset=data,
                                                  delimiter="ab"), ctx)
