"""Prometheus metrics of every go-reports process, and the small HTTP server that serves them.

Why one module: the worker runtime, the operator, the Helm chart's alerts and the Grafana
dashboard must agree on metric names and labels. Every metric lives in one registry
(`REGISTRY`, not the client library's global one, so that a test or an embedding program sees
exactly ours); each process serves it at `/metrics` next to `/healthz` with `serve_http`.

Label cardinality stays bounded on purpose: labels are patterns, channels, namespaces, phases,
failure reasons (CamelCase words chosen by stages) and schedule names, never report names or
uids (those belong in logs and the audit stream). The namespace of a report is the label
`report_namespace`: Prometheus adds `namespace` itself (the scraped pod's).

Metrics (names without the `_total` / `_bucket` suffixes the exposition adds):

workers   goreports_jobs_started, _succeeded, _failed, _retried {pattern[, reason]},
          goreports_jobs_in_progress {pattern}, goreports_stage_duration_seconds {pattern,
          outcome}, goreports_rows_processed {pattern}, goreports_bytes_processed {pattern}
operator  goreports_reports {report_namespace, phase}, goreports_reports_finished {phase},
          goreports_report_duration_seconds {phase}, goreports_events_folded,
          goreports_jobs_pending / _lag / _backlog {channel, pattern}, goreports_workers {channel,
          pattern}, goreports_dead_letters {channel, pattern}, goreports_delayed_jobs,
          goreports_schedule_runs {report_namespace, schedule}, goreports_audit_records {action}
both      goreports_build_info {version}, process_* and python_* (the client's collectors)
"""
from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Iterable, Iterator

from prometheus_client import (CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram,
                               generate_latest)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

if TYPE_CHECKING:
    from aiohttp import web

    from goreports.core.bus.base import Bus

log = logging.getLogger("goreports.metrics")

REGISTRY = CollectorRegistry(auto_describe=True)
ProcessCollector(registry=REGISTRY)
PlatformCollector(registry=REGISTRY)
GCCollector(registry=REGISTRY)

# Stage runs last from milliseconds (a small CSV) to many minutes (a large export).
DURATION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
REPORT_BUCKETS = (1, 5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 21600)
PHASES = ("Pending", "Running", "Succeeded", "Failed")

# -- workers ----------------------------------------------------------------------------------
JOBS_STARTED = Counter("goreports_jobs_started", "Stage runs started (a retry counts again).",
                       ["pattern"], registry=REGISTRY)
JOBS_SUCCEEDED = Counter("goreports_jobs_succeeded", "Stage runs that succeeded.", ["pattern"],
                         registry=REGISTRY)
JOBS_FAILED = Counter("goreports_jobs_failed", "Jobs that failed their report (dead-lettered).",
                      ["pattern", "reason"], registry=REGISTRY)
JOBS_RETRIED = Counter("goreports_jobs_retried", "Stage runs that failed and were scheduled again.",
                       ["pattern"], registry=REGISTRY)
JOBS_IN_PROGRESS = Gauge("goreports_jobs_in_progress", "Stage runs in progress in this process.",
                         ["pattern"], registry=REGISTRY)
STAGE_DURATION = Histogram("goreports_stage_duration_seconds",
                           "Run time of a stage function (outcome: success, error, cancelled).",
                           ["pattern", "outcome"], buckets=DURATION_BUCKETS, registry=REGISTRY)
ROWS = Counter("goreports_rows_processed", "Rows reported by succeeded stage runs.", ["pattern"],
               registry=REGISTRY)
BYTES = Counter("goreports_bytes_processed", "Bytes of the artifacts of succeeded stage runs.",
                ["pattern"], registry=REGISTRY)

# -- operator ---------------------------------------------------------------------------------
REPORTS_FINISHED = Counter("goreports_reports_finished", "Reports that reached a final phase.",
                           ["phase"], registry=REGISTRY)
REPORT_DURATION = Histogram("goreports_report_duration_seconds",
                            "From a report's start to its final phase.", ["phase"],
                            buckets=REPORT_BUCKETS, registry=REGISTRY)
EVENTS_FOLDED = Counter("goreports_events_folded", "StageEvents folded into report status.",
                        registry=REGISTRY)
