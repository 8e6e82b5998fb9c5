"""Service paths the real API server rarely shows on demand: two replicas racing on one
Idempotency-Key, a watch whose resourceVersion expired (410), and Kubernetes errors mapped to
problems. The e2e tests (tests/e2e/test_api.py) run the ordinary paths on a real kube-apiserver;
here a small in-memory stand-in plays the API server's part in these corner cases."""
from __future__ import annotations

import copy
from collections.abc import AsyncIterator
from typing import Any

import pytest

from goreports.api import reports
from goreports.api._kube import KubeError
from goreports.api.auth import Caller
from goreports.api.problems import Problem
from goreports.api.service import DELETED, STATUS, ReportsService, kube_problem

CALLER = Caller(subject="svc", namespaces=("team-a",))
SPEC = {"steps": [{"name": "collect", "sqlite": {"database": "d", "queries": [{"name": "q", "sql": "s"}]}}]}


class Store:
    """Objects by name; `hide_from_list` makes a list miss what a racing replica just created."""

    def __init__(self) -> None:
        self.objects: dict[str, dict[str, Any]] = {}
        self.version = 0
        self.hide_from_list = False
        self.watches: list[list[Any]] = []

    def put(self, obj: dict[str, Any]) -> dict[str, Any]:
        self.version += 1
        obj = copy.deepcopy(obj)
        obj["metadata"]["resourceVersion"] = str(self.version)
        self.objects[obj["metadata"]["name"]] = obj
        return copy.deepcopy(obj)

    async def create(self, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        name = body["metadata"]["name"]
        if name in self.objects:
            raise KubeError(409, "AlreadyExists", f"{name} exists")
        return self.put(body)

    async def get(self, namespace: str, name: str) -> dict[str, Any]:
        if name not in self.objects:
            raise KubeError(404, "NotFound", "not found")
        return copy.deepcopy(self.objects[name])

    async def list(self, namespace: str, *, label_selector: str = "", limit: int = 0,
                   continue_token: str = "") -> dict[str, Any]:
        if self.hide_from_list:
            return {"items": [], "metadata": {}}
        key, _, value = label_selector.partition("=")
        items = [o for o in self.objects.values() if not key or o["metadata"].get("labels", {}).get(key) == value]
        return {"items": copy.deepcopy(items), "metadata": {}}

    async def delete(self, namespace: str, name: str) -> dict[str, Any]:
        return self.objects.pop(name)

    async def watch(self, namespace: str, name: str, resource_version: str, *,
                    timeout_seconds: int = 300) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        for item in self.watches.pop(0) if self.watches else []:
            if callable(item):  # the world changes while no watch is open
                item()
            elif isinstance(item, KubeError):
                raise item
            else:
                yield item


def report(name: str, phase: str = "", **meta: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"metadata": {"namespace": "team-a", "name": name, **meta}, "spec": SPEC}
    if phase:
        out["status"] = {"phase": phase}
    return out


async def test_racing_replicas_with_one_key_create_one_report() -> None:
    store = Store()
    service = ReportsService(store)
    first, created = await service.create(CALLER, "team-a", {"spec": SPEC}, idempotency_key="k")
    assert created
    store.hide_from_list = True  # the other replica listed before the first one created
    again, created = await service.create(CALLER, "team-a", {"spec": SPEC}, idempotency_key="k")
    assert not created and again["metadata"]["name"] == first["metadata"]["name"]
    assert len(store.objects) == 1


async def test_a_named_report_found_by_its_key_label() -> None:
    service = ReportsService(Store())
    body = {"metadata": {"name": "mine"}, "spec": SPEC}
    await service.create(CALLER, "team-a", body, idempotency_key="k")
    obj, created = await service.create(CALLER, "team-a", body, idempotency_key="k")
    assert not created and obj["metadata"]["name"] == "mine"
    with pytest.raises(Problem) as e:  # same key, another name: the key was reused
        await service.create(CALLER, "team-a", {"metadata": {"name": "other"}, "spec": SPEC},
                             idempotency_key="k")
    assert e.value.reason == "IdempotencyKeyReused"


async def test_a_name_clash_without_the_key_is_409() -> None:
    store = Store()
    store.put(report("taken"))
    with pytest.raises(Problem) as e:
        await ReportsService(store).create(CALLER, "team-a", {"metadata": {"name": "taken"}, "spec": SPEC},
                                           idempotency_key="k")
    assert (e.value.status, e.value.reason) == (409, "AlreadyExists")


async def test_watch_resumes_after_an_expired_version_and_ends_on_success() -> None:
    store = Store()
    store.put(report("r", "Pending"))
    store.watches = [
        [("MODIFIED", report("r", "Pending", annotations={"kopf": "1"})),  # no status change: no event
         ("MODIFIED", report("r", "Running"))],
        [lambda: store.put(report("r", "Succeeded")), KubeError(410, "Expired", "too old")],
    ]
    events = [(k, reports.phase(o)) async for k, o in await ReportsService(store).watch(CALLER, "team-a", "r")]
    assert events == [(STATUS, "Pending"), (STATUS, "Running"), (STATUS, "Succeeded")]


async def test_watch_reports_changes_then_deletion() -> None:
    store = Store()
    store.put(report("r", "Running"))
    store.watches = [[("MODIFIED", report("r", "Running", deletionTimestamp="2026-01-01T00:00:00Z")),
                      ("DELETED", report("r", "Running"))]]
    service = ReportsService(store)
    events = [(k, o["metadata"].get("deletionTimestamp") is not None)
              async for k, o in await service.watch(CALLER, "team-a", "r")]
    assert events == [(STATUS, False), (STATUS, True), (DELETED, False)]


async def test_watch_of_a_finished_report_sends_one_event() -> None:
    store = Store()
    store.put(report("done", "Failed"))
    events = [k async for k, _ in await ReportsService(store).watch(CALLER, "team-a", "done")]
    assert events == [STATUS]


async def test_missing_reports_and_foreign_namespaces() -> None:
    service = ReportsService(Store())
    with pytest.raises(Problem) as e:
        await service.get(CALLER, "team-a", "nope")
    assert e.value.status == 404
    with pytest.raises(Exception) as e2:
        await service.watch(CALLER, "team-b", "x")
    assert getattr(e2.value, "status", None) == 403


def test_kubernetes_errors_become_problems() -> None:
    refused = kube_problem(KubeError(422, "Invalid", "bad", [{"field": "spec.steps[0].name", "message": "x"}]),
                           "the new report")
    assert refused.status == 422 and [e.path for e in refused.errors] == ["spec.steps[0].name"]
    assert kube_problem(KubeError(403, "Forbidden", "no"), "x").status == 502
    busy = kube_problem(KubeError(429, "TooManyRequests", "slow down"), "x")
    assert busy.status == 503 and busy.headers["Retry-After"]
    assert kube_problem(KubeError(500, "InternalError", "boom"), "x").status == 502
    assert kube_problem(KubeError(503, "KubernetesUnreachable", "down"), "x").status == 503
