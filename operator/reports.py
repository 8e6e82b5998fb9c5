"""ReportRequest handlers: accept (validate, compile, publish once), deadlines, deletion.

Exactly once: the chain is published through a Redis marker set atomically with the XADD, so a
restarted operator, kopf re-running the handler, or a second replica never publish it twice.
The initial status is written before the chain is published, so the event folder never races
with it.

Audit: accepted / rejected here, cancelled (deleted before it finished) in `cleanup`, failed by
deadline in `deadline`; delivered / failed by a stage in the events loop (core/audit.py).

Catalog: a request that names a ReportTemplate (spec.template) is resolved once, here, and the
resolved spec is recorded in status.resolvedSpec with the initial status; afterwards (restarts,
the deadline timer) only that recorded spec is used (operator/templates.py).

Alerts: GOREPORTS_DEFAULT_NOTIFY (JSON of a `notify` step body, the chart's `notifyOnFailure`)
adds a `notify` step with `when: [failure]` to every spec that has none, before compiling.
"""
from __future__ import annotations

import functools
import json
import logging
import os
from datetime import datetime, timedelta, timezone
from typing import Any

import kopf

from goreports.core import audit, compiler, metrics, schema, templates
from goreports.core import status as status_mod
from goreports.core.errors import SpecError
from goreports.operator import kube
from goreports.operator import templates as op_templates
from goreports.operator.context import OperatorContext
from goreports.operator.status_writer import set_status

log = logging.getLogger("goreports.operator.reports")

FINAL = status_mod.FINAL_PHASES
DEFAULT_DEADLINE = 3600
DEFAULT_NOTIFY_ENV = "GOREPORTS_DEFAULT_NOTIFY"
DEFAULT_NOTIFY_STEP = "notify-on-failure"


@functools.lru_cache(maxsize=4)
def _parse_default_notify(raw: str) -> dict[str, Any] | None:
    if not raw.strip():
        return None
    try:
        body = json.loads(raw)
    except ValueError as e:
        raise ValueError(f"{DEFAULT_NOTIFY_ENV} is not JSON ({e}); set it to the body of a notify "
                         f"step, e.g. {{\"email\": {{...}}}} (chart: notifyOnFailure)") from None
    if not isinstance(body, dict) or not body:
        raise ValueError(f"{DEFAULT_NOTIFY_ENV} must be a JSON object (the body of a notify step)")
    return {**body, "when": ["failure"]}


def with_default_notify(doc: dict[str, Any]) -> dict[str, Any]:
    """The doc with the default failure notifier appended, when one is configured and the
    spec has no notify step of its own (the resource itself is never changed)."""
    body = _parse_default_notify(os.environ.get(DEFAULT_NOTIFY_ENV, ""))
    steps = list((doc.get("spec") or {}).get("steps") or [])
    if body is None or any(isinstance(s, dict) and "notify" in s for s in steps):
        return doc
    names = {s.get("name") for s in steps if isinstance(s, dict)}
    name, i = DEFAULT_NOTIFY_STEP, 2
    while name in names:
        name, i = f"{DEFAULT_NOTIFY_STEP}-{i}", i + 1
    return {**doc, "spec": {**doc["spec"], "steps": [*steps, {"name": name, "notify": body}]}}


def check_default_notify() -> None:
    """At startup: a broken default notifier would refuse every report, so refuse to start."""
    try:
        body = _parse_default_notify(os.environ.get(DEFAULT_NOTIFY_ENV, ""))
    except ValueError as e:
        raise kopf.PermanentError(str(e)) from None
    if body is None:
        return
    errors = [e for e in schema.report_errors({
        "apiVersion": kube.API_VERSION, "kind": "ReportRequest", "metadata": {"name": "check"},
        "spec": {"steps": [{"name": DEFAULT_NOTIFY_STEP, "notify": body}]}})
        if e.path.startswith("spec.steps[0]")]
    if errors:
        raise kopf.PermanentError(f"{DEFAULT_NOTIFY_ENV} is not a valid notify step: "
                                  + "; ".join(str(e).replace("spec.steps[0].", "", 1) for e in errors))


def _doc(body: kopf.Body, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": kube.API_VERSION, "kind": "ReportRequest",
            "metadata": {"name": body.metadata.name, "namespace": body.metadata.namespace,
                         "annotations": dict(body.metadata.annotations or {})},
            "spec": spec}


def _created(body: kopf.Body) -> datetime:
    ts = body.metadata.get("creationTimestamp")
    if ts:
        return datetime.fromisoformat(ts.replace("Z", "+00:00"))
    return datetime.now(timezone.utc)


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


# A failed accept (Redis or the API server briefly gone, e.g. a Redis restart leaving a dead
# pooled connection) is retried after a few seconds, not kopf's default minute: every step of
# it is idempotent (status only if unset, the chain published once under a marker).
ACCEPT_RETRY_SECONDS = 3.0


