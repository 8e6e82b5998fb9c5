"""The ReportRequest CRD (deploy/crds/) and its Python validator (goreports.core.schema)."""
from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator

from goreports.core.errors import FieldError, SpecError
from goreports.core.schema import (
    API_VERSION,
    cel_equivalent,
    crd_path,
    is_transition_rule,
    load_crd,
    load_crd_schema,
    report_errors,
    validate_report,
    validate_spec,
)

STAGE_KINDS = ["sqlite", "mysql", "http", "jwt", "aggregate", "excel", "mustache", "csv",
               "local", "s3", "email", "webhook", "drive", "notify", "custom"]


def walk(node: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every schema node with its path (`.spec.steps[].excel.fileName`)."""
    yield path, node
    for name, child in node.get("properties", {}).items():
        yield from walk(child, f"{path}.{name}")
    if isinstance(node.get("items"), dict):
        yield from walk(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        yield from walk(node["additionalProperties"], f"{path}{{}}")


def paths_of(error: SpecError) -> list[str]:
    return [e.path for e in error.errors]


def errors_of(doc: dict[str, Any]) -> list[FieldError]:
    with pytest.raises(SpecError) as info:
        validate_report(doc)
    return info.value.errors


# ------------------------------------------------------------------------------------------
# The CRD itself


def test_crd_file_parses_and_names_the_resource() -> None:
    crd = yaml.safe_load(crd_path().read_text())
    assert crd["apiVersion"] == "apiextensions.k8s.io/v1"
    assert crd["kind"] == "CustomResourceDefinition"
    assert crd["metadata"]["name"] == "reportrequests.goreports.io"
    spec = crd["spec"]
    assert spec["group"] == "goreports.io" and spec["scope"] == "Namespaced"
    assert spec["names"] == {
        "kind": "ReportRequest", "listKind": "ReportRequestList", "plural": "reportrequests",
        "singular": "reportrequest", "shortNames": ["rr"], "categories": ["goreports"]}
    [version] = spec["versions"]
    assert (version["name"], version["served"], version["storage"]) == ("v1alpha1", True, True)
    assert version["subresources"] == {"status": {}}
    columns = {c["name"]: (c["type"], c["jsonPath"]) for c in version["additionalPrinterColumns"]}
    assert columns == {
        "Phase": ("string", ".status.phase"), "Step": ("string", ".status.currentStep"),
        "Rows": ("integer", ".status.rows"), "Age": ("date", ".metadata.creationTimestamp")}


def test_jsonschema_accepts_the_extracted_schema() -> None:
    Draft202012Validator.check_schema(load_crd_schema())


def test_every_property_has_a_description() -> None:
    missing = [path for path, node in walk(load_crd_schema())
               if path and path != ".metadata" and not node.get("description")]
    # (the API server refuses anything but `type` under the root `metadata`)
    assert missing == []


def test_schema_is_structural() -> None:
    """apiextensions v1 rules: a type on every node (unless it preserves unknown fields), no
    additionalProperties beside properties, bounded lists and strings (CEL cost)."""
    problems = []
    for path, node in walk(load_crd_schema()):
        if "type" not in node and not node.get("x-kubernetes-preserve-unknown-fields"):
            problems.append(f"{path}: no type")
        if "properties" in node and "additionalProperties" in node:
            problems.append(f"{path}: properties and additionalProperties")
        if node.get("type") == "array" and "maxItems" not in node:
            problems.append(f"{path}: no maxItems")
        if (path.startswith(".spec") and node.get("type") == "string"
                and "maxLength" not in node):
            problems.append(f"{path}: no maxLength")
    assert problems == []


def test_preserve_unknown_fields_only_where_free_values_belong() -> None:
    free = [path for path, node in walk(load_crd_schema())
            if node.get("x-kubernetes-preserve-unknown-fields")]
    assert sorted(free) == sorted([
        ".spec.parameters", ".spec.steps[].sqlite.queries[].parameters",
        ".spec.steps[].mysql.queries[].parameters", ".spec.steps[].custom.task",
        ".spec.template.parameters", ".status.template.parameters", ".status.resolvedSpec"])


def test_every_stage_kind_is_a_step_property() -> None:
    step = load_crd_schema()["properties"]["spec"]["properties"]["steps"]["items"]
    assert list(step["properties"]) == ["name", "pattern", *STAGE_KINDS]
    [rule] = step["x-kubernetes-validations"]
    assert rule["message"] == "a step needs exactly one stage kind: " + ", ".join(STAGE_KINDS)


def test_spec_is_immutable() -> None:
    spec = load_crd_schema()["properties"]["spec"]
    assert spec["x-kubernetes-validations"][0] == {
        "rule": "self == oldSelf",
        "message": "spec is immutable: create a new ReportRequest instead"}


def test_every_cel_rule_has_a_python_equivalent() -> None:
    rules = [(path, r["rule"]) for path, node in walk(load_crd_schema())
             for r in node.get("x-kubernetes-validations", [])]
    assert len(rules) >= 9
    unknown = [(p, r) for p, r in rules if not is_transition_rule(r) and not cel_equivalent(r)]
    assert unknown == []


def test_status_follows_the_api_conventions() -> None:
    status = load_crd_schema()["properties"]["status"]["properties"]
    assert status["phase"]["enum"] == ["Pending", "Running", "Succeeded", "Failed"]
    cond = status["conditions"]["items"]
    assert set(cond["properties"]) == {"type", "status", "reason", "message",
                                       "lastTransitionTime", "observedGeneration"}
    assert cond["properties"]["status"]["enum"] == ["True", "False", "Unknown"]
    assert cond["properties"]["lastTransitionTime"]["format"] == "date-time"
    assert status["conditions"]["x-kubernetes-list-map-keys"] == ["type"]
    for name in ("steps", "artifacts", "observedGeneration", "startTime", "completionTime",
                 "currentStep", "rows", "message"):
        assert name in status


def test_load_crd_returns_copies() -> None:
    load_crd()["spec"]["group"] = "changed"
    load_crd_schema()["properties"].clear()
    assert load_crd()["spec"]["group"] == "goreports.io"
    assert "spec" in load_crd_schema()["properties"]


# ------------------------------------------------------------------------------------------
# Valid documents


@pytest.mark.parametrize("name", ["seed", "long", "full"])
def test_examples_are_valid(example_texts: dict[str, str], name: str) -> None:
    validate_report(yaml.safe_load(example_texts[name]))


def test_full_example_sets_every_field_of_the_spec(full_doc: dict[str, Any]) -> None:
    """So the valid-example test covers the whole spec schema (and the compiler test too)."""
    def doc_paths(value: Any, schema: dict[str, Any], path: str) -> Iterator[str]:
        yield path
        if isinstance(value, dict) and "properties" in schema:
            for key, child in value.items():
                yield from doc_paths(child, schema["properties"][key], f"{path}.{key}")
        if isinstance(value, list) and isinstance(schema.get("items"), dict):
            for item in value:
                yield from doc_paths(item, schema["items"], f"{path}[]")

    spec_schema = load_crd_schema()["properties"]["spec"]
    step = spec_schema["properties"]["steps"]["items"]["properties"]
    for kind in ("email", "webhook"):  # the notifier reuses the dispatchers' schemas
        notify_kind = step["notify"]["properties"][kind]
        assert {**notify_kind, "description": ""} == {**step[kind], "description": ""}
    wanted = {p for p, _ in walk(spec_schema, ".spec")
              if not p.endswith("{}") and ".notify.email." not in p
              and ".notify.webhook." not in p
              and not p.startswith(".spec.template")}  # the other form (tests/unit/core/test_templates.py)
    assert wanted - set(doc_paths(full_doc["spec"], spec_schema, ".spec")) == set()


def test_validate_spec_takes_a_bare_spec(seed_doc: dict[str, Any]) -> None:
    validate_spec(seed_doc["spec"])
    bad = copy.deepcopy(seed_doc["spec"])
    bad["steps"][0]["sqlite"]["queries"][0]["name"] = "Orders"
    with pytest.raises(SpecError) as info:
        validate_spec(bad)
    assert paths_of(info.value) == ["spec.steps[0].sqlite.queries[0].name"]


# ------------------------------------------------------------------------------------------
# Errors: all at once, each with its path and a message a person understands


def test_three_mistakes_give_three_errors_with_their_paths(long_doc: dict[str, Any]) -> None:
    steps = long_doc["spec"]["steps"]
    steps[4]["excel"]["shets"] = steps[4]["excel"].pop("sheets")      # typo
    del steps[0]["sqlite"]["queries"][1]["sql"]                          # missing
    steps[2]["jwt"]["mode"] = "drop"                                      # not allowed
    errors = errors_of(long_doc)
    assert [(e.path, e.message) for e in errors] == [
        ("spec.steps[0].sqlite.queries[1].sql", "missing required field 'sql'"),
        ("spec.steps[2].jwt.mode", 'must be one of: filter, deny (got "drop")'),
        ("spec.steps[4].excel.shets", "unknown field 'shets'; did you mean 'sheets'?"),
    ]
    assert "spec.steps[4].excel.shets: unknown field 'shets'" in str(SpecError(errors))


def test_unknown_field_without_a_close_match_lists_the_known_ones(
        seed_doc: dict[str, Any]) -> None:
    seed_doc["spec"]["steps"][2]["local"]["zzz"] = 1
    [error] = errors_of(seed_doc)
    assert error == FieldError("spec.steps[2].local.zzz",
                               "unknown field 'zzz' (known fields: artifacts, path)")


@pytest.mark.parametrize("change", ["none", "two"])
def test_a_step_needs_exactly_one_stage_kind(seed_doc: dict[str, Any], change: str) -> None:
    step = seed_doc["spec"]["steps"][1]
    if change == "none":
        del step["excel"]
    else:
        step["csv"] = {"fileName": "a.csv", "dataset": "orders"}
    [error] = errors_of(seed_doc)
    assert error.path == "spec.steps[1]"
    assert error.message.startswith("a step needs exactly one stage kind: sqlite, mysql,")


@pytest.mark.parametrize("mutate, path, message", [
    (lambda d: d["spec"].update(maxAttempts="3"), "spec.maxAttempts",
     'expected an integer, got a string ("3")'),
    (lambda d: d["spec"].update(maxAttempts=21), "spec.maxAttempts", "must be at most 20 (got 21)"),
    (lambda d: d["spec"].update(deadlineSeconds=0), "spec.deadlineSeconds",
     "must be at least 1 (got 0)"),
    (lambda d: d["spec"]["steps"][0].update(name="Collect"), "spec.steps[0].name",
     "must be a DNS label: lower-case letters, digits and '-', starting and ending with a letter"
     " or digit (got \"Collect\")"),
    (lambda d: d["spec"]["steps"][1]["excel"].update(fileName=".hidden.xlsx"),
     "spec.steps[1].excel.fileName",
     "must be a plain file name: no '/' or '\\', not starting with '.' (got \".hidden.xlsx\")"),
    (lambda d: d["spec"]["steps"][1]["excel"].update(fileName="out/x.xlsx"),
     "spec.steps[1].excel.fileName",
     "must be a plain file name: no '/' or '\\', not starting with '.' (got \"out/x.xlsx\")"),
    (lambda d: d["spec"]["steps"][1]["excel"].update(sheets={"name": "x"}),
     "spec.steps[1].excel.sheets", 'expected a list, got a mapping ({"name": "x"})'),
    (lambda d: d["spec"]["steps"][0]["sqlite"].update(queries=[]),
     "spec.steps[0].sqlite.queries", "needs at least 1 item(s) (got 0)"),
    (lambda d: d["spec"].update(steps=[]), "spec.steps", "needs at least 1 item(s) (got 0)"),
    (lambda d: d["spec"]["steps"][2].update(local={"path": "out", "artifacts": ["a", "a"]}),
     "spec.steps[2].local.artifacts[1]", "duplicate value 'a': already used by item [0]"),
    (lambda d: d["spec"]["steps"][2].update(name="collect"), "spec.steps[2].name",
     "duplicate name 'collect': already used by item [0]"),
    (lambda d: d.update(apiVersion="goreports.io/v1"), "apiVersion",
     'must be "goreports.io/v1alpha1" (got "goreports.io/v1")'),
    (lambda d: d.update(kind="Report"), "kind", 'must be "ReportRequest" (got "Report")'),
    (lambda d: d["metadata"].pop("name"), "metadata.name", "missing required field 'name'"),
    (lambda d: d.pop("spec"), "spec", "missing required field 'spec'"),
    (lambda d: d.update(status={"phase": "Done"}), "status.phase",
     'must be one of: Pending, Running, Succeeded, Failed (got "Done")'),
])
def test_each_mistake_is_named(seed_doc: dict[str, Any], mutate: Any, path: str,
                               message: str) -> None:
    mutate(seed_doc)
    assert [(e.path, e.message) for e in errors_of(seed_doc)] == [(path, message)]


@pytest.mark.parametrize("mutate, path, message", [
    (lambda s: s[1]["mysql"]["queries"][0].pop("paginationKey"),
     "spec.steps[1].mysql.queries[0].paginationKey",
     "paginationKey is required when usePagination is true"),
    (lambda s: s[2]["http"]["auth"].pop("header"), "spec.steps[2].http.auth.header",
     "header is required when type is header"),
    (lambda s: s[2]["http"]["pagination"].pop("nextLinkPath"),
     "spec.steps[2].http.pagination.nextLinkPath",
     "nextLinkPath is required when type is nextLink"),
    (lambda s: [s[3]["jwt"].pop(k) for k in ("token", "tokenCredentialsId")], "spec.steps[3].jwt",
     "set tokenCredentialsId or token"),
    (lambda s: s[4]["aggregate"]["operations"][0].update(
        groupBy={"input": "x", "aggregates": [{"function": "count", "as": "n"}]}),
     "spec.steps[4].aggregate.operations[0]",
     "an operation needs exactly one of union, join, groupBy"),
    (lambda s: s[4]["aggregate"]["operations"][2]["groupBy"]["aggregates"][1].update(
        function="max"), "spec.steps[4].aggregate.operations[2].groupBy.aggregates[1].column",
     "column is required unless function is count"),
    (lambda s: s[7]["mustache"].pop("template"), "spec.steps[7].mustache",
     "set exactly one of template or templateFile"),
    (lambda s: s[6]["mustache"].update(template="x"), "spec.steps[6].mustache",
     "set exactly one of template or templateFile"),
    (lambda s: [s[15]["notify"].pop(k) for k in ("email", "webhook")], "spec.steps[15].notify",
     "set email or webhook (or both)"),
])
def test_cel_rules_run_in_python(full_doc: dict[str, Any], mutate: Any, path: str,
                                 message: str) -> None:
    mutate(full_doc["spec"]["steps"])
    assert [(e.path, e.message) for e in errors_of(full_doc)] == [(path, message)]


def test_bare_yes_key_read_as_boolean_gets_a_hint(example_texts: dict[str, str]) -> None:
    doc = yaml.safe_load(example_texts["long"].replace("keys: [customer_id]", "keys: [customer_id], yes: 1"))
    errors = errors_of(doc)
    assert [e.path for e in errors] == ["spec.steps[3].aggregate.operations[1].join.True"]
    assert "quote it" in errors[0].message


def test_on_key_turned_into_true_by_kubectl_gets_a_hint(seed_doc: dict[str, Any]) -> None:
    seed_doc["spec"]["steps"].append({"name": "tell", "notify": {
        "true": ["success"], "webhook": {"url": "https://x.io"}}})
    [error] = errors_of(seed_doc)
    assert error.path == "spec.steps[3].notify.true"
    assert error.message.startswith("unknown field 'true'; YAML 1.1 (PyYAML, kubectl) reads")


def test_a_document_that_is_not_a_mapping() -> None:
    assert report_errors(["x"]) == [FieldError("(root)", "a ReportRequest must be a mapping, "
                                                         "got a list")]


# ------------------------------------------------------------------------------------------
# CEL equivalents


@pytest.mark.parametrize("rule, obj, ok", [
    ("(has(self.a) ? 1 : 0) + (has(self.b) ? 1 : 0) == 1", {"a": 1}, True),
    ("(has(self.a) ? 1 : 0) + (has(self.b) ? 1 : 0) == 1", {"a": 1, "b": 2}, False),
    ("(has(self.a) ? 1 : 0) + (has(self.b) ? 1 : 0) >= 1", {}, False),
    ("(has(self.a) ? 1 : 0) + (has(self.b) ?\n   1 : 0) <= 1", {"b": 1}, True),
    ("!has(self.p) || !self.p || has(self.k)", {"p": True}, False),
    ("!has(self.p) || !self.p || has(self.k)", {"p": False}, True),
    ("!has(self.t) || self.t != 'h' || has(self.k)", {"t": "h"}, False),
    ("!has(self.t) || self.t != 'h' || has(self.k)", {"t": "x"}, True),
    ("!has(self.f) || self.f == 'count' || has(self.c)", {"f": "sum"}, False),
    ("!has(self.f) || self.f == 'count' || has(self.c)", {"f": "count"}, True),
])
def test_cel_equivalent(rule: str, obj: dict[str, Any], ok: bool) -> None:
    check = cel_equivalent(rule)
    assert check is not None and check(obj) is ok


def test_unknown_and_transition_rules() -> None:
    assert cel_equivalent("self.size() > 2") is None
    assert cel_equivalent("!has(self.a) || !self.b || has(self.c)") is None
    assert is_transition_rule("self == oldSelf") and not is_transition_rule("self.old == 1")


def test_api_version_constant() -> None:
    assert API_VERSION == "goreports.io/v1alpha1"


def test_an_empty_stage_body(seed_doc: dict[str, Any]) -> None:
    seed_doc["spec"]["steps"][2]["local"] = None  # `local:` with nothing under it
    assert report_errors(seed_doc) == [
        FieldError("spec.steps[2].local", "expected a mapping, got an empty value")]


def test_crd_dir_can_be_given_by_environment(tmp_path: Any, monkeypatch: Any) -> None:
    (tmp_path / crd_path().name).write_text(crd_path().read_text())
    monkeypatch.setenv("GOREPORTS_CRD_DIR", str(tmp_path))
    assert crd_path() == tmp_path / crd_path().name
