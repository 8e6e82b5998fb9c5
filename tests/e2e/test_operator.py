"""The operator on a real kube-apiserver: apply → Succeeded, validation by the API server,
immutability, restart mid-report, deletion with the finalizer."""
from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterator

import pytest
import redis
import yaml

from support.k8s import OperatorProcess, cluster, in_phase, kubectl_json, namespace  # noqa: F401
from support.mariadb import mariadb  # noqa: F401
from support.servers import RedisServer
from support.workers import start_worker, stop, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def redis_srv() -> Iterator[RedisServer]:
    server = RedisServer().start()
    yield server
    server.cleanup()


@pytest.fixture(scope="module")
def sample_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("db") / "sales.db"
    subprocess.run([sys.executable, str(ROOT / "examples/data/make_sales_db.py"), "--rows", "20000",
                    "--out", str(path)], check=True, capture_output=True)
    return path


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("shared")


@pytest.fixture(scope="module")
def workers(redis_srv: RedisServer, shared: Path) -> Iterator[list[subprocess.Popen]]:  # type: ignore[type-arg]
    env = {"GOREPORTS_ARTIFACT_DIR": str(shared / "staging"), "GOREPORTS_VISIBILITY_TIMEOUT": "5"}
    procs = [start_worker(redis_srv.addr, "sqlite", log=shared / "w-collect.log", **env),
             start_worker(redis_srv.addr, "excel", "csv", log=shared / "w-generate.log", **env),
             start_worker(redis_srv.addr, "local", log=shared / "w-deliver.log", **env)]
    yield procs
    for p in procs:
        stop(p)


def report(name: str, db: Path, out: Path, rows_limit: int | None = None, **spec: Any) -> dict[str, Any]:
    limit = f" LIMIT {rows_limit}" if rows_limit else ""
    return {"apiVersion": "goreports.io/v1alpha1", "kind": "ReportRequest",
            "metadata": {"name": name},
            "spec": {"steps": [
                {"name": "collect", "sqlite": {"database": str(db), "queries": [
                    {"name": "orders", "sql": f"SELECT id, customer_id, amount, order_date FROM orders ORDER BY id{limit}"}]}},
                {"name": "workbook", "excel": {"fileName": f"{name}.xlsx"}},
                {"name": "deliver", "local": {"path": str(out)}}], **spec}}


def apply(cluster: Any, ns: str, doc: dict[str, Any]) -> subprocess.CompletedProcess[str]:  # noqa: F811
    return cluster.kubectl("apply", "-n", ns, "-f", "-", input=yaml.safe_dump(doc), check=False)


def get_rr(cluster: Any, ns: str, name: str) -> dict[str, Any]:  # noqa: F811
    return kubectl_json(cluster, "get", "rr", name, "-n", ns)


def wait_phase(cluster: Any, ns: str, name: str, phases: tuple[str, ...] = ("Succeeded", "Failed"),  # noqa: F811
               timeout: float = 120) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        obj = get_rr(cluster, ns, name)
        return obj if in_phase(obj, phases) else None
    return wait_for(done, timeout, 0.2, what=f"{name} to reach {phases}")


def chains_published(redis_srv: RedisServer, uid: str) -> int:
    """How many head jobs of this report were ever put on the collector stream."""
    r = redis.Redis(*redis_srv.addr.split(":"))
    from goreports.proto import job_pb2

    n = 0
    for _, fields in r.xrange("goreports:jobs:collectors:sqlite"):
        if job_pb2.Job.FromString(fields[b"job"]).report.uid == uid:
            n += 1
    return n


