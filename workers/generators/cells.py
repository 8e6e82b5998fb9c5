"""Dataset cells -> spreadsheet and CSV cells, with the formula-injection guard in one place.

Why a module of its own: the Excel and CSV generators must agree on what counts as dangerous text,
and the rules are easiest to trust when they are pure functions with their own tests.

Formula injection (OWASP "CSV Injection"): a spreadsheet evaluates text that starts with `=`, `+`,
`-` or `@` (and, in some programs, a leading tab or carriage return) as a formula, e.g.
`=HYPERLINK("http://evil","click")`. Only *text from data* is guarded; numbers, dates and booleans
are typed values the generator writes itself, so `-5` stays the number -5.

- Excel: the cell is written with the string type (never the formula type) and `quotePrefix` set,
  so the visible text is unchanged and Excel keeps it as text even when a user edits the cell.
- CSV has no types, so the text gets a leading `'` (what OWASP advises); the price is that a
  phone number `+49 …` shows as `'+49 …`.
"""
from __future__ import annotations

import datetime as dt
import json
import math
import re
from decimal import Decimal
from typing import Any

FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
EXCEL_MAX_CHARS = 32_767  # Excel's limit per cell; longer text is cut (Excel refuses the file)
EXCEL_MAX_EXACT_INT = 10 ** 15  # Excel keeps 15 significant digits; bigger ints go as text
EXCEL_MIN_DATE = dt.date(1900, 3, 1)  # earlier dates have no faithful Excel serial number
DATE_FORMAT = "yyyy-mm-dd"
DATETIME_FORMAT = "yyyy-mm-dd hh:mm:ss"
ERROR_CODES = frozenset(("#NULL!", "#DIV/0!", "#VALUE!", "#REF!", "#NAME?", "#NUM!", "#N/A"))
# Characters an .xlsx cannot hold: XML 1.0 forbids C0 controls other than tab, LF and CR, lone
# surrogates (no UTF-8 form) and the non-characters U+FFFE and U+FFFF.
ILLEGAL_CHARACTERS_RE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")

# (value to write, number format or None, force the string type)
ExcelValue = tuple[Any, "str | None", bool]


def looks_like_formula(text: str) -> bool:
    """True for text a spreadsheet could evaluate as a formula."""
    return text.startswith(FORMULA_TRIGGERS)


def _naive_utc(value: dt.datetime) -> dt.datetime:
    """Excel has no time zones: an aware datetime is written as its UTC wall time."""
    if value.tzinfo is None:
        return value
    return value.astimezone(dt.timezone.utc).replace(tzinfo=None)


def excel_text(text: str) -> ExcelValue:
    """Text as Excel can hold it: control characters Excel forbids become U+FFFD, long text is
    cut at Excel's limit, and formula-like text or error codes (`#N/A`) stay plain text."""
    if ILLEGAL_CHARACTERS_RE.search(text):
        text = ILLEGAL_CHARACTERS_RE.sub("\ufffd", text)
    if len(text) > EXCEL_MAX_CHARS:
        text = cut_for_excel(text)
    return text, None, looks_like_formula(text) or text in ERROR_CODES


def cut_for_excel(text: str) -> str:
    """Text longer than Excel's cell limit, cut so that it ends with a visible marker saying how
    much was dropped: a reader of the sheet must not take a cut value for the whole one (the CSV
    output of the same dataset keeps it whole)."""
    dropped = len(text) - EXCEL_MAX_CHARS
    while True:  # the marker's own length shifts how much is dropped; settles in two rounds
        marker = f"…[truncated {dropped:,} chars]"
        keep = EXCEL_MAX_CHARS - len(marker)
        if len(text) - keep == dropped:
            return text[:keep] + marker
        dropped = len(text) - keep


def excel_value(value: Any) -> ExcelValue:
    """One dataset cell as an Excel cell: numbers as numbers, dates as dates (with a format),
    None as an empty cell, bytes as hex text, JSON as its text."""
    if value is None or isinstance(value, bool):
        return value, None, False
    if isinstance(value, int):
        if abs(value) >= EXCEL_MAX_EXACT_INT:
            return str(value), None, False
        return value, None, False
    if isinstance(value, float):
        return (value, None, False) if math.isfinite(value) else (str(value), None, False)
    if isinstance(value, Decimal):
        return (value, None, False) if value.is_finite() else (str(value), None, False)
    if isinstance(value, dt.datetime):
        value = _naive_utc(value)
        if value.date() < EXCEL_MIN_DATE:
            return value.isoformat(sep=" "), None, False
        return value, DATETIME_FORMAT, False
    if isinstance(value, dt.date):
        if value < EXCEL_MIN_DATE:
            return value.isoformat(), None, False
        return value, DATE_FORMAT, False
    if isinstance(value, (bytes, bytearray, memoryview)):
        return excel_text(bytes(value).hex())
    if isinstance(value, (dict, list)):
        return excel_text(json.dumps(value, separators=(",", ":"), sort_keys=True))
    return excel_text(str(value))


def csv_text(value: Any) -> str:
    """One dataset cell as CSV text (formula-like text prefixed with `'`)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, Decimal):
        return format(value, "f") if value.is_finite() else str(value)
    if isinstance(value, dt.datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).hex()
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":"), sort_keys=True)
    text = str(value)
    return "'" + text if looks_like_formula(text) else text
