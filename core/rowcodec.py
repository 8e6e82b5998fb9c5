"""The fast dataset codec: rows to and from the protobuf wire bytes of `RowBatch`.

Why a codec of our own beside the protobuf classes (`encode_row_bytes`, `RowDecoder`): a
1,000,000-row dataset has ten million cells, and a protobuf message object per cell costs about
a microsecond to make or to read in Python, more than reading the row from the database. The
fast path works a column of a batch at a time and writes, byte for byte, what
`pb.Row.SerializeToString()` writes (a unit test compares them); it reads any valid encoding,
falling back to the protobuf classes for whatever it does not recognise. `to_value`/`from_value`
stay the definition of the format.
Readers that only pass values on (the Excel generator) take decimals and dates as their wire
text ("light" columns) and never build a `Decimal` or `datetime`.
"""
from __future__ import annotations

import datetime as dt
import re
import struct
from decimal import Decimal
from typing import Any, Callable, Iterable, Sequence

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

from goreports.core.values import (BOOLEAN, DATE, DATETIME, DECIMAL, FLOAT, INTEGER, JSON, STRING,
                                   JsonText, canonical, canonical_column, from_value, to_value)
from goreports.proto import dataset_pb2 as pb

# -- the fast codec -------------------------------------------------------------------------------
#
# Wire layout (protobuf): RowBatch.rows = field 3, Row.values = field 1 (tag 0x0a), and one Value
# field per cell: null 0x08, string 0x12, int (zigzag varint) 0x18, float (fixed64) 0x21,
# decimal 0x2a, bool 0x30, date 0x3a, datetime 0x42, bytes 0x4a, json 0x52.

_NULL_VALUE = b"\x08\x01"
NULL_CELL = b"\x0a\x02" + _NULL_VALUE
_TRUE_CELL, _FALSE_CELL = b"\x0a\x02\x30\x01", b"\x0a\x02\x30\x00"
_SMALL_VARINT = [bytes((i,)) for i in range(128)]
_INT1_CELL = [bytes((0x0a, 2, 0x18, z)) for z in range(128)]  # zigzag < 128: |v| < 64
_INT64_MIN, _INT64_MAX = -(2 ** 63), 2 ** 63 - 1
_pack_double = struct.Struct("<d").pack
_unpack_double = struct.Struct("<d").unpack


def _varint(n: int) -> bytes:
    if n < 0x80:
        return _SMALL_VARINT[n]
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _delimited(tag: int, payload: bytes) -> bytes:
    n = len(payload)
    if n < 0x80:
        return bytes((tag, n)) + payload
    return bytes((tag,)) + _varint(n) + payload


def _text_headers(tag: int) -> list[bytes]:
    """Cell prefixes of a text field with a payload of n < 126 bytes (one-byte lengths)."""
    return [bytes((0x0a, n + 2, tag, n)) for n in range(126)]


_STR_HEAD, DEC_HEAD = _text_headers(0x12), _text_headers(0x2a)
_DATE_HEAD, DT_HEAD = _text_headers(0x3a), _text_headers(0x42)


def _text_cell(heads: list[bytes], tag: int, b: bytes) -> bytes:
    n = len(b)
    return heads[n] + b if n < 126 else _delimited(0x0a, _delimited(tag, b))


def _int_cell(v: int) -> bytes:
    z = (v << 1) ^ (v >> 63)
    if z < 0x80:
        return _INT1_CELL[z]
    if z < 0x4000:
        return bytes((0x0a, 3, 0x18, z & 0x7F | 0x80, z >> 7))
    if z < 0x200000:
        return bytes((0x0a, 4, 0x18, z & 0x7F | 0x80, (z >> 7) & 0x7F | 0x80, z >> 14))
    if not _INT64_MIN <= v <= _INT64_MAX:
        return _any_cell(v)  # the protobuf class raises the error it always raised
    return _delimited(0x0a, b"\x18" + _varint(z))


def _any_cell(v: Any) -> bytes:
    """Any value, through the protobuf class (the definition of the format)."""
    return _delimited(0x0a, to_value(v).SerializeToString())


