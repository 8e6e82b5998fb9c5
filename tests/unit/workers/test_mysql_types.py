"""MySQL column metadata -> dataset column types and cell conversions (no server)."""
from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from pymysql.constants import FIELD_TYPE, FLAG

from goreports.core import values
from goreports.workers.collectors import _mysql_types as t

UTF8 = 45  # utf8mb4_general_ci
BIN = t.BINARY_CHARSET


@pytest.mark.parametrize("code, charset, flags, length, expected", [
    (FIELD_TYPE.NEWDECIMAL, UTF8, 0, 12, values.DECIMAL),
    (FIELD_TYPE.DECIMAL, UTF8, 0, 12, values.DECIMAL),
    (FIELD_TYPE.TINY, BIN, 0, 4, values.INTEGER),
    (FIELD_TYPE.SHORT, BIN, 0, 6, values.INTEGER),
    (FIELD_TYPE.INT24, BIN, 0, 9, values.INTEGER),
    (FIELD_TYPE.LONG, BIN, 0, 11, values.INTEGER),
    (FIELD_TYPE.LONGLONG, BIN, 0, 20, values.INTEGER),
    (FIELD_TYPE.LONGLONG, BIN, FLAG.UNSIGNED, 20, values.INTEGER),
    (FIELD_TYPE.YEAR, BIN, 0, 4, values.INTEGER),
    (FIELD_TYPE.FLOAT, BIN, 0, 12, values.FLOAT),
    (FIELD_TYPE.DOUBLE, BIN, 0, 22, values.FLOAT),
    (FIELD_TYPE.DATE, BIN, 0, 10, values.DATE),
    (FIELD_TYPE.DATETIME, BIN, 0, 19, values.DATETIME),
    (FIELD_TYPE.TIMESTAMP, BIN, 0, 19, values.DATETIME),
    (FIELD_TYPE.TIME, BIN, 0, 10, values.STRING),
    (FIELD_TYPE.BIT, BIN, 0, 1, values.BOOLEAN),
    (FIELD_TYPE.BIT, BIN, 0, 12, values.INTEGER),
    (FIELD_TYPE.JSON, BIN, 0, 0, values.JSON),
    (FIELD_TYPE.VAR_STRING, UTF8, 0, 40, values.STRING),
    (FIELD_TYPE.STRING, UTF8, FLAG.ENUM, 4, values.STRING),
    (FIELD_TYPE.BLOB, UTF8, 0, 65535, values.STRING),   # TEXT
    (FIELD_TYPE.BLOB, BIN, 0, 65535, values.BYTES),     # BLOB
    (FIELD_TYPE.VAR_STRING, BIN, 0, 16, values.BYTES),  # VARBINARY
    (FIELD_TYPE.STRING, BIN, 0, 4, values.BYTES),       # BINARY
    (FIELD_TYPE.GEOMETRY, BIN, 0, 0, values.BYTES),
    (FIELD_TYPE.NULL, BIN, 0, 0, values.STRING),
    (FIELD_TYPE.ENUM, UTF8, 0, 4, values.STRING),
    (FIELD_TYPE.SET, UTF8, 0, 4, values.STRING),
    (999, UTF8, 0, 0, values.STRING),  # unknown: its text
])
def test_column_types(code: int, charset: int, flags: int, length: int, expected: int) -> None:
    col, _ = t.column_for(t.FieldInfo("c", code, charset, flags, length))
    assert (col.name, col.type) == ("c", expected)


def test_time_text() -> None:
    assert t.time_text(dt.timedelta(hours=1, minutes=2, seconds=3)) == "01:02:03"
    assert t.time_text(dt.timedelta(hours=838, minutes=59, seconds=59)) == "838:59:59"
    assert t.time_text(-dt.timedelta(hours=1, seconds=1)) == "-01:00:01"
    assert t.time_text(-dt.timedelta(seconds=1)) == "-00:00:01"
    assert t.time_text(dt.timedelta(seconds=5, microseconds=120)) == "00:00:05.000120"
    assert t.time_text(dt.timedelta(0)) == "00:00:00"
    assert t.time_text("bad") == "bad"


def test_conversions() -> None:
    assert t.bits_int(b"\x01\x02") == 258
    assert t.bit_bool(b"\x01") is True and t.bit_bool(b"\x00") is False
    assert t.big_unsigned(2 ** 64 - 1) == Decimal(2 ** 64 - 1)
    assert isinstance(t.big_unsigned(2 ** 64 - 1), Decimal)
    assert t.big_unsigned(5) == 5 and isinstance(t.big_unsigned(5), int)
    assert isinstance(t.json_text('{"a": 1}'), values.JsonText)
    assert t.json_text(b'{"a": 1}') == '{"a": 1}'
    assert t.plain_text(b"abc") == "abc" and t.plain_text(5) == "5"


def test_hints() -> None:
    assert t.split_hint("doc [json]") == ("doc", values.JSON)
    assert t.split_hint("doc [JSON]") == ("doc", values.JSON)
    assert t.split_hint("price [EUR]") == ("price [EUR]", None)
    col, conv = t.column_for(t.FieldInfo("doc [json]", FIELD_TYPE.BLOB, UTF8))
    assert (col.name, col.type) == ("doc", values.JSON)
    assert isinstance(conv('{"a":1}'), values.JsonText)  # type: ignore[misc]
    col, conv = t.column_for(t.FieldInfo("span [string]", FIELD_TYPE.TIME, BIN))
    assert (col.name, col.type) == ("span", values.STRING)
    assert conv(dt.timedelta(seconds=61)) == "00:01:01"  # type: ignore[misc]


def test_convert_rows_keeps_nulls_and_plain_cells() -> None:
    fields = [t.FieldInfo("id", FIELD_TYPE.LONG, BIN), t.FieldInfo("t", FIELD_TYPE.TIME, BIN),
              t.FieldInfo("b", FIELD_TYPE.BIT, BIN, 0, 1), t.FieldInfo("d", FIELD_TYPE.DATE, BIN)]
    cols, convs = t.columns_for(fields)
    assert [c.type for c in cols] == [values.INTEGER, values.STRING, values.BOOLEAN, values.DATE]
    rows = t.convert_rows([(1, dt.timedelta(seconds=3), b"\x01", dt.date(2024, 1, 2)),
                           (2, None, None, "0000-00-00")], convs)
    assert rows == [[1, "00:00:03", True, dt.date(2024, 1, 2)], [2, None, None, "0000-00-00"]]
    # no converters at all: rows are only turned into lists
    assert t.convert_rows([(1, "a")], [None, None]) == [[1, "a"]]


def test_from_description_assumes_text() -> None:
    info = t.FieldInfo.from_description(("name", FIELD_TYPE.VAR_STRING, None, 40, 40, 0, True))
    assert not info.binary and info.length == 40
    assert t.column_for(info)[0].type == values.STRING
