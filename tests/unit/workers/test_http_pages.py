"""Pure pieces of the http collector: JSON paths, records -> typed rows, pagination, auth."""
from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from goreports.core import values
from goreports.core.errors import PermanentError
from goreports.proto import tasks_pb2
from goreports.workers.collectors._http_pages import (MISSING, PageRequest, Pager, Shaper,
                                                      auth_headers, cell, dig, infer_column,
                                                      records_of)
from goreports.core.credentials import CredentialStore

W = "step 'collect'"


def test_dig() -> None:
    doc = {"data": {"items": [{"id": 1}, {"id": 2}]}, "links": {"next": None}}
    assert dig(doc, "") is doc
    assert dig(doc, "data.items.1.id") == 2
    assert dig(doc, "data.items.-1.id") == 2
    assert dig(doc, "links.next") is None
    assert dig(doc, "links.prev") is MISSING and dig(doc, "data.items.9") is MISSING
    assert dig([1, 2], "0") == 1 and dig("text", "a") is MISSING


def test_records_of() -> None:
    assert records_of([{"a": 1}], "", W) == [{"a": 1}]
    assert records_of({"data": None}, "data", W) == []
    with pytest.raises(PermanentError, match="does not exist.*top level: items") as e:
        records_of({"items": []}, "data.items", W)
    assert e.value.reason == "RecordsNotFound"
    with pytest.raises(PermanentError, match="is an object, expected an array"):
        records_of({"data": {"a": 1}}, "data", W)
    with pytest.raises(PermanentError, match="record 1 .* is a number"):
        records_of([{"a": 1}, 5], "", W)


def test_cell() -> None:
    assert cell({"b": 1, "a": [1, 2]}) == '{"b":1,"a":[1,2]}'
    assert isinstance(cell([1]), values.JsonText)
    assert cell(2 ** 70) == str(2 ** 70)  # beyond int64: text
    assert cell(True) is True and cell("é") == "é" and cell(None) is None


@pytest.mark.parametrize("cells,kind", [
    ([1, 2, None], values.INTEGER), ([1, 2.5], values.FLOAT), (["a", None], values.STRING),
    ([True, False], values.BOOLEAN), ([cell({"a": 1})], values.JSON), ([None, None], values.STRING),
    ([1, "a"], values.STRING), ([True, 1], values.STRING),
])
def test_infer_column(cells: list[object], kind: int) -> None:
    assert infer_column(cells)[0] == kind


def test_shaper_types_from_the_first_page_and_converts_later_pages() -> None:
    first = [{"id": 1, "price": 1.5, "name": "a", "meta": {"x": 1}, "flag": True},
             {"id": 2, "price": 2, "name": "b", "meta": None, "flag": False}]
    s = Shaper.from_first_page(first)
    assert [(c.name, c.type) for c in s.columns] == [
        ("id", values.INTEGER), ("price", values.FLOAT), ("name", values.STRING),
        ("meta", values.JSON), ("flag", values.BOOLEAN)]
    assert s.rows(first)[1] == [2, 2.0, "b", None, False]
    later = [{"id": 3.0, "price": 7, "name": 42, "meta": [1], "new": "x"}, {"name": True}]
    rows = s.rows(later)
    assert rows[0] == [3, 7.0, "42", "[1]", None]  # converted; unknown key ignored
    assert isinstance(rows[0][1], float) and isinstance(rows[0][0], int)
    assert rows[1] == [None, None, "true", None, None]


def test_shaper_fixed_columns_and_empty_first_page() -> None:
    s = Shaper.from_first_page([{"a": 1, "b": 2}], ["b", "missing"])
    assert s.names == ["b", "missing"] and s.rows([{"a": 1, "b": 2}]) == [[2, None]]
    assert s.columns[1].type == values.STRING
    empty = Shaper.from_first_page([])
    assert empty.columns == [] and empty.rows([{"a": 1}]) == [[]]


def pager(**kw: object) -> Pager:
    return Pager(tasks_pb2.HttpPagination(**kw), "https://api.example.com/v1/items",
                 {"status": "active"}, W)


def test_pager_none() -> None:
    p = pager()
    first = p.first()
    assert first == PageRequest("https://api.example.com/v1/items", {"status": "active"})
    assert p.next({"next": "x"}, 10, first) is None


