"""`goreports status`: the platform at a glance for operators, in tables.

Why: the questions during an incident are "how many reports are stuck or failing, which pool is
behind, are its workers alive, is anything dead-lettered" — answered here from the two places
that know: the API server (ReportRequests by phase; skipped with a note when no KUBECONFIG or
in-cluster account is available) and Redis (per job stream: pending, lag, consumers from
XINFO GROUPS / CONSUMERS, dead letters; delayed retries). Read only: nothing is created.

The table building is pure (`phase_table_rows`, `stream_table_rows`); `--json` prints the same
data for scripts.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
from pathlib import Path
from typing import Any, Iterable

from rich.console import Console
from rich.table import Table

from goreports.core import metrics
from goreports.core.bus.redis import RedisBus
from goreports.core.metrics import PHASES, StreamStats
from goreports.core.settings import Settings

GROUP, VERSION, REPORTS = "goreports.io", "v1alpha1", "reportrequests"


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("status", help="reports by phase, backlog and workers per pattern, dead letters")
    add_redis_args(p)
    p.add_argument("--namespace", "-n", action="append", default=[],
                   help="count ReportRequests in this namespace (repeatable; default: all)")
    p.add_argument("--json", action="store_true", help="print JSON instead of tables")
    p.set_defaults(func=main)


def add_redis_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--redis", metavar="ADDR", default=None,
                   help="Redis host:port or URL (default: $REDIS_ADDR)")
    p.add_argument("--prefix", default=None, help="key prefix (default: $GOREPORTS_PREFIX or goreports)")


def settings_from(args: argparse.Namespace) -> Settings:
    overrides: dict[str, Any] = {}
    if getattr(args, "redis", None):
        overrides["redis_addr"] = args.redis
    if getattr(args, "prefix", None):
        overrides["prefix"] = args.prefix
    return Settings.from_env(**overrides)


# -- the Kubernetes side ------------------------------------------------------------------------
def custom_api() -> Any | None:
    """A CustomObjectsApi from KUBECONFIG (or ~/.kube/config), else the pod's service account;
    None when neither exists (the caller says what it skips)."""
    from kubernetes import client, config

    configuration = client.Configuration()
    kubeconfig = os.environ.get("KUBECONFIG") or str(Path.home() / ".kube" / "config")
    if os.environ.get("KUBECONFIG") or Path(kubeconfig).is_file():
        config.load_kube_config(config_file=kubeconfig.split(os.pathsep)[0],
                                client_configuration=configuration)
    elif os.environ.get("KUBERNETES_SERVICE_HOST"):
        config.load_incluster_config(client_configuration=configuration)
    else:
        return None
    return client.CustomObjectsApi(client.ApiClient(configuration))


def list_reports(api: Any, namespaces: list[str]) -> list[dict[str, Any]]:
    if not namespaces:
        return list(api.list_cluster_custom_object(GROUP, VERSION, REPORTS).get("items", []))
    out: list[dict[str, Any]] = []
    for ns in namespaces:
        out += api.list_namespaced_custom_object(GROUP, VERSION, ns, REPORTS).get("items", [])
    return out


def phase_table_rows(reports: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """[{namespace, Pending, Running, Succeeded, Failed, total}] sorted by namespace; a report
    without a phase yet counts as Pending."""
    counts: dict[str, dict[str, int]] = {}
    for r in reports:
        ns = (r.get("metadata") or {}).get("namespace", "")
        phase = (r.get("status") or {}).get("phase") or "Pending"
        row = counts.setdefault(ns, dict.fromkeys(PHASES, 0))
        row[phase] = row.get(phase, 0) + 1
    return [{"namespace": ns, **row, "total": sum(row.values())} for ns, row in sorted(counts.items())]


def stream_table_rows(stats: Iterable[StreamStats]) -> list[dict[str, Any]]:
    return [{"channel": s.channel, "pattern": s.pattern, "backlog": s.backlog, "pending": s.pending,
             "lag": s.lag, "workers": s.live_consumers, "consumers": s.consumers,
             "dead": s.dead} for s in stats]


# -- the command ------------------------------------------------------------------------------
async def gather(settings: Settings) -> tuple[list[StreamStats], int]:
    bus = RedisBus.from_settings(settings)
    try:
        return await metrics.stream_stats(bus), await metrics.delayed_count(bus)
    finally:
        await bus.close()


def main(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    console = Console()
    note = ""
    phases: list[dict[str, Any]] | None = None
    try:
        api = custom_api()
        if api is None:
            note = "no KUBECONFIG and not in a cluster: reports by phase skipped"
        else:
            phases = phase_table_rows(list_reports(api, list(args.namespace)))
    except Exception as e:  # unreachable API server, no RBAC to list: still show Redis
        note = f"reports by phase skipped: {_short(e)}"
    try:
        stats, delayed = asyncio.run(gather(settings))
    except Exception as e:
        console.print(f"[red]cannot read the job streams from Redis {settings.redis_addr}: {_short(e)}[/red]")
        return 1
    streams = stream_table_rows(stats)
    if args.json:
        print(json.dumps({"reports": phases, "note": note or None, "streams": streams,
                          "delayed": delayed}, indent=2))
        return 0
    if phases is not None:
        t = Table(title="ReportRequests by phase")
        for col in ("namespace", *PHASES, "total"):
            t.add_column(col, justify="left" if col == "namespace" else "right")
        for row in phases:
            t.add_row(row["namespace"], *(_num(row[p], p) for p in PHASES), str(row["total"]))
        if not phases:
            t.add_row("(none)", *[""] * (len(PHASES) + 1))
        console.print(t)
    if note:
        console.print(f"[yellow]{note}[/yellow]")
    t = Table(title=f"Job streams (prefix {settings.prefix})")
    for col, just in (("channel", "left"), ("pattern", "left"), ("backlog", "right"),
                      ("pending", "right"), ("lag", "right"), ("workers", "right"),
                      ("dead letters", "right")):
        t.add_column(col, justify=just)  # type: ignore[arg-type]
    for row in streams:
        workers = f"{row['workers']}" + (f" ({row['consumers']} known)" if row["consumers"] != row["workers"] else "")
        t.add_row(row["channel"], row["pattern"], str(row["backlog"]), str(row["pending"]),
                  str(row["lag"]), f"[red]{workers}[/red]" if row["backlog"] and not row["workers"] else workers,
                  f"[red]{row['dead']}[/red]" if row["dead"] else "0")
    if not streams:
        t.add_row("(no job streams yet)", "", "", "", "", "", "")
    console.print(t)
    console.print(f"retries waiting: {delayed}   (workers: consumers that polled in the last "
                  f"{metrics.LIVE_CONSUMER_MS // 1000}s)")
    return 0


def _num(n: int, phase: str) -> str:
    return f"[red]{n}[/red]" if phase == "Failed" and n else str(n)


def _short(e: BaseException) -> str:
    reason = getattr(e, "reason", None)
    status = getattr(e, "status", None)
    if status:
        return f"HTTP {status} {reason or ''}".strip()
    return str(e).splitlines()[0] if str(e) else type(e).__name__