_NONE = type(None)
_DT, _DATE = dt.datetime, dt.date


def encode_column(col: Sequence[Any]) -> list[bytes]:
    """One column of a batch as cell bytes; the Python type of each value decides, as in
    `to_value`. A column of one type (and NULLs) takes a comprehension without calls."""
    kinds = set(map(type, col))
    kinds.discard(_NONE)
    null = NULL_CELL
    if len(kinds) == 1:
        kind = kinds.pop()
        if kind is str:
            heads = _STR_HEAD
            return [null if v is None else heads[n] + b if (n := len(b := v.encode())) < 126
                    else _text_cell(heads, 0x12, b) for v in col]
        if kind is int:
            return [null if v is None else _int_cell(v) for v in col]
        if kind is float:
            return [null if v is None else b"\x0a\x09\x21" + _pack_double(v) for v in col]
        if kind is bool:
            return [null if v is None else _TRUE_CELL if v else _FALSE_CELL for v in col]
        if kind is Decimal:
            heads = DEC_HEAD
            return [null if v is None else _text_cell(heads, 0x2a, str(v).encode()) for v in col]
        if kind is _DATE:
            heads = _DATE_HEAD
            return [null if v is None else heads[10] + v.isoformat().encode()
                    if v.year >= 1000 else _any_cell(v) for v in col]
        if kind is _DT:
            heads = DT_HEAD
            return [null if v is None else _text_cell(heads, 0x42, v.isoformat().encode())
                    for v in col]
    return [null if v is None else _any_cell(v) for v in col]


def encode_row_bytes(rows: Sequence[Sequence[Any]]) -> list[bytes]:
    """Rows as serialized `Row` messages (what `pb.Row(...).SerializeToString()` gives)."""
    if not rows:
        return []
    width = len(rows[0])
    if width == 0 or len(set(map(len, rows))) != 1:
        return [b"".join(encode_column(r)) for r in rows]  # ragged: a row at a time
    return list(map(b"".join, zip(*map(encode_column, zip(*rows)))))


def batch_bytes(rows: Iterable[bytes], *, generation: int = 0, first_row: int = 0) -> bytes:
    """A serialized `RowBatch` from serialized rows."""
    head = b""
    if generation:
        head += b"\x08" + _varint(generation)
    if first_row:
        head += b"\x10" + _varint(first_row)
    return head + b"".join([_delimited(0x1a, r) for r in rows])


def entry_batch_bytes(rows: Iterable[bytes], *, generation: int = 0, first_row: int = 0) -> bytes:
    """A serialized `DatasetEntry` holding one `RowBatch`."""
    return _delimited(0x12, batch_bytes(rows, generation=generation, first_row=first_row))


# Reading: protobuf messages with the same field numbers as DatasetEntry, RowBatch and Row, but
# whose sub-messages are plain bytes, so the C parser splits a batch into rows and a row into
# cells without making a Python object per cell.
def _flat_classes() -> tuple[Any, Any, Any]:
    f = descriptor_pb2.FileDescriptorProto(name="goreports_flat_dataset.proto",
                                           package="goreports.flat", syntax="proto2")
    opt, rep = (descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL,
                descriptor_pb2.FieldDescriptorProto.LABEL_REPEATED)
    t = descriptor_pb2.FieldDescriptorProto
    for name, fields in (
            ("Entry", [("header", 1, opt, t.TYPE_BYTES, ""), ("batch", 2, opt, t.TYPE_MESSAGE, ".goreports.flat.Batch"),
                       ("end", 3, opt, t.TYPE_BYTES, "")]),
            ("Batch", [("generation", 1, opt, t.TYPE_UINT64, ""), ("first_row", 2, opt, t.TYPE_UINT64, ""),
                       ("rows", 3, rep, t.TYPE_BYTES, "")]),
            ("Row", [("values", 1, rep, t.TYPE_BYTES, "")])):
        m = f.message_type.add(name=name)
        for fname, number, label, ftype, type_name in fields:
            field = m.field.add(name=fname, number=number, label=label, type=ftype)
            if type_name:
                field.type_name = type_name
    pool = descriptor_pool.DescriptorPool()
    pool.Add(f)
    return tuple(message_factory.GetMessageClass(pool.FindMessageTypeByName(f"goreports.flat.{n}"))
                 for n in ("Entry", "Batch", "Row"))  # type: ignore[return-value]


