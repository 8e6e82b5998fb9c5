"""The Kubernetes API calls the operator makes outside kopf handlers (status writes, Events).

kopf patches status for its own handlers; the StageEvent folder runs outside them, so it uses
the `kubernetes` client (sync, called in a thread) with optimistic concurrency on status.
"""
from __future__ import annotations

import asyncio
import logging
import socket
from datetime import datetime, timezone
from typing import Any

from kubernetes.client.rest import ApiException

from goreports.operator._kubeclient import apps_api, core_api, custom_api
from goreports.operator.body_cache import BodyCache

__all__ = ["apps_api", "core_api", "custom_api", "get_report", "replace_status",
           "post_event", "BODIES"]

GROUP = "goreports.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
REPORTS = "reportrequests"

log = logging.getLogger("goreports.operator")
_HOSTNAME = socket.gethostname()  # once: it is a system call, and Events are many
BODIES = BodyCache()  # fed by the watch (main.track_phase) and by every status write's answer


async def get_report(namespace: str, name: str) -> dict[str, Any] | None:
    """The object as the API server has it now (a GET)."""
    try:
        body: dict[str, Any] = await asyncio.to_thread(
            custom_api().get_namespaced_custom_object, GROUP, VERSION, namespace, REPORTS, name)
    except ApiException as e:
        if e.status == 404:
            BODIES.forget(namespace, name)
            return None
        raise
    BODIES.seen(body)
    return body


async def replace_status(body: dict[str, Any], status: dict[str, Any]) -> dict[str, Any]:
    """PUT the status subresource with the body's resourceVersion (409 on a concurrent write)."""
    obj = {"apiVersion": API_VERSION, "kind": body["kind"], "metadata": {
        "name": body["metadata"]["name"], "namespace": body["metadata"]["namespace"],
        "resourceVersion": body["metadata"]["resourceVersion"]}, "status": status}
    stored: dict[str, Any] = await asyncio.to_thread(
        custom_api().replace_namespaced_custom_object_status, GROUP, VERSION,
        body["metadata"]["namespace"], body["kind"].lower() + "s", body["metadata"]["name"], obj)
    if body["kind"] == "ReportRequest":
        BODIES.seen(stored)
    return stored


async def post_event(body: dict[str, Any], event_type: str, reason: str, message: str) -> None:
    """A core/v1 Event on the object, as `kubectl describe` shows them. Failures only log.

    The body is a plain dict, not the client's model objects: each model's constructor
    deep-copies the client Configuration, which made Events the operator's largest CPU cost in
    a burst of 1,000 reports (docs/reliability.md)."""
    meta = body["metadata"]
    now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    involved = {"apiVersion": body.get("apiVersion", API_VERSION),
                "kind": body.get("kind", "ReportRequest"), "name": meta["name"],
                "namespace": meta["namespace"], "uid": meta.get("uid"),
                "resourceVersion": meta.get("resourceVersion")}
    ev = {"apiVersion": "v1", "kind": "Event",
          "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
          "involvedObject": {k: v for k, v in involved.items() if v is not None},
          "type": event_type, "reason": reason, "message": message[:1024],
          "firstTimestamp": now, "lastTimestamp": now, "count": 1,
          "reportingComponent": "goreports-operator", "reportingInstance": _HOSTNAME,
          "source": {"component": "goreports-operator"}}
    try:
        await asyncio.to_thread(core_api().create_namespaced_event, meta["namespace"], ev)
    except ApiException as e:
        log.warning("could not post event %s on %s/%s: %s", reason, meta["namespace"], meta["name"], e.reason)
