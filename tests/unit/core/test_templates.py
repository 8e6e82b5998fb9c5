"""The report catalog's parameter logic (goreports.core.templates): values, definitions and
substitution, with no server."""
from __future__ import annotations

import copy
import re
from typing import Any

import pytest

from goreports.core import compiler, schema, templates
from goreports.core.errors import SpecError


MAIL = {"from": "reports@example.com", "smtpHost": "localhost"}


def param(name: str, type_: str, **kw: Any) -> dict[str, Any]:
    return {"name": name, "type": type_, "description": f"the {name}", **kw}


def template(params: list[dict[str, Any]], steps: list[dict[str, Any]] | None = None,
             **report: Any) -> dict[str, Any]:
    return {
        "apiVersion": "goreports.io/v1alpha1", "kind": "ReportTemplate",
        "metadata": {"name": "t"},
        "spec": {"parameters": params, "report": {**report, "steps": steps or [
            {"name": "collect", "sqlite": {"database": "db.sqlite", "queries": [
                {"name": "rows", "sql": "SELECT * FROM t WHERE d >= :since AND n < :limit",
                 "parameters": {"since": "$(params.since)", "limit": "$(params.limit)"}}]}},
            {"name": "sheet", "excel": {"fileName": "report-$(params.since).xlsx"}},
            {"name": "to-s3", "includeWhen": {"parameter": "dispatchTo", "in": ["s3"]},
             "s3": {"bucket": "$(params.bucket)", "prefix": "r/$(params.since)/"}},
            {"name": "to-mail", "includeWhen": {"parameter": "dispatchTo", "in": ["email"]},
             "email": {"to": ["$(params.to)"], "subject": "{{report.name}} for $(params.since)",
                       **MAIL}},
        ]}},
    }


PARAMS = [
    param("dispatchTo", "enum", values=["s3", "email"], default="s3"),
    param("since", "date", required=True),
    param("limit", "integer", default=100),
    param("bucket", "string", default="reports"),
    param("to", "string", default="team@example.com"),
]


def errors_of(exc: pytest.ExceptionInfo[SpecError]) -> dict[str, str]:
    return {e.path: e.message for e in exc.value.errors}


# ------------------------------------------------------------------------------------------
# Values, per type


@pytest.mark.parametrize("type_, value, expected", [
    ("string", "x", "x"),
    ("integer", 7, 7),
    ("integer", 7.0, 7),  # JSON through a protobuf Struct
    ("number", 2.5, 2.5),
    ("number", 3, 3),
    ("boolean", False, False),
    ("date", "2024-02-29", "2024-02-29"),
    ("enum", "email", "email"),
])
def test_a_value_of_the_declared_type_is_kept(type_: str, value: Any, expected: Any) -> None:
    p = templates.Parameter(name="p", type=type_, values=("s3", "email"))
    assert templates.check_value(p, value) == expected


def test_a_yaml_date_becomes_iso_text() -> None:
    import datetime as dt
    p = templates.Parameter(name="p", type="date")
    assert templates.check_value(p, dt.date(2024, 1, 31)) == "2024-01-31"


@pytest.mark.parametrize("type_, value, message", [
    ("string", 5, "expected a string, got 5"),
    ("integer", "ten", "expected an integer, got 'ten'"),
    ("integer", True, "expected an integer, got true"),
    ("integer", 1.5, "expected an integer, got 1.5"),
    ("number", "1.5", "expected a number, got '1.5'"),
    ("number", float("nan"), "expected a number"),
    ("boolean", "yes", "expected a boolean (true or false), got 'yes'"),
    ("date", "31.01.2024", "expected a date as yyyy-mm-dd, got '31.01.2024'"),
    ("date", "2023-02-29", "'2023-02-29' is not a calendar date"),
    ("enum", "ftp", "must be one of [s3, email] (got 'ftp')"),
])
def test_a_value_of_another_type_is_refused(type_: str, value: Any, message: str) -> None:
    p = templates.Parameter(name="p", type=type_, values=("s3", "email"))
    with pytest.raises(ValueError, match=re.escape(message)):
        templates.check_value(p, value)


