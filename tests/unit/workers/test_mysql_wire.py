"""The MySQL collector's wire encoder: server text in, the same dataset out as from the driver's
converted values (decoded values and checksum), including the values MySQL can hold that
have no Python value (zero and invalid dates)."""
from __future__ import annotations

from decimal import Decimal

from pymysql import converters
from pymysql.constants import FIELD_TYPE

from goreports.core import rowcodec, values
from goreports.workers.collectors._mysql_types import FieldInfo, columns_for
from goreports.workers.collectors._mysql_wire import RowEncoder, raw_columns

FIELDS = [FieldInfo("id", FIELD_TYPE.LONG), FieldInfo("amount", FIELD_TYPE.NEWDECIMAL),
          FieldInfo("day", FIELD_TYPE.DATE), FieldInfo("at", FIELD_TYPE.DATETIME),
          FieldInfo("ts", FIELD_TYPE.TIMESTAMP), FieldInfo("name", FIELD_TYPE.VAR_STRING, 45)]
RAW = [  # as PyMySQL returns them with the DECIMAL/DATE/DATETIME converters switched off
    (1, "38000.00", "2021-05-15", "2020-03-26 15:33:20", "2020-03-26 15:33:20", "a"),
    (2, "-0.50", "0000-00-00", "0000-00-00 00:00:00", "2020-02-29 23:59:59", None),
    (3, "0.0000001", "2020-02-31", "2020-02-31 10:00:00", "2020-12-31 00:00:00.500000", "=1+1"),
    (4, "100", "1000-01-01", "2038-01-19 03:14:07.123", "2020-00-10 00:00:00", "é"),
    (5, None, None, None, None, ""),
    (6, "12345678901234567890123456789.123456789", "9999-12-31", "9999-12-31 23:59:59",
     "1970-01-01 00:00:01", "x"),
]
DRIVER = {FIELD_TYPE.NEWDECIMAL: Decimal, FIELD_TYPE.DATE: converters.convert_date,
          FIELD_TYPE.DATETIME: converters.convert_datetime,
          FIELD_TYPE.TIMESTAMP: converters.convert_datetime}


def test_server_text_gives_the_dataset_the_driver_values_give() -> None:
    columns, convs = columns_for(FIELDS)
    raw = raw_columns(FIELDS, columns, convs)
    assert raw == [None, values.DECIMAL, values.DATE, values.DATETIME, values.DATETIME, None]
    encoded = RowEncoder(raw, convs).encode(RAW)

    driver_rows = [[v if v is None or f.type_code not in DRIVER else DRIVER[f.type_code](v)
                    for v, f in zip(r, FIELDS)] for r in RAW]
    assert isinstance(driver_rows[1][2], str)  # a zero date has no Python value: its text
    decoder = rowcodec.RowDecoder([c.type for c in columns])
    assert decoder.rows(encoded.rows) == decoder.rows(rowcodec.encode_row_bytes(driver_rows))
    assert decoder.rows(encoded.rows) == driver_rows
    by_values, by_lines = values.RowChecksum(), values.RowChecksum()
    by_values.update(driver_rows)
    by_lines.update_lines(encoded.lines)
    assert by_lines.hexdigest() == by_values.hexdigest()
    assert len(encoded[1:3]) == 2 and encoded[1:3].lines == encoded.lines[1:3]


def test_the_pagination_key_and_hinted_columns_keep_driver_values() -> None:
    fields = [FieldInfo("day", FIELD_TYPE.DATE), FieldInfo("amount [string]", FIELD_TYPE.NEWDECIMAL),
              FieldInfo("n", FIELD_TYPE.NEWDECIMAL)]
    columns, convs = columns_for(fields)
    assert raw_columns(fields, columns, convs, keep=0) == [None, None, values.DECIMAL]


def test_fast_row_reader_reads_what_pymysql_reads() -> None:
    from pymysql.connections import MySQLResult
    from pymysql.protocol import MysqlPacket

    from goreports.workers.collectors._mysql_wire import fast_row_reader

    def lenenc(b: bytes | None) -> bytes:
        if b is None:
            return b"\xfb"
        n = len(b)
        if n < 251:
            return bytes((n,)) + b
        if n < 2 ** 16:
            return b"\xfc" + n.to_bytes(2, "little") + b
        if n < 2 ** 24:
            return b"\xfd" + n.to_bytes(3, "little") + b
        return b"\xfe" + n.to_bytes(8, "little") + b

    converters = [("ascii", int), ("utf8", None), (None, None), ("ascii", float),
                  ("ascii", Decimal), ("utf8", None)]
    cells = [b"-42", "é".encode() * 200, b"\x00\xff" * 40_000, b"2.5", b"1.10", None]
    packets = [b"".join(map(lenenc, cells)), b"".join(map(lenenc, cells[:3]))]  # a short row
    result = MySQLResult.__new__(MySQLResult)
    result.converters = converters
    result.unbuffered_active = False  # what __del__ looks at
    fast = fast_row_reader(converters)
    for data in packets:
        want = MySQLResult._read_row_from_packet(result, MysqlPacket(data, "utf8"))
        assert fast(MysqlPacket(data, "utf8")) == want
    assert fast(MysqlPacket(packets[0], "utf8"))[:2] == (-42, "é" * 200)
