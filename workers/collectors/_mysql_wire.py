"""Driver rows -> serialized dataset rows and checksum lines, without the Python value in between
where it only costs time.

Why: PyMySQL turns every DECIMAL into a `Decimal`, every DATE and DATETIME into a `date` or
`datetime` (a regular expression and a constructor per cell), and the dataset writer then turns
them straight back into text: the wire carries decimals and dates as text, and the checksum
hashes their text. For those columns the collector asks PyMySQL for the server's text (the
result's converter is removed) and writes it as it comes: a decimal's text is exact, a date's
is its ISO text, a datetime's needs its `T`. That makes reading a 1,000,000-row result about a
third faster than with the driver's conversions, and writing it faster still.

The output is the same as `DatasetWriter.write` of the converted rows would make: the same wire
bytes (a decimal's text may be the server's form of the same number, e.g. 0.0000001 for 1E-7,
which decodes to the identical `Decimal`) and the same checksum lines. Values a fast path does
not recognise (zero dates, fractional seconds, invalid dates that MySQL may store) go through
the driver's converter and the general encoder, exactly as before. Integer, float and text
columns keep the driver's conversion; they take the general column encoder.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

from pymysql import converters as pymysql_converters
from pymysql.constants import FIELD_TYPE

from goreports.core import rowcodec, values
from goreports.workers.collectors._mysql_types import Convert, FieldInfo

RAW_TYPES = {FIELD_TYPE.DECIMAL: values.DECIMAL, FIELD_TYPE.NEWDECIMAL: values.DECIMAL,
             FIELD_TYPE.DATE: values.DATE, FIELD_TYPE.NEWDATE: values.DATE,
             FIELD_TYPE.DATETIME: values.DATETIME, FIELD_TYPE.TIMESTAMP: values.DATETIME}
_DRIVER = {values.DECIMAL: pymysql_converters.Decimal, values.DATE: pymysql_converters.convert_date,
           values.DATETIME: pymysql_converters.convert_datetime}
_MEMO_LIMIT = 20_000  # distinct dates remembered per column (a few MB at most)

Cells = tuple[list[bytes], list[str]]  # a column as (cell bytes, checksum texts)


@dataclass
class EncodedRows:
    """Rows ready for the wire: serialized `Row`s and their checksum lines."""

    rows: list[bytes]
    lines: list[str]

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, part: slice) -> "EncodedRows":
        return EncodedRows(self.rows[part], self.lines[part])


def raw_columns(fields: Sequence[FieldInfo], columns: Sequence[Any],
                converters: Sequence[Convert | None], keep: int | None = None) -> list[int | None]:
    """Per result column, the dataset type to read as server text, or None (driver value).
    Only plain DECIMAL/DATE/DATETIME columns qualify (no alias hint, no converter of ours), and
    never `keep` (the pagination key, whose values are bound as query parameters)."""
    out: list[int | None] = []
    for i, (f, c, conv) in enumerate(zip(fields, columns, converters)):
        t = RAW_TYPES.get(f.type_code)
        out.append(t if t is not None and t == c.type and conv is None and i != keep else None)
    return out


def _general(col: Sequence[Any], convert: Convert | None) -> Cells:
    if convert is not None:
        col = [v if v is None else convert(v) for v in col]
    return rowcodec.encode_column(col), values.canonical_column(col)


def _driver_value(kind: int, text: str) -> Any:
    return _DRIVER[kind](text)


def _decimals(col: Sequence[Any]) -> Cells:
    heads, null = rowcodec.DEC_HEAD, rowcodec.NULL_CELL
    cells = [null if t is None else heads[len(t)] + t.encode() if len(t) < 126
             else rowcodec.encode_column([_driver_value(values.DECIMAL, t)])[0] for t in col]
    texts = ["\\N" if t is None else (t.rstrip("0").rstrip(".") if "." in t else t)
             if len(t) <= 26 else values.canonical(_driver_value(values.DECIMAL, t)) for t in col]
    return cells, texts


def _dates(memo: dict[str, tuple[bytes, str]]) -> Callable[[Sequence[Any]], Cells]:
    def one(text: str) -> tuple[bytes, str]:
        hit = memo.get(text)
        if hit is None:
            value = _driver_value(values.DATE, text)  # a date, or the text when invalid
            hit = rowcodec.encode_column([value])[0], values.canonical(value)
            if len(memo) >= _MEMO_LIMIT:
                memo.clear()
            memo[text] = hit
        return hit

    def dates(col: Sequence[Any]) -> Cells:
        pairs = [_NULL_PAIR if t is None else one(t) for t in col]
        return [p[0] for p in pairs], [p[1] for p in pairs]
    return dates


_NULL_PAIR = (rowcodec.NULL_CELL, "\\N")


def _datetime_fast(t: str) -> bool:
    """Text the server writes for a valid DATETIME without fractional seconds."""
    return (len(t) == 19 and t[:4] != "0000" and t[5:7] != "00" and "00" != t[8:10] <= "28")


def _datetimes(col: Sequence[Any]) -> Cells:
    head, null = rowcodec.DT_HEAD[19], rowcodec.NULL_CELL
    cells = [null if t is None else head + (t[:10] + "T" + t[11:]).encode() if _datetime_fast(t)
             else rowcodec.encode_column([_driver_value(values.DATETIME, t)])[0] for t in col]
    texts = ["\\N" if t is None else t if _datetime_fast(t)
             else values.canonical(_driver_value(values.DATETIME, t)) for t in col]
    return cells, texts


class RowEncoder:
    """Encodes the driver rows of one result (see the module docstring)."""

    def __init__(self, raw: Sequence[int | None], converters: Sequence[Convert | None]) -> None:
        self.width = len(raw)
        self.steps: list[Callable[[Sequence[Any]], Cells]] = []
        for kind, conv in zip(raw, converters):
            if kind == values.DECIMAL:
                self.steps.append(_decimals)
            elif kind == values.DATE:
                self.steps.append(_dates({}))
            elif kind == values.DATETIME:
                self.steps.append(_datetimes)
            else:
                self.steps.append(lambda col, conv=conv: _general(col, conv))

    def encode(self, rows: Sequence[Sequence[Any]]) -> EncodedRows:
        if not rows:
            return EncodedRows([], [])
        if self.width == 0 or len(set(map(len, rows))) != 1 or len(rows[0]) != self.width:
            raise ValueError(f"rows of {len(rows[0])} cells for a result of {self.width} columns")
        columns = [step(col) for step, col in zip(self.steps, zip(*rows))]
        cells = list(map(b"".join, zip(*[c for c, _ in columns])))
        lines = list(map("\t".join, zip(*[t for _, t in columns])))
        return EncodedRows(cells, lines)


def fast_row_reader(converters: Sequence[tuple[str | None, Convert | None]]
                    ) -> Callable[[Any], tuple[Any, ...]]:
    """A drop-in for PyMySQL's `MySQLResult._read_row_from_packet` (text protocol), for one
    result: the same values, in one loop with local variables instead of three method calls
    per cell (~40% less time per row). Integer and float text is converted without decoding it
    first (`int(b"12")` is `int("12")`). Installed per result by the collector."""
    plan = [(None, conv) if conv in (int, float) and enc == "ascii" else (enc, conv)
            for enc, conv in converters]

    def read_row(packet: Any) -> tuple[Any, ...]:
        data, pos = packet._data, packet._position
        row: list[Any] = []
        append = row.append
        try:
            for encoding, converter in plan:
                n = data[pos]
                if n < 251:
                    pos += 1
                elif n == 251:  # NULL
                    pos += 1
                    append(None)
                    continue
                elif n == 252:
                    n = data[pos + 1] | data[pos + 2] << 8
                    pos += 3
                elif n == 253:
                    n = data[pos + 1] | data[pos + 2] << 8 | data[pos + 3] << 16
                    pos += 4
                else:
                    n = int.from_bytes(data[pos + 1:pos + 9], "little")
                    pos += 9
                value: Any = data[pos:pos + n]
                pos += n
                if encoding is not None:
                    value = value.decode(encoding)
                if converter is not None:
                    value = converter(value)
                append(value)
        except IndexError:  # no more columns in this row (as PyMySQL)
            pass
        packet._position = pos
        return tuple(row)
    return read_row