STREAM_PENDING = Gauge("goreports_jobs_pending", "Jobs delivered to a worker and not yet acknowledged.",
                       ["channel", "pattern"], registry=REGISTRY)
STREAM_LAG = Gauge("goreports_jobs_lag", "Jobs on a stream not yet delivered to any worker.",
                   ["channel", "pattern"], registry=REGISTRY)
STREAM_BACKLOG = Gauge("goreports_jobs_backlog", "Pending plus lag: the work a pool has not finished.",
                       ["channel", "pattern"], registry=REGISTRY)
WORKERS = Gauge("goreports_workers", "Consumers of a pattern's stream seen in the last minute.",
                ["channel", "pattern"], registry=REGISTRY)
DEAD_LETTERS = Gauge("goreports_dead_letters", "Entries in a pattern's dead-letter stream.",
                     ["channel", "pattern"], registry=REGISTRY)
DELAYED = Gauge("goreports_delayed_jobs", "Jobs waiting for their retry time.", registry=REGISTRY)
SCHEDULE_RUNS = Counter("goreports_schedule_runs", "ReportRequests created by a ReportSchedule.",
                        ["report_namespace", "schedule"], registry=REGISTRY)
AUDIT_RECORDS = Counter("goreports_audit_records", "Records appended to the audit stream.",
                        ["action"], registry=REGISTRY)
BUILD_INFO = Gauge("goreports_build_info", "Always 1; the version label says which build runs.",
                   ["version"], registry=REGISTRY)


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("go-reports")
    except Exception:  # not installed as a distribution (a source tree)
        return "unknown"


BUILD_INFO.labels(_version()).set(1)


# -- worker hooks (called by the runtime; each one line there) ----------------------------------
# A metric's child per label values, looked up once: `labels()` takes a lock and builds a key
# on every call, and the runtime makes several such calls per job. Children of these metrics
# are never removed, so a cached one stays the registered one.
_children: dict[tuple[int, tuple[str, ...]], Any] = {}


def _child(metric: Any, *labels: str) -> Any:
    key = (id(metric), labels)
    child = _children.get(key)
    if child is None:
        child = _children[key] = metric.labels(*labels)
    return child


def job_started(pattern: str) -> None:
    _child(JOBS_STARTED, pattern).inc()


def job_succeeded(pattern: str, rows: int, size: int) -> None:
    _child(JOBS_SUCCEEDED, pattern).inc()
    if rows:
        _child(ROWS, pattern).inc(rows)
    if size:
        _child(BYTES, pattern).inc(size)


def job_failed(pattern: str, reason: str) -> None:
    JOBS_FAILED.labels(pattern, reason or "Unknown").inc()


def job_retried(pattern: str) -> None:
    JOBS_RETRIED.labels(pattern).inc()


@contextlib.contextmanager
def stage_timer(pattern: str) -> Iterator[None]:
    """Time one stage function call and count it as in progress meanwhile."""
    started = time.monotonic()
    outcome = "error"
    gauge = _child(JOBS_IN_PROGRESS, pattern)
    gauge.inc()
    try:
        yield
        outcome = "success"
    except BaseException as e:
        import asyncio

        outcome = "cancelled" if isinstance(e, asyncio.CancelledError) else "error"
        raise
    finally:
        gauge.dec()
        _child(STAGE_DURATION, pattern, outcome).observe(time.monotonic() - started)


# -- reports by phase (fed by the operator's watch) -------------------------------------------
class ReportPhases:
    """The phase of every ReportRequest the operator sees, counted at scrape time.

    A registered collector rather than a Gauge: the numbers are derived from one map (uid ->
    namespace, phase), so a deleted report or a phase change can never leave a stale series.
    """

    def __init__(self) -> None:
        self._reports: dict[str, tuple[str, str]] = {}
        self._namespaces: set[str] = set()

    def update(self, uid: str, namespace: str, phase: str | None) -> None:
        self._reports[uid] = (namespace, phase or "Pending")
        self._namespaces.add(namespace)

    def remove(self, uid: str) -> None:
        self._reports.pop(uid, None)

    def counts(self) -> dict[tuple[str, str], int]:
        out = {(ns, p): 0 for ns in self._namespaces for p in PHASES}
        for ns, phase in self._reports.values():
            out[(ns, phase)] = out.get((ns, phase), 0) + 1
        return out

    def collect(self) -> Iterable[GaugeMetricFamily]:
        fam = GaugeMetricFamily("goreports_reports", "ReportRequests by namespace and phase.",
                                labels=["report_namespace", "phase"])
        for (ns, phase), n in sorted(self.counts().items()):
            fam.add_metric([ns, phase], n)
        yield fam

    def describe(self) -> Iterable[GaugeMetricFamily]:
        return [GaugeMetricFamily("goreports_reports", "ReportRequests by namespace and phase.",
                                  labels=["report_namespace", "phase"])]