def test_pager_next_link_relative_absolute_and_loop() -> None:
    p = pager(type="nextLink", next_link_path="links.next")
    first = p.first()
    second = p.next({"links": {"next": "items?after=3"}}, 3, first)
    assert second == PageRequest("https://api.example.com/v1/items?after=3")
    assert second is not None
    third = p.next({"links": {"next": "https://cdn.example.com/p3"}}, 3, second)
    assert third is not None and third.url == "https://cdn.example.com/p3"
    assert p.next({"links": {"next": None}}, 3, third) is None
    assert p.next({"links": {}}, 3, third) is None
    with pytest.raises(PermanentError, match="same next link twice") as e:
        p.next({"links": {"next": "https://cdn.example.com/p3"}}, 3, third)
    assert e.value.reason == "PaginationLoop"
    with pytest.raises(PermanentError, match="expected a URL"):
        pager(type="nextLink", next_link_path="n").next({"n": 5}, 1, first)


def test_pager_cursor() -> None:
    p = pager(type="cursor", cursor_path="meta.next", cursor_param="after")
    first = p.first()
    second = p.next({"meta": {"next": "abc"}}, 3, first)
    assert second == PageRequest("https://api.example.com/v1/items",
                                 {"status": "active", "after": "abc"})
    assert second is not None
    third = p.next({"meta": {"next": 42}}, 3, second)
    assert third is not None and third.params["after"] == "42"
    assert p.next({"meta": {"next": ""}}, 3, third) is None
    default = pager(type="cursor", cursor_path="c").next({"c": "x"}, 1, first)
    assert default is not None and default.params["cursor"] == "x"
    with pytest.raises(PermanentError, match="same cursor twice"):
        p.next({"meta": {"next": "abc"}}, 3, third)


def test_pager_page_numbers_and_max_pages() -> None:
    p = pager(type="page", page_param="p", start_page=1, max_pages=3)
    reqs = [p.first()]
    assert reqs[0].params == {"status": "active", "p": "1"}
    for _ in range(5):
        nxt = p.next([1], 1, reqs[-1])
        if nxt is None:
            break
        reqs.append(nxt)
    assert [r.params["p"] for r in reqs] == ["1", "2", "3"] and p.truncated
    q = pager(type="page")
    assert q.first().params["page"] == "0"
    assert q.next([], 0, q.first()) is None and not q.truncated  # an empty page ends it


@pytest.mark.parametrize("kw,match", [
    ({"type": "links"}, "unknown"), ({"type": "nextLink"}, "nextLinkPath"),
    ({"type": "cursor"}, "cursorPath"),
])
def test_pager_refuses_bad_settings(kw: dict[str, str], match: str) -> None:
    with pytest.raises(PermanentError, match=match):
        pager(**kw)


def creds(tmp_path: Path, **files: str):  # type: ignore[no-untyped-def]
    folder = tmp_path / "crm"
    folder.mkdir(parents=True, exist_ok=True)
    for k, v in files.items():
        (folder / k).write_text(v + "\n")
    return CredentialStore(tmp_path).load("crm")


def test_auth_headers(tmp_path: Path) -> None:
    assert auth_headers("", "", None, W) == {} and auth_headers("none", "", None, W) == {}
    c = creds(tmp_path, token="t0k", username="u", password="p:w", value="v4l")
    assert auth_headers("bearer", "", c, W) == {"Authorization": "Bearer t0k"}
    basic = auth_headers("basic", "", c, W)["Authorization"]
    assert base64.b64decode(basic.removeprefix("Basic ")) == b"u:p:w"
    assert auth_headers("header", "X-API-Key", c, W) == {"X-API-Key": "v4l"}
    assert auth_headers("", "", c, W) == {"Authorization": "Bearer t0k"}  # inferred


def test_auth_header_errors_never_show_values(tmp_path: Path) -> None:
    c = creds(tmp_path, username="u")
    with pytest.raises(PermanentError, match="'password'") as e:
        auth_headers("basic", "", c, W)
    assert e.value.reason == "CredentialsIncomplete"
    with pytest.raises(PermanentError, match="needs auth.header"):
        auth_headers("header", "", creds(tmp_path, value="secret-v"), W)
    with pytest.raises(PermanentError, match="needs credentialsId"):
        auth_headers("bearer", "", None, W)
    with pytest.raises(PermanentError, match="unknown"):
        auth_headers("digest", "", None, W)
    with pytest.raises(PermanentError) as e2:
        auth_headers("bearer", "", creds(tmp_path / "x", value="secret-v"), W)
    assert "secret-v" not in str(e2.value) and "'token'" in str(e2.value)


def test_json_cells_round_trip_as_json() -> None:
    s = Shaper.from_first_page([{"o": {"k": [1, {"z": None}]}}])
    [[v]] = s.rows([{"o": {"k": [1, {"z": None}]}}])
    assert json.loads(v) == {"k": [1, {"z": None}]}
    assert values.to_value(v).WhichOneof("kind") == "json_value"
