"""MySQL/MariaDB result columns -> dataset column types, and the cell conversions they need.

Why a module of its own: the mapping is the contract between a database and every generator (an
Excel cell is a number, a date or text because of it), so it is pure, table-driven and unit
tested without a server. The collector feeds it the column metadata the server sends with each
result (PyMySQL's field packets: type code, character set, flags, length), never guesses from
values.

| MySQL type | dataset type | cell |
|---|---|---|
| DECIMAL, NUMERIC | decimal | `Decimal`, exact |
| TINYINT … BIGINT, MEDIUMINT, YEAR | integer | `int`; BIGINT UNSIGNED above 2^63-1 becomes an exact `Decimal` (the wire's integers are 64-bit signed) |
| FLOAT, DOUBLE | float | `float` |
| DATE | date | `date` |
| DATETIME, TIMESTAMP | datetime | naive `datetime` (TIMESTAMP in the session time zone, the server's default) |
| TIME | string | `"HH:MM:SS"` (`"-838:59:59"` … `"838:59:59"`, `".ffffff"` when fractional): a duration, not a time of day, so it has no faithful date type |
| BIT(1) | boolean | `bool` |
| BIT(n>1) | integer | `int` (big-endian bits) |
| JSON (MySQL's JSON type) | json | `JsonText` |
| CHAR, VARCHAR, TEXT, ENUM, SET | string | `str` |
| BINARY, VARBINARY, BLOB, GEOMETRY (binary character set) | bytes | `bytes`; generators show them as hex text |
| NULL (e.g. `SELECT NULL`) | string | `None` |

NULL is `None` in every column. Zero dates (`0000-00-00`), which have no Python value, arrive
from the driver as their text and travel as text in the date column (nothing is invented).

MariaDB has no JSON type on the wire (its JSON is LONGTEXT with a `json_valid` check), so a
column can carry a hint in its alias, as in the SQLite collector: ``doc AS `doc [json]` `` gives
the column `doc` of type json. Hints: `json`, and `string`/`text` (forces text).
"""
from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Callable, Sequence

from pymysql.constants import FIELD_TYPE, FLAG

from goreports.core import values
from goreports.proto import dataset_pb2

Convert = Callable[[Any], Any]

BINARY_CHARSET = 63  # MySQL's character set number of `binary`
INT64_MAX = 2 ** 63 - 1

_INTEGERS = {FIELD_TYPE.TINY, FIELD_TYPE.SHORT, FIELD_TYPE.LONG, FIELD_TYPE.INT24,
             FIELD_TYPE.LONGLONG, FIELD_TYPE.YEAR}
_TEXTS = {FIELD_TYPE.VARCHAR, FIELD_TYPE.VAR_STRING, FIELD_TYPE.STRING, FIELD_TYPE.TINY_BLOB,
          FIELD_TYPE.MEDIUM_BLOB, FIELD_TYPE.LONG_BLOB, FIELD_TYPE.BLOB}
_FIXED: dict[int, int] = {
    FIELD_TYPE.DECIMAL: values.DECIMAL, FIELD_TYPE.NEWDECIMAL: values.DECIMAL,
    FIELD_TYPE.FLOAT: values.FLOAT, FIELD_TYPE.DOUBLE: values.FLOAT,
    FIELD_TYPE.DATE: values.DATE, FIELD_TYPE.NEWDATE: values.DATE,
    FIELD_TYPE.DATETIME: values.DATETIME, FIELD_TYPE.TIMESTAMP: values.DATETIME,
    FIELD_TYPE.ENUM: values.STRING, FIELD_TYPE.SET: values.STRING,
    FIELD_TYPE.NULL: values.STRING, FIELD_TYPE.GEOMETRY: values.BYTES,
}

HINTS: dict[str, int] = {"json": values.JSON, "string": values.STRING, "text": values.STRING}
_HINT_RE = re.compile(r"^(.*?\S)\s*\[(\w+)\]$")


@dataclass(frozen=True)
class FieldInfo:
    """What the server says about one result column (PyMySQL's FieldDescriptorPacket)."""

    name: str
    type_code: int
    charsetnr: int = 0
    flags: int = 0
    length: int = 0

    @classmethod
    def from_packet(cls, packet: Any) -> "FieldInfo":
        return cls(name=packet.name, type_code=packet.type_code, charsetnr=packet.charsetnr,
                   flags=packet.flags, length=packet.length)

    @classmethod
    def from_description(cls, d: Sequence[Any]) -> "FieldInfo":
        """From a DB-API description tuple (no character set or flags: text is assumed)."""
        return cls(name=d[0], type_code=d[1], length=d[3] or 0)

    @property
    def binary(self) -> bool:
        return self.charsetnr == BINARY_CHARSET

    @property
    def unsigned(self) -> bool:
        return bool(self.flags & FLAG.UNSIGNED)