def test_apply_to_succeeded_with_status_and_columns(cluster, namespace, redis_srv, workers, sample_db,  # noqa: F811
                                                    shared, tmp_path) -> None:
    op = OperatorProcess(cluster, redis_srv.addr, shared, namespace)
    try:
        started = time.monotonic()
        assert apply(cluster, namespace, report("small", sample_db, tmp_path / "out", 100)).returncode == 0
        obj = wait_phase(cluster, namespace, "small")
        latency = time.monotonic() - started
        st = obj["status"]
        assert st["phase"] == "Succeeded", json.dumps(st, indent=1)
        assert st["rows"] == 100
        assert [s["state"] for s in st["steps"]] == ["Succeeded"] * 3
        [xlsx] = [a for a in st["artifacts"] if a["step"] == "deliver"]
        assert xlsx["name"] == "small.xlsx" and xlsx["size"] > 0 and len(xlsx["sha256"]) == 64
        assert (tmp_path / "out" / "small.xlsx").is_file()
        ready = next(c for c in st["conditions"] if c["type"] == "Ready")
        assert ready["status"] == "True" and ready["reason"] == "Succeeded"
        assert ready["observedGeneration"] == obj["metadata"]["generation"]
        assert st["startTime"] and st["completionTime"]
        table = cluster.kubectl("get", "rr", "-n", namespace).stdout
        header = table.splitlines()[0].split()
        assert header == ["NAME", "PHASE", "STEP", "ROWS", "AGE"], table
        assert table.splitlines()[1].split()[:4] == ["small", "Succeeded", "<none>", "100"] or \
            table.splitlines()[1].split()[:3] == ["small", "Succeeded", "100"], table
        def reasons() -> list[str]:
            return cluster.kubectl("get", "events", "-n", namespace, "--field-selector", "involvedObject.name=small",
                                   "-o", "jsonpath={.items[*].reason}").stdout.split()
        # the operator posts the Succeeded Event just after the status write we saw
        events = wait_for(lambda: "Succeeded" in (e := reasons()) and e, 60, 0.2, what="the Succeeded Event")
        assert "Accepted" in events and "Succeeded" in events
        assert chains_published(redis_srv, obj["metadata"]["uid"]) == 1
        print(f"\napply-to-Succeeded latency (100 rows, 3 steps): {latency:.2f}s")
    finally:
        op.stop()


@pytest.mark.parametrize("mutate, field", [
    (lambda d: d["spec"]["steps"][0]["sqlite"].update(queries=[{"name": "Bad Name", "sql": "SELECT 1"}]),
     "spec.steps[0].sqlite.queries[0].name"),
    (lambda d: d["spec"]["steps"][1]["excel"].update(fileName="../escape.xlsx"),
     "spec.steps[1].excel.fileName"),
    (lambda d: d["spec"]["steps"][2].update(s3={"bucket": "b"}),
     "spec.steps[2]"),
])
def test_api_server_rejects_invalid_manifests(cluster, namespace, sample_db, tmp_path, mutate, field) -> None:  # noqa: F811
    doc = report("bad", sample_db, tmp_path)
    mutate(doc)
    res = apply(cluster, namespace, doc)
    assert res.returncode != 0
    assert field in res.stderr, res.stderr
    assert cluster.kubectl("get", "rr", "bad", "-n", namespace, check=False).returncode != 0


def test_spec_is_immutable(cluster, namespace, sample_db, tmp_path) -> None:  # noqa: F811
    doc = report("fixed", sample_db, tmp_path)
    assert apply(cluster, namespace, doc).returncode == 0
    doc["spec"]["deadlineSeconds"] = 99
    res = apply(cluster, namespace, doc)
    assert res.returncode != 0 and "spec is immutable" in res.stderr, res.stderr


def test_operator_killed_mid_report_resumes_with_one_chain(cluster, namespace, redis_srv, workers,  # noqa: F811
                                                          sample_db, shared, tmp_path) -> None:
    op = OperatorProcess(cluster, redis_srv.addr, shared, namespace, name="op-a")
    try:
        assert apply(cluster, namespace, report("restart", sample_db, tmp_path / "out")).returncode == 0
        wait_for(lambda: get_rr(cluster, namespace, "restart").get("status", {}).get("phase"), 60,
                 what="the report to be accepted")
        op.kill()
        time.sleep(1)
        op = OperatorProcess(cluster, redis_srv.addr, shared, namespace, name="op-b")
        obj = wait_phase(cluster, namespace, "restart", timeout=180)
        assert obj["status"]["phase"] == "Succeeded", obj["status"]
        assert obj["status"]["rows"] == 20000
        assert chains_published(redis_srv, obj["metadata"]["uid"]) == 1
    finally:
        op.stop()