FlatEntry, FlatBatch, FlatRow = _flat_classes()
_row_values = FlatRow.FromString


def _any_value(vb: bytes) -> Any:
    """One serialized Value, through the protobuf class."""
    return from_value(pb.Value.FromString(vb))


def _int_value(vb: bytes) -> Any:
    if vb[0] != 0x18:
        return _any_value(vb)
    n = len(vb)  # one field only: every byte but the last has the continuation bit
    if n == 2 and vb[1] < 0x80:
        z = vb[1]
    elif n == 3 and vb[1] >= 0x80 and vb[2] < 0x80:
        z = (vb[1] & 0x7F) | (vb[2] << 7)
    elif n == 4 and vb[1] >= 0x80 and vb[2] >= 0x80 and vb[3] < 0x80:
        z = (vb[1] & 0x7F) | ((vb[2] & 0x7F) << 7) | (vb[3] << 14)
    else:
        return _any_value(vb)
    return (z >> 1) ^ -(z & 1)


def _decoder(column_type: int) -> Callable[[Sequence[bytes]], list[Any]]:
    """The decoder of one column (a list of serialized Values): a fast path for the layout of
    the column's declared type, the protobuf class for anything else (NULLs included)."""
    null, slow = _NULL_VALUE, _any_value
    if column_type == STRING:
        def texts(col: Sequence[bytes]) -> list[Any]:
            return [None if vb == null or not vb else vb[2:].decode()
                    if vb[0] == 0x12 and vb[1] == len(vb) - 2 else slow(vb) for vb in col]
        return texts
    if column_type == JSON:
        def jsons(col: Sequence[bytes]) -> list[Any]:
            return [None if vb == null or not vb else JsonText(vb[2:].decode())
                    if vb[0] == 0x52 and vb[1] == len(vb) - 2 else slow(vb) for vb in col]
        return jsons
    if column_type == INTEGER:
        iv = _int_value

        def ints(col: Sequence[bytes]) -> list[Any]:
            return [None if vb == null or not vb else iv(vb) for vb in col]
        return ints
    if column_type == FLOAT:
        unpack = _unpack_double

        def floats(col: Sequence[bytes]) -> list[Any]:
            return [None if vb == null or not vb else unpack(vb[1:])[0] if vb[0] == 0x21 and len(vb) == 9
                    else slow(vb) for vb in col]
        return floats
    if column_type == DECIMAL:
        def decimals(col: Sequence[bytes]) -> list[Any]:
            return [None if vb == null or not vb else Decimal(vb[2:].decode())
                    if vb[0] == 0x2a and vb[1] == len(vb) - 2 else slow(vb) for vb in col]
        return decimals
    if column_type == DATE:
        date = dt.date.fromisoformat

        def dates(col: Sequence[bytes]) -> list[Any]:
            return [None if vb == null or not vb else date(vb[2:].decode())
                    if vb[0] == 0x3a and vb[1] == 10 and len(vb) == 12 else slow(vb) for vb in col]
        return dates
    if column_type == DATETIME:
        stamp = dt.datetime.fromisoformat

        def datetimes(col: Sequence[bytes]) -> list[Any]:
            return [None if vb == null or not vb else stamp(vb[2:].decode())
                    if vb[0] == 0x42 and vb[1] == len(vb) - 2 else slow(vb) for vb in col]
        return datetimes
    if column_type == BOOLEAN:
        def bools(col: Sequence[bytes]) -> list[Any]:
            return [True if vb == b"\x30\x01" else False if vb == b"\x30\x00" else slow(vb)
                    for vb in col]
        return bools

    def anything(col: Sequence[bytes]) -> list[Any]:
        return [slow(vb) for vb in col]
    return anything


