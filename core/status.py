"""Folding StageEvents into a ReportRequest `status` (a pure function, no I/O).

The operator applies it to the resource; `goreports run` applies it in memory. Folding is
idempotent and order-tolerant enough for at-least-once events: a step never goes back from a
final state, rows only grow within an attempt, artifacts are keyed by (step, name).
"""
from __future__ import annotations

import copy
from datetime import datetime, timezone
from typing import Any

from goreports.proto import events_pb2

E = events_pb2

STATE_NAMES = {
    E.STEP_STATE_PENDING: "Pending", E.STEP_STATE_RUNNING: "Running",
    E.STEP_STATE_SUCCEEDED: "Succeeded", E.STEP_STATE_RETRYING: "Retrying",
    E.STEP_STATE_FAILED: "Failed", E.STEP_STATE_CANCELLED: "Cancelled",
}
FINAL_STEP_STATES = {"Succeeded", "Failed"}
FINAL_PHASES = {"Succeeded", "Failed"}

Status = dict[str, Any]


def _ts(event: events_pb2.StageEvent) -> str:
    if event.HasField("at"):
        return event.at.ToDatetime(tzinfo=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def initial_status(step_names: list[tuple[str, str]], generation: int = 1,
                   now: str | None = None) -> Status:
    """Status of an accepted report: every step Pending. `step_names` = [(name, pattern)]."""
    now = now or datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    status: Status = {
        "phase": "Pending", "currentStep": step_names[0][0] if step_names else "", "rows": 0,
        "observedGeneration": generation, "message": "accepted; waiting for workers",
        "steps": [{"name": n, "pattern": p, "state": "Pending", "rows": 0, "attempts": 0}
                  for n, p in step_names],
        "artifacts": [], "conditions": [],
    }
    set_condition(status, "Accepted", "True", "Compiled", "spec validated and job chain published",
                  now, generation)
    set_condition(status, "Ready", "False", "Pending", "waiting for the first step", now, generation)
    return status


def set_condition(status: Status, ctype: str, value: str, reason: str, message: str, now: str,
                  generation: int | None = None) -> None:
    """Set a condition the Kubernetes way: lastTransitionTime changes only when status does."""
    gen = generation if generation is not None else status.get("observedGeneration", 1)
    conds = status.setdefault("conditions", [])
    for c in conds:
        if c["type"] == ctype:
            if c["status"] != value:
                c["lastTransitionTime"] = now
            c.update(status=value, reason=reason, message=message[:1024], observedGeneration=gen)
            return
    conds.append({"type": ctype, "status": value, "reason": reason, "message": message[:1024],
                  "lastTransitionTime": now, "observedGeneration": gen})


def fold(status: Status, event: events_pb2.StageEvent) -> Status:
    """Return the status after `event` (the input is not modified)."""
    s = copy.deepcopy(status)
    if s.get("phase") in FINAL_PHASES:
        return _late(s, event)
    now = _ts(event)
    state = STATE_NAMES.get(event.state, "Pending")
    steps = s.setdefault("steps", [])
    step = next((x for x in steps if x["name"] == event.step), None)
    if step is None:
        step = {"name": event.step, "pattern": event.pattern, "state": "Pending", "rows": 0, "attempts": 0}
        steps.append(step)
    if step["state"] in FINAL_STEP_STATES:
        return s
    step["attempts"] = max(step.get("attempts", 0), event.attempt)
    if state == "Running":
        step["state"] = "Running"
        step.setdefault("startedAt", now)
        step["rows"] = max(step.get("rows", 0), event.rows)
        s.setdefault("startTime", now)
        if s["phase"] == "Pending":
            s["phase"] = "Running"
        s["message"] = f"running {event.step}"
    elif state == "Retrying":
        step["state"] = "Retrying"
        step["message"] = event.error
        s["message"] = f"{event.step} attempt {event.attempt} failed, retrying: {event.error}"
    elif state == "Succeeded":
        _step_succeeded(step, event, now)
        arts = {(a.get("step"), a["name"]): a for a in s.get("artifacts", [])}
        for a in event.artifacts:
            arts[(event.step, a.name)] = _artifact(event.step, a)
        s["artifacts"] = list(arts.values())
        if event.step_count and event.step_index == event.step_count - 1:
            s.update(phase="Succeeded", completionTime=now, message="all steps succeeded")
            set_condition(s, "Ready", "True", "Succeeded", _summary(s), now)
    elif state == "Failed":
        step.update(state="Failed", message=event.error, finishedAt=now)
        s.update(phase="Failed", completionTime=now, message=f"{event.step}: {event.error}")
        set_condition(s, "Ready", "False", event.reason or "StageFailed",
                      f"{event.step} ({event.pattern}): {event.error}", now)
    elif state == "Cancelled":
        step.update(state="Cancelled", message=event.error)
    s.setdefault("startTime", now)
    if s["phase"] == "Running":
        set_condition(s, "Ready", "False", "Running", s["message"], now)
    s["currentStep"] = _current_step(s)
    s["rows"] = max((x.get("rows", 0) for x in steps), default=0)
    return s


def _step_succeeded(step: dict[str, Any], event: events_pb2.StageEvent, now: str) -> None:
    step.update(state="Succeeded", rows=max(step.get("rows", 0), event.rows), finishedAt=now)
    step.setdefault("startedAt", now)
    step.pop("message", None)
    if event.message:
        step["message"] = event.message
    if event.duration_seconds:
        step["durationSeconds"] = round(event.duration_seconds, 3)


def _late(s: Status, event: events_pb2.StageEvent) -> Status:
    """An event after the report is final. Only one kind still counts: a streaming producer
    (a collector) sends its own Succeeded, with its final row count, when its stage returns,
    which can be after its readers and the last step are done; a Succeeded report would
    otherwise show that step Running with a partial count for ever. The phase, its time and
    its conditions stay as they are."""
    if s.get("phase") != "Succeeded" or STATE_NAMES.get(event.state) != "Succeeded":
        return s
    step = next((x for x in s.get("steps", []) if x["name"] == event.step), None)
    if step is None or step["state"] in FINAL_STEP_STATES:
        return s
    now = _ts(event)
    _step_succeeded(step, event, now)
    s["rows"] = max((x.get("rows", 0) for x in s.get("steps", [])), default=0)
    s["currentStep"] = _current_step(s)
    for c in s.get("conditions", []):
        if c.get("type") == "Ready" and c.get("reason") == "Succeeded":
            c["message"] = _summary(s)[:1024]
    return s


def _artifact(step: str, a: events_pb2.Artifact) -> dict[str, Any]:
    out: dict[str, Any] = {"step": step, "name": a.name, "location": a.location, "size": a.size,
                           "sha256": a.sha256}
    if a.content_type:
        out["contentType"] = a.content_type
    if a.url:
        out["url"] = a.url
    return out


def _current_step(s: Status) -> str:
    for step in s.get("steps", []):
        if step["state"] not in ("Succeeded",):
            return str(step["name"])
    return ""


def _summary(s: Status) -> str:
    arts = s.get("artifacts", [])
    return f"{s.get('rows', 0)} rows, {len(arts)} artifact(s) delivered"
