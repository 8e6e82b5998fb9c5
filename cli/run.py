"""`goreports run FILE.yaml`: the whole chain in one process, for laptops and CI.

FILE is a ReportRequest, or a ReportTemplate of the catalog with its values given by
`--param name=value` (repeatable, parsed by the declared type) and/or `--params-file FILE`
(a YAML/JSON mapping; `--param` wins); errors name the parameter.

The same spec, the same compiler, the same stages and the same bus contract as in the cluster:
only the bus is in-process (or a Redis given with --redis) and the workers share this process.
"""
from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import tempfile
import time
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from goreports.cli import logs
from goreports.core import compiler, schema, status as status_mod, templates
from goreports.core.bus.base import Bus
from goreports.core.bus.memory import MemoryBus
from goreports.core.errors import SpecError
from goreports.core.keys import Keys
from goreports.core.settings import Settings
from goreports.workers import registry
from goreports.core.stores import artifact_store_from_settings
from goreports.core.credentials import CredentialStore
from goreports.workers.runtime import Worker

log = logging.getLogger("goreports.run")


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("run", help="run a ReportRequest file in this process (no cluster needed)")
    p.add_argument("file", type=Path, help="ReportRequest or ReportTemplate YAML file")
    p.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                   help="a ReportTemplate parameter value (repeatable)")
    p.add_argument("--params-file", type=Path, default=None, metavar="FILE",
                   help="ReportTemplate parameter values: a YAML or JSON mapping")
    p.add_argument("--out", type=Path, help="deliver `local` dispatcher artifacts to this folder")
    p.add_argument("--redis", metavar="ADDR", help="use this Redis (host:port) instead of the in-process bus")
    p.add_argument("--credentials", type=Path, default=None,
                   help="folder of credentials folders (default: $GOREPORTS_CREDENTIALS_DIR or ./credentials)")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress display")
    p.set_defaults(func=main)


class RunFailed(Exception):
    """The report could not run or failed; the message is the one paragraph shown to the user."""


