"""core/metrics.py without a network: the worker hooks, the stage timer, the phase map, the
finished-report histogram, stream key parsing and the port settings."""
from __future__ import annotations

import asyncio

import pytest

from goreports.core import metrics
from goreports.core.bus.memory import MemoryBus
from goreports.proto import job_pb2

R = metrics.REGISTRY


def v(name: str, **labels: str) -> float:
    return R.get_sample_value(name, labels) or 0.0


def test_hooks_count_per_pattern() -> None:
    before = (v("goreports_jobs_started_total", pattern="u1"), v("goreports_rows_processed_total", pattern="u1"))
    metrics.job_started("u1")
    metrics.job_succeeded("u1", rows=10, size=2048)
    metrics.job_retried("u1")
    metrics.job_failed("u1", "QueryFailed")
    metrics.job_failed("u1", "")
    assert v("goreports_jobs_started_total", pattern="u1") == before[0] + 1
    assert v("goreports_rows_processed_total", pattern="u1") == before[1] + 10
    assert v("goreports_bytes_processed_total", pattern="u1") == 2048
    assert v("goreports_jobs_retried_total", pattern="u1") == 1
    assert v("goreports_jobs_failed_total", pattern="u1", reason="QueryFailed") == 1
    assert v("goreports_jobs_failed_total", pattern="u1", reason="Unknown") == 1


async def test_stage_timer_outcomes_and_in_progress() -> None:
    with metrics.stage_timer("u2"):
        assert v("goreports_jobs_in_progress", pattern="u2") == 1
    with pytest.raises(ValueError):
        with metrics.stage_timer("u2"):
            raise ValueError("boom")

    async def cancelled() -> None:
        with metrics.stage_timer("u2"):
            await asyncio.sleep(10)
    task = asyncio.create_task(cancelled())
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert v("goreports_jobs_in_progress", pattern="u2") == 0
    for outcome in ("success", "error", "cancelled"):
        assert v("goreports_stage_duration_seconds_count", pattern="u2", outcome=outcome) == 1


def test_report_phases_follow_watch_events() -> None:
    def body(uid: str, ns: str, phase: str | None, schedule: str | None = None) -> dict:
        labels = {"goreports.io/schedule": schedule} if schedule else {}
        return {"metadata": {"uid": uid, "namespace": ns, "labels": labels},
                "status": {"phase": phase} if phase else {}}
    label = "goreports.io/schedule"
    runs = v("goreports_schedule_runs_total", report_namespace="p1", schedule="daily")
    metrics.observe_report_event(None, body("a", "p1", "Succeeded", "daily"), label)  # initial list
    metrics.observe_report_event("ADDED", body("b", "p1", None, "daily"), label)
    metrics.observe_report_event("MODIFIED", body("b", "p1", "Running", "daily"), label)
    metrics.observe_report_event("ADDED", body("c", "p1", "Failed"), label)
    assert v("goreports_reports", report_namespace="p1", phase="Succeeded") == 1
    assert v("goreports_reports", report_namespace="p1", phase="Running") == 1
    assert v("goreports_reports", report_namespace="p1", phase="Failed") == 1
    assert v("goreports_reports", report_namespace="p1", phase="Pending") == 0  # present, zero
    # only the run created while we watched counts (not the one listed at start)
    assert v("goreports_schedule_runs_total", report_namespace="p1", schedule="daily") == runs + 1
    metrics.observe_report_event("DELETED", body("c", "p1", "Failed"), label)
    metrics.observe_report_event("MODIFIED", body("b", "p1", "Succeeded", "daily"), label)
    assert v("goreports_reports", report_namespace="p1", phase="Failed") == 0
    assert v("goreports_reports", report_namespace="p1", phase="Succeeded") == 2


def test_report_finished_observes_its_duration() -> None:
    n = v("goreports_report_duration_seconds_count", phase="Failed")
    metrics.report_finished({"phase": "Failed", "startTime": "2025-01-01T00:00:00Z",
                             "completionTime": "2025-01-01T00:01:30Z"})
    metrics.report_finished({"phase": "Failed"})  # no times: counted, not timed
    assert v("goreports_report_duration_seconds_count", phase="Failed") == n + 1
    assert v("goreports_report_duration_seconds_bucket", phase="Failed", le="120.0") >= 1
    assert v("goreports_reports_finished_total", phase="Failed") >= 2


@pytest.mark.parametrize("key, kind, want", [
    ("goreports:jobs:collectors:mysql", "jobs", ("collectors", "mysql")),
    ("goreports:dead:custom:my-stage", "dead", ("custom", "my-stage")),
    ("goreports:jobs:collectors", "jobs", None),
    ("goreports:jobs:a:b:c", "jobs", None),
    ("other:jobs:a:b", "jobs", None),
])
def test_split_stream_key(key: str, kind: str, want: tuple[str, str] | None) -> None:
    assert metrics.split_stream_key(key, "goreports", kind) == want


def test_metrics_ports() -> None:
    assert metrics.metrics_ports({}) == []
    assert metrics.metrics_ports({"GOREPORTS_HEALTH_PORT": "9090"}) == [9090]
    assert metrics.metrics_ports({"GOREPORTS_METRICS_PORT": "9100", "GOREPORTS_HEALTH_PORT": "9100"}) == [9100]
    assert metrics.metrics_ports({"GOREPORTS_METRICS_PORT": "9100", "GOREPORTS_HEALTH_PORT": "9090"}) == [9100, 9090]
    with pytest.raises(ValueError, match="GOREPORTS_METRICS_PORT='x'"):
        metrics.metrics_ports({"GOREPORTS_METRICS_PORT": "x"})
    with pytest.raises(ValueError, match="1-65535"):
        metrics.metrics_ports({"GOREPORTS_HEALTH_PORT": "70000"})


async def test_stream_stats_on_the_in_process_bus() -> None:
    bus = MemoryBus()
    for i in range(2):
        await bus.publish(job_pb2.Job(name="s", channel="generators", pattern="csv",
                                      report=job_pb2.ReportRef(uid=f"u{i}")))
    [d] = await bus.fetch("generators", "csv", "w1", 1, 0)
    await bus.dead_letter(d, "Boom: x")
    stats = await metrics.refresh_stream_gauges(bus)
    [s] = stats
    assert (s.channel, s.pattern, s.lag, s.pending, s.dead, s.backlog) == ("generators", "csv", 1, 0, 1, 1)
    assert v("goreports_jobs_backlog", channel="generators", pattern="csv") == 1
    assert v("goreports_dead_letters", channel="generators", pattern="csv") == 1