REPORT_PHASES = ReportPhases()
REGISTRY.register(REPORT_PHASES)  # type: ignore[arg-type]


def observe_report_event(event_type: str | None, body: dict[str, Any], schedule_label: str) -> None:
    """One watch event of a ReportRequest: keep the phase map; count runs a schedule created."""
    meta = body.get("metadata") or {}
    uid, ns = meta.get("uid"), meta.get("namespace", "")
    if not uid:
        return
    if event_type == "DELETED":
        REPORT_PHASES.remove(uid)
        return
    REPORT_PHASES.update(uid, ns, (body.get("status") or {}).get("phase"))
    schedule = (meta.get("labels") or {}).get(schedule_label)
    # Only ADDED: the initial listing after a restart (type None) must not count old runs again.
    if event_type == "ADDED" and schedule:
        SCHEDULE_RUNS.labels(ns, schedule).inc()


def report_finished(status: dict[str, Any]) -> None:
    """A report reached a final phase (called once per report, see the events loop)."""
    phase = status.get("phase", "Failed")
    REPORTS_FINISHED.labels(phase).inc()
    seconds = _seconds_between(status.get("startTime"), status.get("completionTime"))
    if seconds is not None:
        REPORT_DURATION.labels(phase).observe(seconds)


def _seconds_between(start: str | None, end: str | None) -> float | None:
    from datetime import datetime

    if not start or not end:
        return None
    try:
        a = datetime.fromisoformat(start.replace("Z", "+00:00"))
        b = datetime.fromisoformat(end.replace("Z", "+00:00"))
    except ValueError:
        return None
    return max(0.0, (b - a).total_seconds())


# -- streams: one reading shared by the operator's gauges and `goreports status` ---------------
LIVE_CONSUMER_MS = 60_000  # a worker polls every second; one idle a minute has gone away


@dataclass(frozen=True)
class StreamStats:
    channel: str
    pattern: str
    length: int
    pending: int
    lag: int
    dead: int
    consumers: int       # every consumer the group remembers (dead workers stay listed)
    live_consumers: int  # those that polled within LIVE_CONSUMER_MS

    @property
    def backlog(self) -> int:
        return self.pending + self.lag


def split_stream_key(key: str, prefix: str, kind: str) -> tuple[str, str] | None:
    """`{prefix}:{kind}:{channel}:{pattern}` -> (channel, pattern); None for anything else."""
    head = f"{prefix}:{kind}:"
    if not key.startswith(head):
        return None
    rest = key[len(head):]
    channel, sep, pattern = rest.partition(":")
    if not sep or not channel or not pattern or ":" in pattern:
        return None
    return channel, pattern


async def stream_stats(bus: "Bus") -> list[StreamStats]:
    """Backlog, dead letters and consumers of every job stream (sorted by channel, pattern)."""
    prefix = bus.keys.prefix
    found: set[tuple[str, str]] = set()
    for kind in ("jobs", "dead"):
        for key in await bus.stream_keys(f"{prefix}:{kind}:*"):
            cp = split_stream_key(key, prefix, kind)
            if cp:
                found.add(cp)
    out = []
    for channel, pattern in sorted(found):
        length, pending, lag = await _backlog(bus, channel, pattern)
        dead = await bus.stream_len(bus.keys.dead(channel, pattern))
        total, live = await _consumers(bus, channel, pattern)
        out.append(StreamStats(channel, pattern, length, pending, lag, dead, total, live))
    return out