@pytest.mark.parametrize("type_, text, expected", [
    ("integer", "42", 42), ("number", "0.5", 0.5), ("number", "3", 3),
    ("boolean", "true", True), ("boolean", "False", False), ("date", "2024-01-01", "2024-01-01"),
    ("string", "42", "42"),
])
def test_command_line_text_is_parsed_by_the_declared_type(type_: str, text: str,
                                                          expected: Any) -> None:
    p = templates.Parameter(name="p", type=type_)
    assert templates.check_value(p, text, from_text=True) == expected


def test_defaults_fill_in_and_errors_name_each_parameter() -> None:
    params = templates.parameters_of(template(PARAMS))
    assert templates.check_values(params, {"since": "2024-01-01"}) == {
        "dispatchTo": "s3", "since": "2024-01-01", "limit": 100, "bucket": "reports",
        "to": "team@example.com"}
    with pytest.raises(SpecError) as exc:
        templates.check_values(params, {"dispatchTo": "ftp", "limit": "ten", "colour": "red"})
    errors = errors_of(exc)
    assert errors["spec.template.parameters.dispatchTo"].startswith(
        "must be one of [s3, email] (got 'ftp')")
    assert errors["spec.template.parameters.limit"].startswith("expected an integer, got 'ten'")
    assert errors["spec.template.parameters.since"].startswith("missing required parameter")
    assert "declares no parameter 'colour'" in errors["spec.template.parameters.colour"]
    assert str(exc.value).count("spec.template.parameters.") == 4


def test_the_error_path_is_the_callers() -> None:
    params = [templates.Parameter(name="dispatchTo", type="enum", values=("s3", "email"))]
    with pytest.raises(SpecError, match=re.escape("parameters.dispatchTo: must be one of "
                                                  "[s3, email]")):
        templates.check_values(params, {"dispatchTo": "x"}, path="parameters")


def test_an_optional_parameter_without_value_becomes_empty_text() -> None:
    t = template([param("note", "string")], [
        {"name": "c", "sqlite": {"database": "d", "queries": [
            {"name": "q", "sql": "SELECT :n", "parameters": {"n": "$(params.note)"}}]}},
        {"name": "g", "csv": {"fileName": "a$(params.note).csv", "dataset": "q"}},
        {"name": "d", "local": {"path": "out"}}])
    spec = templates.resolve(t, {}).spec
    assert spec["steps"][1]["csv"]["fileName"] == "a.csv"
    assert spec["steps"][0]["sqlite"]["queries"][0]["parameters"] == {"n": None}


# ------------------------------------------------------------------------------------------
# Definitions


def test_the_definition_is_checked_beyond_the_schema() -> None:
    bad = template([
        param("dispatchTo", "enum", values=["s3", "email"], default="ftp"),
        param("since", "date", default="yesterday"),
        param("limit", "integer", values=["1"]),
    ])
    steps = bad["spec"]["report"]["steps"]
    steps[0]["sqlite"]["queries"][0]["sql"] = "SELECT * FROM t WHERE d >= '$(params.since)'"
    steps[1]["excel"]["fileName"] = "$(params.nope).xlsx"
    steps[3]["includeWhen"]["in"] = ["mail"]
    errors = {e.path: e.message for e in templates.definition_errors(bad)}
    assert errors["spec.parameters[0].default"].startswith("dispatchTo: must be one of")
    assert errors["spec.parameters[1].default"].startswith("since: expected a date")
    assert errors["spec.parameters[2].values"] == "only enum parameters have values ('limit' is integer)"
    assert "never written into SQL" in errors["spec.report.steps[0].sqlite.queries[0].sql"]
    assert "names no declared parameter" in errors["spec.report.steps[1].excel.fileName"]
    assert "'mail' is not a value of enum parameter 'dispatchTo'" in \
        errors["spec.report.steps[3].includeWhen.in"]
    assert "names no declared parameter" in errors["spec.report.steps[2].s3.bucket"]
    assert "names no declared parameter" in errors["spec.report.steps[3].email.to[0]"]
    assert len(errors) == 8  # the placeholders naming declared parameters are fine


def test_schema_errors_come_first_with_paths() -> None:
    bad = template([{"name": "x-y", "type": "colour"}])
    paths = {e.path for e in templates.definition_errors(bad)}
    assert {"spec.parameters[0].name", "spec.parameters[0].type",
            "spec.parameters[0].description"} <= paths


