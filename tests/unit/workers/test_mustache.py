"""The Mustache generator: escaping by default, raw output only when listed, partials confined
to the template folder, and the data model."""
from __future__ import annotations

import asyncio
import datetime as dt
import logging
import tempfile
from decimal import Decimal
from pathlib import Path
from unittest.mock import patch

import chevron
import pytest
from hypothesis import HealthCheck, assume, given, settings, strategies as st

from goreports.core import values
from goreports.core.errors import PermanentError
from goreports.proto import tasks_pb2
from goreports.workers.generators import mustache
from goreports.workers.generators._mustache_plan import Fallback, Plan, plan_template
from goreports.workers.generators.mustache import generate_mustache

from unit.workers.stagekit import UID, columns, feed, make_ctx

COLS = columns(("region", values.STRING), ("total", values.DECIMAL), ("day", values.DATE),
               ("note", values.STRING))
ROWS = [["EU", Decimal("10.50"), dt.date(2024, 1, 2), "<script>alert(1)</script>"],
        ["NA", Decimal("1E+3"), dt.date(2024, 1, 3), None],
        ["APAC", Decimal("7"), dt.date(2024, 1, 4), "<b>ok</b>"]]


async def render(tmp_path: Path, **fields: object) -> str:
    ctx = make_ctx(tmp_path, "summary")
    data = await feed(ctx.bus, "by_region", COLS, ROWS, batch_rows=2)
    task = tasks_pb2.MustacheGenerator(file_name="summary.html", **fields)  # type: ignore[arg-type]
    task.datasets.append(data)
    task.data.update({"title": "Q1 <sales>", "year": 2024})
    result = await generate_mustache(task, ctx)
    assert result.rows == 3
    [artifact] = result.artifacts
    assert artifact.content_type == "text/html"
    return (tmp_path / "artifacts" / UID / "summary.html").read_text()


async def test_data_is_escaped_and_model_is_complete(tmp_path: Path) -> None:
    out = await render(tmp_path, template=(
        "{{report.name}}|{{report.uid}}|{{parameters.title}}|{{parameters.year}}|"
        "{{#by_region}}[{{region}} {{total}} {{day}} {{note}}]{{/by_region}}|"
        "{{datasets.by_region.row_count}} "
        "{{#datasets.by_region.truncated}}cut{{/datasets.by_region.truncated}}|"
        "{{#datasets.by_region.columns}}{{.}},{{/datasets.by_region.columns}}|"
        "{{#report.generated_at}}dated{{/report.generated_at}}"))
    assert out == (f"sales|{UID}|Q1 &lt;sales&gt;|2024|"
                   "[EU 10.50 2024-01-02 &lt;script&gt;alert(1)&lt;/script&gt;]"
                   "[NA 1000 2024-01-03 ][APAC 7 2024-01-04 &lt;b&gt;ok&lt;/b&gt;]|"
                   "3 |region,total,day,note,|dated")
    assert "<script>" not in out


async def test_max_rows_bounds_the_model_but_counts_everything(tmp_path: Path) -> None:
    out = await render(tmp_path, max_rows=2, template=(
        "{{#by_region}}{{region}} {{/by_region}}{{datasets.by_region.row_count}}"
        "{{#datasets.by_region.truncated}} truncated{{/datasets.by_region.truncated}}"))
    assert out == "EU NA 3 truncated"


@pytest.mark.parametrize("template", ["{{{note}}}", "{{& note}}", "{{=<% %>=}}<%& note %>",
                                      "{{#by_region}}{{{note}}}{{/by_region}}"])
async def test_unlisted_raw_field_is_refused(tmp_path: Path, template: str) -> None:
    with pytest.raises(PermanentError, match="'note'.*unescapedFields") as err:
        await render(tmp_path, template=template)
    assert err.value.reason == "UnescapedField"


async def test_listed_raw_field_is_rendered_raw(tmp_path: Path) -> None:
    out = await render(tmp_path, template="{{#by_region}}{{{note}}}{{/by_region}}",
                       unescaped_fields=["note"])
    assert out == "<script>alert(1)</script><b>ok</b>"


async def test_template_file_and_partials(tmp_path: Path) -> None:
    tpl = tmp_path / "templates"
    (tpl / "parts").mkdir(parents=True)
    (tpl / "main.mustache").write_text("<ul>{{#by_region}}{{> parts/row}}{{/by_region}}</ul>")
    (tpl / "parts" / "row.mustache").write_text("<li>{{region}}: {{note}}</li>")
    out = await render(tmp_path, template_file="main.mustache", template_dir=str(tpl))
    assert out == ("<ul><li>EU: &lt;script&gt;alert(1)&lt;/script&gt;</li><li>NA: </li>"
                   "<li>APAC: &lt;b&gt;ok&lt;/b&gt;</li></ul>")


