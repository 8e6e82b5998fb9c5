"""The API's catalog paths with an in-memory stand-in for the API server: creating a report from a
template (values checked before anything is created), listing templates per namespace and
across the token's namespaces, the `template` body shorthand, and the gRPC conversion."""
from __future__ import annotations

import copy
from typing import Any

import pytest

from goreports.api import reports
from goreports.api._kube import KubeError
from goreports.api.auth import Caller
from goreports.api.grpc_api import template_message
from goreports.api.problems import Problem
from goreports.api.service import ReportsService
from goreports.core import templates

TEMPLATE = {
    "apiVersion": "goreports.io/v1alpha1", "kind": "ReportTemplate",
    "metadata": {"name": "sales", "namespace": "team-a", "generation": 2},
    "spec": {"description": "Sales", "parameters": [
        {"name": "dispatchTo", "type": "enum", "values": ["s3", "email"], "default": "s3",
         "description": "where to"},
        {"name": "to", "type": "string", "default": "a@example.com", "description": "who"}],
        "report": {"steps": [
            {"name": "collect", "sqlite": {"database": "d", "queries": [{"name": "q", "sql": "s"}]}},
            {"name": "table", "csv": {"fileName": "q.csv", "dataset": "q"}},
            {"name": "mail", "email": {"to": ["$(params.to)"], "from": "r@example.com",
                                       "smtpHost": "localhost"}}]}},
}


class Kube:
    def __init__(self, templates_by_ns: dict[str, list[dict[str, Any]]]) -> None:
        self.templates = templates_by_ns
        self.created: list[dict[str, Any]] = []
        self.listed: list[str | None] = []

    async def create(self, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        obj = copy.deepcopy(body)
        obj["metadata"].setdefault("name", "report-x")
        self.created.append(obj)
        return obj

    async def get_template(self, namespace: str, name: str) -> dict[str, Any]:
        for t in self.templates.get(namespace, []):
            if t["metadata"]["name"] == name:
                return copy.deepcopy(t)
        raise KubeError(404, "NotFound", "not found")

    async def list_templates(self, namespace: str | None) -> dict[str, Any]:
        self.listed.append(namespace)
        if namespace is None:
            return {"items": [t for ts in self.templates.values() for t in ts]}
        return {"items": self.templates.get(namespace, [])}


def other(ns: str) -> dict[str, Any]:
    t = copy.deepcopy(TEMPLATE)
    t["metadata"].update(namespace=ns, name="other")
    return t


async def test_a_report_from_a_template_is_checked_then_created() -> None:
    kube = Kube({"team-a": [TEMPLATE]})
    service = ReportsService(kube)  # type: ignore[arg-type]
    caller = Caller(subject="svc", namespaces=("team-a",))
    obj, created = await service.create(caller, "team-a", {
        "template": {"name": "sales", "parameters": {"dispatchTo": "email"}}})
    assert created and obj["spec"] == {"template": {"name": "sales",
                                                    "parameters": {"dispatchTo": "email"}}}
    cases = [
        ({"name": "sales", "parameters": {"dispatchTo": "ftp"}},
         "spec.template.parameters.dispatchTo", "must be one of [s3, email]"),
        ({"name": "sales", "parameters": {"to": "nobody"}},
         "spec.steps[2].email.to[0] (resolved from ReportTemplate sales)", "e-mail address"),
    ]
    for ref, path, message in cases:
        with pytest.raises(Problem) as exc:
            await service.create(caller, "team-a", {"spec": {"template": ref}})
        assert exc.value.status == 422
        assert [e.path for e in exc.value.errors] == [path]
        assert message in exc.value.errors[0].message
    assert len(kube.created) == 1
    # A template that does not exist (yet): created, as kubectl would; the operator decides.
    obj, created = await service.create(caller, "team-a", {"template": {"name": "later"}})
    assert created and len(kube.created) == 2


def test_the_template_shorthand_and_its_conflicts() -> None:
    req = reports.parse_create_body({"template": {"name": "sales"}}, "team-a")
    assert req.spec == {"template": {"name": "sales"}}
    with pytest.raises(Problem) as exc:
        reports.parse_create_body({"template": {"name": "s"}, "spec": {"steps": []}}, "team-a")
    assert "give spec or template, not both" in str(exc.value.errors)
    with pytest.raises(Problem) as exc:
        reports.parse_create_body({"spec": {"template": {"name": "s"}, "parameters": {}}},
                                  "team-a")
    assert "template.parameters, not parameters" in str(exc.value.errors)


async def test_the_catalog_per_namespace_and_across_the_tokens_namespaces() -> None:
    kube = Kube({"team-a": [TEMPLATE], "team-b": [other("team-b")], "team-c": [other("team-c")]})
    service = ReportsService(kube)  # type: ignore[arg-type]
    two = Caller(subject="svc", namespaces=("team-b", "team-a"))
    [entry] = await service.list_templates(two, "team-a")
    assert entry["generation"] == 2 and entry["parameters"][0]["values"] == ["s3", "email"]
    listed = await service.list_templates(two, None)
    assert [(t["namespace"], t["name"]) for t in listed] == [("team-a", "sales"),
                                                            ("team-b", "other")]
    everyone = await service.list_templates(Caller(subject="x", namespaces=("*",)), None)
    assert len(everyone) == 3 and kube.listed[-1] is None
    with pytest.raises(Exception, match="does not allow namespace 'team-c'"):
        await service.list_templates(two, "team-c")


def test_a_catalog_entry_as_grpc_message() -> None:
    msg = template_message(templates.catalog_entry(TEMPLATE))
    assert (msg.name, msg.generation, msg.description) == ("sales", 2, "Sales")
    enum, to = msg.parameters
    assert list(enum.values) == ["s3", "email"] and enum.default_value.string_value == "s3"
    assert to.description == "who" and not to.required
