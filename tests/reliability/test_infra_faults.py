"""Faults of what the workers stand on: Redis killed and restarted (AOF), MariaDB down, the
operator killed, a poison job. Real processes throughout: redis-server with `appendonly yes`
and `appendfsync always`, the session's MariaDB, `goreports operator` on the real
kube-apiserver, `goreports worker` processes, aiosmtpd.
"""
from __future__ import annotations

import hashlib
import socket
import sqlite3
import time
import uuid
from pathlib import Path
from typing import Any, Iterator

import pytest
import redis

from goreports.proto import events_pb2, job_pb2
from support.faults import (ITEMS_SQL, AofRedis, Outcome, apply_report, events_of, get_report,
                            jobs_of, make_items_db, wait_final)
from support.k8s import OperatorProcess, cluster  # noqa: F401
from support.mariadb import MariaDB, mariadb  # noqa: F401
from support.servers import RedisServer
from support.smtp import SmtpServer, smtp_server  # noqa: F401
from support.workers import start_worker, stop, wait_for

pytestmark = [pytest.mark.reliability, pytest.mark.e2e, pytest.mark.timeout(300)]

DB = "faults_infra"
ROWS = 20_000
RR = "goreports.io/v1alpha1"


@pytest.fixture(scope="module")
def source(mariadb: MariaDB) -> tuple[int, str]:  # noqa: F811
    return make_items_db(mariadb, DB, ROWS)


@pytest.fixture(scope="module")
def aof_redis() -> Iterator[AofRedis]:
    server = AofRedis().start()
    yield server
    server.cleanup()


