"""Dataset cells -> SpreadsheetML `<c>` elements, a column at a time.

Why column at a time: the per-cell cost decides how fast a 1,000,000-row report is written, and
in Python that cost is mostly interpreter overhead (a call, a chain of isinstance checks per
cell). A formatter is chosen once per column from the dataset header's column type; it turns a
whole column of a batch into cell texts in one list comprehension whose fast path handles the
type the column promises. Any other value (a NULL, a mistyped cell, text that needs escaping or
the formula guard, a number Excel cannot hold) falls back to `Styles.cell`, which follows
goreports.workers.generators.cells (the one place the Excel value rules live), so the fast paths
only ever do what the slow path would do, quicker.

Cells carry no `r` attribute: cells of a row are read in order, and an empty cell is written as
`<c/>` so that the next cell keeps its column. Strings are inline (`t="inlineStr"`): a shared
strings table would hold every distinct string in memory until the file is closed.
"""
from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal
from typing import Any, Callable, Sequence

from goreports.core import values
from goreports.workers.generators.cells import (DATE_FORMAT, DATETIME_FORMAT, EXCEL_MAX_CHARS,
                                                EXCEL_MAX_EXACT_INT, EXCEL_MIN_DATE, excel_value)

EMPTY = "<c/>"
_EPOCH_ORDINAL = dt.date(1899, 12, 30).toordinal()  # Excel's day 0 (with its 1900 leap-day bug)
_MIN_ORDINAL = EXCEL_MIN_DATE.toordinal()
_MIN_DATETIME = dt.datetime.combine(EXCEL_MIN_DATE, dt.time())
_NEEDS_ESCAPE = re.compile(r"[&<>\r]")
_XML_ESCAPES = {"&": "&amp;", "<": "&lt;", ">": "&gt;", "\r": "&#13;"}
_SPECIAL_FIRST = frozenset("=+-@\t\r# ")  # formula triggers, error codes, leading space

Column = Sequence[Any]
ColumnFormatter = Callable[[Column], list[str]]


def escape(text: str) -> str:
    """XML text content; `\\r` as a character reference, or XML parsers turn it into `\\n`."""
    return _NEEDS_ESCAPE.sub(lambda m: _XML_ESCAPES[m.group()], text)


def datetime_serial(value: dt.datetime) -> str:
    """Excel's serial number of a (naive, >= 1900-03-01) datetime: days, then the fraction of
    the day to 10 digits (~9 µs, Excel keeps milliseconds) by integer arithmetic; with
    microseconds, the float openpyxl computes."""
    if value.microsecond:
        return repr((value.toordinal() - _EPOCH_ORDINAL) + (
            value.hour * 3600 + value.minute * 60 + value.second + value.microsecond / 10 ** 6
        ) / 86400)
    seconds = value.hour * 3600 + value.minute * 60 + value.second
    return f"{value.toordinal() - _EPOCH_ORDINAL}.{(seconds * 10 ** 10 + 43_200) // 86_400:010d}"


class Styles:
    """The workbook's cell formats: index 0 default, 1 bold header, then one per (number format,
    quote prefix) pair in order of first use; styles.xml is written from it at the end."""

    HEADER = 1

    def __init__(self) -> None:
        self.xfs: list[tuple[str | None, bool]] = [(None, False), (None, False)]
        self._index: dict[tuple[str | None, bool], int] = {}

    def xf(self, number_format: str | None, quote: bool = False) -> int:
        key = (number_format, quote)
        if key == (None, False):
            return 0
        i = self._index.get(key)
        if i is None:
            i = self._index[key] = len(self.xfs)
            self.xfs.append(key)
        return i

    def attr(self, number_format: str | None, quote: bool = False) -> str:
        """The ` s="n"` attribute of a cell (empty for the default format)."""
        i = self.xf(number_format, quote)
        return f' s="{i}"' if i else ""

    def cell(self, value: Any, col_fmt: str | None) -> str:
        """Any dataset value as a cell (the general path: every rule of cells.excel_value)."""
        if value is None:
            return EMPTY
        v, fmt, guard = excel_value(value)
        s = self.attr(col_fmt or fmt, guard)
        if isinstance(v, str):
            return self.text_cell(v, s)
        if v is True or v is False:
            return f'<c t="b"{s}><v>{int(v)}</v></c>'
        if isinstance(v, dt.datetime):
            return f"<c{s}><v>{datetime_serial(v)}</v></c>"
        if isinstance(v, dt.date):
            return f"<c{s}><v>{v.toordinal() - _EPOCH_ORDINAL}</v></c>"
        if isinstance(v, float):
            return f"<c{s}><v>{v!r}</v></c>"
        return f"<c{s}><v>{v}</v></c>"  # int, Decimal (finite: cells made others text)

    @staticmethod
    def text_cell(text: str, s: str) -> str:
        """Text already made safe by cells.excel_text (legal characters, length); empty text is
        an empty cell, as openpyxl wrote it."""
        if not text:
            return f"<c{s}/>"
        space = ' xml:space="preserve"' if text[:1].isspace() or text[-1:].isspace() else ""
        return f'<c t="inlineStr"{s}><is><t{space}>{escape(text)}</t></is></c>'

    def header_cell(self, text: str) -> str:
        """A header: bold text even when it looks like a formula (a header is never evaluated)."""
        safe, _, _ = excel_value(str(text))
        return self.text_cell(safe, f' s="{self.HEADER}"')


