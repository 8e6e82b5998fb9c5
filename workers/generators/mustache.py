"""The `mustache` generator: datasets + report metadata -> one text file (HTML by default).

Why Mustache (chevron): logic-less templates that a report author can write without code, kept
from the seed. The data model a template sees (also in docs/templates.md):

    report:      {name, namespace, uid, generated_at}   generated_at: ISO 8601 UTC
    parameters:  the report's `parameters` (task.data), whole numbers as integers
    datasets:    {<name>: {columns: [names], rows: [{<column>: value}], row_count, truncated}}
    <name>:      the same rows as datasets.<name>.rows (not for the names report, parameters,
                 datasets)

Cells are template-friendly: decimals as exact text, dates and datetimes as ISO text, bytes as
hex, null as empty (falsy); numbers and booleans stay what they are.

Safety:
- `{{x}}` is HTML-escaped (`& < > "`; quote attributes with double quotes). Raw output
  (`{{{x}}}`, `{{& x}}`) is refused unless the tag's key, as written, is listed in
  `unescaped_fields`. Templates are checked with chevron's own tokenizer, so changed delimiters
  (`{{=<% %>=}}`) cannot hide a raw tag, and every partial is checked the same way.
- `template_file` and partials (`{{> name}}` -> `<template_dir>/name.mustache`) must resolve
  inside `template_dir`. Partials are loaded and checked here and handed to chevron as a dict;
  chevron never reads the file system itself.
- Keys with a part starting with `_` are refused: chevron falls back to attribute lookup, and
  `{{rows.__class__}}` has no business in a report.

Memory: rows stream when the template uses them only in top-level sections over them
(`{{#sales}}…{{/sales}}`, `{{#datasets.sales.rows}}…{{/datasets.sales.rows}}`; inside, a row's
columns, `report…`, `parameters…`, partials) and nothing else touches rows (outside those
sections `columns`, `row_count`, `truncated` and `{{^sales}}none{{/sales}}` are fine): each such
section is rendered a batch at a time into a spool file in the work folder, the rest of the
template once after all rows are read, and the pieces are joined in template order. The output
is byte-identical to rendering the whole model (_mustache_plan decides, conservatively). Any
other template (`{{sales.0.region}}`, a section over rows inside another section or a partial,
`datasets…` inside a row section) is rendered by chevron from a model held in memory, logged
with the reason; then `max_rows` (0 = all) bounds the memory it takes. Either way `max_rows`
bounds the rows rendered per dataset, and every row is still read and counted (`row_count`;
`truncated` says whether rows were left out), so the collector is never held up.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import shutil
import tempfile
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, Coroutine

import chevron
from chevron.tokenizer import ChevronError, tokenize
from google.protobuf import json_format

from goreports.core.errors import PermanentError
from goreports.proto import tasks_pb2
from goreports.core.artifacts import content_type_for, safe_name
from goreports.workers.generators._mustache_plan import (RESERVED, Fallback, LineEnd, Plan,
                                                        RowSection, Token, plan_template)
from goreports.workers.registry import stage
from goreports.workers.stage import StageContext, StageResult

PARTIAL_EXT = "mustache"
_KEYED = {"variable", "no escape", "section", "inverted section"}


# -- templates ------------------------------------------------------------------------------------

def resolve_inside(base: Path, relative: str, what: str) -> Path:
    """`base/relative` as a file that really lies under `base` (symlinks resolved)."""
    root = base.resolve()
    path = (root / relative).resolve()
    if not path.is_relative_to(root):
        raise PermanentError(f"{what} {relative!r} lies outside the template folder {base}",
                             reason="TemplateOutsideFolder")
    if not path.is_file():
        raise PermanentError(f"{what} {relative!r} not found in the template folder {base}",
                             reason="TemplateNotFound")
    return path


def check_template(text: str, source: str, unescaped: set[str]) -> list[str]:
    """Refuse raw tags not listed in `unescaped`; return the names of the partials used."""
    try:
        tokens = list(tokenize(text))
    except ChevronError as e:
        raise PermanentError(f"template {source} does not parse: {e}".replace("\n", " "),
                             reason="TemplateInvalid") from None
    partials = []
    for kind, key in tokens:
        if kind == "no escape" and key.strip() not in unescaped:
            raise PermanentError(
                f"template {source} renders {key.strip()!r} without HTML escaping; list it in "
                f"unescapedFields if that is intended", reason="UnescapedField")
        if kind in _KEYED and any(part.startswith("_") for part in key.strip().split(".")):
            raise PermanentError(f"template {source} names {key.strip()!r}: keys starting with "
                                 f"'_' are not part of the data model", reason="TemplateInvalid")
        if kind == "partial":
            partials.append(key.strip())
    return partials


def load_templates(task: tasks_pb2.MustacheGenerator) -> tuple[str, dict[str, str]]:
    """The main template and every partial it reaches, all checked."""
    unescaped = set(task.unescaped_fields)
    base = Path(task.template_dir) if task.template_dir else None
    if task.template and task.template_file:
        raise PermanentError("set either template or templateFile, not both", reason="InvalidTask")
    if task.template_file:
        if base is None:
            raise PermanentError(f"templateFile {task.template_file!r} needs templateDir",
                                 reason="InvalidTask")
        main = resolve_inside(base, task.template_file, "template file").read_text("utf-8")
        source = repr(task.template_file)
    elif task.template:
        main, source = task.template, "(inline)"
    else:
        raise PermanentError("the mustache generator has no template", reason="InvalidTask")

    partials: dict[str, str] = {}
    todo = [(name, source) for name in check_template(main, source, unescaped)]
    while todo:
        name, used_by = todo.pop()
        if name in partials:
            continue
        if base is None:
            raise PermanentError(f"template {used_by} uses the partial {name!r} but no "
                                 f"templateDir is set", reason="InvalidTask")
        text = resolve_inside(base, f"{name}.{PARTIAL_EXT}", "partial").read_text("utf-8")
        partials[name] = text
        todo += [(n, f"partial {name!r}") for n in check_template(text, f"partial {name!r}",
                                                                    unescaped)]
    return main, partials


# -- data model -----------------------------------------------------------------------------------

def plain(value: Any) -> Any:
    """Struct/JSON values for a template: whole numbers (JSON has only doubles) as ints."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 2 ** 53:
        return int(value)
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def template_cell(value: Any) -> Any:
    if isinstance(value, Decimal):
        return format(value, "f") if value.is_finite() else str(value)
    if isinstance(value, dt.datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).hex()
    if isinstance(value, str):
        return str(value)  # JsonText -> str
    return value


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def _distinct(task: tasks_pb2.MustacheGenerator) -> list[tasks_pb2.DatasetRef]:
    return list({ref.stream: ref for ref in task.datasets}.values())


