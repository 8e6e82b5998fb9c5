"""Run the operator: kopf with our handlers, the StageEvent folder and the pool scaler.

`goreports operator --namespace NS` (repeatable) watches namespaces; `--all-namespaces` the
cluster. Several replicas run safely: the chain is published once (Redis marker), events are
shared through a consumer group, and with `--peering` kopf keeps one replica handling resources.

With GOREPORTS_METRICS_PORT set it serves Prometheus metrics (GET /metrics, and /healthz) on
that port: reports by phase (from its watch), job stream backlog, workers and dead letters
(read every GOREPORTS_METRICS_INTERVAL seconds, default 10), schedule runs, audit records.
"""
from __future__ import annotations

import asyncio
import logging
import os
import random
from typing import Any

import kopf

from goreports.core import metrics
from goreports.core.bus.redis import RedisBus
from goreports.core.settings import Settings
from goreports.operator import _kubeclient
from goreports.operator import kube as _kube
from goreports.operator import reports  # noqa: F401  (registers the ReportRequest handlers)
from goreports.operator.context import OperatorContext
from goreports.operator.events_loop import run_events_loop
from goreports.core.stores import artifact_store_from_settings

log = logging.getLogger("goreports.operator")

_OPTIONAL_HANDLER_MODULES = ("goreports.operator.schedules", "goreports.operator.replay")


def _import_optional_handlers() -> None:
    import importlib

    for name in _OPTIONAL_HANDLER_MODULES:
        importlib.import_module(name)


@kopf.on.startup()
async def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    # Status is ours (folded from StageEvents), not kopf's: keep kopf's progress in annotations
    # and its diff-base out of status.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="goreports.io")
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(prefix="goreports.io")
    settings.persistence.finalizer = "goreports.io/cleanup"
    settings.posting.level = logging.WARNING
    settings.watching.server_timeout = 300
    settings.execution.max_workers = 20
    # Namespaces are given by name; listing them would need cluster-wide RBAC for nothing.
    settings.scanning.disabled = True
    asyncio.get_running_loop().set_default_executor(_kubeclient.api_executor())
    s = Settings.from_env()
    bus = RedisBus.from_settings(s)
    ctx = OperatorContext(settings=s, bus=bus, artifacts=artifact_store_from_settings(s),
                          namespaces=memo.get("namespaces"))
    memo.ctx = ctx
    stop = asyncio.Event()
    memo.stop = stop
    memo.tasks = [asyncio.create_task(run_events_loop(bus, stop, namespaces=ctx.namespaces,
                                                      on_final=_on_final(ctx)), name="events")]
    scaling_file = os.environ.get("GOREPORTS_SCALING_FILE")
    if scaling_file and os.path.exists(scaling_file):
        from goreports.operator import kube
        from goreports.operator.scaling import run_scaler
        from goreports.operator.scaling_logic import load_scaling_config

        config = load_scaling_config(scaling_file)
        namespace = (config.namespace or os.environ.get("GOREPORTS_POOL_NAMESPACE")
                     or os.environ.get("POD_NAMESPACE", "default"))
        interval = config.interval_seconds or float(os.environ.get("GOREPORTS_SCALING_INTERVAL", "2"))
        memo.tasks.append(asyncio.create_task(
            run_scaler(bus, kube.apps_api(), namespace, config, interval=interval, stop=stop),
            name="scaler"))
    reports.check_default_notify()
    memo.http = None
    ports = metrics.metrics_ports({"GOREPORTS_METRICS_PORT": os.environ.get("GOREPORTS_METRICS_PORT", "")})
    if ports:
        memo.http = await metrics.serve_http(ports)
        interval = float(os.environ.get("GOREPORTS_METRICS_INTERVAL") or 10)
        memo.tasks.append(asyncio.create_task(metrics.run_stream_gauges(bus, stop, interval),
                                              name="stream-gauges"))
        log.info("serving /metrics on port(s) %s", ", ".join(map(str, ports)))
    log.info("operator started (redis %s, prefix %s)", s.redis_addr, s.prefix)


def _quiet_phase_tracking(record: logging.LogRecord) -> bool:
    """kopf logs every watch-event handler call at INFO: one line per status write is noise."""
    return not (record.levelno <= logging.INFO and record.getMessage() == "Handler 'track_phase' succeeded.")


logging.getLogger("kopf.objects").addFilter(_quiet_phase_tracking)


@kopf.on.event(_kube.GROUP, _kube.VERSION, _kube.REPORTS)
async def track_phase(event: kopf.RawEvent, **_: Any) -> None:
    """Every watch event of a ReportRequest feeds `goreports_reports{namespace, phase}` and the
    cache of newest bodies."""
    from goreports.operator.schedule_logic import SCHEDULE_LABEL

    obj = dict(event.get("object") or {})
    metrics.observe_report_event(event.get("type"), obj, SCHEDULE_LABEL)
    meta = obj.get("metadata") or {}
    if event.get("type") == "DELETED":
        _kube.BODIES.forget(meta.get("namespace", ""), meta.get("name", ""))
    elif obj:
        _kube.BODIES.seen(obj)  # the status writer's first read (operator/body_cache.py)


def _on_final(ctx: OperatorContext) -> Any:
    async def cleanup(uid: str) -> None:
        """A report reached Succeeded/Failed: its datasets and staged files are no longer needed."""
        await ctx.bus.delete_data(uid)
        try:
            await ctx.artifacts.delete_report(uid)
        except Exception as e:
            log.warning("could not remove staged artifacts of %s: %s", uid, e)
    return cleanup


@kopf.on.cleanup()
async def shutdown(memo: kopf.Memo, **_: Any) -> None:
    memo.stop.set()
    for t in memo.tasks:
        t.cancel()
    await asyncio.gather(*memo.tasks, return_exceptions=True)
    if memo.get("http") is not None:
        await memo.http.cleanup()
    await memo.ctx.bus.close()


def run(namespaces: list[str], clusterwide: bool, peering: str | None, liveness: str | None) -> None:
    _import_optional_handlers()
    memo = kopf.Memo(namespaces=set(namespaces) if namespaces and not clusterwide else None)
    asyncio.run(kopf.operator(
        clusterwide=clusterwide, namespaces=namespaces, standalone=peering is None,
        peering_name=peering, liveness_endpoint=liveness, memo=memo,
        # With peering, kopf pauses every operator that meets a peer of the same priority: a
        # random priority per process leaves exactly one replica active (the highest).
        priority=random.randint(1, 1_000_000) if peering else None))
