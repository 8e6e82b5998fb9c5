"""ReportRequest handlers: accept (validate, compile, publish once), deadlines, deletion.

Exactly once: the chain is published through a Redis marker set atomically with the XADD, so a
restarted operator, kopf re-running the handler, or a second replica never publish it twice.
The initial status is written before the chain is published, so the event folder never races
with it.
"""
from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone
from typing import Any

import kopf

from goreports.core import compiler, schema
from goreports.core import status as status_mod
from goreports.core.errors import SpecError
from goreports.operator import kube
from goreports.operator.context import OperatorContext
from goreports.operator.status_writer import set_status

log = logging.getLogger("goreports.operator.reports")

FINAL = status_mod.FINAL_PHASES
DEFAULT_DEADLINE = 3600


def _doc(body: kopf.Body) -> dict[str, Any]:
    return {"apiVersion": kube.API_VERSION, "kind": "ReportRequest",
            "metadata": {"name": body.metadata.name, "namespace": body.metadata.namespace},
            "spec": dict(body.spec)}


def _created(body: kopf.Body) -> datetime:
    ts = body.metadata.get("creationTimestamp")
    if ts:
        return datetime.fromisoformat(ts.replace("Z", "+00:00"))
    return datetime.now(timezone.utc)


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@kopf.on.resume(kube.GROUP, kube.VERSION, kube.REPORTS)
@kopf.on.create(kube.GROUP, kube.VERSION, kube.REPORTS)
async def accept(body: kopf.Body, memo: kopf.Memo, logger: logging.Logger, **_: Any) -> None:
    ctx: OperatorContext = memo.ctx
    status = dict(body.get("status") or {})
    if status.get("phase") in FINAL:
        return
    uid = body.metadata.uid
    raw = {"apiVersion": kube.API_VERSION, "kind": "ReportRequest", "metadata": dict(body.metadata),
           "spec": dict(body.spec)}
    try:
        doc = _doc(body)
        schema.validate_report(doc)
        head = compiler.compile_report(doc, uid=uid, prefix=ctx.settings.prefix, now=_created(body))
    except SpecError as e:
        message = "; ".join(str(x) for x in e.errors)[:1000]

        def invalid(st: dict[str, Any]) -> dict[str, Any]:
            st.update(phase="Failed", message=message, completionTime=_now(),
                      observedGeneration=body.metadata.get("generation", 1))
            status_mod.set_condition(st, "Accepted", "False", "InvalidSpec", message, _now())
            status_mod.set_condition(st, "Ready", "False", "InvalidSpec", message, _now())
            return st

        await set_status(raw, invalid)
        await kube.post_event(raw, "Warning", "InvalidSpec", message)
        logger.error("refused: %s", message)
        return
    chain = compiler.iter_chain(head)
    if not status.get("phase"):
        initial = status_mod.initial_status([(j.name, j.pattern) for j in chain],
                                            generation=body.metadata.get("generation", 1))
        await set_status(raw, lambda st: st if st.get("phase") else initial)
    marker = ctx.bus.keys.marker(uid, "published", "chain")
    if await ctx.bus.publish_once(head, marker):
        ctx.metrics_published += 1
        await kube.post_event(raw, "Normal", "Accepted",
                              f"chain {compiler.describe_chain(head)} published")
        logger.info("published chain %s", compiler.describe_chain(head))
    else:
        logger.info("chain already published; nothing to do")


@kopf.timer(kube.GROUP, kube.VERSION, kube.REPORTS, interval=5.0, initial_delay=5.0, idle=0)
async def deadline(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    """Fail a report that outlived spec.deadlineSeconds; workers drop its remaining jobs."""
    status = body.get("status") or {}
    if status.get("phase") in FINAL or not status.get("phase"):
        return
    limit = int(body.spec.get("deadlineSeconds", DEFAULT_DEADLINE))
    if datetime.now(timezone.utc) < _created(body) + timedelta(seconds=limit):
        return
    ctx: OperatorContext = memo.ctx
    message = f"the report did not finish within deadlineSeconds={limit}"
    await ctx.bus.set_marker(ctx.bus.keys.cancelled(body.metadata.uid), f"DeadlineExceeded: {message}",
                             ttl=ctx.settings.report_ttl)
    raw = {"apiVersion": kube.API_VERSION, "kind": "ReportRequest", "metadata": dict(body.metadata)}

    def expire(st: dict[str, Any]) -> dict[str, Any]:
        if st.get("phase") in FINAL:
            return st
        now = _now()
        st.update(phase="Failed", message=message, completionTime=now)
        for step in st.get("steps", []):
            if step.get("state") not in ("Succeeded", "Failed"):
                step["state"] = "Cancelled"
        status_mod.set_condition(st, "Ready", "False", "DeadlineExceeded", message, now)
        return st

    await set_status(raw, expire)


@kopf.on.delete(kube.GROUP, kube.VERSION, kube.REPORTS)
async def cleanup(body: kopf.Body, memo: kopf.Memo, logger: logging.Logger, **_: Any) -> None:
    """Finalizer: stop in-flight work, remove data streams, markers and staged artifacts."""
    ctx: OperatorContext = memo.ctx
    uid = body.metadata.uid
    await ctx.bus.set_marker(ctx.bus.keys.cancelled(uid), "Deleted: the ReportRequest was deleted",
                             ttl=ctx.settings.report_ttl)
    removed = await ctx.bus.delete_report(uid)
    try:
        await ctx.artifacts.delete_report(uid)
    except Exception as e:  # the store may be unreachable; its own TTL/lifecycle cleans later
        logger.warning("could not remove staged artifacts of %s: %s", uid, e)
    logger.info("cleaned %d key(s) of report %s", removed, uid)
