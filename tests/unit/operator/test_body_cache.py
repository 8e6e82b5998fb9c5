"""The operator's cache of newest ReportRequest bodies (pure) and how the status writer uses it:
a status write starts from the cached body (no GET) and falls back to a GET on a conflict, a
missing entry, or when the cached body says there is nothing to change."""
from __future__ import annotations

import copy
from typing import Any

import pytest
from kubernetes.client.rest import ApiException

from goreports.operator import kube, status_writer
from goreports.operator.body_cache import BodyCache


def body(rv: int, phase: str = "Running", *, name: str = "r", uid: str = "u-1",
         **status: Any) -> dict[str, Any]:
    return {"apiVersion": "goreports.io/v1alpha1", "kind": "ReportRequest",
            "metadata": {"namespace": "ns", "name": name, "uid": uid, "resourceVersion": str(rv),
                         "generation": 1},
            "status": {"phase": phase, **status}}


def test_a_newer_body_wins_and_an_older_one_does_not_replace_it() -> None:
    cache = BodyCache()
    cache.seen(body(5))
    cache.seen(body(4, "Pending"))  # a late watch event, older than the write's answer
    got = cache.get("ns", "r")
    assert got is not None and got["metadata"]["resourceVersion"] == "5"
    cache.seen(body(7, "Running", message="later"))
    assert cache.get("ns", "r")["status"]["message"] == "later"  # type: ignore[index]


def test_a_recreated_object_replaces_the_old_one_whatever_its_version() -> None:
    cache = BodyCache()
    cache.seen(body(50))
    cache.seen(body(3, uid="u-2"))
    assert cache.get("ns", "r")["metadata"]["uid"] == "u-2"  # type: ignore[index]


def test_final_reports_are_not_kept_and_the_size_is_bounded() -> None:
    cache = BodyCache(max_entries=3)
    cache.seen(body(1))
    cache.seen(body(2, "Succeeded"))
    assert cache.get("ns", "r") is None and len(cache) == 0
    for i in range(5):
        cache.seen(body(10 + i, name=f"r{i}"))
    assert len(cache) == 3 and cache.get("ns", "r0") is None and cache.get("ns", "r4") is not None
    cache.forget("ns", "r4")
    assert cache.get("ns", "r4") is None


def test_what_get_returns_is_a_copy() -> None:
    cache = BodyCache()
    cache.seen(body(1))
    got = cache.get("ns", "r")
    assert got is not None
    got["status"]["phase"] = "Changed"
    assert cache.get("ns", "r")["status"]["phase"] == "Running"  # type: ignore[index]


class FakeApi:
    """An API server's optimistic concurrency for one object: a PUT with another
    resourceVersion is refused with 409, a good one bumps it."""

    def __init__(self, obj: dict[str, Any]) -> None:
        self.obj = obj
        self.calls: list[str] = []

    async def get_report(self, namespace: str, name: str) -> dict[str, Any] | None:
        self.calls.append("GET")
        got = copy.deepcopy(self.obj)
        kube.BODIES.seen(got)
        return got

    async def replace_status(self, b: dict[str, Any], status: dict[str, Any]) -> dict[str, Any]:
        self.calls.append("PUT")
        if b["metadata"]["resourceVersion"] != self.obj["metadata"]["resourceVersion"]:
            raise ApiException(status=409, reason="Conflict")
        self.obj["status"] = copy.deepcopy(status)
        self.obj["metadata"]["resourceVersion"] = str(int(self.obj["metadata"]["resourceVersion"]) + 1)
        kube.BODIES.seen(self.obj)
        return copy.deepcopy(self.obj)

    async def post_event(self, *_: Any) -> None:
        self.calls.append("EVENT")


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> FakeApi:
    fake = FakeApi(body(10))
    monkeypatch.setattr(kube, "BODIES", BodyCache())
    monkeypatch.setattr(kube, "get_report", fake.get_report)
    monkeypatch.setattr(kube, "replace_status", fake.replace_status)
    monkeypatch.setattr(kube, "post_event", fake.post_event)
    return fake


async def test_a_write_from_a_fresh_cache_needs_no_get(api: FakeApi) -> None:
    kube.BODIES.seen(api.obj)
    out = await status_writer.set_status(body(10), lambda st: {**st, "message": "one"})
    assert out is not None and api.obj["status"]["message"] == "one"
    assert api.calls == ["PUT"]
    out = await status_writer.set_status(body(10), lambda st: {**st, "message": "two"})
    assert api.calls == ["PUT", "PUT"]  # the first write's answer is the next write's base


async def test_a_stale_cache_costs_a_conflict_and_a_get_never_a_lost_write(api: FakeApi) -> None:
    kube.BODIES.seen(body(9, "Pending"))  # the cache lags: the object is at 10 now
    await status_writer.set_status(body(10), lambda st: {**st, "message": "mine"})
    assert api.calls == ["PUT", "GET", "PUT"]
    assert api.obj["status"] == {"phase": "Running", "message": "mine"}


async def test_no_change_is_only_believed_from_the_api_server(api: FakeApi) -> None:
    """A replay resets a Failed report; a cache still showing it Running must not make the
    writer conclude there is nothing to do."""
    kube.BODIES.seen(body(9, "Running"))
    api.obj["status"] = {"phase": "Failed"}

    def reset(st: dict[str, Any]) -> dict[str, Any]:
        return {**st, "phase": "Running", "message": "replayed"} if st.get("phase") == "Failed" else st

    out = await status_writer.set_status(body(10), reset)
    assert out is not None and out["message"] == "replayed"
    assert api.calls == ["GET", "PUT", "EVENT"]  # the Event of the phase change (Running)


async def test_without_a_cache_entry_the_writer_gets_first(api: FakeApi) -> None:
    await status_writer.set_status(body(10), lambda st: {**st, "message": "x"})
    assert api.calls == ["GET", "PUT"]
