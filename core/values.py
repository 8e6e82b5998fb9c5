"""Cells on the wire: Python values <-> `goreports.v1.Value`, and the canonical row text.

Typing is per column (from the source's metadata when it has one), so a generator can write
numbers as numbers and dates as dates. The canonical text makes a dataset checksum comparable
between the producer, every reader, and a test that recomputes it from the source.

The fast wire codec (rows to and from `RowBatch` bytes a column at a time) is
`goreports.core.rowcodec`; `to_value`/`from_value` here stay the definition of the format.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
from decimal import Decimal
from typing import Any, Iterable, Sequence

from goreports.proto import dataset_pb2 as pb

ColumnType = int  # a pb.ColumnType value

STRING = pb.COLUMN_TYPE_STRING
INTEGER = pb.COLUMN_TYPE_INTEGER
FLOAT = pb.COLUMN_TYPE_FLOAT
DECIMAL = pb.COLUMN_TYPE_DECIMAL
BOOLEAN = pb.COLUMN_TYPE_BOOLEAN
DATE = pb.COLUMN_TYPE_DATE
DATETIME = pb.COLUMN_TYPE_DATETIME
BYTES = pb.COLUMN_TYPE_BYTES
JSON = pb.COLUMN_TYPE_JSON

TYPE_NAMES: dict[int, str] = {
    STRING: "string", INTEGER: "integer", FLOAT: "float", DECIMAL: "decimal", BOOLEAN: "boolean",
    DATE: "date", DATETIME: "datetime", BYTES: "bytes", JSON: "json",
}


class JsonText(str):
    """A str that holds JSON text, so the JSON column type survives the trip."""


def infer_type(value: Any) -> ColumnType:
    """The column type of a Python value (used where the source has no metadata)."""
    if isinstance(value, bool):
        return BOOLEAN
    if isinstance(value, int):
        return INTEGER
    if isinstance(value, float):
        return FLOAT
    if isinstance(value, Decimal):
        return DECIMAL
    if isinstance(value, dt.datetime):
        return DATETIME
    if isinstance(value, dt.date):
        return DATE
    if isinstance(value, (bytes, bytearray, memoryview)):
        return BYTES
    if isinstance(value, JsonText) or isinstance(value, (dict, list)):
        return JSON
    return STRING


def to_value(v: Any) -> pb.Value:
    """Encode one cell. The Python type decides, so a mistyped column still round-trips."""
    if v is None:
        return pb.Value(null_value=True)
    if isinstance(v, bool):
        return pb.Value(bool_value=v)
    if isinstance(v, int):
        return pb.Value(int_value=v)
    if isinstance(v, float):
        return pb.Value(float_value=v)
    if isinstance(v, Decimal):
        return pb.Value(decimal_value=str(v))
    if isinstance(v, dt.datetime):
        return pb.Value(datetime_value=v.isoformat())
    if isinstance(v, dt.date):
        return pb.Value(date_value=v.isoformat())
    if isinstance(v, (bytes, bytearray, memoryview)):
        return pb.Value(bytes_value=bytes(v))
    if isinstance(v, JsonText):
        return pb.Value(json_value=str(v))
    if isinstance(v, (dict, list)):
        return pb.Value(json_value=json.dumps(v, separators=(",", ":"), sort_keys=True))
    return pb.Value(string_value=str(v))


def from_value(v: pb.Value) -> Any:
    """Decode one cell back to the Python value it was made from."""
    kind = v.WhichOneof("kind")
    if kind is None or kind == "null_value":
        return None
    if kind == "string_value":
        return v.string_value
    if kind == "int_value":
        return v.int_value
    if kind == "float_value":
        return v.float_value
    if kind == "decimal_value":
        return Decimal(v.decimal_value)
    if kind == "bool_value":
        return v.bool_value
    if kind == "date_value":
        return dt.date.fromisoformat(v.date_value)
    if kind == "datetime_value":
        return dt.datetime.fromisoformat(v.datetime_value)
    if kind == "bytes_value":
        return v.bytes_value
    return JsonText(v.json_value)


def to_decimal(v: Any) -> Any:
    """Numbers and decimal text as Decimal (floats by their shortest text: 19.9, not
    19.899999...); anything else, and text that is no finite number, as it is."""
    if isinstance(v, bool):
        return v
    if isinstance(v, int):
        return Decimal(v)
    if isinstance(v, float):
        return Decimal(repr(v))
    if isinstance(v, str):
        try:
            d = Decimal(v.strip())
        except ArithmeticError:
            return v
        return d if d.is_finite() else v
    return v


def encode_rows(rows: Iterable[Sequence[Any]]) -> list[pb.Row]:
    return [pb.Row(values=[to_value(c) for c in row]) for row in rows]


def decode_rows(rows: Iterable[pb.Row]) -> list[list[Any]]:
    return [[from_value(c) for c in row.values] for row in rows]


def canonical(value: Any) -> str:
    """The text of one cell in the checksum: stable across the wire and across drivers."""
    if value is None:
        return "\\N"
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, Decimal):
        return _canonical_decimal(value)
    if isinstance(value, dt.datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).hex()
    return str(value)


class RowChecksum:
    """Running sha256 over rows in order; each row is its canonical cells joined by tabs."""

    def __init__(self) -> None:
        self._h = hashlib.sha256()
        self.count = 0

    def update(self, rows: Iterable[Sequence[Any]]) -> None:
        rows = rows if isinstance(rows, list) else list(rows)
        if not rows:
            return
        width = len(rows[0])
        if width == 0 or len(set(map(len, rows))) != 1:
            lines = ["\t".join(map(canonical, row)) for row in rows]  # ragged: a row at a time
        else:
            lines = list(map("\t".join, zip(*map(canonical_column, zip(*rows)))))
        lines.append("")
        self._h.update("\n".join(lines).encode())
        self.count += len(rows)

    def update_lines(self, lines: Sequence[str]) -> None:
        """Rows already as their canonical lines (cells joined by tabs)."""
        if lines:
            self._h.update(("\n".join(lines) + "\n").encode())
            self.count += len(lines)

    def hexdigest(self) -> str:
        return self._h.hexdigest()


def checksum(rows: Iterable[Sequence[Any]]) -> str:
    """Checksum of a whole row list (tests compute the source's side with it)."""
    c = RowChecksum()
    c.update(rows)
    return c.hexdigest()


# -- the checksum, a column at a time -------------------------------------------------------------

_PLAIN = frozenset((int, str, float, dt.date, dt.datetime))  # canonical(v) == str(v)


def canonical_column(col: Sequence[Any]) -> list[str]:
    return [str(v) if type(v) in _PLAIN else "\\N" if v is None else _canonical_decimal(v)
            if type(v) is Decimal else canonical(v) for v in col]


def _canonical_decimal(value: Decimal) -> str:
    text = str(value)
    if "E" in text or "." not in text or len(text) > 26:  # normalize() rounds past 28 digits
        return format(value.normalize(), "f") if value == value else "NaN"
    return text.rstrip("0").rstrip(".")
