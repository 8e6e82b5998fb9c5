"""Observability on the real control plane: the operator's and a worker's /metrics during a
report, a dead-lettered job replayed with `goreports dlq replay` after its cause is fixed (the
Failed report then Succeeds), the audit trail of both, and `goreports status` against the API
server. Real kube-apiserver, operator and worker processes, redis-server."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator

import pytest
import redis
import yaml

from support.k8s import OperatorProcess, cluster, in_phase, kubectl_json, namespace  # noqa: F401
from support.observability import (Samples, make_db, run_cli, scrape, scrape_until, sqlite_report,
                                   value, wait_scrape)
from support.servers import RedisServer, free_port
from support.workers import start_worker, stop, struct_job, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
def redis_srv() -> Iterator[RedisServer]:
    server = RedisServer().start()
    yield server
    server.cleanup()


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("obs")


@pytest.fixture(scope="module")
def worker_port(redis_srv: RedisServer, shared: Path) -> Iterator[int]:
    port = free_port()
    proc = start_worker(redis_srv.addr, "sqlite", "csv", "local", log=shared / "worker.log",
                        GOREPORTS_ARTIFACT_DIR=str(shared / "staging"), GOREPORTS_VISIBILITY_TIMEOUT="5",
                        GOREPORTS_HEALTH_PORT=str(port))
    try:
        wait_scrape(port)
        yield port
    finally:
        stop(proc)


@pytest.fixture
def operator(cluster, namespace, redis_srv: RedisServer, shared: Path) -> Iterator[tuple[OperatorProcess, int]]:  # noqa: F811
    port = free_port()
    op = OperatorProcess(cluster, redis_srv.addr, shared, namespace, name=f"op-{namespace}",
                         GOREPORTS_METRICS_PORT=str(port), GOREPORTS_METRICS_INTERVAL="0.3")
    try:
        wait_scrape(port)
        yield op, port
    finally:
        op.stop()


def apply(cluster: Any, ns: str, doc: dict[str, Any]) -> None:  # noqa: F811
    res = cluster.kubectl("apply", "-n", ns, "-f", "-", input=yaml.safe_dump(doc), check=False)
    assert res.returncode == 0, res.stderr


def wait_phase(cluster: Any, ns: str, name: str, phases: tuple[str, ...] = ("Succeeded", "Failed"),  # noqa: F811
               timeout: float = 90) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        obj = kubectl_json(cluster, "get", "rr", name, "-n", ns)
        return obj if in_phase(obj, phases) else None
    return wait_for(done, timeout, 0.2, what=f"{name} to reach {phases}")


def event_reasons(cluster: Any, ns: str, name: str) -> list[str]:  # noqa: F811
    return cluster.kubectl("get", "events", "-n", ns, "--field-selector", f"involvedObject.name={name}",
                           "-o", "jsonpath={.items[*].reason}").stdout.split()


def cli_env(cluster: Any, redis_srv: RedisServer) -> dict[str, str]:  # noqa: F811
    return {"KUBECONFIG": str(cluster.kubeconfig), "REDIS_ADDR": redis_srv.addr, "USER": "carol"}


def audit_of(cluster: Any, redis_srv: RedisServer, uid: str) -> list[dict[str, str]]:  # noqa: F811
    res = run_cli("audit", "tail", "-n", "1000", "--json", env=cli_env(cluster, redis_srv))
    assert res.returncode == 0, res.stderr
    return [r for r in map(json.loads, res.stdout.splitlines()) if r["uid"] == uid]


def test_operator_and_worker_metrics_follow_a_report(cluster, namespace, redis_srv, worker_port,  # noqa: F811
                                                     operator, shared, tmp_path) -> None:
    _, op_port = operator
    rows = 250
    db = make_db(tmp_path / "sales.db", rows)
    op_before, w_before = scrape(op_port), scrape(worker_port)
    apply(cluster, namespace, sqlite_report("counted", db, tmp_path / "out"))
    obj = wait_phase(cluster, namespace, "counted")
    assert obj["status"]["phase"] == "Succeeded", obj["status"]

    # The worker: one run of each stage, the rows of the query. (A job is counted just after
    # its Succeeded event, so the Succeeded phase can be seen a moment before the last count.)
    w_after = scrape_until(worker_port, lambda s: all(
        value(s, "goreports_jobs_succeeded_total", pattern=p)
        > value(w_before, "goreports_jobs_succeeded_total", pattern=p) for p in ("sqlite", "csv", "local")),
        what="a success counted for each pattern")
    for pattern in ("sqlite", "csv", "local"):
        for name in ("goreports_jobs_started_total", "goreports_jobs_succeeded_total",
                     "goreports_stage_duration_seconds_count"):
            assert value(w_after, name, pattern=pattern) - value(w_before, name, pattern=pattern) == 1, (name, pattern)
    assert value(w_after, "goreports_rows_processed_total", pattern="sqlite") - \
        value(w_before, "goreports_rows_processed_total", pattern="sqlite") == rows

    # The operator: its watch sees the phase, the events loop counts the end once, the audit
    # records accepted + delivered, the stream gauges see the worker and an empty backlog.
    # The phase gauge follows the watch, while the finished counters and the audit record come
    # after the status write: wait for all of them, then assert them exactly.
    def op_settled(s: Samples) -> bool:
        return value(s, "goreports_reports", report_namespace=namespace, phase="Succeeded") == 1 \
            and value(s, "goreports_workers", pattern="sqlite") == 1 \
            and value(s, "goreports_reports_finished_total", phase="Succeeded") \
            > value(op_before, "goreports_reports_finished_total", phase="Succeeded") \
            and value(s, "goreports_audit_records_total", action="delivered") \
            > value(op_before, "goreports_audit_records_total", action="delivered")
    op_after = scrape_until(op_port, op_settled, what="the operator's gauges and counters")

    def delta(name: str, **labels: str) -> float:
        return value(op_after, name, **labels) - value(op_before, name, **labels)

    assert value(op_after, "goreports_reports", report_namespace=namespace, phase="Running") == 0
    assert delta("goreports_reports_finished_total", phase="Succeeded") == 1
    assert delta("goreports_report_duration_seconds_count", phase="Succeeded") == 1
    assert delta("goreports_audit_records_total", action="accepted") == 1
    assert delta("goreports_audit_records_total", action="delivered") == 1
    assert delta("goreports_events_folded_total") >= 6  # Running + Succeeded of 3 steps at least
    for pattern in ("sqlite", "csv", "local"):
        assert value(op_after, "goreports_jobs_backlog", pattern=pattern) == 0

    # A job nobody serves: backlog 1, no workers, on the next refresh.
    r = redis.Redis(*redis_srv.addr.split(":"))
    r.xadd("goreports:jobs:generators:nobody", {"job": struct_job("s", "generators", "nobody", {},
                                                                  uid="x").SerializeToString()})
    wait_for(lambda: value(scrape(op_port), "goreports_jobs_backlog", channel="generators", pattern="nobody") == 1,
             60, 0.2, what="the backlog gauge")
    assert value(scrape(op_port), "goreports_workers", pattern="nobody") == 0
    r.delete("goreports:jobs:generators:nobody")

    records = audit_of(cluster, redis_srv, obj["metadata"]["uid"])
    assert [x["action"] for x in records] == ["accepted", "delivered"]
    assert records[0]["who"].startswith("kubectl"), records  # the field manager of `kubectl apply`
    assert records[1]["outcome"] == "Succeeded" and records[0]["namespace"] == namespace


def test_dead_letter_replayed_after_the_fix_and_the_report_succeeds(
        cluster, namespace, redis_srv, worker_port, operator, tmp_path) -> None:  # noqa: F811
    _, op_port = operator
    env = cli_env(cluster, redis_srv)
    db = make_db(tmp_path / "late.db", rows=None)  # the table the query needs does not exist yet
    apply(cluster, namespace, sqlite_report("late", db, tmp_path / "out"))
    failed = wait_phase(cluster, namespace, "late")
    uid = failed["metadata"]["uid"]
    ready = next(c for c in failed["status"]["conditions"] if c["type"] == "Ready")
    assert failed["status"]["phase"] == "Failed" and ready["reason"] == "QueryFailed", failed["status"]
    wait_for(lambda: value(scrape(op_port), "goreports_dead_letters", pattern="sqlite") >= 1, 60, 0.2,
             what="the dead-letter gauge")
    # the "failed" audit record follows the Failed status: in before the replay's record
    wait_for(lambda: [x for x in audit_of(cluster, redis_srv, uid) if x["action"] == "failed"], 60, 0.5,
             what="the failed audit record")

    res = run_cli("dlq", "list", "--pattern", "sqlite", "--json", env=env)
    [dead] = [d for d in map(json.loads, res.stdout.splitlines()) if d["uid"] == uid]
    assert dead["report"] == f"{namespace}/late" and dead["step"] == "collect"

    make_db(db, rows=30)  # the cause is fixed
    res = run_cli("dlq", "replay", dead["id"], env=env)
    assert res.returncode == 0, res.stdout + res.stderr

    obj = wait_phase(cluster, namespace, "late", ("Succeeded",))
    st = obj["status"]
    assert st["rows"] == 30 and [s["state"] for s in st["steps"]] == ["Succeeded"] * 3, st
    assert (tmp_path / "out" / "late.csv").is_file()
    ready = next(c for c in st["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "True" and ready["reason"] == "Succeeded"
    assert obj["metadata"]["annotations"]["goreports.io/replay"]
    # the operator posts its Succeeded Event just after the status write
    events = wait_for(lambda: (e := event_reasons(cluster, namespace, "late")) and "Succeeded" in e and e,
                      60, 0.2, what="the Succeeded Event")
    assert "Replayed" in events and "Succeeded" in events, events
    res = run_cli("dlq", "list", "--pattern", "sqlite", "--json", env=env)
    assert uid not in res.stdout
    wait_for(lambda: value(scrape(op_port), "goreports_dead_letters", pattern="sqlite") == 0, 60, 0.2,
             what="the dead-letter gauge to drop")

    # the "delivered" record is written just after the Succeeded status
    wait_for(lambda: len(audit_of(cluster, redis_srv, uid)) >= 4, 60, 0.5, what="four audit records")
    actions = [(x["action"], x["outcome"]) for x in audit_of(cluster, redis_srv, uid)]
    assert actions == [("accepted", "Accepted"), ("failed", "QueryFailed"),
                       ("replayed", "Requeued"), ("delivered", "Succeeded")], actions
    assert [x["who"] for x in audit_of(cluster, redis_srv, uid) if x["action"] == "replayed"][0].startswith("carol")

    res = run_cli("status", "--json", "-n", namespace, env=env)
    assert res.returncode == 0, res.stderr
    got = json.loads(res.stdout)
    [row] = got["reports"]
    assert row["namespace"] == namespace and row["Succeeded"] == 1 and row["Failed"] == 0
    assert {s["pattern"] for s in got["streams"]} >= {"sqlite", "csv", "local"}
    table = run_cli("status", "-n", namespace, env=env).stdout
    assert "ReportRequests by phase" in table and namespace in table


def test_replay_into_a_deleted_report_is_refused(cluster, namespace, redis_srv, worker_port,  # noqa: F811
                                                  operator, tmp_path) -> None:
    env = cli_env(cluster, redis_srv)
    db = make_db(tmp_path / "gone.db", rows=None)
    apply(cluster, namespace, sqlite_report("gone", db, tmp_path / "out"))
    uid = wait_phase(cluster, namespace, "gone")["metadata"]["uid"]
    # The worker dead-letters the job just after the Failed event, and the operator writes the
    # "failed" audit record just after the Failed status: wait for both before deleting, so
    # that the records' order is the one this test is about.
    wait_for(lambda: [x for x in audit_of(cluster, redis_srv, uid) if x["action"] == "failed"], 60, 0.5,
             what="the failed audit record")
    cluster.kubectl("delete", "rr", "gone", "-n", namespace, "--wait=true", timeout=60)

    def dead_letters() -> list[dict[str, Any]]:
        return [d for d in map(json.loads, run_cli("dlq", "list", "--json", env=env).stdout.splitlines())
                if d["uid"] == uid]
    dead = wait_for(dead_letters, 60, 0.5, what="the dead letter")
    res = run_cli("dlq", "replay", dead[0]["id"], env=env)
    assert res.returncode == 1 and "no longer exists" in res.stderr, res.stderr
    assert [x["action"] for x in audit_of(cluster, redis_srv, uid)] == ["accepted", "failed", "deleted"]
    # the dead letter stays until purged
    assert any(d["uid"] == uid for d in map(json.loads, run_cli("dlq", "list", "--json", env=env).stdout.splitlines()))
