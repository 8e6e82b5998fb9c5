"""Pure pieces of the `http` collector: where records sit in a JSON page, how records become
typed rows, which page comes next, and which auth header the credentials give.

Kept apart from the stage so they are tested without a network (tests/unit/workers/
test_http_pages.py); the stage (goreports.workers.collectors.http) only wires them to the HTTP
client and the dataset writer.

Rows. Columns are `columns` from the spec, else the keys of the first record (in order). Later
records may lack a key (the cell is None) or have extra keys (ignored: a dataset has one header).
Nested objects and arrays become JSON text cells. Types are inferred per column from the first
page with core.values.infer_type: one kind -> that type; integers and floats -> FLOAT; anything
else mixed -> STRING (cells become text); no value at all -> STRING. Later pages are converted to
the column type where that is lossless (an int in a FLOAT column, a number in a STRING column);
otherwise a cell keeps its own type, which the wire format carries faithfully. Text is not
parsed into dates: a JSON API's strings stay strings.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

from yarl import URL

from goreports.core import values
from goreports.core.errors import PermanentError
from goreports.proto import dataset_pb2, tasks_pb2
from goreports.core.credentials import Credentials

Convert = Callable[[Any], Any]
_INT64 = (-(2 ** 63), 2 ** 63 - 1)
PAGINATION_TYPES = ("none", "nextLink", "cursor", "page")


class _Missing:
    def __repr__(self) -> str:
        return "<missing>"


MISSING: Any = _Missing()


# -- JSON paths ---------------------------------------------------------------------------------

def dig(doc: Any, path: str) -> Any:
    """The value at a dotted path (`data.items`, `links.next`, `pages.0.url`); the document itself
    for an empty path; MISSING when a step does not exist."""
    cur = doc
    for part in path.split(".") if path else ():
        if isinstance(cur, dict) and part in cur:
            cur = cur[part]
        elif (isinstance(cur, list) and part.lstrip("-").isdigit()
              and -len(cur) <= int(part) < len(cur)):
            cur = cur[int(part)]
        else:
            return MISSING
    return cur


def _kind(v: Any) -> str:
    return "null" if v is None else {dict: "an object", list: "an array", str: "a string",
                                     bool: "a boolean"}.get(type(v), "a number")


def records_of(doc: Any, path: str, where: str) -> list[dict[str, Any]]:
    """The array of record objects at `path` of a page."""
    found = dig(doc, path)
    at = f"recordsPath {path!r}" if path else "the page itself (recordsPath is empty)"
    if found is MISSING:
        keys = ", ".join(list(doc)[:20]) if isinstance(doc, dict) else _kind(doc)
        raise PermanentError(f"{where}: {at} does not exist in the response (top level: {keys})",
                             reason="RecordsNotFound")
    if found is None:
        return []
    if not isinstance(found, list):
        raise PermanentError(f"{where}: {at} is {_kind(found)}, expected an array of objects",
                             reason="RecordsNotFound")
    for i, item in enumerate(found):
        if not isinstance(item, dict):
            raise PermanentError(f"{where}: record {i} at {at} is {_kind(item)}, expected an "
                                 f"object", reason="RecordsNotFound")
    return found


# -- typed rows -----------------------------------------------------------------------------------

def cell(v: Any) -> Any:
    """A JSON value as a dataset cell: nested objects/arrays as JSON text, integers outside
    int64 as text (the wire's integer is 64-bit)."""
    if isinstance(v, (dict, list)):
        return values.JsonText(json.dumps(v, separators=(",", ":"), ensure_ascii=False))
    if isinstance(v, int) and not isinstance(v, bool) and not _INT64[0] <= v <= _INT64[1]:
        return str(v)
    return v


def _to_float(v: Any) -> Any:
    return float(v) if isinstance(v, int) and not isinstance(v, bool) else v


def _to_int(v: Any) -> Any:
    return int(v) if isinstance(v, float) and v.is_integer() and abs(v) < 2 ** 53 else v


def _to_text(v: Any) -> Any:
    if isinstance(v, str):
        return v
    return json.dumps(v, ensure_ascii=False)  # true, 1.5, and JSON text stays JSON text


def infer_column(cells: Sequence[Any]) -> tuple[int, Convert | None]:
    """A column's type from its first-page cells, and the converter of its later cells."""
    kinds = {values.infer_type(c) for c in cells if c is not None}
    if not kinds:
        return values.STRING, _to_text
    if kinds == {values.INTEGER}:
        return values.INTEGER, _to_int
    if kinds <= {values.INTEGER, values.FLOAT}:
        return values.FLOAT, _to_float
    if len(kinds) == 1:
        kind = kinds.pop()
        return kind, (_to_text if kind == values.STRING else None)
    return values.STRING, _to_text


@dataclass
class Shaper:
    """Records -> rows of fixed columns with types from the first page."""

    names: list[str]
    columns: list[dataset_pb2.Column]
    converters: list[Convert | None]

    @classmethod
    def from_first_page(cls, records: Sequence[Mapping[str, Any]],
                        fixed: Sequence[str] = ()) -> "Shaper":
        names = list(fixed) if fixed else list(records[0]) if records else []
        columns, converters = [], []
        for name in names:
            kind, conv = infer_column([cell(r.get(name)) for r in records])
            columns.append(dataset_pb2.Column(name=name, type=kind))
            converters.append(conv)
        return cls(names, columns, converters)

    def rows(self, records: Sequence[Mapping[str, Any]]) -> list[list[Any]]:
        out = []
        for r in records:
            row = []
            for name, conv in zip(self.names, self.converters):
                v = cell(r.get(name))
                row.append(v if v is None or conv is None else conv(v))
            out.append(row)
        return out


# -- pagination -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class PageRequest:
    """One page to fetch: a URL and the query parameters set on it."""

    url: str
    params: dict[str, str] = field(default_factory=dict)


class Pager:
    """Which page comes after the one just read, for each pagination type; stops after
    `max_pages` (setting `truncated` when the API had more) and refuses to loop."""

    def __init__(self, p: tasks_pb2.HttpPagination, url: str, query: Mapping[str, str],
                 where: str) -> None:
        self.type = p.type or "none"
        if self.type not in PAGINATION_TYPES:
            raise PermanentError(f"{where}: pagination type {self.type!r} is unknown (known: "
                                 f"{', '.join(PAGINATION_TYPES)})", reason="InvalidTask")
        if self.type == "nextLink" and not p.next_link_path:
            raise PermanentError(f"{where}: pagination nextLink needs nextLinkPath",
                                 reason="InvalidTask")
        if self.type == "cursor" and not p.cursor_path:
            raise PermanentError(f"{where}: pagination cursor needs cursorPath",
                                 reason="InvalidTask")
        self.p = p
        self.url = url
        self.query = dict(query)
        self.where = where
        self.max_pages = p.max_pages
        self.page = p.start_page
        self.pages = 0  # pages handed out so far
        self.truncated = False
        self._seen: set[str] = set()

    def first(self) -> PageRequest:
        self.pages = 1
        params = dict(self.query)
        if self.type == "page":
            params[self.p.page_param or "page"] = str(self.page)
        return PageRequest(self.url, params)

    def next(self, doc: Any, records: int, current: PageRequest) -> PageRequest | None:
        """The next page after `current` (whose JSON is `doc` with `records` records)."""
        nxt = self._next(doc, records, current)
        if nxt is None:
            return None
        if self.max_pages and self.pages >= self.max_pages:
            self.truncated = True
            return None
        self.pages += 1
        return nxt

    def _next(self, doc: Any, records: int, current: PageRequest) -> PageRequest | None:
        if self.type == "none":
            return None
        if self.type == "page":
            if records == 0:
                return None
            self.page += 1
            param = self.p.page_param or "page"
            return PageRequest(self.url, {**self.query, param: str(self.page)})
        if self.type == "nextLink":
            link = dig(doc, self.p.next_link_path)
            if link is MISSING or link is None or link == "":
                return None
            if not isinstance(link, str):
                raise PermanentError(f"{self.where}: nextLinkPath {self.p.next_link_path!r} is "
                                     f"{_kind(link)}, expected a URL", reason="InvalidPagination")
            try:
                target = str(URL(current.url).update_query(current.params).join(URL(link)))
            except ValueError:
                raise PermanentError(f"{self.where}: the next link at {self.p.next_link_path!r} "
                                     f"is not a URL", reason="InvalidPagination") from None
            self._once(target, "next link")
            return PageRequest(target)
        cursor = dig(doc, self.p.cursor_path)
        if cursor is MISSING or cursor is None or cursor == "" or cursor is False:
            return None
        if isinstance(cursor, (dict, list)):
            raise PermanentError(f"{self.where}: cursorPath {self.p.cursor_path!r} is "
                                 f"{_kind(cursor)}, expected a string or number",
                                 reason="InvalidPagination")
        text = cursor if isinstance(cursor, str) else json.dumps(cursor)
        self._once(text, "cursor")
        return PageRequest(self.url, {**self.query, self.p.cursor_param or "cursor": text})

    def _once(self, key: str, what: str) -> None:
        if key in self._seen:
            raise PermanentError(f"{self.where}: the API returned the same {what} twice after "
                                 f"{self.pages} page(s); stopping instead of looping",
                                 reason="PaginationLoop")
        self._seen.add(key)


# -- auth -----------------------------------------------------------------------------------------

AUTH_TYPES = ("none", "bearer", "basic", "header")


def auth_headers(auth_type: str, header: str, creds: Credentials | None, where: str
                 ) -> dict[str, str]:
    """Request headers that authenticate with `creds`. An empty type with credentials picks
    bearer (a `token` file) or basic (`username`); values are read here and never logged."""
    import base64

    kind = auth_type or ""
    if kind not in ("",) + AUTH_TYPES:
        raise PermanentError(f"{where}: auth type {kind!r} is unknown (known: "
                             f"{', '.join(AUTH_TYPES)})", reason="InvalidTask")
    if kind == "" and creds is not None:
        kind = "bearer" if creds.get("token") is not None else "basic" \
            if creds.get("username") is not None else ""
        if not kind:
            raise PermanentError(f"{where}: credentials {creds.id!r} have neither `token` nor "
                                 f"`username`; set auth.type", reason="CredentialsIncomplete")
    if kind in ("", "none"):
        return {}
    if creds is None:
        raise PermanentError(f"{where}: auth type {kind!r} needs credentialsId",
                             reason="InvalidTask")
    if kind == "bearer":
        return {"Authorization": f"Bearer {creds.require('token').strip()}"}
    if kind == "basic":
        pair = f"{creds.require('username')}:{creds.require('password')}".encode()
        return {"Authorization": f"Basic {base64.b64encode(pair).decode()}"}
    if not header:
        raise PermanentError(f"{where}: auth type header needs auth.header (the header name)",
                             reason="InvalidTask")
    return {header: creds.require("value").strip()}