@pytest.mark.parametrize("peering", [False, True], ids=["standalone", "kopf-peering"])
def test_two_operator_replicas_publish_one_chain(cluster, namespace, redis_srv, workers, sample_db,  # noqa: F811
                                                  shared, tmp_path, peering) -> None:
    args: tuple[str, ...] = ()
    if peering:
        cluster.apply(ROOT / "helm/go-reports/crds/kopf.dev_peerings.yaml")
        cluster.wait_for_crd("kopfpeerings.kopf.dev")
        cluster.kubectl("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump(
            {"apiVersion": "kopf.dev/v1", "kind": "KopfPeering", "metadata": {"name": "go-reports"}}))
        args = ("--peering", "go-reports")
    ops = [OperatorProcess(cluster, redis_srv.addr, shared, namespace, *args, name=f"rep-{i}-{peering}")
           for i in range(2)]
    try:
        for i in range(3):
            assert apply(cluster, namespace, report(f"twin-{i}", sample_db, tmp_path / "out", 50)).returncode == 0
        for i in range(3):
            obj = wait_phase(cluster, namespace, f"twin-{i}")
            assert obj["status"]["phase"] == "Succeeded"
            assert chains_published(redis_srv, obj["metadata"]["uid"]) == 1
        if peering:  # exactly one replica is active; the other paused in its favour
            logs = [op.log.read_text() for op in ops]
            active = sum(t.count("Resuming operations after the pause") -
                         t.count("Pausing operations in favour of") for t in logs)
            assert active == 1, logs
    finally:
        for op in ops:
            op.stop()


def test_delete_mid_report_runs_finalizer_and_removes_streams(cluster, namespace, redis_srv, workers,  # noqa: F811
                                                               sample_db, shared, tmp_path) -> None:
    op = OperatorProcess(cluster, redis_srv.addr, shared, namespace, name="op-del")
    r = redis.Redis(*redis_srv.addr.split(":"))
    try:
        assert apply(cluster, namespace, report("doomed", sample_db, tmp_path / "out")).returncode == 0
        obj = wait_for(lambda: (o := get_rr(cluster, namespace, "doomed")).get("status", {}).get("phase")
                       == "Running" and o, 60, 0.05, what="the report to run")
        uid = obj["metadata"]["uid"]
        assert "goreports.io/cleanup" in obj["metadata"].get("finalizers", [])
        cluster.kubectl("delete", "rr", "doomed", "-n", namespace, "--wait=true", timeout=60)
        assert cluster.kubectl("get", "rr", "doomed", "-n", namespace, check=False).returncode != 0

        def gone() -> bool:
            return not list(r.scan_iter(match=f"goreports:data:{uid}:*"))
        try:
            wait_for(gone, 60, what="the report's data streams to be removed")
        except TimeoutError:
            left = sorted(k.decode() for k in r.scan_iter(match=f"goreports:data:{uid}:*"))
            logs = {p.name: p.read_text()[-1500:] for p in shared.glob("w-*.log")}
            raise AssertionError(f"keys left: {left}\nworker logs: {logs}") from None
        assert r.get(f"goreports:cancelled:{uid}") is not None
    finally:
        op.stop()


