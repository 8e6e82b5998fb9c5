"""The ReportSchedule controller: a kopf timer per schedule that creates ReportRequests on time.

Why: this is the I/O edge of scheduling. Every tick it lists the schedule's runs, asks
`schedule_logic.plan` what to do at `clock.now()`, deletes / creates / prunes ReportRequests with
the `kubernetes` client (in a thread), posts Events and returns the status through kopf's
`patch`. Being a timer (not an event handler) it needs no watch on ReportRequests, and a restart
loses nothing: the state is in `status` and in the runs' deterministic names.

Tick period: env GOREPORTS_SCHEDULE_INTERVAL (seconds, default 5), read at import.
"""
from __future__ import annotations

import asyncio
import copy
import dataclasses
import json
import logging
import os
from typing import Any, Mapping

import kopf
import urllib3
from kubernetes.client import V1DeleteOptions
from kubernetes.client.exceptions import ApiException

from goreports.operator import clock
from goreports.operator import schedule_logic as logic
from goreports.operator._kubeclient import custom_api

INTERVAL_ENV = "GOREPORTS_SCHEDULE_INTERVAL"
INTERVAL = float(os.environ.get(INTERVAL_ENV) or 5.0)

# Errors worth retrying at the next tick (API server away, throttled, overloaded).
_RETRY_STATUSES = frozenset({0, 429, 500, 502, 503, 504})


class CreateFailed(Exception):
    """A run cannot be created for a reason a retry will not fix by itself (name taken)."""


def _list_children(namespace: str, name: str, uid: str) -> list[dict[str, Any]]:
    result = custom_api().list_namespaced_custom_object(
        logic.GROUP, logic.VERSION, namespace, logic.CHILD_PLURAL,
        label_selector=f"{logic.SCHEDULE_LABEL}={name}")
    # A schedule deleted and re-created under the same name must not adopt the old one's runs.
    return [obj for obj in result.get("items", []) if logic.owned_by(obj, uid)]


def _delete_child(namespace: str, name: str) -> None:
    try:
        custom_api().delete_namespaced_custom_object(
            logic.GROUP, logic.VERSION, namespace, logic.CHILD_PLURAL, name,
            body=V1DeleteOptions(propagation_policy="Background"))
    except ApiException as e:
        if e.status != 404:  # already gone: fine
            raise


def _create_child(manifest: dict[str, Any], owner_uid: str) -> dict[str, Any]:
    """Create a run; an existing run of this schedule with that name is returned instead."""
    meta = manifest["metadata"]
    try:
        return dict(custom_api().create_namespaced_custom_object(
            logic.GROUP, logic.VERSION, meta["namespace"], logic.CHILD_PLURAL, manifest))
    except ApiException as e:
        if e.status != 409:
            raise
    existing = dict(custom_api().get_namespaced_custom_object(
        logic.GROUP, logic.VERSION, meta["namespace"], logic.CHILD_PLURAL, meta["name"]))
    if not logic.owned_by(existing, owner_uid):
        raise CreateFailed(f"ReportRequest {meta['name']} already exists and does not belong to "
                           f"this schedule; delete or rename it")
    return existing


def _api_message(e: ApiException) -> str:
    """The API server's own message (its Status body), not the raw HTTP dump."""
    try:
        return str(json.loads(e.body or "{}").get("message") or e.reason)
    except ValueError:
        return str(e.reason)


def _describe(e: BaseException) -> str:
    """An error in one line for logs and conditions (never the raw HTTP dump with headers)."""
    if isinstance(e, ApiException):
        return f"HTTP {e.status}: {_api_message(e)}"
    return str(e) or type(e).__name__


def _retryable(e: BaseException) -> bool:
    if isinstance(e, ApiException):
        return e.status in _RETRY_STATUSES
    return isinstance(e, (urllib3.exceptions.HTTPError, OSError))


@kopf.timer(logic.GROUP, logic.VERSION, logic.PLURAL, id="schedule", interval=INTERVAL,
            initial_delay=0)
