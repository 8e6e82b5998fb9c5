"""The audit log: who asked for which report, and how it ended.

Why: platform teams must answer "who ran this report, when, and what came of it" long after the
ReportRequest is gone. Every accepted, rejected, cancelled, delivered or failed report (and every
replay of a dead letter) becomes one record, appended to the Redis stream `{prefix}:audit`
(capped with an approximate MAXLEN, so retention is bounded by count:
GOREPORTS_AUDIT_MAXLEN, default 100000) and written as one structured log line on the
`goreports.audit` logger, so log collectors keep it too. `goreports audit tail` reads the stream.

Record building is pure (`build_record`, `who_from_metadata`); `AuditLog` does the I/O.
Records never hold spec contents or secrets: only names, the actor, the outcome and a message.
"""
from __future__ import annotations

import json
import logging
import os
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Mapping

if TYPE_CHECKING:
    from goreports.core.bus.base import Bus

log = logging.getLogger("goreports.audit")

ACTIONS = ("accepted", "rejected", "cancelled", "deleted", "delivered", "failed", "replayed")
CREATED_BY = "goreports.io/created-by"
DEFAULT_MAXLEN = 100_000
# Field managers that are this system itself, not the person or tool that asked for a report.
_OWN_MANAGERS = ("kopf", "goreports")


def audit_key(prefix: str) -> str:
    return f"{prefix}:audit"


def maxlen_from_env(env: Mapping[str, str] | None = None) -> int:
    raw = (os.environ if env is None else env).get("GOREPORTS_AUDIT_MAXLEN", "")
    try:
        return max(1, int(raw)) if raw.strip() else DEFAULT_MAXLEN
    except ValueError:
        raise ValueError(f"GOREPORTS_AUDIT_MAXLEN={raw!r} is not a whole number") from None


def who_from_metadata(meta: Mapping[str, Any]) -> str:
    """The actor behind a ReportRequest.

    1. the `goreports.io/created-by` annotation (set by the API from the JWT subject, or by a
       ReportSchedule), else
    2. the field manager that created the object, from managedFields (Kubernetes records the
       client, e.g. `kubectl-client-side-apply`, not the user: RBAC audit logs hold the user),
    3. "unknown".
    """
    annotations = meta.get("annotations") or {}
    if annotations.get(CREATED_BY):
        return str(annotations[CREATED_BY])
    fields = [f for f in (meta.get("managedFields") or []) if isinstance(f, Mapping)]
    # Status writes (subresource) and our own bookkeeping are not the creator.
    candidates = [f for f in fields if not f.get("subresource")
                  and not str(f.get("manager", "")).startswith(_OWN_MANAGERS)]
    if not candidates:
        candidates = [f for f in fields if not f.get("subresource")]
    if candidates:
        first = min(candidates, key=lambda f: str(f.get("time") or ""))
        if first.get("manager"):
            return str(first["manager"])
    return "unknown"


def build_record(action: str, *, namespace: str, name: str, uid: str = "", who: str = "",
                 outcome: str = "", message: str = "", at: datetime | None = None,
                 **extra: str) -> dict[str, str]:
    """One audit record (flat text fields, as a Redis stream entry holds them)."""
    if action not in ACTIONS:
        raise ValueError(f"unknown audit action {action!r} (one of {', '.join(ACTIONS)})")
    when = (at or datetime.now(timezone.utc)).astimezone(timezone.utc)
    record = {"at": when.strftime("%Y-%m-%dT%H:%M:%S.%fZ"), "action": action,
              "namespace": namespace, "name": name, "uid": uid, "who": who or "unknown",
              "outcome": outcome, "message": message[:1000]}
    record.update({k: str(v) for k, v in extra.items() if v is not None and v != ""})
    return record


def record_from_body(action: str, body: Mapping[str, Any], *, outcome: str = "", message: str = "",
                     who: str | None = None, **extra: str) -> dict[str, str]:
    """A record about a ReportRequest object (dict or kopf Body)."""
    meta = body.get("metadata") or {}
    return build_record(action, namespace=str(meta.get("namespace", "")), name=str(meta.get("name", "")),
                        uid=str(meta.get("uid", "")), who=who or who_from_metadata(meta),
                        outcome=outcome, message=message, **extra)


def format_record(record: Mapping[str, str]) -> str:
    """One human line: `<at> <action> <ns>/<name> by <who>: <outcome> <message>`."""
    text = (f"{record.get('at', '')} {record.get('action', ''):<9} "
            f"{record.get('namespace', '')}/{record.get('name', '')} by {record.get('who', '')}")
    tail = " ".join(x for x in (record.get("outcome", ""), record.get("message", "")) if x)
    return f"{text}: {tail}" if tail else text


class AuditLog:
    """Append records to the audit stream (Redis: XADD with MAXLEN ~; in-process bus: a plain
    stream) and log each one as a JSON line."""

    def __init__(self, bus: "Bus", maxlen: int | None = None) -> None:
        self.bus = bus
        self.key = audit_key(bus.keys.prefix)
        self.maxlen = maxlen or maxlen_from_env()

    async def append(self, record: Mapping[str, str]) -> str:
        from goreports.core import metrics

        log.info("%s", json.dumps(record, sort_keys=True),
                 extra={"report": f"{record.get('namespace', '')}/{record.get('name', '')}"})
        metrics.AUDIT_RECORDS.labels(record.get("action", "")).inc()
        r = getattr(self.bus, "r", None)
        if r is None:
            return await self.bus.stream_add(self.key, json.dumps(dict(record)).encode())
        eid = await r.xadd(self.key, {k: v.encode() for k, v in record.items()},
                           maxlen=self.maxlen, approximate=True)
        return eid.decode() if isinstance(eid, bytes) else str(eid)

    async def safe_append(self, record: Mapping[str, str]) -> None:
        """Append, but never let the audit trail break the action it records (logs instead)."""
        try:
            await self.append(record)
        except Exception as e:
            log.error("could not append audit record %s for %s/%s: %s", record.get("action"),
                      record.get("namespace"), record.get("name"), e)


def decode_entry(fields: Mapping[bytes | str, bytes | str]) -> dict[str, str]:
    """A stream entry's fields -> the record (Redis gives bytes)."""
    out: dict[str, str] = {}
    for k, v in fields.items():
        key = k.decode() if isinstance(k, bytes) else k
        out[key] = v.decode() if isinstance(v, bytes) else v
    if set(out) == {"d"}:  # the in-process bus stores the JSON in one field
        return dict(json.loads(out["d"]))
    return out