@pytest.fixture(scope="module")
def dead_port() -> Iterator[int]:
    """A port bound (so no server of a later test can take it) and never listened on: a
    connection to it is refused at once, for the whole module."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory, mariadb: MariaDB, dead_port: int) -> Path:  # noqa: F811
    root = tmp_path_factory.mktemp("infra")
    mariadb.write_credentials(root / "credentials", "src-db")
    down = mariadb.write_credentials(root / "credentials", "gone-db")
    (down / "port").write_text(f"{dead_port}\n")  # nothing listens there, ever
    db = root / "tiny.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, label TEXT)")
        conn.executemany("INSERT INTO t VALUES (?, ?)", [(i, f"row-{i}") for i in range(10)])
    return root


def new_namespace(cluster: Any, stem: str) -> str:  # noqa: F811
    name = f"{stem}-{uuid.uuid4().hex[:6]}"
    cluster.kubectl("create", "namespace", name)
    return name


@pytest.fixture(scope="module")
def ns(cluster: Any) -> str:  # noqa: F811
    return new_namespace(cluster, "infra")


@pytest.fixture(scope="module")
def operator(cluster: Any, aof_redis: AofRedis, shared: Path, ns: str) -> Iterator[OperatorProcess]:  # noqa: F811
    op = OperatorProcess(cluster, aof_redis.addr, shared, ns, name="op-infra")
    yield op
    op.stop()


def env(shared: Path, **extra: str) -> dict[str, str]:
    return {"GOREPORTS_ARTIFACT_DIR": str(shared / "staging"),
            "GOREPORTS_CREDENTIALS_DIR": str(shared / "credentials"),
            "GOREPORTS_BATCH_ROWS": "100", "GOREPORTS_WINDOW_BATCHES": "4", **extra}


def mysql_report(name: str, *, creds: str = "src-db", deliver: dict[str, Any],
                 max_attempts: int = 3) -> dict[str, Any]:
    return {"apiVersion": RR, "kind": "ReportRequest", "metadata": {"name": name},
            "spec": {"maxAttempts": max_attempts, "steps": [
                {"name": "collect", "mysql": {"instance": "src", "dbName": DB, "credentialsId": creds,
                                              "connectTimeoutSeconds": 2,
                                              "queries": [{"name": "items", "sql": ITEMS_SQL}]}},
                {"name": "workbook", "excel": {"fileName": "items.xlsx"}},
                deliver]}}


def mail_step(smtp: SmtpServer) -> dict[str, Any]:
    return {"name": "mail", "email": {"to": ["ops@example.com"], "from": "reports@example.com",
                                      "subject": "items", "smtpHost": smtp.host,
                                      "smtpPort": smtp.port, "security": "none"}}


def local_step(out: Path) -> dict[str, Any]:
    return {"name": "deliver", "local": {"path": str(out)}}


def collecting(r: redis.Redis, uid: str) -> bool:
    """The collector is mid-dataset: it holds its lease and the generator has read rows."""
    cursors = r.hgetall(f"goreports:data:{uid}:collect:items:cursors")
    return bool(r.get(f"goreports:mark:{uid}:lock:collect")) and any(k != b"__producer__" for k in cursors) \
        and r.get(f"goreports:mark:{uid}:done:collect") is None


def one_mail_with_the_file(smtp: SmtpServer, st: dict[str, Any]) -> None:
    assert len(smtp.messages) == 1, [m.message["Message-ID"] for m in smtp.messages]
    [att] = list(smtp.messages[0].message.iter_attachments())
    [mailed] = [a for a in st["artifacts"] if a["step"] == "mail"]
    assert hashlib.sha256(att.get_content()).hexdigest() == mailed["sha256"]


def tail(*logs: Path) -> str:
    return "\n".join(f"--- {p.name}\n{p.read_text()[-2500:]}" for p in logs if p.exists())


def test_redis_killed_and_restarted_with_aof_mid_report(cluster, shared,  # noqa: F811
                                                        source, smtp_server, tmp_path,  # noqa: F811
                                                        outcome: Outcome) -> None:
    """SIGKILL redis-server while the collector is mid-dataset, keep it down 2 s, start it on
    the same port and data dir: workers and operator reconnect, the report completes once.

    Its own Redis and operator: the module's operator must not carry connections from before
    the restart into the next tests (one of them can fail a later handler once, and kopf
    retries that handler only a minute later: see the report of the flakiness audit)."""
    outcome.fault = "Redis SIGKILLed mid-report, restarted from AOF"
    own_ns = new_namespace(cluster, "redis-restart")
    aof_redis = AofRedis().start()
    logs = [tmp_path / f"w-{p}.log" for p in ("mysql", "excel", "email")]
    procs = [start_worker(aof_redis.addr, p, log=log, **env(shared)) for p, log in
             zip(("mysql", "excel", "email"), logs)]
    operator = OperatorProcess(cluster, aof_redis.addr, shared, own_ns, name="op-redis-restart")
    try:
        obj = apply_report(cluster, own_ns, mysql_report("redis-restart", deliver=mail_step(smtp_server)))
        uid = obj["metadata"]["uid"]
        r = redis.Redis(*aof_redis.addr.split(":"))
        wait_for(lambda: collecting(r, uid), 90, 0.02, what="the collector to be mid-dataset")
        aof_redis.kill()
        time.sleep(2)
        aof_redis.start()
        obj = wait_final(cluster, own_ns, "redis-restart", timeout=150)
        st = obj["status"]
        outcome.reports, outcome.completed = 1, int(st["phase"] == "Succeeded")
        outcome.losses = 1 - outcome.completed
        outcome.duplicates = max(0, len(smtp_server.messages) - 1)
        assert st["phase"] == "Succeeded", (st, tail(*logs, operator.log))
        assert next(s for s in st["steps"] if s["name"] == "collect")["rows"] == source[0]
        one_mail_with_the_file(smtp_server, st)
        r = redis.Redis(*aof_redis.addr.split(":"))
        assert jobs_of(r, "goreports:jobs:collectors:mysql", uid) >= 1
        outcome.note = "workers and operator reconnected; one mail"
    finally:
        operator.stop()
        for p in procs:
            stop(p)
        aof_redis.cleanup()


def test_mariadb_down_at_start_comes_back_within_retries(cluster, ns, operator, aof_redis, shared,  # noqa: F811
                                                         source, mariadb, tmp_path,  # noqa: F811
                                                         outcome: Outcome) -> None:
    outcome.fault = "MariaDB down when the collector starts, back within the retries"
    logs = [tmp_path / f"w-{p}.log" for p in ("mysql", "rest")]
    # a real backoff: 1 s, 2 s, 4 s, ... between attempts
    procs = [start_worker(aof_redis.addr, "mysql", log=logs[0], **env(shared, GOREPORTS_RETRY_BASE_DELAY="1")),
             start_worker(aof_redis.addr, "excel", "local", log=logs[1], **env(shared))]
    r = redis.Redis(*aof_redis.addr.split(":"))
    mariadb.stop()
    try:
        obj = apply_report(cluster, ns, mysql_report("db-back", deliver=local_step(tmp_path / "out"),
                                                     max_attempts=6))
        uid = obj["metadata"]["uid"]

        def retries() -> list[events_pb2.StageEvent]:
            return [e for e in events_of(r, uid) if e.state == events_pb2.STEP_STATE_RETRYING]
        wait_for(lambda: len(retries()) >= 2, 60, 0.1, what="two failed connection attempts")
    finally:
        mariadb.start()
    try:
        obj = wait_final(cluster, ns, "db-back", timeout=120)
        st = obj["status"]
        outcome.reports, outcome.completed = 1, int(st["phase"] == "Succeeded")
        outcome.losses = 1 - outcome.completed
        assert st["phase"] == "Succeeded", (st, tail(*logs))
        tried = retries()
        assert all(f"database '{DB}'" in e.error and mariadb.addr in e.error for e in tried), tried
        # exponential backoff: each wait at least the base delay times 2^(attempt-1)
        starts: dict[int, float] = {}  # attempt -> when it started (its first Running event)
        for e in events_of(r, uid):
            if e.step == "collect" and e.state == events_pb2.STEP_STATE_RUNNING:
                starts.setdefault(e.attempt, e.at.ToMicroseconds() / 1e6)
        at = [starts[a] for a in sorted(starts)]
        gaps = [b - a for a, b in zip(at, at[1:])]
        assert len(gaps) >= 2 and gaps[0] >= 0.9 and gaps[1] >= 1.9, gaps
        assert next(s for s in st["steps"] if s["name"] == "collect")["rows"] == source[0]
        delivered = tmp_path / "out" / "items.xlsx"
        [art] = [a for a in st["artifacts"] if a["step"] == "deliver"]
        assert hashlib.sha256(delivered.read_bytes()).hexdigest() == art["sha256"]
        outcome.note = f"succeeded on attempt {len(tried) + 1} (backoff waits {', '.join(f'{g:.1f}' for g in gaps)} s)"
    finally:
        for p in procs:
            stop(p)


def test_mariadb_never_back_fails_naming_the_database(cluster, ns, operator, aof_redis, shared,  # noqa: F811
                                                      tmp_path, outcome: Outcome) -> None:
    outcome.fault = "MariaDB down and never back"
    log = tmp_path / "w-mysql.log"
    procs = [start_worker(aof_redis.addr, "mysql", "excel", "local", log=log, **env(shared))]
    r = redis.Redis(*aof_redis.addr.split(":"))
    try:
        obj = apply_report(cluster, ns, mysql_report("db-gone", creds="gone-db",
                                                     deliver=local_step(tmp_path / "out"), max_attempts=3))
        uid = obj["metadata"]["uid"]
        obj = wait_final(cluster, ns, "db-gone", timeout=90)
        st = obj["status"]
        outcome.reports = 1
        outcome.completed = int(st["phase"] == "Failed")  # the expected outcome, reported
        outcome.losses = 1 - outcome.completed
        assert st["phase"] == "Failed", st
        ready = next(c for c in st["conditions"] if c["type"] == "Ready")
        assert ready["status"] == "False"
        assert f"database '{DB}'" in ready["message"] and "after 3 attempts" in ready["message"], ready
        dead = r.xrange("goreports:dead:collectors:mysql")
        assert [f for _, f in dead if job_pb2.Job.FromString(f[b"job"]).report.uid == uid], dead
        assert [e.state for e in events_of(r, uid)].count(events_pb2.STEP_STATE_RETRYING) == 2
        assert not (tmp_path / "out").exists()
        outcome.note = f"Failed, {ready['reason']}: {ready['message'][:160]}"
    finally:
        for p in procs:
            stop(p)


def test_poison_job_is_dead_lettered_and_the_worker_keeps_serving(cluster, ns, operator, aof_redis,  # noqa: F811
                                                                   shared, tmp_path, outcome: Outcome) -> None:
    """The csv job of one report is replaced on its stream by one whose task bytes do not parse
    (a corrupted or incompatible job); the same worker process then serves another report."""
    outcome.fault = "Poison job (a task its stage cannot parse)"
    r = redis.Redis(*aof_redis.addr.split(":"))
    stream = "goreports:jobs:generators:csv-poison"

    def doc(name: str) -> dict[str, Any]:
        return {"apiVersion": RR, "kind": "ReportRequest", "metadata": {"name": name},
                "spec": {"steps": [
                    {"name": "collect", "sqlite": {"database": str(shared / "tiny.db"), "queries": [
                        {"name": "t", "sql": "SELECT id, label FROM t ORDER BY id"}]}},
                    {"name": "table", "pattern": "csv-poison", "csv": {"fileName": f"{name}.csv", "dataset": "t"}},
                    {"name": "deliver", "local": {"path": str(tmp_path / "out")}}]}}

    def waiting(uid: str) -> list[tuple[bytes, dict[bytes, bytes]]]:
        return [(i, f) for i, f in r.xrange(stream) if job_pb2.Job.FromString(f[b"job"]).report.uid == uid]

    front = start_worker(aof_redis.addr, "sqlite", "local", log=tmp_path / "w-front.log", **env(shared))
    served = None
    try:
        poison_uid = apply_report(cluster, ns, doc("poisoned"))["metadata"]["uid"]
        [(entry, fields)] = wait_for(lambda: waiting(poison_uid), 60, what="the csv job to be published")
        job = job_pb2.Job.FromString(fields[b"job"])
        job.task.value = b"\xff\xff\xff not a protobuf message"
        r.xdel(stream, entry)
        r.xadd(stream, {"job": job.SerializeToString()})
        good_uid = apply_report(cluster, ns, doc("healthy"))["metadata"]["uid"]
        wait_for(lambda: waiting(good_uid), 60, what="the healthy report's csv job")
        served = start_worker(aof_redis.addr, "csv-poison=csv", log=tmp_path / "w-csv.log", **env(shared))
        bad = wait_final(cluster, ns, "poisoned", timeout=60)["status"]
        good = wait_final(cluster, ns, "healthy", timeout=60)["status"]
        outcome.reports, outcome.completed = 2, int(bad["phase"] == "Failed") + int(good["phase"] == "Succeeded")
        outcome.losses = 2 - outcome.completed
        assert bad["phase"] == "Failed", bad
        ready = next(c for c in bad["conditions"] if c["type"] == "Ready")
        assert ready["reason"] == "InvalidTask" and "cannot be parsed" in ready["message"], ready
        dead = [f for _, f in r.xrange("goreports:dead:generators:csv-poison")
                if job_pb2.Job.FromString(f[b"job"]).report.uid == poison_uid]
        assert len(dead) == 1 and b"InvalidTask" in dead[0][b"reason"], dead
        assert good["phase"] == "Succeeded", good
        assert (tmp_path / "out" / "healthy.csv").is_file() and not (tmp_path / "out" / "poisoned.csv").exists()
        assert served.poll() is None, "the worker died on the poison job"
        outcome.note = "dead letter InvalidTask, report Failed; the same worker ran the next report"
    finally:
        for p in (front, served):
            if p is not None:
                stop(p)


def test_operator_killed_mid_report_resumes_with_one_chain(cluster, shared, source,  # noqa: F811
                                                           smtp_server, tmp_path,  # noqa: F811
                                                           outcome: Outcome) -> None:
    """SIGKILL the operator while the collector is mid-dataset; a new operator process takes
    over: the chain is not published again, every step runs once, one mail.

    Its own Redis: operators watching different namespaces on one prefix are two installations
    sharing a prefix, which is not supported (each acknowledges the other's events)."""
    outcome.fault = "Operator SIGKILLed mid-report, a new one resumes"
    own_ns = new_namespace(cluster, "opkill")
    own_redis = RedisServer().start()
    logs = [tmp_path / f"w-{p}.log" for p in ("mysql", "excel", "email")]
    procs = [start_worker(own_redis.addr, p, log=log, **env(shared)) for p, log in
             zip(("mysql", "excel", "email"), logs)]
    r = redis.Redis(*own_redis.addr.split(":"))
    op = OperatorProcess(cluster, own_redis.addr, shared, own_ns, name="op-a")
    try:
        uid = apply_report(cluster, own_ns, mysql_report("op-restart", deliver=mail_step(smtp_server)))["metadata"]["uid"]
        # Mid-report for both sides: the collector is mid-dataset and the operator has already
        # folded its Running event (on a loaded machine the status can lag the workers).
        wait_for(lambda: collecting(r, uid)
                 and get_report(cluster, own_ns, "op-restart").get("status", {}).get("phase") == "Running",
                 90, 0.02, what="the collector to be mid-dataset and the report Running")
        op.kill()
        assert get_report(cluster, own_ns, "op-restart")["status"]["phase"] == "Running"
        op = OperatorProcess(cluster, own_redis.addr, shared, own_ns, name="op-b")
        try:
            st = wait_final(cluster, own_ns, "op-restart", timeout=60)["status"]
        except TimeoutError:
            raise AssertionError(f"status {get_report(cluster, own_ns, 'op-restart').get('status')}\n"
                                 f"groups {r.xinfo_groups('goreports:events')}\n"
                                 f"consumers {r.xinfo_consumers('goreports:events', 'operator')}\n"
                                 f"{tail(op.log)}") from None
        outcome.reports, outcome.completed = 1, int(st["phase"] == "Succeeded")
        outcome.losses = 1 - outcome.completed
        outcome.duplicates = max(0, len(smtp_server.messages) - 1)
        assert st["phase"] == "Succeeded", (st, tail(op.log))
        one_mail_with_the_file(smtp_server, st)
        # one chain: each step's job was published once, and ran once
        for stream in ("collectors:mysql", "generators:excel", "dispatchers:email"):
            assert jobs_of(r, f"goreports:jobs:{stream}", uid) == 1, stream
        runs = [e.step for e in events_of(r, uid) if e.state == events_pb2.STEP_STATE_SUCCEEDED]
        assert sorted(runs) == ["collect", "mail", "workbook"], runs
        accepted = cluster.kubectl("get", "events", "-n", own_ns, "--field-selector",
                                   "involvedObject.name=op-restart,reason=Accepted", "-o", "name").stdout.split()
        assert len(accepted) == 1, accepted
        assert next(s for s in st["steps"] if s["name"] == "collect")["rows"] == source[0]
        outcome.note = "one chain published, each step ran once, one mail"
    finally:
        op.stop()
        for p in procs:
            stop(p)
        own_redis.cleanup()