async def tick(body: kopf.Body, patch: kopf.Patch, logger: logging.Logger | logging.LoggerAdapter,
               **_: Any) -> None:
    """One reconciliation of one ReportSchedule."""
    # A snapshot: kopf updates the live body in place when watch events arrive mid-tick.
    schedule: dict[str, Any] = copy.deepcopy(dict(body))
    schedule.setdefault("status", {})
    meta = schedule["metadata"]
    namespace, name, uid = meta["namespace"], meta["name"], meta["uid"]
    now = clock.now()
    try:
        objs = await asyncio.to_thread(_list_children, namespace, name, uid)
    except Exception as e:
        if _retryable(e):
            raise kopf.TemporaryError(f"listing the runs of {namespace}/{name} failed: "
                                      f"{_describe(e)}", delay=INTERVAL) from e
        raise
    children = [logic.child_from_body(o) for o in objs]
    p = logic.plan(schedule, children, now)
    after = list(children)
    events = list(p.events)
    if p.create is not None:
        # The run counts as scheduled only once its ReportRequest exists.
        p.last_schedule_time = logic.parse_time(schedule["status"].get("lastScheduleTime"))
    step = ""
    try:
        for victim in p.replace:
            step = f"delete the active run {victim} (concurrencyPolicy Replace)"
            await asyncio.to_thread(_delete_child, namespace, victim)
            after = [dataclasses.replace(c, deleting=True) if c.name == victim else c
                     for c in after]
        if p.create is not None:
            run_name = p.create["metadata"]["name"]
            at = logic.format_time(p.due) if p.due else "?"
            step = f"create the run {run_name} scheduled at {at}"
            created = await asyncio.to_thread(_create_child, p.create, uid)
            p.last_schedule_time = p.due
            after.append(logic.child_from_body(created))
            events.append(logic.Event("Normal", "Created", f"Created ReportRequest {run_name} "
                                                           f"for the run scheduled at {at}"))
            logger.info("Created ReportRequest %s for the run scheduled at %s.", run_name, at)
        for old in p.prune:
            step = f"delete the finished run {old} (history limits)"
            await asyncio.to_thread(_delete_child, namespace, old)
            after = [dataclasses.replace(c, deleting=True) if c.name == old else c for c in after]
        if p.prune:
            events.append(logic.Event("Normal", "Pruned",
                                      f"Deleted finished runs beyond the history limits: "
                                      f"{', '.join(p.prune)}"))
    except (CreateFailed, ApiException, urllib3.exceptions.HTTPError, OSError) as e:
        if _retryable(e):
            # Nothing new is recorded: the same run is due again at the next tick.
            raise kopf.TemporaryError(f"ReportSchedule {namespace}/{name}: cannot {step}: "
                                      f"{_describe(e)}", delay=INTERVAL) from e
        message = _describe(e)
        reason = "CreateFailed" if step.startswith("create") else "DeleteFailed"
        p.ready = ("False", reason, f"cannot {step}: {message}; tried again every "
                                    f"{INTERVAL:g}s")
        events = [ev for ev in events if ev.reason in {"Created", "Pruned"}]
        logger.warning("ReportSchedule %s/%s: %s", namespace, name, p.ready[2])

    new_status = logic.fold_status(schedule, after, p, now)
    changes = logic.status_patch(schedule["status"], new_status)
    if changes:
        patch.status.update(changes)
    _post_events(body, schedule, new_status, events)


def _ready(status: Mapping[str, Any]) -> tuple[str, str]:
    for c in status.get("conditions") or []:
        if c.get("type") == "Ready":
            return c.get("status", ""), c.get("reason", "")
    return "", ""


def _post_events(body: kopf.Body, schedule: Mapping[str, Any], new_status: Mapping[str, Any],
                 events: list[logic.Event]) -> None:
    # A broken schedule is re-checked every tick: tell about it once, on the transition.
    old_ready, new_ready = _ready(schedule["status"]), _ready(new_status)
    if new_ready != old_ready and new_ready[0] == "False":
        message = next(c.get("message", "") for c in new_status["conditions"]
                       if c.get("type") == "Ready")
        events.append(logic.Event("Warning", new_ready[1], message))
    # kopf.event, not kopf.info: these are deliberate, and must not depend on the posting level
    # the operator sets to silence kopf's own per-handler events.
    for ev in events:
        kopf.event(body, type=ev.type, reason=ev.reason, message=ev.message)