def load_document(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text()
    except OSError as e:
        raise RunFailed(f"cannot read {path}: {e.strerror}") from e
    try:
        docs = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as e:
        raise RunFailed(f"{path} is not valid YAML: {e}") from e
    if len(docs) != 1 or not isinstance(docs[0], dict):
        raise RunFailed(f"{path} must hold exactly one ReportRequest document, found {len(docs)}")
    return docs[0]


def load_params_file(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as e:
        raise RunFailed(f"cannot read {path}: {e.strerror}") from e
    except yaml.YAMLError as e:
        raise RunFailed(f"{path} is not valid YAML or JSON: {e}") from e
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise RunFailed(f"{path} must be a mapping of parameter names to values")
    return data


def resolve_template(doc: dict[str, Any], params: list[str], params_file: Path | None
                     ) -> dict[str, Any]:
    """A ReportTemplate document + values -> the ReportRequest to run (SpecError names the
    parameter or the template's field)."""
    if doc.get("kind") != schema.TEMPLATE_KIND:
        if params or params_file:
            raise RunFailed("--param and --params-file apply to a ReportTemplate file only "
                            f"(this is a {doc.get('kind')})")
        if templates.template_name(doc.get("spec")):
            raise RunFailed("this ReportRequest names a ReportTemplate: run the template file "
                            "itself with --param name=value (goreports run TEMPLATE.yaml --param ...)")
        return doc
    templates.check_template(doc)
    declared = templates.parameters_of(doc)
    values = load_params_file(params_file) if params_file else {}
    try:
        raw = templates.parse_param_args(params)
    except ValueError as e:
        raise RunFailed(str(e)) from None
    values.update(templates.values_from_text(declared, raw))
    resolved = templates.resolve(doc, values, path="parameters")
    name = (doc.get("metadata") or {}).get("name", "template")
    return {"apiVersion": doc.get("apiVersion"), "kind": "ReportRequest",
            "metadata": {"name": name}, "spec": resolved.spec}


def override_out(doc: dict[str, Any], out: Path) -> None:
    for step in doc.get("spec", {}).get("steps", []):
        if isinstance(step, dict) and isinstance(step.get("local"), dict):
            step["local"]["path"] = str(out)


async def execute(doc: dict[str, Any], settings: Settings, *, redis_addr: str | None = None,
                  console: Console | None = None) -> dict[str, Any]:
    """Validate, compile and run one report; return its final status."""
    schema.validate_report(doc)
    uid = str(uuid.uuid4())
    head = compiler.compile_report(doc, uid=uid, prefix=settings.prefix)
    chain = compiler.iter_chain(head)
    registry.load_builtin_stages()
    patterns = sorted({j.pattern for j in chain})
    missing = [p for p in patterns if p not in registry.patterns()]
    if missing:
        raise RunFailed(f"no stage is installed for pattern(s) {', '.join(missing)} "
                        f"(installed: {', '.join(registry.patterns())})")
    bus: Bus
    if redis_addr:
        from goreports.core.bus.redis import RedisBus

        settings = replace(settings, redis_addr=redis_addr)
        bus = RedisBus.from_settings(settings)
    else:
        bus = MemoryBus(Keys(settings.prefix), settings.report_ttl)
    staging = artifact_store_from_settings(settings)
    worker = Worker(bus=bus, settings=settings, patterns=patterns, artifacts=staging,
                    credentials=CredentialStore(settings.credentials_dir),
                    concurrency=len(chain) + len(patterns), block_ms=200)
    stop = asyncio.Event()
    runner = asyncio.create_task(worker.run(stop))
    st = status_mod.initial_status([(j.name, j.pattern) for j in chain])
    st["deliveredBy"] = [j.name for j in chain if j.channel == "dispatchers"]
    try:
        after = f"{int(time.time() * 1000) - 1}-0"
        await bus.publish(head)
        with _progress(console, chain) as progress:
            while st["phase"] not in status_mod.FINAL_PHASES:
                if runner.done():
                    runner.result()
                    raise RunFailed("the workers stopped before the report finished")
                for entry_id, ev in await bus.read_events(after, 100, 200):
                    after = entry_id
                    if ev.report.uid == uid:
                        st = status_mod.fold(st, ev)
                progress.update(st)
    finally:
        stop.set()
        await runner
        await bus.delete_report(uid)
        await staging.delete_report(uid)
        await bus.close()
    return st


class _progress:
    """Rich progress: one line per step with its state and rows."""

    def __init__(self, console: Console | None, chain: list[Any]) -> None:
        self.console = console
        self.p = Progress(SpinnerColumn(), TextColumn("{task.description}"),
                          TextColumn("{task.fields[state]}"), TextColumn("{task.fields[rows]} rows"),
                          TimeElapsedColumn(), console=console, transient=False,
                          disable=console is None)
        self.tasks = {j.name: self.p.add_task(f"{j.name} [dim]({j.pattern})[/]", total=None,
                                              state="Pending", rows=0) for j in chain}

    def __enter__(self) -> "_progress":
        self.p.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.p.__exit__(*exc)  # type: ignore[arg-type]

    def update(self, st: dict[str, Any]) -> None:
        for step in st.get("steps", []):
            t = self.tasks.get(step["name"])
            if t is not None:
                done = step["state"] in ("Succeeded", "Failed", "Cancelled")
                self.p.update(t, state=step["state"], rows=f"{step.get('rows', 0):,}",
                              total=1 if done else None, completed=1 if done else 0)


def main(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    logs.setup("WARNING" if not args.quiet else "ERROR", settings.log_format)
    err = Console(stderr=True)
    out = Console()
    creds = args.credentials or Path(
        __import__("os").environ.get("GOREPORTS_CREDENTIALS_DIR", "credentials"))
    with tempfile.TemporaryDirectory(prefix="goreports-run-") as tmp:
        settings = replace(settings, artifact_dir=Path(tmp) / "staging", work_dir=Path(tmp) / "work",
                           credentials_dir=creds, visibility_timeout=30.0)
        try:
            doc = load_document(args.file)
            try:
                doc = resolve_template(doc, args.param, args.params_file)
            except SpecError as e:
                err.print(f"[bold red]error:[/] {args.file}: the template or its parameters are "
                          f"not valid:")
                for fe in e.errors:
                    err.print(f"  - {fe.path}: {fe.message}", markup=False, highlight=False)
                return 2
            if args.out:
                override_out(doc, args.out)
            started = time.monotonic()
            st = asyncio.run(execute(doc, settings, redis_addr=args.redis,
                                     console=None if args.quiet else err))
        except SpecError as e:
            err.print(f"[bold red]error:[/] {args.file} is not a valid ReportRequest:")
            for fe in e.errors:
                err.print(f"  - {fe.path}: {fe.message}", markup=False, highlight=False)
            return 2
        except RunFailed as e:
            err.print(f"[bold red]error:[/] {e}", highlight=False)
            return 2
    elapsed = time.monotonic() - started
    name = doc.get("metadata", {}).get("name", args.file.stem)
    if st["phase"] != "Succeeded":
        failed = next((s for s in st["steps"] if s["state"] == "Failed"), None)
        reason = next((c["reason"] for c in st["conditions"] if c["type"] == "Ready"), "Failed")
        where = f"step {failed['name']!r} ({failed['pattern']})" if failed else "a step"
        err.print(f"[bold red]report {name} failed[/] after {elapsed:.1f}s ({reason}): {where} "
                  f"stopped the chain: {st.get('message', '')}", highlight=False)
        return 1
    table = Table(title=f"report {name}: Succeeded in {elapsed:.1f}s, {st['rows']:,} rows")
    for col in ("step", "artifact", "size", "sha256", "location"):
        table.add_column(col)
    delivered = [a for a in st["artifacts"] if a.get("step") in st.get("deliveredBy", [])]
    for a in delivered:
        table.add_row(a.get("step", ""), a["name"], f"{a['size']:,}", a["sha256"][:12], a["location"])
    out.print(table)
    return 0