async def test_raw_tag_in_a_partial_is_refused(tmp_path: Path) -> None:
    tpl = tmp_path / "templates"
    tpl.mkdir()
    (tpl / "row.mustache").write_text("{{{note}}}")
    with pytest.raises(PermanentError, match="partial 'row'"):
        await render(tmp_path, template="{{#by_region}}{{>row}}{{/by_region}}",
                     template_dir=str(tpl))


async def test_templates_must_stay_in_their_folder(tmp_path: Path) -> None:
    tpl = tmp_path / "templates"
    tpl.mkdir()
    (tmp_path / "secret.mustache").write_text("secret")
    (tpl / "link.mustache").symlink_to(tmp_path / "secret.mustache")
    for fields in ({"template_file": "../secret.mustache"},
                   {"template_file": str(tmp_path / "secret.mustache")},
                   {"template_file": "link.mustache"},
                   {"template": "{{> ../secret}}"}):
        with pytest.raises(PermanentError, match="outside the template folder"):
            await render(tmp_path, template_dir=str(tpl), **fields)
    with pytest.raises(PermanentError, match="not found"):
        await render(tmp_path, template="{{> nope}}", template_dir=str(tpl))


async def test_private_attribute_keys_are_refused(tmp_path: Path) -> None:
    with pytest.raises(PermanentError, match="'_'"):
        await render(tmp_path, template="{{by_region.__class__}}")


# -- streaming: byte-identical to the in-memory render --------------------------------------------

NOW = "2024-06-01T10:00:00+00:00"
POOL = [["EU", Decimal("10.50"), dt.date(2024, 1, 2), "<script>alert(1)</script>"],
        ["NA", Decimal("1E+3"), dt.date(2024, 1, 3), None],
        ["APAC", Decimal("7"), dt.date(2024, 1, 4), "a & b\nline"],
        ["", Decimal("0"), dt.date(2024, 1, 5), ""],
        ["LATAM", Decimal("-1.25"), dt.date(2024, 1, 6), "  "]]
PARTIALS = {"p": "P{{report.name}}\n  q\n", "row": "<{{region}}>\n  {{note}}",
            "cell": "[{{total}}]\n",
            "dot": "{{.}}|{{#parameters.flags}}{{.}}{{/parameters.flags}}"}


async def stage_output(tmp: Path, template: str, datasets: dict[str, list[list[object]]], *,
                       stream: bool, max_rows: int = 0, batch_rows: int = 2) -> bytes:
    """The generator's file; `stream` False forces today's in-memory render, True makes the
    in-memory path fail (so the file must have been streamed)."""
    ctx = make_ctx(tmp, "summary")
    tpl = tmp / "templates"
    tpl.mkdir(parents=True, exist_ok=True)
    for name, text in PARTIALS.items():
        (tpl / f"{name}.mustache").write_text(text)
    task = tasks_pb2.MustacheGenerator(file_name="out.html", template=template,
                                       template_dir=str(tpl), max_rows=max_rows,
                                       unescaped_fields=["note"])
    for name, rows in datasets.items():
        task.datasets.append(await feed(ctx.bus, name, COLS, rows, batch_rows=batch_rows))
    task.data.update({"title": "Q1 <sales>", "year": 2024, "flags": [True, False]})
    path = mustache.plan_template if stream else (lambda *_: Fallback("reference"))
    memory = (lambda *_: pytest.fail("rendered in memory")) if stream else \
        mustache._render_in_memory
    with patch.object(mustache, "_now", lambda: NOW), \
            patch.object(mustache, "plan_template", path), \
            patch.object(mustache, "_render_in_memory", memory):
        result = await generate_mustache(task, ctx)
    assert result.rows == sum(len(rows) for rows in datasets.values())
    assert list(ctx.work_dir.iterdir()) == []  # spool files cleaned up
    return (tmp / "artifacts" / UID / "out.html").read_bytes()


async def assert_same(tmp: Path, template: str, datasets: dict[str, list[list[object]]],
                      **kw: int) -> bytes:
    plan = plan_template(template, PARTIALS, set(datasets))
    assert isinstance(plan, Plan), plan
    streamed = await stage_output(tmp / "stream", template, datasets, stream=True, **kw)
    expected = await stage_output(tmp / "memory", template, datasets, stream=False, **kw)
    assert streamed == expected
    return streamed