@kopf.on.resume(kube.GROUP, kube.VERSION, kube.REPORTS, backoff=ACCEPT_RETRY_SECONDS)
@kopf.on.create(kube.GROUP, kube.VERSION, kube.REPORTS, backoff=ACCEPT_RETRY_SECONDS)
async def accept(body: kopf.Body, memo: kopf.Memo, logger: logging.Logger, **_: Any) -> None:
    ctx: OperatorContext = memo.ctx
    status = dict(body.get("status") or {})
    if status.get("phase") in FINAL:
        return
    uid = body.metadata.uid
    raw = {"apiVersion": kube.API_VERSION, "kind": "ReportRequest", "metadata": dict(body.metadata),
           "spec": dict(body.spec)}
    spec = op_templates.recorded_spec(dict(body.spec), status)
    recorded: dict[str, Any] = {}  # status.resolvedSpec and status.template, to record
    try:
        if not spec:  # names a template not resolved yet: resolve it now, once
            spec, used = await op_templates.resolve(body.metadata.namespace, dict(body.spec))
            recorded = {"resolvedSpec": spec, "template": used}
        doc = with_default_notify(_doc(body, spec))
        schema.validate_report(doc)
        head = compiler.compile_report(doc, uid=uid, prefix=ctx.settings.prefix, now=_created(body))
    except SpecError as e:
        reason = getattr(e, "reason", "InvalidSpec")
        name = templates.template_name(dict(body.spec))
        prefix = f"ReportTemplate {name!r} resolved to an invalid spec: " \
            if name and reason == "InvalidSpec" else ""
        message = (prefix + "; ".join(str(x) for x in e.errors))[:1000]

        def invalid(st: dict[str, Any]) -> dict[str, Any]:
            st.update(phase="Failed", message=message, completionTime=_now(),
                      observedGeneration=body.metadata.get("generation", 1), **recorded)
            status_mod.set_condition(st, "Accepted", "False", reason, message, _now())
            status_mod.set_condition(st, "Ready", "False", reason, message, _now())
            return st

        await set_status(raw, invalid)
        await audit.AuditLog(ctx.bus).safe_append(
            audit.record_from_body("rejected", raw, outcome=reason, message=message))
        await kube.post_event(raw, "Warning", reason, message)
        logger.error("refused: %s", message)
        return
    chain = compiler.iter_chain(head)
    if not status.get("phase"):
        initial = status_mod.initial_status([(j.name, j.pattern) for j in chain],
                                            generation=body.metadata.get("generation", 1))
        initial.update(recorded)
        await set_status(raw, lambda st: st if st.get("phase") else initial)
    elif recorded:  # accepted before, but the resolution was never recorded: record it now
        await set_status(raw, lambda st: st if "resolvedSpec" in st else {**st, **recorded})
    marker = ctx.bus.keys.marker(uid, "published", "chain")
    if await ctx.bus.publish_once(head, marker):
        ctx.metrics_published += 1
        await audit.AuditLog(ctx.bus).safe_append(audit.record_from_body(
            "accepted", raw, outcome="Accepted", message=f"chain {compiler.describe_chain(head)}",
            trace_id=head.trace_id))
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
    spec = op_templates.recorded_spec(dict(body.spec), status)
    limit = int(spec.get("deadlineSeconds", DEFAULT_DEADLINE))
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

    new = await set_status(raw, expire) or {}
    expired = any(c.get("type") == "Ready" and c.get("reason") == "DeadlineExceeded"
                  for c in new.get("conditions", []))
    # One "failed" record per report, whoever notices the end first (see the events loop).
    if expired and await ctx.bus.set_marker(ctx.bus.keys.marker(body.metadata.uid, "audit", "final"),
                                            ttl=ctx.settings.report_ttl):
        metrics.report_finished(new)
        await audit.AuditLog(ctx.bus).safe_append(audit.record_from_body(
            "failed", raw, outcome="DeadlineExceeded", message=message))


@kopf.on.delete(kube.GROUP, kube.VERSION, kube.REPORTS)
async def cleanup(body: kopf.Body, memo: kopf.Memo, logger: logging.Logger, retry: int = 0,
                  **_: Any) -> None:
    """Finalizer: stop in-flight work, remove data streams, markers and staged artifacts."""
    ctx: OperatorContext = memo.ctx
    uid = body.metadata.uid
    await ctx.bus.set_marker(ctx.bus.keys.cancelled(uid), "Deleted: the ReportRequest was deleted",
                             ttl=ctx.settings.report_ttl)
    running = await ctx.bus.scan_keys(ctx.bus.keys.marker(uid, "lock", "*"))
    if running and retry < 60:
        # Steps still hold their lease: they see the cancel marker at their next batch and stop.
        # Keep the finalizer until they have, so nothing they write outlives the cleanup.
        raise kopf.TemporaryError(f"waiting for {len(running)} running step(s) to stop", delay=1)
    removed = await ctx.bus.delete_report(uid)
    try:
        await ctx.artifacts.delete_report(uid)
    except Exception as e:  # the store may be unreachable; its own TTL/lifecycle cleans later
        logger.warning("could not remove staged artifacts of %s: %s", uid, e)
    logger.info("cleaned %d key(s) of report %s", removed, uid)
    # Last: kopf runs the handler again if anything above fails, and one record is enough.
    phase = (body.get("status") or {}).get("phase", "")
    await audit.AuditLog(ctx.bus).safe_append(audit.record_from_body(
        "deleted" if phase in FINAL else "cancelled", body, outcome=phase or "Pending",
        message="the ReportRequest was deleted" + ("" if phase in FINAL else " before it finished")))
