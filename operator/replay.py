"""Replay of a dead-lettered job: turn a Failed ReportRequest back into a Running one.

Why a handler: `goreports dlq replay` is not the operator, and the operator alone writes
status. Status folding never leaves a final phase (core.status.fold), so before a replayed job
runs, its report must be Running again, or its events would be ignored. The CLI asks for that
by setting the annotation `goreports.io/replay=<timestamp>` (metadata only: the CRD's
immutability rule covers `spec`, not annotations); this handler resets the status:

- phase Running, no completionTime, message naming the replay;
- Failed and Cancelled steps back to Pending (they run again; attempts are kept);
- condition Ready=Unknown, reason Replayed;
- the "final" audit marker removed, so the new outcome is audited and counted again.

The CLI waits for the phase to leave Failed, then clears the cancelled marker and re-publishes
the job. Only a Failed report is reset; a replay annotation on any other report changes
nothing (an idempotent no-op when kopf calls the handler again).

Why a watch-event handler and not `on.field`/`on.update`: kopf strips every annotation of its
own storage prefix (`goreports.io/`) from what it compares, so a change of this annotation is
never a change to kopf. The handler sees every event of a Failed report carrying the annotation
(a filter, so kopf calls nothing for the others) and acts once per annotation value (a Redis
marker shared by the replicas): events repeat, and a report that fails again after a replay
keeps the old value, which must not reset it again.
"""
from __future__ import annotations

import logging
from datetime import datetime, timezone
from typing import Any

import kopf

from goreports.core import status as status_mod
from goreports.operator import kube
from goreports.operator.context import OperatorContext
from goreports.operator.status_writer import set_status

log = logging.getLogger("goreports.operator.replay")

ANNOTATION = "goreports.io/replay"
REPLAYED_STEP_STATES = ("Failed", "Cancelled")


def reset_for_replay(status: dict[str, Any], stamp: str, now: str) -> dict[str, Any]:
    """The status of a Failed report made ready for a replay (pure; unchanged if not Failed)."""
    if status.get("phase") != "Failed":
        return status
    out = dict(status)
    steps = [dict(s) for s in out.get("steps", [])]
    again = []
    for s in steps:
        if s.get("state") in REPLAYED_STEP_STATES:
            again.append(s["name"])
            s["state"] = "Pending"
            for k in ("finishedAt", "message"):
                s.pop(k, None)
    out["steps"] = steps
    out.pop("completionTime", None)
    message = f"replayed ({stamp}): {', '.join(again) or 'no step'} queued again"
    out.update(phase="Running", message=message,
               currentStep=next((s["name"] for s in steps if s.get("state") != "Succeeded"), ""))
    out["conditions"] = [dict(c) for c in out.get("conditions", [])]
    status_mod.set_condition(out, "Ready", "Unknown", "Replayed", message, now)
    return out


def _failed(body: kopf.Body, **_: Any) -> bool:
    return (body.get("status") or {}).get("phase") == "Failed"


@kopf.on.event(kube.GROUP, kube.VERSION, kube.REPORTS, annotations={ANNOTATION: kopf.PRESENT},
               when=_failed)
async def replay(body: kopf.Body, memo: kopf.Memo, logger: logging.Logger, **_: Any) -> None:
    ctx: OperatorContext = memo.ctx
    stamp = str(body.metadata.annotations.get(ANNOTATION, ""))
    uid = body.metadata.uid
    marker = ctx.bus.keys.marker(uid, "replay", stamp)
    if not stamp or not await ctx.bus.set_marker(marker, ttl=ctx.settings.report_ttl):
        return  # this replay was handled already
    raw = {"apiVersion": kube.API_VERSION, "kind": "ReportRequest", "metadata": dict(body.metadata)}
    now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    reset = False

    def mutate(st: dict[str, Any]) -> dict[str, Any]:
        nonlocal reset
        out = reset_for_replay(st, stamp, now)
        reset = out is not st
        return out

    try:
        result = await set_status(raw, mutate)
    except Exception:
        await ctx.bus.delete_marker(marker)  # `goreports dlq replay` times out; a new run retries
        raise
    if result is None or not reset:
        logger.info("replay %s: the report is not Failed any more; nothing to reset", stamp)
        return
    await ctx.bus.delete_marker(ctx.bus.keys.marker(uid, "audit", "final"))
    await kube.post_event(raw, "Normal", "Replayed", result.get("message", "replayed"))
    logger.info("status reset for replay %s", stamp)
