"""Secrets on the real API server: the Reports API (JWT key), the operator and a worker process,
with a MariaDB password that is wrong (a failing report) and a webhook signing secret (a report
that succeeds). Afterwards the ReportRequests' status, the Kubernetes Events of the namespace,
the operator's, API's and worker's logs, and every Redis stream (events, audit, dead letters)
are grepped for every value in support.secrets."""
from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from pathlib import Path
from typing import Any, Iterator

import pytest
import redis

from goreports.api.auth import AuthConfig, issue_token
from goreports.core.audit import audit_key
from support import secrets
from support.api import ApiProcess, call
from support.httpd import HookServer
from support.k8s import OperatorProcess, cluster, kubectl_json, namespace  # noqa: F401
from support.mariadb import MariaDB, mariadb  # noqa: F401
from support.servers import RedisServer
from support.workers import start_worker, stop, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

DB = "e2esecrets"


@pytest.fixture
def redis_srv() -> Iterator[RedisServer]:
    server = RedisServer().start()
    yield server
    server.cleanup()


def _rr(name: str, *steps: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "goreports.io/v1alpha1", "kind": "ReportRequest",
            "metadata": {"name": name}, "spec": {"maxAttempts": 1, "steps": list(steps)}}


def _everything(r: redis.Redis) -> bytes:
    parts = []
    for key in r.scan_iter("*"):
        kind = r.type(key)
        if kind == b"stream":
            parts += [k + b"=" + v for _, f in r.xrange(key) for k, v in f.items()]
        elif kind == b"string":
            parts.append(r.get(key) or b"")
    return b"\n".join(parts)