def formatter(column_type: int, col_fmt: str | None, styles: Styles) -> ColumnFormatter:
    """The formatter of one column: fast path for its declared type, `styles.cell` otherwise."""
    slow = styles.cell
    if column_type == values.INTEGER:
        s = styles.attr(col_fmt)
        lo, hi = -EXCEL_MAX_EXACT_INT, EXCEL_MAX_EXACT_INT

        def ints(col: Column) -> list[str]:
            return [f"<c{s}><v>{v}</v></c>" if type(v) is int and lo < v < hi
                    else slow(v, col_fmt) for v in col]
        return ints
    if column_type == values.FLOAT:
        s = styles.attr(col_fmt)
        inf = float("inf")

        def floats(col: Column) -> list[str]:
            return [f"<c{s}><v>{v!r}</v></c>" if type(v) is float and -inf < v < inf
                    else slow(v, col_fmt) for v in col]
        return floats
    if column_type == values.DECIMAL:
        s = styles.attr(col_fmt)

        def decimals(col: Column) -> list[str]:
            return [f"<c{s}><v>{v}</v></c>" if type(v) is Decimal and v.is_finite()
                    else slow(v, col_fmt) for v in col]
        return decimals
    if column_type == values.DATE:
        s = styles.attr(col_fmt or DATE_FORMAT)
        epoch, first = _EPOCH_ORDINAL, _MIN_ORDINAL

        def dates(col: Column) -> list[str]:
            return [f"<c{s}><v>{o - epoch}</v></c>"
                    if type(v) is dt.date and (o := v.toordinal()) >= first
                    else slow(v, col_fmt) for v in col]
        return dates
    if column_type == values.DATETIME:
        s = styles.attr(col_fmt or DATETIME_FORMAT)
        epoch, first = _EPOCH_ORDINAL, _MIN_DATETIME

        def datetimes(col: Column) -> list[str]:
            # datetime_serial, inlined for whole seconds
            return [f"<c{s}><v>{v.toordinal() - epoch}."
                    f"{((v.hour * 3600 + v.minute * 60 + v.second) * 10 ** 10 + 43_200) // 86_400:010d}</v></c>"
                    if type(v) is dt.datetime and v.tzinfo is None and not v.microsecond
                    and v >= first else slow(v, col_fmt) for v in col]
        return datetimes
    if column_type == values.BOOLEAN:
        s = styles.attr(col_fmt)
        true, false = f'<c t="b"{s}><v>1</v></c>', f'<c t="b"{s}><v>0</v></c>'

        def bools(col: Column) -> list[str]:
            return [true if v is True else false if v is False else slow(v, col_fmt) for v in col]
        return bools
    if column_type in (values.STRING, values.JSON):
        s = styles.attr(col_fmt)
        special, limit = _SPECIAL_FIRST, EXCEL_MAX_CHARS
        head, tail = f'<c t="inlineStr"{s}><is><t>', "</t></is></c>"
        memo: dict[Any, str] = {}  # the general path's cells of frequent text ("-Other", "a & b")

        def general(v: Any) -> str:
            cell = memo.get(v) if type(v) is str else None
            if cell is None:
                cell = slow(v, col_fmt)
                if type(v) is str and len(v) <= 256:
                    if len(memo) >= 10_000:
                        memo.clear()
                    memo[v] = cell
            return cell

        def strings(col: Column) -> list[str]:
            # Fast path: printable text (no control characters, surrogates or non-characters)
            # with nothing to escape, no formula trigger or error code, no edge whitespace.
            return [head + v + tail
                    if type(v) is str and v.isprintable() and v[:1] not in special
                    and v[-1:] != " " and "&" not in v and "<" not in v and ">" not in v
                    and len(v) <= limit and v
                    else EMPTY if v is None else general(v) for v in col]
        return strings

    def anything(col: Column) -> list[str]:
        return [slow(v, col_fmt) for v in col]
    return anything