def test_rules_beyond_json_schema_run_in_python() -> None:
    enum_without_values = template([param("d", "enum")])
    both = template([param("d", "string", required=True, default="x")])
    assert [e.message for e in templates.definition_errors(enum_without_values)] == [
        "an enum parameter needs values"]
    assert "spec.parameters[0]: d: set required or default, not both" in [
        str(e) for e in templates.definition_errors(both)]


def test_placeholders_pass_the_template_schema_where_the_request_schema_has_a_pattern() -> None:
    t = template([param("to", "string", required=True), param("n", "string", default="a")], [
        {"name": "c", "sqlite": {"database": "d", "queries": [{"name": "q", "sql": "SELECT 1"}]}},
        {"name": "g", "csv": {"fileName": "$(params.n)", "dataset": "q"}},
        {"name": "m", "email": {"to": ["$(params.to)"], **MAIL}}])
    assert templates.definition_errors(t) == []
    resolved = templates.resolve(t, {"to": "not-an-address"}).spec
    errors = schema.report_errors({"apiVersion": schema.API_VERSION, "kind": "ReportRequest",
                                   "metadata": {"name": "r"}, "spec": resolved})
    assert [e.path for e in errors] == ["spec.steps[2].email.to[0]"]


# ------------------------------------------------------------------------------------------
# Substitution


def test_substitution_in_every_allowed_place_and_never_in_sql_text() -> None:
    t = template(PARAMS, parameters={"title": "Sales $(params.since)", "limit": "$(params.limit)"})
    t["spec"]["report"]["steps"][2]["s3"]["metadata"] = {"since": "$(params.since)"}
    spec = templates.resolve(t, {"since": "2024-01-01", "dispatchTo": "email", "limit": 5,
                                 "to": "a@example.com"}).spec
    query = spec["steps"][0]["sqlite"]["queries"][0]
    assert query["sql"] == "SELECT * FROM t WHERE d >= :since AND n < :limit"  # untouched
    assert query["parameters"] == {"since": "2024-01-01", "limit": 5}  # typed, bound later
    assert spec["parameters"] == {"title": "Sales 2024-01-01", "limit": 5}  # Mustache data
    assert spec["steps"][1]["excel"]["fileName"] == "report-2024-01-01.xlsx"  # file names
    assert [s["name"] for s in spec["steps"]] == ["collect", "sheet", "to-mail"]
    mail = spec["steps"][2]["email"]
    assert mail["to"] == ["a@example.com"]  # recipients
    assert mail["subject"] == "{{report.name}} for 2024-01-01"  # Mustache left alone
    assert "includeWhen" not in spec["steps"][2]
    s3 = templates.resolve(t, {"since": "2024-01-01", "bucket": "b1"}).spec["steps"][2]
    assert s3 == {"name": "to-s3", "s3": {"bucket": "b1", "prefix": "r/2024-01-01/",
                                          "metadata": {"since": "2024-01-01"}}}  # targets
    assert t["spec"]["report"]["steps"][0]["sqlite"]["queries"][0]["parameters"]["since"] == \
        "$(params.since)"  # the template itself is not changed


def test_a_value_holding_sql_or_placeholders_stays_data() -> None:
    evil = "x' OR '1'='1; DROP TABLE t; -- $(params.limit)"
    t = template([param("since", "string", required=True), param("limit", "integer", default=1),
                  param("dispatchTo", "enum", values=["s3", "email"], default="s3"),
                  param("bucket", "string", default="b"), param("to", "string", default="")])
    spec = templates.resolve(t, {"since": evil}).spec
    query = spec["steps"][0]["sqlite"]["queries"][0]
    assert query["sql"] == "SELECT * FROM t WHERE d >= :since AND n < :limit"
    assert query["parameters"]["since"] == evil  # one bound value, not re-expanded
    head = compiler.compile_report({"apiVersion": schema.API_VERSION, "kind": "ReportRequest",
                                    "metadata": {"name": "r"}, "spec": spec}, uid="u")
    from goreports.proto import tasks_pb2
    task = tasks_pb2.SqliteCollector()
    head.task.Unpack(task)
    assert task.query_list[0].sql == "SELECT * FROM t WHERE d >= :since AND n < :limit"
    bound = {p.name: p.value.string_value for p in task.query_list[0].parameters}
    assert bound["since"] == evil


def test_dollar_dollar_is_a_literal() -> None:
    assert templates.substitute_text("cost $$(params.x) is $(params.x)", {"x": 3}) == \
        "cost $(params.x) is 3"


