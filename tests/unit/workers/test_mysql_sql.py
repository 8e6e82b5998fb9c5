"""The MySQL collector's SQL text rules: statement guard, keyset pages, parameters, error kinds
(no server)."""
from __future__ import annotations

import pytest
from google.protobuf import struct_pb2

from goreports.proto import tasks_pb2
from goreports.workers.collectors import _mysql_sql as s


@pytest.mark.parametrize("sql, sent", [
    ("SELECT 1", "SELECT 1"),
    ("  select * from t ;; \n", "  select * from t"),
    ("WITH a AS (SELECT 1) SELECT * FROM a;", "WITH a AS (SELECT 1) SELECT * FROM a"),
    ("(SELECT 1) UNION (SELECT 2)", "(SELECT 1) UNION (SELECT 2)"),
    ("VALUES (1), (2)", "VALUES (1), (2)"),
    ("-- a comment; with a semicolon\nSELECT ';' AS x, `a;b` FROM t # trailing; comment",
     "-- a comment; with a semicolon\nSELECT ';' AS x, `a;b` FROM t # trailing; comment"),
    ("/* lead; */ SELECT 'it''s;' , \"q\\\";\"", "/* lead; */ SELECT 'it''s;' , \"q\\\";\""),
    # data changes are sent on purpose: the READ ONLY transaction refuses them (error 1792)
    ("DELETE FROM t", "DELETE FROM t"),
    ("update t set a = 1", "update t set a = 1"),
    ("INSERT INTO t SELECT * FROM u", "INSERT INTO t SELECT * FROM u"),
    ("REPLACE INTO t VALUES (1)", "REPLACE INTO t VALUES (1)"),
    ("SELECT a INTO @x FROM t", "SELECT a INTO @x FROM t"),  # no rows: refused after it ran
])
def test_statements_that_are_sent(sql: str, sent: str) -> None:
    assert s.check_statement(sql) == sent


@pytest.mark.parametrize("sql, why", [
    ("SELECT 1; DELETE FROM t", "more than one statement"),
    ("SELECT 1;\nSELECT 2;", "more than one statement"),
    ("SELECT 1 /*!; DROP TABLE t */", "more than one statement"),  # executable comment = code
    ("SET SESSION TRANSACTION READ WRITE", "'SET'"),
    ("COMMIT", "'COMMIT'"),
    ("KILL 12", "'KILL'"),
    ("CALL wipe()", "'CALL'"),
    ("DROP TABLE t", "'DROP'"),
    ("CREATE TABLE x (a INT)", "'CREATE'"),
    ("TRUNCATE t", "'TRUNCATE'"),
    ("LOAD DATA INFILE 'x' INTO TABLE t", "'LOAD'"),
    ("/*!50000 DROP TABLE t */", "'DROP'"),
    ("/*M!100100 SET STATEMENT max_statement_time=1 FOR */ DELETE FROM t", "'SET'"),
    ("SELECT * FROM t INTO OUTFILE '/tmp/x'", "INTO OUTFILE"),
    ("SELECT * INTO dumpfile '/tmp/x' FROM t", "INTO DUMPFILE"),
    ("", "empty"),
    (" ; -- nothing", "empty"),
])
def test_statements_that_are_refused(sql: str, why: str) -> None:
    with pytest.raises(s.StatementRefused, match=why):
        s.check_statement(sql)


def test_words_in_strings_and_comments_do_not_count() -> None:
    assert s.check_statement("SELECT 'INTO OUTFILE' AS x /* INTO DUMPFILE */")
    assert s.check_statement("-- DROP TABLE t\nSELECT 1")
    assert s.check_statement("SELECT `into` , outfile FROM t")  # names, not the clause


def test_keyset_page() -> None:
    first = s.keyset_page("SELECT * FROM t", "id", first=True, limit=11)
    assert first == ("SELECT * FROM (\nSELECT * FROM t\n) AS goreports_page "
                     "ORDER BY goreports_page.`id` LIMIT 11")
    nxt = s.keyset_page("SELECT * FROM t", "we`ird", first=False, limit=11)
    assert "WHERE goreports_page.`we``ird` > %(goreports_after)s" in nxt
    assert nxt.endswith("ORDER BY goreports_page.`we``ird` LIMIT 11")
    assert "OFFSET" not in nxt


def test_escape_percent_keeps_meaning_under_pyformat() -> None:
    sql = "SELECT * FROM t WHERE name LIKE 'a%'"
    assert s.escape_percent(sql) % {} == sql


def _query(**params: struct_pb2.Value) -> tasks_pb2.Query:
    q = tasks_pb2.Query(name="q", sql="SELECT 1")
    for k, v in params.items():
        q.parameters.add(name=k, value=v)
    return q


def test_bind_parameters() -> None:
    lst = struct_pb2.Value()
    lst.list_value.extend([1, 2.5, "x"])
    q = _query(n=struct_pb2.Value(number_value=3), f=struct_pb2.Value(number_value=2.5),
               t=struct_pb2.Value(string_value="EU"), b=struct_pb2.Value(bool_value=True),
               z=struct_pb2.Value(null_value=struct_pb2.NULL_VALUE), ids=lst)
    bound = s.bind_parameters(q)
    assert bound == {"n": 3, "f": 2.5, "t": "EU", "b": True, "z": None, "ids": (1, 2.5, "x")}
    assert isinstance(bound["n"], int)


@pytest.mark.parametrize("value, why", [
    ({"struct_value": {"a": 1}}, "map"),
    ({"list_value": []}, "empty list"),
])
def test_bind_parameters_refuses(value: dict, why: str) -> None:  # type: ignore[type-arg]
    v = struct_pb2.Value()
    if "struct_value" in value:
        v.struct_value.update(value["struct_value"])
    else:
        v.list_value.SetInParent()  # an empty list is still a list
    with pytest.raises(s.StatementRefused, match=why):
        s.bind_parameters(_query(p=v))
    with pytest.raises(s.StatementRefused, match="reserved"):
        s.bind_parameters(_query(goreports_after=struct_pb2.Value(number_value=1)))


@pytest.mark.parametrize("code, kind", [
    (2003, "temporary"), (2013, "temporary"), (2006, "temporary"), (1040, "temporary"),
    (1213, "temporary"), (None, "temporary"), (0, "temporary"),
    (1045, "auth"), (1044, "privilege"), (1142, "privilege"),
    (1792, "read_only"), (1049, "unknown_database"),
    (1064, "query"), (1146, "query"), (1054, "query"),
])
def test_error_kinds(code: int | None, kind: str) -> None:
    assert s.error_kind(code) == kind