# -- light columns (goreports.core.rowcodec.RowDecoder.light) -------------------------------------
#
# DECIMAL, DATE and DATETIME cells arrive as their wire text, so the Python value is never made:
# a decimal's exact text is already an Excel number; a date's cell is remembered per distinct
# date; a datetime's serial number is its date's (remembered) and the fraction of the day of its
# time (from a table of the 86,400 seconds of a day). Anything else (None, `Other`, fractional
# seconds, time zones) takes the general path with its Python value.

_MEMO_DAYS = 50_000
_DAY_SECONDS = 86_400


_FRACTIONS: dict[str, str] = {}


def _fractions() -> dict[str, str]:
    """"HH:MM:SS" -> ".ffffffffff", the fraction of the day to 10 digits (~9 µs; Excel keeps
    milliseconds), for all 86,400 seconds of a day: built once per process (~40 ms, ~10 MB),
    it turns a datetime's time into its serial number's fraction with one lookup."""
    if not _FRACTIONS:
        table = {}
        for h in range(24):
            for m in range(60):
                base, secs = f"{h:02d}:{m:02d}:", h * 3600 + m * 60
                for s in range(60):
                    table[f"{base}{s:02d}"] = (
                        f".{((secs + s) * 10 ** 10 + _DAY_SECONDS // 2) // _DAY_SECONDS:010d}")
        _FRACTIONS.update(table)
    return _FRACTIONS


def light_formatter(column_type: int, col_fmt: str | None, styles: Styles) -> ColumnFormatter:
    """The formatter of one light column; columns of other types hold Python values."""
    slow = styles.cell

    def other(t: Any, parse: Callable[[str], Any]) -> str:
        if t is None:
            return EMPTY
        if type(t) is str:
            return slow(parse(t), col_fmt)
        return slow(t.value, col_fmt)  # rowcodec.Other

    if column_type == values.DECIMAL:
        s = styles.attr(col_fmt)

        def decimals(col: Column) -> list[str]:
            # light decimal text is plain and finite (-?digits[.digits]): an Excel number as is
            return [f"<c{s}><v>{t}</v></c>" if type(t) is str else other(t, Decimal)
                    for t in col]
        return decimals
    if column_type == values.DATE:
        s = styles.attr(col_fmt or DATE_FORMAT)
        memo: dict[Any, str] = {}

        def date_cell(t: Any) -> str:
            if type(t) is not str:
                return other(t, dt.date.fromisoformat)
            d = dt.date.fromisoformat(t)
            cell = (f"<c{s}><v>{d.toordinal() - _EPOCH_ORDINAL}</v></c>" if d >= EXCEL_MIN_DATE
                    else slow(d, col_fmt))
            if len(memo) >= _MEMO_DAYS:
                memo.clear()
            memo[t] = cell
            return cell

        def dates(col: Column) -> list[str]:
            return [memo[t] if type(t) is str and t in memo else date_cell(t) for t in col]
        return dates
    if column_type == values.DATETIME:
        s = styles.attr(col_fmt or DATETIME_FORMAT)
        days: dict[str, str | None] = {}
        fractions = _fractions()

        def day(text: str) -> str | None:
            d = dt.date.fromisoformat(text)
            serial = str(d.toordinal() - _EPOCH_ORDINAL) if d >= EXCEL_MIN_DATE else None
            if len(days) >= _MEMO_DAYS:
                days.clear()
            days[text] = serial
            return serial

        def general(t: Any) -> str:
            return other(t, dt.datetime.fromisoformat)

        def datetimes(col: Column) -> list[str]:
            # a time that is no time of day raises KeyError, as fromisoformat raises ValueError
            return [f"<c{s}><v>{d}{fractions[t[11:]]}</v></c>" if type(t) is str and len(t) == 19
                    and (d := days[k] if (k := t[:10]) in days else day(k)) is not None
                    else general(t) for t in col]
        return datetimes
    return formatter(column_type, col_fmt, styles)
