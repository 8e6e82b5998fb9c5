"""The served OpenAPI document: valid OpenAPI 3.1, in sync with the app's routes, and its spec
schema equal to the one schema (CRD + CEL rules) on real and generated documents."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate

from goreports.api import openapi
from goreports.api.auth import AuthConfig
from goreports.api.rest import create_app
from goreports.api.service import ReportsService
from goreports.core.schema import cel_equivalent, is_transition_rule, load_crd_schema, report_errors

ROOT = Path(__file__).resolve().parents[3]


def crd_rules(node: Any = None) -> list[str]:
    node = load_crd_schema() if node is None else node
    out: list[str] = []
    if isinstance(node, dict):
        out += [r["rule"] for r in node.get("x-kubernetes-validations", [])]
        for v in node.values():
            out += crd_rules(v)
    elif isinstance(node, list):
        for v in node:
            out += crd_rules(v)
    return out


def component_validator(name: str) -> Draft202012Validator:
    doc = openapi.document()
    schema = {"$ref": f"#/components/schemas/{name}", "components": doc["components"]}
    return Draft202012Validator(schema)


def test_the_document_is_valid_openapi_31() -> None:
    validate(openapi.document())


def test_document_and_app_serve_the_same_routes() -> None:
    app = create_app(ReportsService(kube=None), AuthConfig(secret_key="x" * 32))  # type: ignore[arg-type]
    served = {(r.method, r.resource.canonical) for r in app.router.routes()  # type: ignore[union-attr]
              if r.method != "HEAD"}
    documented = {(method.upper(), path) for path, ops in openapi.document()["paths"].items()
                  for method in ops}
    assert served == documented == {(r.method, r.path) for r in openapi.ROUTES}


def test_every_operation_documents_its_errors_as_problems() -> None:
    for path, ops in openapi.document()["paths"].items():
        for method, op in ops.items():
            secured = op["security"] != []
            if secured:
                assert {"401", "403"} <= set(op["responses"]), (method, path)
            for code, resp in op["responses"].items():
                if code.startswith(("4", "5")):
                    assert list(resp["content"]) == ["application/problem+json"], (method, path, code)


def test_every_crd_rule_has_a_json_schema_form() -> None:
    rules = [r for r in crd_rules() if not is_transition_rule(r)]
    assert rules
    assert [r for r in rules if openapi.cel_schema(r) is None] == []


def _objects(names: list[str]) -> st.SearchStrategy[dict[str, Any]]:
    values = st.one_of(st.booleans(), st.sampled_from(["", "count", "header", "nextLink", "cursor",
                                                         "x"]), st.just({}))
    return st.dictionaries(st.sampled_from(names), values, max_size=len(names))


@pytest.mark.parametrize("rule", [r for r in crd_rules() if not is_transition_rule(r)])
@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_json_schema_form_agrees_with_the_cel_rule(rule: str, data: st.DataObject) -> None:
    import re

    names = sorted(set(re.findall(r"self\.(\w+)", rule)))
    obj = data.draw(_objects(names))
    schema = openapi.cel_schema(rule)
    check = cel_equivalent(rule)
    assert schema is not None and check is not None
    assert Draft202012Validator(schema).is_valid(obj) == check(obj), (rule, obj)


@pytest.mark.parametrize("path", sorted(p.name for p in (ROOT / "examples").glob("*.yaml")
                                        if "kind: ReportRequest" in p.read_text()))
def test_examples_are_valid_report_specs_in_the_document(path: str) -> None:
    doc = yaml.safe_load((ROOT / "examples" / path).read_text())
    assert report_errors(doc) == []
    errors = [e.message for e in component_validator("ReportSpec").iter_errors(doc["spec"])]
    assert errors == []


def test_the_document_refuses_what_the_schema_refuses() -> None:
    validator = component_validator("ReportSpec")
    two_kinds = {"steps": [{"name": "a", "sqlite": {"database": "d", "queries": [{"name": "q", "sql": "s"}]},
                            "csv": {"fileName": "a.csv"}}]}
    unknown = {"steps": [{"name": "a", "sqlite": {"database": "d", "queries": [{"name": "q", "sql": "s"}],
                                                  "colour": "red"}}]}
    for spec in (two_kinds, unknown, {"steps": []}):
        assert not validator.is_valid(spec)
        assert report_errors({"apiVersion": "goreports.io/v1alpha1", "kind": "ReportRequest",
                              "metadata": {"name": "x"}, "spec": spec})


def test_new_labels_in_the_document_match_the_api() -> None:
    from goreports.api.reports import label_errors

    validator = component_validator("CreateReport")
    spec = yaml.safe_load((ROOT / "examples" / "sales-report.yaml").read_text())["spec"]
    for labels in ({"team": "sales"}, {"app.kubernetes.io/name": "x"}, {"goreports.io/x": "y"},
                   {"Team A": "x"}, {"team": "-bad"}, {"a": "x" * 64}):
        assert validator.is_valid({"metadata": {"labels": labels}, "spec": spec}) == (not label_errors(labels)), labels