SUMMARY = (Path(__file__).parents[3] / "examples/templates/summary.mustache").read_text()
EQUIVALENT = [
    # the shipped example: standalone section lines, an indented partial, {{^rows}}
    SUMMARY.replace("sales_by_region", "sales").replace("region_row", "cell"),
    "<ul>\n  {{#sales}}\n  <li>{{region}} {{report.name}} {{missing}}</li>\n  {{/sales}}\n</ul>\n",
    "{{#sales}}{{region}},{{/sales}}|{{#datasets.sales.rows}}{{total}};{{/datasets.sales.rows}}",
    "{{#sales}}{{region}} {{/sales}}{{#other}}{{day}} {{/other}}{{datasets.other.row_count}}",
    "{{^empty}}none{{/empty}}{{#empty}}x{{/empty}}{{datasets.empty.row_count}}"
    "{{#datasets.empty.columns}}{{.}},{{/datasets.empty.columns}}",
    "{{#sales}}{{region}} {{/sales}}{{datasets.sales.row_count}}"
    "{{#datasets.sales.truncated}} cut{{/datasets.sales.truncated}}",
    # partial indentation after a row section: the line so far is blank, or not
    "{{#sales}}  {{/sales}}{{> p}}|{{#sales}}x{{/sales}}  {{> p}}|\n{{#sales}} {{/sales}}\n"
    "  {{> p}}{{#empty}}x{{/empty}}  {{> p}}",
    "{{#sales}}\n  {{> row}}\n{{/sales}}\n{{#sales}}{{> cell}}{{/sales}}",
    "{{#sales}}{{parameters.title}} {{parameters.year}} {{report.uid}} {{{note}}}{{/sales}}",
    "{{#sales}}{{#note}}[{{.}}]{{/note}}{{^note}}-{{/note}}{{#region}}{{.}}{{/region}}{{/sales}}",
    "{{#sales}}{{.}}\n{{/sales}}",
    "{{=<% %>=}}<%#sales%><%region%> <%/sales%><%datasets.sales.row_count%><%={{ }}=%>{{x}}",
    "{{#parameters}}{{^sales}}no sales{{/sales}}{{title}}{{/parameters}}"
    "{{#parameters.flags}}F{{/parameters.flags}}",
    "only counts: {{datasets.sales.row_count}} {{datasets.other.row_count}}",
]


@pytest.mark.parametrize("max_rows", [0, 2])
@pytest.mark.parametrize("template", EQUIVALENT)
async def test_streaming_equals_the_in_memory_render(tmp_path: Path, template: str,
                                                     max_rows: int) -> None:
    out = await assert_same(tmp_path, template,
                            {"sales": POOL, "other": POOL[:3], "empty": []}, max_rows=max_rows)
    assert out  # every template prints something


async def test_a_dataset_named_report_streams_under_datasets(tmp_path: Path) -> None:
    out = await assert_same(tmp_path, "{{report.name}}:{{#datasets.report.rows}}{{region}} "
                            "{{/datasets.report.rows}}", {"report": POOL[:2]})
    assert out == b"sales:EU NA "


STATIC = ["", " ", "\n", "  ", "x", "<&>", "{{report.name}}", "{{parameters.title}}",
          "{{datasets.sales.row_count}}",
          "{{#datasets.sales.truncated}}T{{/datasets.sales.truncated}}",
          "{{^sales}}E{{/sales}}", "{{^empty}}none{{/empty}}", "{{> p}}", "  {{> p}}\n",
          "{{#datasets.other.columns}}{{.}},{{/datasets.other.columns}}",
          "{{#parameters.flags}}F{{/parameters.flags}}", "\n{{! comment }}\n"]
BODY = ["", " ", "\n", "  ", "{{region}}", "{{{note}}}", "{{note}}", "{{total}}", "{{> row}}",
        "  {{> row}}\n", "{{> cell}}", "{{report.name}}", "{{parameters.year}}", "{{missing}}",
        "{{#note}}[{{.}}]{{/note}}", "{{^note}}-{{/note}}", "\n  "]
KEYS = ["sales", "datasets.sales.rows", "other", "empty"]


