"""Which Mustache templates stream: rows used only by top-level sections stream; anything that
could let a static part (or a row body) see the rows falls back to the in-memory render."""
from __future__ import annotations

import pytest

from goreports.workers.generators._mustache_plan import (Fallback, LineEnd, Plan, RowSection,
                                                        plan_template, rows_dataset)

DATASETS = {"sales", "other"}


def plan(template: str, partials: dict[str, str] | None = None,
         datasets: set[str] = DATASETS) -> Plan | Fallback:
    return plan_template(template, partials or {}, datasets)


@pytest.mark.parametrize("template", [
    "{{#sales}}{{region}}{{/sales}}",
    "{{#datasets.sales.rows}}{{region}}{{/datasets.sales.rows}}",
    "<h1>{{report.name}}</h1>{{#sales}}{{region}} {{report.name}} {{parameters.year}}{{/sales}}"
    "{{datasets.sales.row_count}}{{#datasets.sales.truncated}}cut{{/datasets.sales.truncated}}"
    "{{#datasets.sales.columns}}{{.}}{{/datasets.sales.columns}}",
    "{{#sales}}a{{/sales}}{{#sales}}b{{/sales}}{{#other}}c{{/other}}",
    "{{#sales}}{{#note}}[{{.}}]{{/note}}{{^note}}-{{/note}}{{.}}{{/sales}}",
    "{{^sales}}no sales{{/sales}}{{^datasets.other.rows}}none{{/datasets.other.rows}}",
    "{{#parameters}}{{^sales}}{{.}}{{/sales}}{{/parameters}}",
    "{{=<% %>=}}<%#sales%><%region%><%/sales%><%datasets.sales.row_count%>",
    "{{#sales}}\n  {{> row}}\n{{/sales}}\n{{> footer}}",
    "no rows at all: {{report.name}} {{datasets.sales.row_count}}",
    "{{#sales}}{{#sales_note}}{{/sales_note}}{{/sales}}",
])
def test_templates_that_stream(template: str) -> None:
    partials = {"row": "<li>{{region}} {{> cell}}</li>", "cell": "{{note}}",
                "footer": "{{report.uid}} {{datasets.sales.row_count}}"}
    assert isinstance(plan(template, partials), Plan)


def test_the_split_keeps_template_order() -> None:
    p = plan("a{{x}}{{#sales}}{{region}}{{/sales}}b{{#other}}c{{/other}}")
    assert isinstance(p, Plan)
    assert p.parts == (
        (("literal", "a"), ("variable", "x")),
        RowSection("sales", "sales", (("section", "sales"), ("variable", "region"),
                                      ("end", "sales"))),
        (("literal", "b"),),
        RowSection("other", "other", (("section", "other"), ("literal", "c"), ("end", "other"))))
    assert [s.dataset for s in p.row_sections] == ["sales", "other"]


def test_a_section_over_rows_nested_in_a_static_section_is_not_a_row_section() -> None:
    got = plan("{{#parameters}}{{#sales}}{{region}}{{/sales}}{{/parameters}}")
    assert isinstance(got, Fallback)
    assert "{{#sales}}" in got.reason


@pytest.mark.parametrize("template, culprit", [
    ("{{sales}}", "{{sales}}"),
    ("{{{sales}}}", "{{&sales}}"),
    ("{{& datasets.sales.rows}}", "{{&datasets.sales.rows}}"),
    ("{{sales.0.region}}", "{{sales.0.region}}"),
    ("{{#sales}}x{{/sales}}{{#sales.0}}{{region}}{{/sales.0}}", "{{#sales.0}}"),
    ("{{datasets}}", "{{datasets}}"),
    ("{{#datasets}}{{#sales}}{{/sales}}{{/datasets}}", "{{#datasets}}"),
    ("{{#datasets.sales}}{{#rows}}{{region}}{{/rows}}{{/datasets.sales}}", "{{#datasets.sales}}"),
    ("{{#datasets.sales.rows.0}}{{region}}{{/datasets.sales.rows.0}}", "rows.0"),
    ("{{.}}", "{{.}}"),
    # chevron prints the scope under a `True` for `{{.}}`: here that is the whole model
    ("{{#parameters.flags}}{{.}}{{/parameters.flags}}", "{{.}}"),
    ("{{{.}}}", "{{&.}}"),
    ("{{^sales}}{{.}}{{/sales}}", "{{.}}"),
    ("{{#datasets.sales.truncated}}{{.}}{{/datasets.sales.truncated}}", "{{.}}"),
    ("{{#sales}}x{{/sales}}{{^sales}}{{#other}}o{{/other}}{{/sales}}", "{{#other}}"),
    ("{{=<% %>=}}<%#sales%><%/sales%><%& sales%>", "{{&sales}}"),
    ("{{#sales}}{{#sales}}{{/sales}}{{/sales}}", "inside a row section"),
    ("{{#sales}}{{other}}{{/sales}}", "{{other}}"),
    ("{{#sales}}{{datasets.sales.row_count}}{{/sales}}", "row counts"),
    ("{{#sales}}{{#datasets.sales.columns}}{{.}}{{/datasets.sales.columns}}{{/sales}}",
     "{{#datasets.sales.columns}}"),
    ("{{#parameters.list}}{{^parameters.list}}{{/parameters.list}}{{/parameters.list}}",
     "nests {{^parameters.list}}"),
])
def test_templates_that_fall_back(template: str, culprit: str) -> None:
    got = plan(template)
    assert isinstance(got, Fallback)
    assert culprit in got.reason


