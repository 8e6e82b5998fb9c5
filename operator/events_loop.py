"""The StageEvent consumer: reads the events stream as a consumer group and writes status.

Several operator replicas share the stream (each event reaches one of them); events of a replica
that died are reclaimed after a visibility timeout. An event is acknowledged only after its
status write, so a crash re-folds it later, which folding tolerates.

When a report reaches a final phase the loop records it once (a Redis marker shared by the
replicas): an audit record (delivered / failed) and the `goreports_reports_finished` metrics.
"""
from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections import defaultdict

from typing import Any, Awaitable, Callable

from google.protobuf.message import DecodeError

from goreports.core import audit, metrics
from goreports.core.bus.base import Bus
from goreports.core.status import FINAL_PHASES
from goreports.operator.status_writer import apply_events
from goreports.proto import events_pb2

log = logging.getLogger("goreports.operator.events")

GROUP = "operator"


async def run_events_loop(bus: Bus, stop: asyncio.Event, *, namespaces: set[str] | None = None,
                          batch: int = 200, reclaim_ms: int = 30_000,
                          on_final: Callable[[str], Awaitable[None]] | None = None) -> None:
    consumer = f"{socket.gethostname()}-{os.getpid()}"
    key = bus.keys.events()
    last_reclaim = 0.0
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        try:
            entries = await bus.stream_group_read(key, GROUP, consumer, batch, 500)
            if loop.time() - last_reclaim > reclaim_ms / 3000:
                last_reclaim = loop.time()
                entries += await bus.stream_group_reclaim(key, GROUP, consumer, reclaim_ms, batch)
            if entries:
                await _process(bus, key, entries, namespaces, on_final)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("folding events failed; retrying in 1s")
            await asyncio.sleep(1)


async def _process(bus: Bus, key: str, entries: list[tuple[str, bytes]],
                   namespaces: set[str] | None,
                   on_final: Callable[[str], Awaitable[None]] | None) -> None:
    by_report: dict[tuple[str, str, str], list[tuple[str, events_pb2.StageEvent]]] = defaultdict(list)
    skip: list[str] = []
    for entry_id, data in entries:
        try:
            ev = events_pb2.StageEvent.FromString(data)
        except DecodeError as e:  # not an event: left pending it would stall every batch
            log.error("dropping events entry %s: not a StageEvent (%s)", entry_id, e)
            skip.append(entry_id)
            continue
        r = ev.report
        if not r.uid or (namespaces is not None and r.namespace not in namespaces):
            # Not a report this operator watches (e.g. `goreports run --redis` on the same
            # prefix). One installation = one prefix, so nobody else needs it.
            skip.append(entry_id)
            continue
        by_report[(r.namespace, r.name, r.uid)].append((entry_id, ev))
    if skip:
        await bus.stream_group_ack(key, GROUP, skip)
    metrics.EVENTS_FOLDED.inc(len(entries) - len(skip))

    async def one(ns: str, name: str, uid: str, items: list[tuple[str, events_pb2.StageEvent]]) -> None:
        written = await apply_events(ns, name, uid, [ev for _, ev in items])
        await bus.stream_group_ack(key, GROUP, [i for i, _ in items])
        new = (written or {}).get("status") or {}
        if written is not None and new.get("phase") in FINAL_PHASES:
            await _record_final(bus, written, new, items[-1][1].trace_id)
            if on_final is not None:
                await on_final(uid)

    results = await asyncio.gather(*(one(*k, v) for k, v in by_report.items()), return_exceptions=True)
    for r in results:
        if isinstance(r, Exception):
            log.error("status write failed (will be retried from the pending list): %s", r)


async def _record_final(bus: Bus, body: dict[str, Any], status: dict[str, Any],
                        trace_id: str) -> None:
    """Audit and count a finished report, once (folding a final report again is a no-op).
    `body` is the object as the status writer last wrote or read it (who asked, labels)."""
    meta = body.get("metadata") or {}
    ns, name, uid = meta.get("namespace", ""), meta.get("name", ""), meta.get("uid", "")
    if not await bus.set_marker(bus.keys.marker(uid, "audit", "final"), ttl=bus.ttl):
        return
    metrics.report_finished(status)
    phase = str(status.get("phase"))
    ready = next((c for c in status.get("conditions", []) or []
                  if isinstance(c, dict) and c.get("type") == "Ready"), {})
    record = audit.record_from_body("delivered" if phase == "Succeeded" else "failed", body,
                                    outcome=str(ready.get("reason") or phase),
                                    message=str(status.get("message", "")), trace_id=trace_id)
    await audit.AuditLog(bus).safe_append(record)
    log.info("report %s/%s %s: %s", ns, name, phase, status.get("message", ""),
             extra={"report": f"{ns}/{name}", "trace_id": trace_id})