async def _backlog(bus: "Bus", channel: str, pattern: str) -> tuple[int, int, int]:
    """(length, pending, lag) without side effects: `Bus.backlog` creates the consumer group,
    which a read-only look (and a pattern that only has dead letters) must not do."""
    r = getattr(bus, "r", None)
    if r is None:
        b = await bus.backlog(channel, pattern)
        return b.length, b.pending, b.lag
    stream = bus.keys.jobs(channel, pattern)
    length = int(await r.xlen(stream))
    try:
        groups = await r.xinfo_groups(stream)
    except Exception:  # no such stream
        return length, 0, length
    for g in groups:
        name = g["name"].decode() if isinstance(g["name"], bytes) else g["name"]
        if name == pattern:
            lag = g.get("lag")
            return length, int(g["pending"]), int(lag) if lag is not None else length
    return length, 0, length


async def _consumers(bus: "Bus", channel: str, pattern: str) -> tuple[int, int]:
    r = getattr(bus, "r", None)  # Redis only: the in-process bus has no consumer groups
    if r is None:
        return 0, 0
    try:
        info = await r.xinfo_consumers(bus.keys.jobs(channel, pattern), pattern)
    except Exception:  # no group yet
        return 0, 0
    live = sum(1 for c in info if int(c.get("idle", 0)) < LIVE_CONSUMER_MS)
    return len(info), live


async def delayed_count(bus: "Bus") -> int:
    r = getattr(bus, "r", None)
    return int(await r.zcard(bus.keys.delayed())) if r is not None else 0


async def refresh_stream_gauges(bus: "Bus") -> list[StreamStats]:
    stats = await stream_stats(bus)
    for s in stats:
        STREAM_PENDING.labels(s.channel, s.pattern).set(s.pending)
        STREAM_LAG.labels(s.channel, s.pattern).set(s.lag)
        STREAM_BACKLOG.labels(s.channel, s.pattern).set(s.backlog)
        WORKERS.labels(s.channel, s.pattern).set(s.live_consumers)
        DEAD_LETTERS.labels(s.channel, s.pattern).set(s.dead)
    DELAYED.set(await delayed_count(bus))
    return stats


async def run_stream_gauges(bus: "Bus", stop: Any, interval: float) -> None:
    """Refresh the stream gauges every `interval` seconds until `stop` (an asyncio.Event)."""
    import asyncio

    while not stop.is_set():
        try:
            await refresh_stream_gauges(bus)
        except asyncio.CancelledError:
            raise
        except Exception as e:  # Redis away: keep the last values, try again
            log.warning("could not read the job streams for metrics: %s", e)
        try:
            await asyncio.wait_for(stop.wait(), timeout=interval)
        except asyncio.TimeoutError:
            pass


# -- HTTP: /metrics and /healthz --------------------------------------------------------------
Health = Callable[[], Awaitable[tuple[bool, dict[str, Any]]]]


def exposition() -> bytes:
    return generate_latest(REGISTRY)


def metrics_ports(env: dict[str, str] | Any) -> list[int]:
    """GOREPORTS_METRICS_PORT and GOREPORTS_HEALTH_PORT, deduplicated (one port serves both
    paths; two different ports both serve both)."""
    ports: list[int] = []
    for name in ("GOREPORTS_METRICS_PORT", "GOREPORTS_HEALTH_PORT"):
        raw = (env.get(name) or "").strip()
        if not raw:
            continue
        try:
            port = int(raw)
        except ValueError:
            raise ValueError(f"{name}={raw!r} is not a port number") from None
        if not 0 < port < 65536:
            raise ValueError(f"{name}={port} is not a port number (1-65535)")
        if port not in ports:
            ports.append(port)
    return ports


async def serve_http(ports: Iterable[int], health: Health | None = None,
                     host: str = "0.0.0.0") -> "web.AppRunner":
    """Serve GET /metrics and GET /healthz on each port, in this event loop (so a blocked loop
    fails the liveness probe). Returns the runner; `await runner.cleanup()` stops it."""
    from aiohttp import web

    async def metrics(_: web.Request) -> web.Response:
        return web.Response(body=exposition(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def healthz(_: web.Request) -> web.Response:
        ok, detail = (True, {}) if health is None else await health()
        return web.json_response({"status": "ok" if ok else "unhealthy", **detail},
                                 status=200 if ok else 503)

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    for port in ports:
        await web.TCPSite(runner, host, port).start()
    return runner
