"""The Mustache generator: escaping by default, raw output only when listed, partials confined
to the template folder, and the data model."""
from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import pytest

from goreports.core import values
from goreports.core.errors import PermanentError
from goreports.proto import tasks_pb2
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