# -- cell conversions -----------------------------------------------------------------------------

def time_text(v: Any) -> Any:
    """A TIME value (PyMySQL gives a timedelta) as MySQL writes it: [-]HH:MM:SS[.ffffff]."""
    if not isinstance(v, dt.timedelta):
        return v if isinstance(v, str) else str(v)
    micros = (v.days * 86_400 + v.seconds) * 1_000_000 + v.microseconds
    sign = "-" if micros < 0 else ""
    micros = abs(micros)
    seconds, frac = divmod(micros, 1_000_000)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    text = f"{sign}{hours:02d}:{minutes:02d}:{secs:02d}"
    return f"{text}.{frac:06d}" if frac else text


def bits_int(v: Any) -> Any:
    """A BIT(n) value (big-endian bytes) as an integer."""
    return int.from_bytes(v, "big") if isinstance(v, (bytes, bytearray)) else v


def bit_bool(v: Any) -> Any:
    return bool(int.from_bytes(v, "big")) if isinstance(v, (bytes, bytearray)) else v


def big_unsigned(v: Any) -> Any:
    """BIGINT UNSIGNED beyond the wire's signed 64-bit range: kept exact as a Decimal."""
    return Decimal(v) if isinstance(v, int) and v > INT64_MAX else v


def json_text(v: Any) -> Any:
    if isinstance(v, (bytes, bytearray)):
        v = bytes(v).decode("utf-8", errors="replace")
    return values.JsonText(v) if isinstance(v, str) else v


def plain_text(v: Any) -> Any:
    if isinstance(v, (bytes, bytearray)):
        return bytes(v).decode("utf-8", errors="replace")
    return v if isinstance(v, str) else str(v)


# -- columns --------------------------------------------------------------------------------------

def split_hint(name: str) -> tuple[str, int | None]:
    """``"doc [json]"`` -> ("doc", JSON); a bracket that is not a known hint stays in the name."""
    m = _HINT_RE.match(name)
    if m and m.group(2).lower() in HINTS:
        return m.group(1), HINTS[m.group(2).lower()]
    return name, None


def column_for(field: FieldInfo) -> tuple[dataset_pb2.Column, Convert | None]:
    """The dataset column of one result column, and the converter for its non-null cells."""
    name, hint = split_hint(field.name)
    if hint == values.JSON:
        return dataset_pb2.Column(name=name, type=values.JSON), json_text
    if hint == values.STRING:
        conv = time_text if field.type_code == FIELD_TYPE.TIME else plain_text
        return dataset_pb2.Column(name=name, type=values.STRING), conv
    kind, conv = _map(field)
    return dataset_pb2.Column(name=name, type=kind), conv


def _map(field: FieldInfo) -> tuple[int, Convert | None]:
    code = field.type_code
    if code in _INTEGERS:
        if code == FIELD_TYPE.LONGLONG and field.unsigned:
            return values.INTEGER, big_unsigned
        return values.INTEGER, None
    if code in _FIXED:
        return _FIXED[code], None
    if code == FIELD_TYPE.TIME:
        return values.STRING, time_text
    if code == FIELD_TYPE.BIT:
        return (values.BOOLEAN, bit_bool) if field.length == 1 else (values.INTEGER, bits_int)
    if code == FIELD_TYPE.JSON:
        return values.JSON, json_text
    if code in _TEXTS:
        return (values.BYTES, None) if field.binary else (values.STRING, None)
    return values.STRING, plain_text  # a type this module does not know: its text


def columns_for(fields: Sequence[FieldInfo]
                ) -> tuple[list[dataset_pb2.Column], list[Convert | None]]:
    pairs = [column_for(f) for f in fields]
    return [c for c, _ in pairs], [conv for _, conv in pairs]


def convert_rows(rows: Sequence[Sequence[Any]], converters: Sequence[Convert | None]
                 ) -> list[list[Any]]:
    """Driver rows -> dataset rows (None stays None in every column)."""
    if not any(converters):
        return [list(r) for r in rows]
    return [[c if conv is None or c is None else conv(c) for c, conv in zip(r, converters)]
            for r in rows]
