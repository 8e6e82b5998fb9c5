"""Fold StageEvents into a ReportRequest's status on the API server, and post Events.

Read (first the newest body the operator has seen, kube.BODIES), fold (pure, core.status), write
with the object's resourceVersion; on a conflict GET and fold again. Events that belong to a
deleted or re-created object (uid mismatch) are dropped.
"""
from __future__ import annotations

import copy
import logging
from typing import Any, Iterable

from kubernetes.client.rest import ApiException

from goreports.core import status as status_mod
from goreports.operator import kube
from goreports.operator.transitions import transitions
from goreports.proto import events_pb2

log = logging.getLogger("goreports.operator.status")


async def _read(namespace: str, name: str, *, first: bool) -> tuple[dict[str, Any] | None, bool]:
    """(body, whether it came from the cache): the newest seen body on a first try, else a GET."""
    if first:
        body = kube.BODIES.get(namespace, name)
        if body is not None:
            return body, True
    return await kube.get_report(namespace, name), False


async def apply_events(namespace: str, name: str, uid: str,
                       events: Iterable[events_pb2.StageEvent], attempts: int = 8) -> dict[str, Any] | None:
    """Fold the events into the report's status: the object as written (or as it was, when the
    events changed nothing), None when it is gone or the conflicts did not end."""
    events = list(events)
    for attempt in range(attempts):
        body, cached = await _read(namespace, name, first=attempt == 0)
        if body is None or body["metadata"].get("uid") != uid:
            if cached:
                continue  # a stale or missing entry proves nothing: ask the API server
            return None
        old = body.get("status") or {}
        new = old
        for ev in events:
            new = status_mod.fold(new, ev)
        if new == old:
            if cached:
                continue  # "nothing to change" must hold for the object as it is now
            return body
        new["observedGeneration"] = body["metadata"].get("generation", 1)
        try:
            stored = await kube.replace_status(body, new)
        except ApiException as e:
            if e.status == 409:
                continue
            if e.status == 404:
                return None
            raise
        for etype, reason, message in transitions(old, new):
            await kube.post_event(body, etype, reason, message)
        return {**stored, "status": new}
    log.warning("gave up folding %d event(s) into %s/%s after %d conflicts", len(events), namespace,
                name, attempts)
    return None


async def set_status(body: dict[str, Any], mutate: Any, attempts: int = 8) -> dict[str, Any] | None:
    """Apply `mutate(status) -> status` with conflict retries (for the operator's own changes)."""
    ns, name, uid = body["metadata"]["namespace"], body["metadata"]["name"], body["metadata"]["uid"]
    for attempt in range(attempts):
        fresh, cached = await _read(ns, name, first=attempt == 0)
        if fresh is None or fresh["metadata"].get("uid") != uid:
            if cached:
                continue
            return None
        old = fresh.get("status") or {}
        new = mutate(copy.deepcopy(old))
        if new == old:
            if cached:
                continue  # see apply_events: only the object as it is now may say "no change"
            return old
        try:
            await kube.replace_status(fresh, new)
        except ApiException as e:
            if e.status == 409:
                continue
            raise
        for etype, reason, message in transitions(old, new):
            await kube.post_event(fresh, etype, reason, message)
        return new
    return None
