"""Fold StageEvents into a ReportRequest's status on the API server, and post Events.

Read, fold (pure, core.status), write with the object's resourceVersion; on a conflict read and
fold again. Events that belong to a deleted or re-created object (uid mismatch) are dropped.
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


async def apply_events(namespace: str, name: str, uid: str,
                       events: Iterable[events_pb2.StageEvent], attempts: int = 8) -> dict[str, Any] | None:
    events = list(events)
    for _ in range(attempts):
        body = await kube.get_report(namespace, name)
        if body is None or body["metadata"].get("uid") != uid:
            return None
        old = body.get("status") or {}
        new = old
        for ev in events:
            new = status_mod.fold(new, ev)
        if new == old:
            return old
        new["observedGeneration"] = body["metadata"].get("generation", 1)
        try:
            await kube.replace_status(body, new)
        except ApiException as e:
            if e.status == 409:
                continue
            if e.status == 404:
                return None
            raise
        for etype, reason, message in transitions(old, new):
            await kube.post_event(body, etype, reason, message)
        return new
    log.warning("gave up folding %d event(s) into %s/%s after %d conflicts", len(events), namespace,
                name, attempts)
    return None


async def set_status(body: dict[str, Any], mutate: Any, attempts: int = 8) -> dict[str, Any] | None:
    """Apply `mutate(status) -> status` with conflict retries (for the operator's own changes)."""
    ns, name, uid = body["metadata"]["namespace"], body["metadata"]["name"], body["metadata"]["uid"]
    for _ in range(attempts):
        fresh = await kube.get_report(ns, name)
        if fresh is None or fresh["metadata"].get("uid") != uid:
            return None
        old = fresh.get("status") or {}
        new = mutate(copy.deepcopy(old))
        if new == old:
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
