"""The fast dataset codec against its definition: the protobuf classes and `canonical`.

Hypothesis draws rows of every kind of cell (and mistyped, NULL and out-of-range ones); the
fast encoder must write the bytes protobuf writes, the decoders must give what `from_value`
gives, and every checksum path must hash the same text."""
from __future__ import annotations

import datetime as dt
import hashlib
from decimal import Decimal
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from goreports.core import rowcodec, values
from goreports.proto import dataset_pb2 as pb

TYPES = [values.STRING, values.INTEGER, values.FLOAT, values.DECIMAL, values.BOOLEAN,
         values.DATE, values.DATETIME, values.BYTES, values.JSON]

# Lone surrogates have no UTF-8 form: the wire refuses them (as protobuf always did).
# A signalling NaN has no canonical text (Decimal refuses to compare it): not a cell value.
texts = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=200)
decimals = st.decimals(allow_nan=False) | st.just(Decimal("NaN"))
cells = st.one_of(
    st.none(), texts,
    st.integers(-(2 ** 63), 2 ** 63 - 1), st.integers(-300, 300), st.booleans(),
    st.floats(allow_nan=False), st.decimals(allow_nan=False, allow_infinity=False, places=4),
    decimals, st.dates(), st.datetimes(),
    st.datetimes(timezones=st.just(dt.timezone(dt.timedelta(hours=2)))),
    st.binary(max_size=150), texts.map(values.JsonText))


def column_of(kind: int) -> st.SearchStrategy[Any]:
    """Mostly the column's own type, sometimes anything."""
    own = {values.STRING: texts,
           values.INTEGER: st.integers(-(2 ** 63), 2 ** 63 - 1) | st.integers(-10 ** 6, 10 ** 6),
           values.FLOAT: st.floats(), values.DECIMAL: st.decimals(places=3, allow_nan=False) | decimals,
           values.BOOLEAN: st.booleans(), values.DATE: st.dates(), values.DATETIME: st.datetimes(),
           values.BYTES: st.binary(max_size=40), values.JSON: texts.map(values.JsonText)}
    return st.one_of(own[kind], own[kind], st.none(), cells)


def old_checksum(rows: list[list[Any]]) -> str:
    h = hashlib.sha256()
    for row in rows:
        h.update("\t".join(values.canonical(c) for c in row).encode())
        h.update(b"\n")
    return h.hexdigest()


def same(a: Any, b: Any) -> bool:
    """Equal and of the same type (NaN equal to NaN)."""
    if isinstance(a, float) and isinstance(b, float) and a != a:
        return b != b
    if isinstance(a, Decimal) and isinstance(b, Decimal) and a.is_nan():
        return b.is_nan()
    return type(a) is type(b) and a == b


@settings(max_examples=150, deadline=None)
@given(st.lists(st.sampled_from(TYPES), min_size=1, max_size=6).flatmap(
    lambda kinds: st.tuples(st.just(kinds), st.lists(st.tuples(*map(column_of, kinds)),
                                                     min_size=1, max_size=30))))
def test_fast_codec_matches_protobuf(data: tuple[list[int], list[tuple[Any, ...]]]) -> None:
    kinds, raw_rows = data
    rows = [list(r) for r in raw_rows]
    fast = rowcodec.encode_row_bytes(rows)
    assert fast == [pb.Row(values=[values.to_value(c) for c in r]).SerializeToString()
                    for r in rows]
    reference = [[values.from_value(v) for v in pb.Row.FromString(r).values] for r in fast]
    decoder = rowcodec.RowDecoder(kinds)
    decoded = decoder.rows(fast)
    assert all(same(a, b) for ra, rb in zip(decoded, reference) for a, b in zip(ra, rb))

    want = old_checksum(reference)
    by_rows = values.RowChecksum()
    by_rows.update(decoded)
    assert by_rows.hexdigest() == want
    light = decoder.light(fast)
    assert light is not None
    by_lines = values.RowChecksum()
    by_lines.update_lines(light[1])
    assert by_lines.hexdigest() == want and by_lines.count == len(rows)

    body = rowcodec.batch_bytes(fast, generation=7, first_row=3)
    assert body == pb.RowBatch(generation=7, first_row=3,
                               rows=[pb.Row.FromString(r) for r in fast]).SerializeToString()


def test_rows_not_of_the_header_shape_still_decode() -> None:
    rows = [[1, "a"], [2, "b", None]]
    fast = rowcodec.encode_row_bytes(rows)
    decoder = rowcodec.RowDecoder([values.INTEGER, values.STRING])
    assert decoder.rows(fast) == rows
    assert decoder.light(fast) is None  # the caller decodes rows instead


def test_non_canonical_encodings_take_the_protobuf_path() -> None:
    """Bytes another protobuf writer may produce (a padded varint, a NULL written as false)."""
    padded = b"\x0a\x04\x18\x82\x80\x00"  # int 1 as a 3-byte varint
    decoder = rowcodec.RowDecoder([values.INTEGER])
    assert decoder.rows([padded]) == [[1]]
    checksum = values.RowChecksum()
    checksum.update_lines(decoder.light([padded])[1])  # type: ignore[index]
    assert checksum.hexdigest() == old_checksum([[1]])
    empty = b"\x0a\x00"  # a Value with no field set: NULL, in every column type
    for kind in TYPES:
        decoder = rowcodec.RowDecoder([kind])
        assert decoder.rows([empty]) == [[None]]
        assert decoder.light([empty]) == ([[None]], ["\\N"])


def test_decimal_canonical_text() -> None:
    for text, want in [("100", "100"), ("-0.000", "-0"), ("1E+3", "1000"), ("12.3400", "12.34"),
                       ("1.2345678901234567890123456789", "1.234567890123456789012345679"),
                       ("0.0000001", "0.0000001"), ("NaN", "NaN")]:
        assert values.canonical(Decimal(text)) == want, text