def _model(ctx: StageContext, task: tasks_pb2.MustacheGenerator, generated_at: str,
           datasets: dict[str, dict[str, Any]]) -> dict[str, Any]:
    model: dict[str, Any] = {
        "report": {"name": ctx.report.name, "namespace": ctx.report.namespace,
                   "uid": ctx.report.uid, "generated_at": generated_at},
        "parameters": plain(json_format.MessageToDict(task.data)),
        "datasets": datasets,
    }
    for name, ds in datasets.items():
        if name not in RESERVED:
            model[name] = ds["rows"]
    return model


def _first_error(eg: BaseExceptionGroup) -> BaseException:  # type: ignore[type-arg]
    exc: BaseException = eg
    while isinstance(exc, BaseExceptionGroup):
        exc = exc.exceptions[0]
    return exc


async def _each(reads: list[Coroutine[Any, Any, dict[str, Any]]]) -> list[dict[str, Any]]:
    """Run the dataset reads concurrently (one dataset's producer must not wait for another's
    reader); the first failure cancels the rest and is raised as itself."""
    try:
        async with asyncio.TaskGroup() as tg:
            tasks = [tg.create_task(read) for read in reads]
    except BaseExceptionGroup as eg:
        raise _first_error(eg) from None
    return [t.result() for t in tasks]


def _room(max_rows: int, shown: int, batch: int) -> int:
    return max(max_rows - shown, 0) if max_rows else batch


# -- in memory: any template ----------------------------------------------------------------------

async def _read(ctx: StageContext, ref: tasks_pb2.DatasetRef, max_rows: int) -> dict[str, Any]:
    reader = ctx.read_dataset(ref)
    names = [c.name for c in await reader.open()]
    rows: list[dict[str, Any]] = []
    count = 0
    async for batch in reader.batches():
        take = batch[:_room(max_rows, len(rows), len(batch))]
        rows += [{n: template_cell(v) for n, v in zip(names, row)} for row in take]
        count += len(batch)
    return {"columns": names, "rows": rows, "row_count": count, "truncated": len(rows) < count}


async def build_model(task: tasks_pb2.MustacheGenerator, ctx: StageContext) -> dict[str, Any]:
    refs = _distinct(task)
    results = await _each([_read(ctx, ref, task.max_rows) for ref in refs])
    return _model(ctx, task, _now(), {ref.name: r for ref, r in zip(refs, results)})


async def _render_in_memory(task: tasks_pb2.MustacheGenerator, ctx: StageContext,
                            template: str, partials: dict[str, str], out: Path) -> int:
    model = await build_model(task, ctx)
    text = await asyncio.to_thread(chevron.render, template, model, partials_path=None,
                                   partials_dict=partials)
    await asyncio.to_thread(out.write_bytes, text.encode("utf-8"))
    return sum(ds["row_count"] for ds in model["datasets"].values())


# -- streaming: row sections a batch at a time ----------------------------------------------------