@pytest.mark.parametrize("value, text", [(True, "true"), (False, "false"), (2.5, "2.5"),
                                         (None, "")])
def test_values_as_text(value: Any, text: str) -> None:
    assert templates.substitute_text("v=$(params.x)", {"x": value}) == f"v={text}"


def test_include_when_compares_booleans_as_text() -> None:
    t = template([param("mail", "boolean", default=False)], [
        {"name": "c", "sqlite": {"database": "d", "queries": [{"name": "q", "sql": "SELECT 1"}]}},
        {"name": "g", "csv": {"fileName": "a.csv", "dataset": "q"}},
        {"name": "d", "local": {"path": "out"}},
        {"name": "m", "includeWhen": {"parameter": "mail", "in": ["true"]},
         "email": {"to": ["a@example.com"], **MAIL}}])
    assert len(templates.resolve(t, {}).spec["steps"]) == 3
    assert len(templates.resolve(t, {"mail": True}).spec["steps"]) == 4


def test_what_a_request_gives_beside_the_template_wins_the_rest_comes_from_it() -> None:
    t = template(PARAMS, description="from the template", deadlineSeconds=60, maxAttempts=5)
    resolved = templates.resolve_request(
        {"description": "mine", "deadlineSeconds": 7200,
         "template": {"name": "t", "parameters": {"since": "2024-01-01"}}}, t)
    assert resolved.spec["description"] == "mine"
    assert resolved.spec["deadlineSeconds"] == 7200  # given: the request's
    assert resolved.spec["maxAttempts"] == 5  # not given: the template's
    assert resolved.values["since"] == "2024-01-01"
    assert resolved.spec["steps"] == templates.resolve(t, {"since": "2024-01-01"}).spec["steps"]
    bare = templates.resolve_request(
        {"template": {"name": "t", "parameters": {"since": "2024-01-01"}}}, t)
    assert (bare.spec["description"], bare.spec["deadlineSeconds"]) == ("from the template", 60)


def test_the_crd_defaults_neither_deadline_nor_attempts_so_an_override_can_be_seen() -> None:
    """The API server would fill a default in, and an explicit 3600 could not be told from
    it; the compiler applies the defaults instead (and the descriptions say which)."""
    props = schema.load_crd_schema()["properties"]["spec"]["properties"]
    for key, default in (("deadlineSeconds", compiler.DEFAULT_DEADLINE_SECONDS),
                         ("maxAttempts", compiler.DEFAULT_MAX_ATTEMPTS)):
        assert "default" not in props[key]
        assert f"({default} when not set" in props[key]["description"]


def test_a_request_names_a_template_or_gives_steps_not_both() -> None:
    base = {"apiVersion": schema.API_VERSION, "kind": "ReportRequest", "metadata": {"name": "r"}}
    ok = {**base, "spec": {"template": {"name": "t", "parameters": {"a": 1}}}}
    assert schema.report_errors(ok) == []
    both = copy.deepcopy(ok)
    both["spec"]["steps"] = template(PARAMS)["spec"]["report"]["steps"][:2]
    neither: dict[str, Any] = {**base, "spec": {"description": "x"}}
    mixed = {**base, "spec": {"template": {"name": "t"}, "parameters": {"a": 1}}}
    for doc, message in ((both, "set exactly one of steps"), (neither, "set exactly one of steps"),
                         (mixed, "gives its values in template.parameters")):
        assert any(message in e.message for e in schema.report_errors(doc)), doc


def test_parse_param_args() -> None:
    assert templates.parse_param_args(["a=1", "b=x=y", "c="]) == {"a": "1", "b": "x=y", "c": ""}
    with pytest.raises(ValueError, match="--param 'oops'"):
        templates.parse_param_args(["oops"])


def test_catalog_entry_lists_parameters_with_descriptions() -> None:
    entry = templates.catalog_entry({**template(PARAMS), "metadata": {
        "name": "t", "namespace": "ns", "generation": 3}})
    assert entry["generation"] == 3
    assert entry["parameters"][0] == {"name": "dispatchTo", "type": "enum",
                                      "description": "the dispatchTo", "required": False,
                                      "default": "s3", "values": ["s3", "email"]}
    assert entry["parameters"][1]["required"] is True and "default" not in entry["parameters"][1]