class RowDecoder:
    """Decodes serialized rows of one dataset, with decoders chosen from its column types."""

    def __init__(self, column_types: Sequence[int]) -> None:
        self.types = list(column_types)
        self.decoders = [_decoder(t) for t in column_types]
        self._light = [_LIGHT.get(t) for t in column_types]

    def rows(self, rows: Sequence[bytes]) -> list[list[Any]]:
        cells = [_row_values(r).values for r in rows]
        width = len(self.decoders)
        if not cells or width == 0 or set(map(len, cells)) != {width}:
            return [[_any_value(vb) for vb in c] for c in cells]  # not this dataset's shape
        return list(map(list, zip(*[d(col) for d, col in zip(self.decoders, zip(*cells))])))

    def light(self, rows: Sequence[bytes]) -> tuple[list[list[Any]], list[str]] | None:
        """The rows as light columns and their checksum lines, or None when they do not have
        this dataset's shape (decode them with `rows` then).

        Light columns spare a consumer that wants text anyway (a spreadsheet writer) the
        Python value and its conversion back to text: DECIMAL, DATE and DATETIME cells come as
        their wire text (a `str`: exact decimal text, `YYYY-MM-DD`, `YYYY-MM-DDTHH:MM:SS`),
        NULLs as None, and any cell of another form as `Other` (holding its value); cells of
        the other column types come as their Python values."""
        cells = [_row_values(r).values for r in rows]
        width = len(self.decoders)
        if not cells or width == 0 or set(map(len, cells)) != {width}:
            return None
        columns: list[list[Any]] = []
        texts: list[list[str]] = []
        for light, decode, col in zip(self._light, self.decoders, zip(*cells)):
            if light is None:
                values = decode(col)
                columns.append(values)
                texts.append(canonical_column(values))
            else:
                values, canon = light(col)
                columns.append(values)
                texts.append(canon)
        return columns, list(map("\t".join, zip(*texts)))


class LightBatch:
    """A batch as light columns (RowDecoder.light) and its row count."""

    __slots__ = ("columns", "count")

    def __init__(self, columns: list[list[Any]], count: int) -> None:
        self.columns = columns
        self.count = count


class Other:
    """A light column's cell that is not in its column's wire text form (see RowDecoder.light)."""

    __slots__ = ("value", "text")

    def __init__(self, value: Any) -> None:
        self.value = value
        self.text = canonical(value)


_DECIMAL_TEXT = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?").fullmatch


def _light_decimals(col: Sequence[bytes]) -> tuple[list[Any], list[str]]:
    null, plain = _NULL_VALUE, _DECIMAL_TEXT  # normalize() rounds past 28 digits: <= 26 chars
    texts = [None if vb == null or not vb else t if vb[0] == 0x2a and vb[1] == len(vb) - 2 <= 26
             and plain(t := vb[2:].decode()) else Other(_any_value(vb)) for vb in col]
    return texts, [(t.rstrip("0").rstrip(".") if "." in t else t) if type(t) is str
                   else "\\N" if t is None else t.text for t in texts]


def _light_dates(col: Sequence[bytes]) -> tuple[list[Any], list[str]]:
    null = _NULL_VALUE
    texts = [None if vb == null or not vb else t if vb[0] == 0x3a and vb[1] == 10 and len(vb) == 12
             and (t := vb[2:].decode())[4] == "-" and t[7] == "-" else Other(_any_value(vb))
             for vb in col]
    return texts, [t if type(t) is str else "\\N" if t is None else t.text for t in texts]


def _light_datetimes(col: Sequence[bytes]) -> tuple[list[Any], list[str]]:
    null = _NULL_VALUE
    texts = [None if vb == null or not vb else t if vb[0] == 0x42 and vb[1] == len(vb) - 2 >= 19
             and (t := vb[2:].decode())[10] == "T" and t[4] == "-" and t[13] == ":"
             else Other(_any_value(vb)) for vb in col]
    return texts, [t.replace("T", " ", 1) if type(t) is str else "\\N" if t is None else t.text
                   for t in texts]


_LIGHT = {DECIMAL: _light_decimals, DATE: _light_dates, DATETIME: _light_datetimes}
