"""SQL text rules of the MySQL collector: which statements may be sent, keyset pagination, and what
a server error means for a retry. Pure functions, unit tested without a server.

Which statements reach the server. Writes are refused by the server itself: every query runs in
a session and a transaction that are both READ ONLY, so INSERT, UPDATE, DELETE, REPLACE,
`SELECT … FOR UPDATE` and writes hidden in stored functions fail with error 1792 ("Cannot
execute statement in a READ ONLY transaction"); the server, not a parser, is the authority on
what writes data. A read-only transaction does not cover statements outside the data language,
though: `SET SESSION TRANSACTION READ WRITE`, `COMMIT`, `KILL`, `CALL`, DDL (which commits
implicitly), `SELECT … INTO OUTFILE` (a file on the server) … So before sending, the text is
scanned (strings, quoted names and comments skipped; MySQL's executable comments `/*! … */`
are read as code, since the server runs them) and refused unless:

- it is one statement (a trailing `;` is fine). PyMySQL connects without CLIENT_MULTI_STATEMENTS,
  so the server would refuse a second statement anyway; this check gives a clear error first;
- its first keyword is SELECT, WITH, VALUES or TABLE, or it opens with `(` (reads), or it is
  INSERT/UPDATE/DELETE/REPLACE (data changes, left for the read-only transaction to refuse);
- it does not write a file (`INTO OUTFILE`, `INTO DUMPFILE`).

Keyset pagination (`Query.use_pagination`). Each page is

    SELECT * FROM (<query>) AS goreports_page
    WHERE `<key>` > %(goreports_after)s      -- omitted on the first page
    ORDER BY `<key>` LIMIT <page_size + 1>

never OFFSET: OFFSET makes the server read and throw away every earlier row, so page n costs
O(n * page_size); a key condition lets it seek by an index, so every page costs the same. The
price is a requirement on the key: a column of the result that is unique, never NULL and
sortable (an integer id is ideal; a string key compares in its collation). One extra row per
page shows whether the key repeats across the page boundary (rows would silently be lost);
repeats inside a page are seen directly. All pages run in the same consistent-snapshot
transaction, so they see one state of the database.

Parameters are bound by PyMySQL (`%(name)s`, pyformat), never formatted into the text by us.
PyMySQL's rule follows: once a statement has parameters, a literal `%` is written `%%`. A query
with no parameters keeps its `%` as they are (`LIKE 'a%'`); when pagination adds its own
parameter to such a query, its `%` are doubled here so that the text means the same.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Iterator

from google.protobuf import json_format

from goreports.proto import tasks_pb2

AFTER_PARAM = "goreports_after"
PAGE_ALIAS = "goreports_page"

READ_KEYWORDS = {"SELECT", "WITH", "VALUES", "TABLE"}
# Sent on purpose: the READ ONLY transaction refuses them (error 1792), which the tests prove.
WRITE_KEYWORDS = {"INSERT", "UPDATE", "DELETE", "REPLACE"}
FILE_TARGETS = {"OUTFILE", "DUMPFILE"}

_WORD = re.compile(r"[A-Za-z_$][A-Za-z0-9_$]*")
_VERSIONED = re.compile(r"/\*M?!\d*")  # executable comment opener: /*!, /*!50001, /*M!100101


class StatementRefused(ValueError):
    """The query text may not be sent (the message says why and what to write instead)."""


@dataclass(frozen=True)
class Token:
    kind: str  # word | punct
    text: str
    pos: int


def tokens(sql: str) -> Iterator[Token]:
    """Significant tokens: words and punctuation, outside strings, quoted names and comments.

    Executable comments (`/*!…*/`, `/*M!…*/`) are code to MySQL, so their content is scanned."""
    i, n = 0, len(sql)
    in_versioned = False
    while i < n:
        c = sql[i]
        if c.isspace():
            i += 1
        elif c in "'\"`":
            i = _skip_quoted(sql, i)
        elif c == "#" or (sql.startswith("--", i) and (i + 2 >= n or sql[i + 2] in " \t\r\n")):
            j = sql.find("\n", i)
            i = n if j < 0 else j + 1
        elif sql.startswith("/*", i):
            m = _VERSIONED.match(sql, i)
            if m:
                in_versioned = True
                i = m.end()
            else:
                j = sql.find("*/", i + 2)
                i = n if j < 0 else j + 2
        elif in_versioned and sql.startswith("*/", i):
            in_versioned = False
            i += 2
        else:
            m = _WORD.match(sql, i)
            if m:
                yield Token("word", m.group(0), i)
                i = m.end()
            else:
                yield Token("punct", c, i)
                i += 1


def _skip_quoted(sql: str, i: int) -> int:
    """Index after the quoted string/name starting at i (doubled quotes; backslash in strings)."""
    q, n = sql[i], len(sql)
    j = i + 1
    while j < n:
        c = sql[j]
        if c == "\\" and q != "`":
            j += 2
        elif c == q:
            if j + 1 < n and sql[j + 1] == q:
                j += 2
            else:
                return j + 1
        else:
            j += 1
    return n  # unterminated: the server reports the syntax error


def check_statement(sql: str) -> str:
    """The text to send (trailing `;` and blanks removed), or StatementRefused."""
    toks = list(tokens(sql))
    end = len(toks)
    while end and toks[end - 1].text == ";":
        end -= 1
    body = toks[:end]
    if not body:
        raise StatementRefused("the query is empty")
    semis = [t for t in body if t.text == ";"]
    if semis:
        raise StatementRefused(
            f"the query holds more than one statement (a ';' at character {semis[0].pos + 1}); "
            f"each query must be a single SELECT: split it into several queries")
    first = body[0]
    keyword = first.text.upper()
    if not (first.text == "(" or keyword in READ_KEYWORDS or keyword in WRITE_KEYWORDS):
        raise StatementRefused(
            f"a {keyword!r} statement cannot feed a dataset; a query must be a single SELECT "
            f"(or WITH … SELECT / VALUES)")
    for a, b in zip(body, body[1:]):
        if a.text.upper() == "INTO" and b.text.upper() in FILE_TARGETS:
            raise StatementRefused(f"SELECT … INTO {b.text.upper()} writes a file on the "
                                   f"database server and is refused")
    cut = toks[end].pos if end < len(toks) else len(sql)
    return sql[:cut].rstrip()


def quote_name(name: str) -> str:
    """A column name as a MySQL identifier (backticks doubled inside)."""
    return "`" + name.replace("`", "``") + "`"


def keyset_page(sql: str, key: str, *, first: bool, limit: int) -> str:
    """One page of `sql` ordered by `key` (see the module docstring)."""
    k = quote_name(key)
    where = "" if first else f" WHERE {PAGE_ALIAS}.{k} > %({AFTER_PARAM})s"
    return (f"SELECT * FROM (\n{sql}\n) AS {PAGE_ALIAS}{where} "
            f"ORDER BY {PAGE_ALIAS}.{k} LIMIT {int(limit)}")


def escape_percent(sql: str) -> str:
    """A query written without parameters, made safe for pyformat binding."""
    return sql.replace("%", "%%")


def bind_parameters(query: tasks_pb2.Query) -> dict[str, Any]:
    """QueryParameter values -> driver values: text, numbers (whole numbers as ints), booleans,
    null, and lists of those (bound as a parenthesised list, for `IN %(ids)s`)."""
    out: dict[str, Any] = {}
    for p in query.parameters:
        v = json_format.MessageToDict(p.value) if p.HasField("value") else None
        if isinstance(v, dict) or (isinstance(v, list) and any(isinstance(x, (dict, list)) for x in v)):
            raise StatementRefused(f"parameter {p.name!r} is a map or a nested list; only text, "
                                   f"numbers, booleans, null and flat lists can be bound")
        if isinstance(v, list):
            if not v:
                raise StatementRefused(f"parameter {p.name!r} is an empty list (`IN ()` is not SQL)")
            v = tuple(_whole(x) for x in v)
        else:
            v = _whole(v)
        if p.name == AFTER_PARAM:
            raise StatementRefused(f"parameter name {AFTER_PARAM!r} is reserved for pagination")
        out[p.name] = v
    return out


def _whole(v: Any) -> Any:
    if isinstance(v, float) and v.is_integer() and abs(v) < 2 ** 53:
        return int(v)
    return v


# -- server errors --------------------------------------------------------------------------------

# The client could not reach or lost the server, or the server is busy: try again later.
TEMPORARY_CODES = {
    1040,  # too many connections
    1053,  # server shutdown in progress
    1205,  # lock wait timeout
    1213,  # deadlock
    1927,  # connection killed
    2002, 2003, 2005, 2006, 2013, 2014, 2055,  # can't connect / unknown host / gone away / lost
    4031,  # disconnected for inactivity
}
AUTH_CODES = {1045, 1698, 1862, 1820}  # access denied, expired password
PRIVILEGE_CODES = {1044, 1142, 1143, 1227, 1370}  # no access to a database/table/column/routine
READ_ONLY_CODE = 1792
UNKNOWN_DATABASE = 1049


def error_kind(code: int | None) -> str:
    """temporary | auth | privilege | read_only | unknown_database | query.

    No code, or 0 (PyMySQL's InterfaceError for a connection that went away), is a lost
    connection: temporary."""
    if not code or code in TEMPORARY_CODES:
        return "temporary"
    if code in AUTH_CODES:
        return "auth"
    if code in PRIVILEGE_CODES:
        return "privilege"
    if code == READ_ONLY_CODE:
        return "read_only"
    if code == UNKNOWN_DATABASE:
        return "unknown_database"
    return "query"