@dataclass
class _Spool:
    """One row section's output so far, appended to a file per batch."""
    section: RowSection
    path: Path
    end: LineEnd = field(default_factory=LineEnd)


def _render_rows(spools: list[_Spool], rows: list[dict[str, Any]], outer: dict[str, Any],
                 partials: dict[str, str]) -> None:
    for spool in spools:
        text = chevron.render(spool.section.tokens, scopes=[spool.section.scope(rows), outer],
                              partials_path=None, partials_dict=partials)
        with spool.path.open("ab") as f:
            f.write(text.encode("utf-8"))
        spool.end.add(text)


async def _stream_rows(ctx: StageContext, ref: tasks_pb2.DatasetRef, spools: list[_Spool],
                       max_rows: int, outer: dict[str, Any], partials: dict[str, str]
                       ) -> dict[str, Any]:
    reader = ctx.read_dataset(ref)
    names = [c.name for c in await reader.open()]
    count = shown = 0
    async for batch in reader.batches():
        take = batch[:_room(max_rows, shown, len(batch))]
        if take and spools:
            rows = [{n: template_cell(v) for n, v in zip(names, row)} for row in take]
            await asyncio.to_thread(_render_rows, spools, rows, outer, partials)
        shown += len(take)
        count += len(batch)
    # Static segments may ask only whether rows were rendered ({{^sales}}): a stand-in says so.
    return {"columns": names, "rows": [True] if shown else [], "row_count": count,
            "truncated": shown < count}


def _render_static(tokens: tuple[Token, ...], model: dict[str, Any], partials: dict[str, str],
                   left: str) -> str:
    """Render a static segment as if `left` (the current line so far) preceded it, so that a
    partial tag indents exactly as in a whole-template render."""
    text = chevron.render([("literal", left), *tokens], scopes=[model], partials_path=None,
                          partials_dict=partials)
    return text[len(left):]


def _assemble(plan: Plan, spools: dict[int, _Spool], model: dict[str, Any],
              partials: dict[str, str], out: Path) -> None:
    end = LineEnd()
    with out.open("wb") as f:
        for i, part in enumerate(plan.parts):
            if isinstance(part, RowSection):
                spool = spools[i]
                if spool.path.exists():
                    with spool.path.open("rb") as src:
                        shutil.copyfileobj(src, f, 1 << 20)
                    spool.path.unlink()
                end.extend(spool.end)
            else:
                text = _render_static(part, model, partials, end.tail)
                f.write(text.encode("utf-8"))
                end.add(text)


async def _render_streaming(task: tasks_pb2.MustacheGenerator, ctx: StageContext, plan: Plan,
                            partials: dict[str, str], out: Path) -> int:
    refs = _distinct(task)
    owner = {ref.name: ref.stream for ref in refs}  # of two refs with one name the later wins
    generated_at = _now()
    outer = _model(ctx, task, generated_at, {})  # row bodies never see `datasets` (see plan)
    spools = {i: _Spool(part, out.parent / f"section-{i}")
              for i, part in enumerate(plan.parts) if isinstance(part, RowSection)}

    def spools_of(ref: tasks_pb2.DatasetRef) -> list[_Spool]:
        if owner[ref.name] != ref.stream:
            return []
        return [s for s in spools.values() if s.section.dataset == ref.name]

    results = await _each([_stream_rows(ctx, ref, spools_of(ref), task.max_rows, outer, partials)
                           for ref in refs])
    datasets = {ref.name: r for ref, r in zip(refs, results)}
    model = _model(ctx, task, generated_at, datasets)
    await asyncio.to_thread(_assemble, plan, spools, model, partials, out)
    return sum(ds["row_count"] for ds in datasets.values())


@stage("mustache", channel="generators", task=tasks_pb2.MustacheGenerator)
async def generate_mustache(task: tasks_pb2.MustacheGenerator, ctx: StageContext) -> StageResult:
    file_name = safe_name(task.file_name)
    template, partials = await asyncio.to_thread(load_templates, task)  # fail before reading
    plan = await asyncio.to_thread(plan_template, template, partials,
                                   {ref.name for ref in _distinct(task)})
    ctx.work_dir.mkdir(parents=True, exist_ok=True)
    spool_dir = Path(tempfile.mkdtemp(prefix=".mustache-", dir=ctx.work_dir))
    out = spool_dir / "output"
    try:
        if isinstance(plan, Fallback):
            ctx.log.info("mustache: rendering %s in memory: %s", file_name, plan.reason)
            rows = await _render_in_memory(task, ctx, template, partials, out)
        else:
            rows = await _render_streaming(task, ctx, plan, partials, out)
        artifact = await ctx.artifacts.take(ctx.report.uid, file_name, out,
                                            task.content_type or content_type_for(file_name))
    finally:
        shutil.rmtree(spool_dir, ignore_errors=True)
    return StageResult(rows=rows, artifacts=[artifact])
