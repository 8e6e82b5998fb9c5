"""The formula guard and cell typing shared by the Excel and CSV generators."""
from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from goreports.core.values import JsonText
from goreports.workers.generators import cells


@pytest.mark.parametrize("text", ["=1+2", "+49 1234", "-x", "@SUM(A1)", "\tpad", "\rcr",
                                  '=HYPERLINK("http://x","y")'])
def test_formula_like_text_is_detected(text: str) -> None:
    assert cells.looks_like_formula(text)


@pytest.mark.parametrize("text", ["", "plain", " =1", "a=b", "1-2", "#hash"])
def test_ordinary_text_is_not_a_formula(text: str) -> None:
    assert not cells.looks_like_formula(text)


def test_excel_text_guard_keeps_visible_text() -> None:
    assert cells.excel_value("=1+2") == ("=1+2", None, True)
    assert cells.excel_value("@home") == ("@home", None, True)
    assert cells.excel_value("#N/A") == ("#N/A", None, True)  # else an Excel error value
    assert cells.excel_value("hello") == ("hello", None, False)


def test_excel_typed_values() -> None:
    assert cells.excel_value(None) == (None, None, False)
    assert cells.excel_value(True) == (True, None, False)
    assert cells.excel_value(-5) == (-5, None, False)  # a number, never guarded
    assert cells.excel_value(2.5) == (2.5, None, False)
    assert cells.excel_value(Decimal("12.30")) == (Decimal("12.30"), None, False)
    assert cells.excel_value(dt.date(2024, 3, 1)) == (dt.date(2024, 3, 1), cells.DATE_FORMAT, False)
    assert cells.excel_value(dt.datetime(2024, 3, 1, 8, 0)) == (
        dt.datetime(2024, 3, 1, 8, 0), cells.DATETIME_FORMAT, False)


def test_excel_values_excel_cannot_hold_become_text() -> None:
    aware = dt.datetime(2024, 3, 1, 10, 0, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    assert cells.excel_value(aware)[0] == dt.datetime(2024, 3, 1, 8, 0)
    assert cells.excel_value(10 ** 18) == (str(10 ** 18), None, False)
    assert cells.excel_value(float("nan"))[0] == "nan"
    assert cells.excel_value(Decimal("Infinity"))[0] == "Infinity"
    assert cells.excel_value(dt.date(1899, 12, 31))[0] == "1899-12-31"
    assert cells.excel_value(b"\x01\xff")[0] == "01ff"
    assert cells.excel_value({"b": 1, "a": [1]})[0] == '{"a":[1],"b":1}'
    assert cells.excel_value("a\x00b")[0] == "a\ufffdb"
    long = cells.excel_value("x" * 40_000)[0]
    assert len(long) == cells.EXCEL_MAX_CHARS
    kept = long.index("…")
    assert long[kept:] == f"…[truncated {40_000 - kept:,} chars]" and set(long[:kept]) == {"x"}
    assert cells.excel_value("y" * cells.EXCEL_MAX_CHARS)[0] == "y" * cells.EXCEL_MAX_CHARS


def test_csv_text() -> None:
    assert cells.csv_text(None) == ""
    assert cells.csv_text(False) == "false"
    assert cells.csv_text(-5) == "-5"
    assert cells.csv_text(0.1) == "0.1"
    assert cells.csv_text(Decimal("1E+2")) == "100"
    assert cells.csv_text(dt.date(2024, 1, 2)) == "2024-01-02"
    assert cells.csv_text(dt.datetime(2024, 1, 2, 3, 4, 5)) == "2024-01-02 03:04:05"
    assert cells.csv_text(b"\x00\x10") == "0010"
    assert cells.csv_text(JsonText('{"a":1}')) == '{"a":1}'
    assert cells.csv_text("=1+2") == "'=1+2"
    assert cells.csv_text("-3") == "'-3"
    assert cells.csv_text("@x") == "'@x"
    assert cells.csv_text("ok") == "ok"