@pytest.mark.parametrize("main, partials, culprit", [
    ("{{> table}}", {"table": "{{#sales}}{{region}}{{/sales}}"}, "partial 'table'"),
    ("{{#sales}}x{{/sales}}{{> a}}", {"a": "{{> b}}", "b": "{{^sales}}{{.}}{{/sales}}"},
     "partial 'b' uses {{.}}"),
    ("{{#sales}}{{> row}}{{/sales}}", {"row": "{{datasets.sales.truncated}}"}, "partial 'row'"),
    ("{{#parameters.flag}}{{> dot}}{{/parameters.flag}}", {"dot": "{{.}}"}, "partial 'dot'"),
])
def test_partials_are_followed(main: str, partials: dict[str, str], culprit: str) -> None:
    got = plan(main, partials)
    assert isinstance(got, Fallback)
    assert culprit in got.reason


def test_a_dot_deep_in_a_partial_is_fine_and_recursive_partials_terminate() -> None:
    partials = {"tree": "{{#children}}{{name}}{{> tree}}{{/children}}",
                "dot": "{{.}}"}
    assert isinstance(plan("{{#report}}{{> dot}}{{/report}}{{#parameters}}{{.}}{{/parameters}}"
                           "{{#parameters.x}}{{#report}}{{> dot}}{{/report}}{{/parameters.x}}"
                           "{{#parameters.tree}}{{> tree}}{{/parameters.tree}}", partials), Plan)
    got = plan("{{#parameters.tree}}{{> tree}}{{/parameters.tree}}",
               {"tree": "{{#children}}{{> tree}}{{sales}}{{/children}}"})
    assert isinstance(got, Fallback) and "partial 'tree'" in got.reason


def test_rows_keys() -> None:
    names = {"sales", "report", "a.b"}
    assert rows_dataset("sales", names) == "sales"
    assert rows_dataset("datasets.sales.rows", names) == "sales"
    assert rows_dataset("report", names) is None  # `report` is the report, not rows
    assert rows_dataset("datasets.report.rows", names) == "report"
    assert rows_dataset("a.b", names) is None  # chevron reads that as a -> b
    assert rows_dataset("datasets.sales.rows.0", names) is None
    assert rows_dataset("nope", names) is None
    assert isinstance(plan("{{#report}}{{name}}{{/report}}{{#datasets.report.rows}}x"
                           "{{/datasets.report.rows}}", datasets={"report"}), Plan)


def test_row_section_scope_names_the_rows_by_its_key() -> None:
    rows = [{"a": 1}]
    assert RowSection("s", "s", ()).scope(rows) == {"s": rows}
    assert RowSection("s", "datasets.s.rows", ()).scope(rows) == {
        "datasets": {"s": {"rows": rows}}}


def test_line_end_tracks_what_a_partial_sees_to_its_left() -> None:
    end = LineEnd()
    end.add("  ")
    assert (end.newline, end.tail) == (False, "  ")
    end.add("\t")
    assert end.tail == "  \t"
    end.add("x" * 1000)
    assert end.tail == "x"  # not blank: only that matters, kept small
    end.add("  ")
    assert end.tail == "x"
    end.add("abc\n ")
    assert (end.newline, end.tail) == (True, " ")
    whole = LineEnd()
    whole.add("a\n")
    part = LineEnd()
    part.add("  ")
    whole.extend(part)
    assert (whole.newline, whole.tail) == (True, "  ")
    part.add("\n\t")
    whole.extend(part)
    assert whole.tail == "\t"
