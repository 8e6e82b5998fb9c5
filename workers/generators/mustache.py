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

Memory: chevron renders a model held in memory, so `max_rows` (0 = all) bounds the rows placed
in it per dataset. Every row is still read and counted (`row_count`; `truncated` says whether
rows were left out), so the collector is never held up.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import os
import tempfile
from decimal import Decimal
from pathlib import Path
from typing import Any

import chevron
from chevron.tokenizer import ChevronError, tokenize
from google.protobuf import json_format

from goreports.core.errors import PermanentError
from goreports.proto import tasks_pb2
from goreports.core.artifacts import content_type_for, safe_name
from goreports.workers.registry import stage
from goreports.workers.stage import StageContext, StageResult

RESERVED = frozenset({"report", "parameters", "datasets"})
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


async def _read(ctx: StageContext, ref: tasks_pb2.DatasetRef, max_rows: int) -> dict[str, Any]:
    reader = ctx.read_dataset(ref)
    names = [c.name for c in await reader.open()]
    rows: list[dict[str, Any]] = []
    count = 0
    async for batch in reader.batches():
        room = (max_rows - len(rows)) if max_rows else len(batch)
        rows += [{n: template_cell(v) for n, v in zip(names, row)} for row in batch[:max(room, 0)]]
        count += len(batch)
    return {"columns": names, "rows": rows, "row_count": count, "truncated": len(rows) < count}


def _first_error(eg: BaseExceptionGroup) -> BaseException:  # type: ignore[type-arg]
    exc: BaseException = eg
    while isinstance(exc, BaseExceptionGroup):
        exc = exc.exceptions[0]
    return exc


async def build_model(task: tasks_pb2.MustacheGenerator, ctx: StageContext) -> dict[str, Any]:
    refs = list({ref.stream: ref for ref in task.datasets}.values())
    try:
        async with asyncio.TaskGroup() as tg:
            reads = [tg.create_task(_read(ctx, ref, task.max_rows)) for ref in refs]
    except BaseExceptionGroup as eg:
        raise _first_error(eg) from None
    datasets = {ref.name: t.result() for ref, t in zip(refs, reads)}
    model: dict[str, Any] = {
        "report": {"name": ctx.report.name, "namespace": ctx.report.namespace,
                   "uid": ctx.report.uid,
                   "generated_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")},
        "parameters": plain(json_format.MessageToDict(task.data)),
        "datasets": datasets,
    }
    for name, ds in datasets.items():
        if name not in RESERVED:
            model[name] = ds["rows"]
    return model


@stage("mustache", channel="generators", task=tasks_pb2.MustacheGenerator)
async def generate_mustache(task: tasks_pb2.MustacheGenerator, ctx: StageContext) -> StageResult:
    file_name = safe_name(task.file_name)
    template, partials = await asyncio.to_thread(load_templates, task)  # fail before reading
    model = await build_model(task, ctx)
    text = await asyncio.to_thread(chevron.render, template, model, partials_path=None,
                                   partials_dict=partials)
    ctx.work_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=".mustache-", suffix=Path(file_name).suffix,
                                    dir=ctx.work_dir)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
        artifact = await ctx.artifacts.put(ctx.report.uid, file_name, tmp,
                                           task.content_type or content_type_for(file_name))
    finally:
        tmp.unlink(missing_ok=True)
    rows = sum(ds["row_count"] for ds in model["datasets"].values())
    return StageResult(rows=rows, artifacts=[artifact])