async def test_no_secret_in_status_events_or_any_log(cluster, namespace, redis_srv,  # noqa: F811
                                                     mariadb: MariaDB, tmp_path: Path,  # noqa: F811
                                                     record: Any) -> None:
    creds = tmp_path / "credentials"
    mariadb.create_database(DB)
    mariadb.execute_sql("CREATE TABLE t (id INT PRIMARY KEY); INSERT INTO t VALUES (1), (2);", db=DB)
    mariadb.create_user(secrets.MARIADB_USER, secrets.MARIADB_PASSWORD, grants="SELECT")
    mariadb.write_credentials(creds, "db-wrong", user=secrets.MARIADB_USER,
                              password=secrets.WRONG_PASSWORD)
    (creds / "hook").mkdir(parents=True)
    (creds / "hook" / "hmac-secret").write_text(secrets.WEBHOOK_SECRET + "\n")
    (creds / "hook" / "token").write_text(secrets.WEBHOOK_TOKEN + "\n")
    hook = HookServer(secret=secrets.WEBHOOK_SECRET.encode())
    await hook.start()

    env = {"GOREPORTS_CREDENTIALS_DIR": str(creds), "GOREPORTS_ARTIFACT_DIR": str(tmp_path / "staging"),
           "GOREPORTS_LOG_LEVEL": "DEBUG"}
    worker = start_worker(redis_srv.addr, "sqlite", "mysql", "csv", "local", "webhook",
                          log=tmp_path / "worker.log", **env)
    op = OperatorProcess(cluster, redis_srv.addr, tmp_path, namespace, GOREPORTS_LOG_LEVEL="DEBUG")
    api = ApiProcess(cluster.kubeconfig, tmp_path, JWT_SECRET_KEY=secrets.JWT_KEY,
                     GOREPORTS_LOG_LEVEL="DEBUG")
    db = tmp_path / "rows.db"
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE t (id INTEGER)")
    conn.execute("INSERT INTO t VALUES (1)")
    conn.commit()
    conn.close()
    try:
        # garbage on the events stream must not stall the operator's status writes
        r = redis.Redis(*redis_srv.addr.split(":"))
        r.xadd("goreports:events", {"d": b"\xff\xff not a StageEvent"})
        r.xadd("goreports:events", {"x": b"no d field"})
        wrong = _rr("wrong-password",
                    {"name": "collect", "mysql": {"instance": "e2e", "dbName": DB,
                                                  "credentialsId": "db-wrong",
                                                  "connectTimeoutSeconds": 2, "queries": [
                                                      {"name": "rows", "sql": "SELECT id FROM t"}]}},
                    {"name": "flat", "csv": {"fileName": "rows.csv", "dataset": "rows"}},
                    {"name": "deliver", "local": {"path": str(tmp_path / "out")}})
        assert cluster.kubectl("apply", "-n", namespace, "-f", "-",
                               input=json.dumps(wrong)).returncode == 0
        signed = _rr("signed-hook",
                     {"name": "collect", "sqlite": {"database": str(db), "queries": [
                         {"name": "rows", "sql": "SELECT id FROM t"}]}},
                     {"name": "flat", "csv": {"fileName": "rows.csv", "dataset": "rows"}},
                     {"name": "post", "webhook": {"url": hook.url("/hook"), "credentialsId": "hook",
                                                  "allowHosts": ["127.0.0.1"]}})
        tok = issue_token(AuthConfig(secret_key=secrets.JWT_KEY), "sec", [namespace])
        status, _, body = call("POST", f"{api.url}/v1/namespaces/{namespace}/reports",
                               {"metadata": signed["metadata"], "spec": signed["spec"]}, token=tok)
        assert status == 201, body
        forged = issue_token(AuthConfig(secret_key=secrets.WRONG_PASSWORD), "sec", [namespace])
        status, _, problem = call("GET", f"{api.url}/v1/namespaces/{namespace}/reports",
                                  token=forged)
        assert status == 401, problem

        def final(name: str) -> dict[str, Any] | None:
            obj = kubectl_json(cluster, "get", "rr", name, "-n", namespace)
            return obj if obj.get("status", {}).get("phase") in ("Succeeded", "Failed") else None

        deadline = time.monotonic() + 120
        done: dict[str, dict[str, Any]] = {}
        while len(done) < 2 and time.monotonic() < deadline:
            for name in ("wrong-password", "signed-hook"):
                if name not in done and (obj := await asyncio.to_thread(final, name)):
                    done[name] = obj
            await asyncio.sleep(0.3)
        assert set(done) == {"wrong-password", "signed-hook"}, done.keys()
        assert done["wrong-password"]["status"]["phase"] == "Failed"
        assert done["signed-hook"]["status"]["phase"] == "Succeeded"
        assert [h for h in hook.delivered() if h.verified]
        assert op.proc.poll() is None and b"not a StageEvent" in op.log.read_bytes()
        wait_for(lambda: cluster.kubectl("get", "events", "-n", namespace, "-o", "json").stdout.count(
            "Failed") > 0, 30, what="a Failed event")
        time.sleep(1)  # the operator's last audit record and log lines
    finally:
        await hook.stop()
        api.stop()
        op.stop()
        stop(worker)

    statuses = json.dumps(kubectl_json(cluster, "get", "rr", "-n", namespace)).encode()
    events = cluster.kubectl("get", "events", "-n", namespace, "-o", "json").stdout.encode()
    streams = _everything(r)
    logs = {p.name: p.read_bytes() for p in (tmp_path / "worker.log", op.log, api.log)}
    assert b"Access denied" in statuses  # the failure is explained...
    assert b"db-wrong" in statuses       # ...naming the credentials, not their value
    assert r.xlen(audit_key("goreports")) >= 2  # the operator's records: accepted, then failed / delivered
    for what, data in (("ReportRequest status", statuses), ("Kubernetes Events", events),
                       ("Redis streams (events, audit, dead letters)", streams), *logs.items()):
        assert secrets.found_in(data) == [], what
    record("secrets", "on the real API server: a MariaDB password (wrong: the report fails), a "
           "webhook HMAC secret + token (succeeds), the API's JWT key (a REST create, a forged "
           "token refused 401); operator, API and worker at DEBUG",
           "no secret value in the ReportRequests' status, the namespace's Events, the audit / "
           "events / dead-letter streams, or the operator's, API's and worker's logs")