def test_mysql_example_applied_with_kubectl_succeeds(cluster, namespace, redis_srv, shared,  # noqa: F811
                                                     mariadb, tmp_path) -> None:
    """examples/mysql-report.yaml as a user applies it: MariaDB collector, Excel, local delivery."""
    mariadb.create_database("sales")
    mariadb.execute_sql((ROOT / "examples/data/mysql-sales.sql").read_text(), db="sales")
    creds = tmp_path / "credentials"
    mariadb.write_credentials(creds, "sales-db")
    doc = yaml.safe_load((ROOT / "examples/mysql-report.yaml").read_text())
    for step in doc["spec"]["steps"]:
        if "local" in step:
            step["local"]["path"] = str(tmp_path / "out")
    env = {"GOREPORTS_ARTIFACT_DIR": str(shared / "staging"), "GOREPORTS_CREDENTIALS_DIR": str(creds)}
    procs = [start_worker(redis_srv.addr, "mysql", log=tmp_path / "w-mysql.log", **env),
             start_worker(redis_srv.addr, "excel", "mustache", "csv", log=tmp_path / "w-gen.log", **env),
             start_worker(redis_srv.addr, "local", log=tmp_path / "w-local.log", **env)]
    op = OperatorProcess(cluster, redis_srv.addr, shared, namespace, name="op-mysql")
    try:
        assert apply(cluster, namespace, doc).returncode == 0
        name = doc["metadata"]["name"]
        obj = wait_phase(cluster, namespace, name, timeout=180)
        assert obj["status"]["phase"] == "Succeeded", (obj["status"], (tmp_path / "w-mysql.log").read_text()[-2000:])
        want = mariadb.query("SELECT COUNT(*) FROM orders", db="sales")[0][0]
        collect = next(s for s in obj["status"]["steps"] if s["name"] == "collect")
        assert collect["rows"] >= want > 0
        delivered = [a for a in obj["status"]["artifacts"] if a["step"] == "deliver"]
        assert delivered and all((tmp_path / "out" / a["name"]).is_file() for a in delivered)
        describe = cluster.kubectl("describe", "rr", name, "-n", namespace).stdout
        assert "Ready" in describe and "StepSucceeded" in describe
    finally:
        op.stop()
        for p in procs:
            stop(p)


def test_deadline_fails_the_report_and_workers_drop_its_jobs(cluster, namespace, redis_srv, sample_db,  # noqa: F811
                                                             shared, tmp_path) -> None:
    """No csv worker runs, so the report cannot finish: it fails with DeadlineExceeded, and the
    csv worker started afterwards drops the job instead of writing the file."""
    op = OperatorProcess(cluster, redis_srv.addr, shared, namespace, name="op-deadline")
    env = {"GOREPORTS_ARTIFACT_DIR": str(shared / "staging")}
    collector = start_worker(redis_srv.addr, "sqlite", log=tmp_path / "w-c.log", **env)
    late = None
    r = redis.Redis(*redis_srv.addr.split(":"))
    stream = "goreports:jobs:generators:csv-late"
    try:
        # The 4 s deadline starts at creation: a collector still importing its modules on a
        # loaded machine would drop the collect job too, and no csv job would ever wait.
        wait_for(lambda: "serving" in (tmp_path / "w-c.log").read_text(), 90, 0.1,
                 what="the collector worker to serve")
        doc = report("late", sample_db, tmp_path / "out", 10, deadlineSeconds=4)
        # a dedicated pool that nobody serves yet
        doc["spec"]["steps"][1] = {"name": "file", "pattern": "csv-late",
                                   "csv": {"fileName": "late.csv", "dataset": "orders"}}
        assert apply(cluster, namespace, doc).returncode == 0
        obj = wait_phase(cluster, namespace, "late", timeout=60)
        st = obj["status"]
        assert st["phase"] == "Failed", st
        ready = next(c for c in st["conditions"] if c["type"] == "Ready")
        assert ready["reason"] == "DeadlineExceeded" and "deadlineSeconds=4" in ready["message"]
        assert r.xlen(stream) == 1, "the collector did not hand the csv job on"
        late = start_worker(redis_srv.addr, "csv-late=csv", log=tmp_path / "w-late.log", **env)

        def drained() -> bool:
            groups = {g["name"]: g for g in r.xinfo_groups(stream)}
            g = groups.get(b"csv-late") or groups.get("csv-late")  # made by the worker when it starts
            return bool(g) and g["pending"] == 0 and g["lag"] == 0
        wait_for(drained, 90, what="the late csv job to be taken and dropped")
        assert not (tmp_path / "out").exists()
        assert get_rr(cluster, namespace, "late")["status"]["phase"] == "Failed"
    finally:
        op.stop()
        stop(collector)
        if late is not None:
            stop(late)