# Fragments a streaming plan must refuse unless it can prove them harmless: `{{.}}` where it
# may print the whole model (under a `True`), rows or counts inside row sections.
RISKY_STATIC = ["{{.}}", "{{#parameters.flags}}{{.}}{{/parameters.flags}}",
                "{{#datasets.sales.truncated}}{{.}}{{/datasets.sales.truncated}}",
                "{{#report}}{{.}}{{/report}}", "{{^sales}}{{.}}{{/sales}}",
                "{{#parameters}}{{#flags}}{{.}}{{/flags}}{{/parameters}}", "{{> dot}}",
                "{{#parameters.flags}}{{> dot}}{{/parameters.flags}}", "{{sales}}",
                "{{#datasets.sales.row_count}}{{.}}{{/datasets.sales.row_count}}"]
RISKY_BODY = ["{{.}}", "{{^region}}{{.}}{{/region}}", "{{> dot}}", "{{datasets.sales.truncated}}",
              "{{#parameters.flags}}{{.}}{{/parameters.flags}}"]


def templates(static: list[str], body: list[str]) -> st.SearchStrategy[str]:
    """Templates of static fragments and row sections, standalone or inline, sometimes with
    changed delimiters."""
    @st.composite
    def build(draw: st.DrawFn) -> str:
        parts = []
        for _ in range(draw(st.integers(0, 4))):
            parts += draw(st.lists(st.sampled_from(static), max_size=3))
            key = draw(st.sampled_from(KEYS))
            pad = draw(st.sampled_from(["", "\n", "  ", "\n  "]))
            inner = "".join(draw(st.lists(st.sampled_from(body), max_size=4)))
            parts.append(f"{pad}{{{{#{key}}}}}{pad}{inner}{pad}{{{{/{key}}}}}{pad}")
        parts += draw(st.lists(st.sampled_from(static), max_size=3))
        template = "[" + "".join(parts) + "]"
        if draw(st.booleans()):
            template = "{{=<% %>=}}" + template.replace("{{{note}}}", "{{& note}}") \
                .replace("{{", "<%").replace("}}", "%>")
        return template
    return build()


def check_generated(template: str, sales: int, max_rows: int, batch_rows: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(assert_same(Path(tmp), template,
                                {"sales": POOL[:sales], "other": POOL[1:3], "empty": []},
                                max_rows=max_rows, batch_rows=batch_rows))


@settings(max_examples=60, deadline=None)
@given(template=templates(STATIC, BODY), sales=st.integers(0, len(POOL)),
       max_rows=st.sampled_from([0, 1, 3]), batch_rows=st.sampled_from([1, 2, 5]))
def test_streaming_equals_the_in_memory_render_for_generated_templates(
        template: str, sales: int, max_rows: int, batch_rows: int) -> None:
    check_generated(template, sales, max_rows, batch_rows)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(template=templates(STATIC + RISKY_STATIC, BODY + RISKY_BODY),
       sales=st.integers(0, len(POOL)), max_rows=st.sampled_from([0, 1, 3]),
       batch_rows=st.sampled_from([1, 2, 5]))
def test_whenever_the_plan_streams_the_output_is_identical(
        template: str, sales: int, max_rows: int, batch_rows: int) -> None:
    assume(isinstance(plan_template(template, PARTIALS, {"sales", "other", "empty"}), Plan))
    check_generated(template, sales, max_rows, batch_rows)


async def test_a_template_that_cannot_stream_renders_in_memory(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    out = await render(tmp_path, template="{{#datasets.by_region}}{{#rows}}{{region}} {{/rows}}"
                                          "{{/datasets.by_region}}")
    assert out == "EU NA APAC "
    assert "in memory" in caplog.text and "{{#datasets.by_region}}" in caplog.text


@pytest.mark.parametrize("template, streams", [("{{#sales}}{{region}}{{/sales}}", True),
                                               ("{{sales}}", False)])
async def test_spool_files_are_removed_when_rendering_fails(tmp_path: Path, template: str,
                                                            streams: bool) -> None:
    ctx = make_ctx(tmp_path, "summary")
    task = tasks_pb2.MustacheGenerator(file_name="out.html", template=template)
    task.datasets.append(await feed(ctx.bus, "sales", COLS, POOL, batch_rows=2))
    assert isinstance(plan_template(template, {}, {"sales"}), Plan) == streams
    real, calls = chevron.render, []

    def failing(*args: object, **kw: object) -> str:
        calls.append(args)
        if len(calls) == (2 if streams else 1):  # streaming: the second batch
            raise RuntimeError("disk full")
        return real(*args, **kw)  # type: ignore[arg-type]

    with patch.object(chevron, "render", failing), pytest.raises(RuntimeError, match="disk full"):
        await generate_mustache(task, ctx)
    assert list(ctx.work_dir.iterdir()) == []
    assert not (tmp_path / "artifacts").exists()
