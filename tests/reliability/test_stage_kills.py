"""SIGKILL a worker mid-stage: the report still completes, once.

One report shape for all three faults: MariaDB (20,000 rows) -> Excel -> S3 (moto, versioned
bucket, behind a request-counting proxy) -> e-mail (aiosmtpd), with the operator on the real
kube-apiserver and `goreports worker` processes. The stage under test runs in a pool of two
worker processes; the one holding the step's lease is SIGKILLed at a chosen point, the other
takes the job over after the visibility timeout (2 s here).

Batches of 100 rows and a window of 4 batches keep the collector and the generator in step, so
"mid-dataset" and "mid-file" last seconds, not milliseconds. The dispatcher is killed at the
worst points: after S3 stored the object but before the dispatcher heard back (the proxy holds
the answer), and in the middle of the SMTP conversation (the server holds its RCPT answer).
"""
from __future__ import annotations

import hashlib
import io
import subprocess
import uuid
from pathlib import Path
from typing import Any, Callable, Iterator

import openpyxl
import pytest
import redis

from support.faults import (ITEMS_SQL, HoldingCollector, HoldingProxy, Outcome, apply_report,
                            lease_holder_pid, make_items_db, row_digest, sigkill, wait_final)
from support.k8s import OperatorProcess, cluster  # noqa: F401
from support.mariadb import MariaDB, mariadb  # noqa: F401
from support.s3 import MotoServer, moto_server  # noqa: F401
from support.servers import RedisServer
from support.smtp import SmtpServer
from support.workers import start_worker, stop, wait_for

pytestmark = [pytest.mark.reliability, pytest.mark.e2e, pytest.mark.timeout(300)]

ROWS = 20_000
DB = "faults"
SQL = ITEMS_SQL
CHAIN = {"collect": "mysql", "workbook": "excel", "upload": "s3", "mail": "email"}


@pytest.fixture(scope="module")
def source(mariadb: MariaDB) -> tuple[int, str]:  # noqa: F811
    return make_items_db(mariadb, DB, ROWS)


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory, mariadb: MariaDB,  # noqa: F811
           moto_server: MotoServer) -> Path:  # noqa: F811
    root = tmp_path_factory.mktemp("kills")
    creds = root / "credentials"
    mariadb.write_credentials(creds, "src-db")
    subprocess.run(["cp", "-r", str(moto_server.credentials_dir / "s3"), str(creds / "s3")], check=True)
    return root


@pytest.fixture(scope="module")
def redis_srv() -> Iterator[RedisServer]:
    server = RedisServer().start()
    yield server
    server.cleanup()


@pytest.fixture(scope="module")
def proxy(moto_server: MotoServer) -> Iterator[HoldingProxy]:  # noqa: F811
    p = HoldingProxy(moto_server.port).start()
    yield p
    p.stop()


@pytest.fixture(scope="module")
def ns(cluster: Any) -> str:  # noqa: F811
    name = f"kills-{uuid.uuid4().hex[:6]}"
    cluster.kubectl("create", "namespace", name)
    return name


@pytest.fixture(scope="module")
def operator(cluster: Any, redis_srv: RedisServer, shared: Path, ns: str) -> Iterator[OperatorProcess]:  # noqa: F811
    op = OperatorProcess(cluster, redis_srv.addr, shared, ns, name="op-kills")
    yield op
    op.stop()


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    server = SmtpServer(handler=HoldingCollector()).start()
    yield server
    server.stop()


def worker_env(shared: Path) -> dict[str, str]:
    return {"GOREPORTS_ARTIFACT_DIR": str(shared / "staging"),
            "GOREPORTS_CREDENTIALS_DIR": str(shared / "credentials"),
            "GOREPORTS_BATCH_ROWS": "100", "GOREPORTS_WINDOW_BATCHES": "4"}


def report(name: str, bucket: str, proxy: HoldingProxy, smtp: SmtpServer) -> dict[str, Any]:
    return {"apiVersion": "goreports.io/v1alpha1", "kind": "ReportRequest",
            "metadata": {"name": name},
            "spec": {"deadlineSeconds": 600, "steps": [
                {"name": "collect", "mysql": {"instance": "src", "dbName": DB, "credentialsId": "src-db",
                                              "queries": [{"name": "items", "sql": SQL}]}},
                {"name": "workbook", "excel": {"fileName": "items.xlsx"}},
                {"name": "upload", "s3": {"bucket": bucket, "prefix": f"{name}/", "endpointUrl": proxy.url,
                                          "region": "us-east-1", "credentialsId": "s3"}},
                {"name": "mail", "email": {"to": ["ops@example.com"], "from": "reports@example.com",
                                           "subject": "items", "smtpHost": smtp.host,
                                           "smtpPort": smtp.port, "security": "none"}}]}}


class Run:
    """One report of this module's shape, its worker pools, and what the targets received."""

    def __init__(self, name: str, cluster: Any, ns: str, redis_srv: RedisServer, shared: Path,  # noqa: F811
                 moto: MotoServer, proxy: HoldingProxy, smtp: SmtpServer, pairs: tuple[str, ...],
                 tmp: Path) -> None:
        self.name, self.cluster, self.ns, self.moto, self.proxy, self.smtp = name, cluster, ns, moto, proxy, smtp
        self.r = redis.Redis(*redis_srv.addr.split(":"))
        self.bucket = moto.new_bucket("kills")
        moto.client().put_bucket_versioning(Bucket=self.bucket,
                                            VersioningConfiguration={"Status": "Enabled"})
        self.key = f"{name}/items.xlsx"
        env = worker_env(shared)
        # the pools under test have two processes; the others one each
        self.procs: list[subprocess.Popen] = []  # type: ignore[type-arg]
        for pattern in ("mysql", "excel", "s3", "email"):
            for i in range(2 if pattern in pairs else 1):
                self.procs.append(start_worker(redis_srv.addr, pattern, log=tmp / f"w-{pattern}-{i}.log", **env))
        self.logs = tmp
        self.uid = ""

    def start(self) -> None:
        obj = apply_report(self.cluster, self.ns, report(self.name, self.bucket, self.proxy, self.smtp))
        self.uid = obj["metadata"]["uid"]

    def marker(self, kind: str, step: str) -> bytes | None:
        return self.r.get(f"goreports:mark:{self.uid}:{kind}:{step}")  # type: ignore[return-value]

    def reading(self) -> bool:
        """The generator has read part of the dataset."""
        cursors = self.r.hgetall(f"goreports:data:{self.uid}:collect:items:cursors")
        return any(k != b"__producer__" for k in cursors)

    def kill_holder(self, step: str, when: Callable[[], bool], what: str) -> int:
        """SIGKILL the worker holding `step`'s lease once `when()`; the step must not be done."""
        pid = wait_for(lambda: when() and lease_holder_pid(self.marker("lock", step)), 90, 0.02, what=what)
        sigkill(pid)
        assert self.marker("done", step) is None, f"{step} finished before the kill: not mid-step"
        assert any(p.pid == pid for p in self.procs), f"lease held by unknown pid {pid}"
        return int(pid)

    def log_has(self, text: str) -> bool:
        return any(text in p.read_text() for p in self.logs.glob("w-*.log"))

    def finish(self, outcome: Outcome, source: tuple[int, str]) -> dict[str, Any]:
        try:
            obj = wait_final(self.cluster, self.ns, self.name, timeout=150)
        except TimeoutError:
            logs = {p.name: p.read_text()[-1500:] for p in self.logs.glob("w-*.log")}
            raise AssertionError(f"{self.name} did not finish; worker logs: {logs}") from None
        st = obj["status"]
        client = self.moto.client()
        versions = client.list_object_versions(Bucket=self.bucket, Prefix=self.key).get("Versions", [])
        puts = self.proxy.count("PUT", f"/{self.bucket}/{self.key}")
        messages = len(self.smtp.messages)
        outcome.reports, outcome.completed = 1, int(st["phase"] == "Succeeded")
        outcome.duplicates = max(0, len(versions) - 1) + max(0, messages - 1) + max(0, puts - 1)
        outcome.losses = 1 - outcome.completed
        assert st["phase"] == "Succeeded", st
        # the S3 key was written once, with the bytes the status names
        assert (len(versions), puts) == (1, 1), (versions, self.proxy.requests)
        body = client.get_object(Bucket=self.bucket, Key=self.key)
        data = body["Body"].read()
        sha = hashlib.sha256(data).hexdigest()
        [uploaded] = [a for a in st["artifacts"] if a["step"] == "upload"]
        assert body["Metadata"]["sha256"] == sha == uploaded["sha256"]
        # the file holds the source's rows, all of them, once
        wb = openpyxl.load_workbook(io.BytesIO(data), read_only=True)
        rows = wb.worksheets[0].iter_rows(values_only=True)
        assert next(rows) == ("id", "name", "qty")
        got = row_digest(rows)
        wb.close()
        assert got == source, f"file has {got[0]} rows, source {source[0]}"
        collect = next(s for s in st["steps"] if s["name"] == "collect")
        assert collect["rows"] == source[0]
        # one mail, with that file attached
        assert messages == 1, [m.message["Message-ID"] for m in self.smtp.messages]
        [att] = [p for p in self.smtp.messages[0].message.iter_attachments()]
        assert hashlib.sha256(att.get_content()).hexdigest() == sha
        outcome.note = f"{source[0]} rows; sha256 and row checksum match the source"
        return obj

    def close(self) -> None:
        for p in self.procs:
            stop(p)


@pytest.fixture
def run_factory(request: pytest.FixtureRequest, cluster: Any, ns: str, redis_srv: RedisServer,  # noqa: F811
                shared: Path, moto_server: MotoServer, proxy: HoldingProxy,  # noqa: F811
                smtp: SmtpServer, operator: OperatorProcess, tmp_path: Path) -> Iterator[Callable[[str], Run]]:
    runs: list[Run] = []

    def make(*pairs: str) -> Run:
        name = f"{request.node.name.split('[')[0].replace('_', '-')[5:40]}-{uuid.uuid4().hex[:4]}"
        run = Run(name, cluster, ns, redis_srv, shared, moto_server, proxy, smtp, pairs, tmp_path)
        runs.append(run)
        return run
    yield make
    for run in runs:
        run.close()


def test_collector_killed_mid_dataset(run_factory, source, outcome: Outcome) -> None:
    outcome.fault = "SIGKILL collector (MariaDB) mid-dataset"
    run = run_factory("mysql")
    run.start()
    run.kill_holder("collect", run.reading, "the collector to be mid-dataset")
    run.finish(outcome, source)
    # the surviving worker took the job over and produced the dataset again
    assert run.log_has(f"reclaimed mysql/collect of report {run.name}")
    assert run.log_has("dataset 'items' was restarted by collect")


def test_generator_killed_mid_file(run_factory, source, outcome: Outcome) -> None:
    outcome.fault = "SIGKILL generator (Excel) mid-file"
    run = run_factory("excel")
    run.start()
    run.kill_holder("workbook", run.reading, "the generator to be mid-file")
    run.finish(outcome, source)
    assert run.log_has(f"reclaimed excel/workbook of report {run.name}")


def test_dispatchers_killed_mid_send(run_factory, source, outcome: Outcome, proxy: HoldingProxy,
                                     smtp: SmtpServer, moto_server: MotoServer) -> None:  # noqa: F811
    """S3: killed after the object is stored, before the answer arrives (the retry must see the
    object and not upload again). SMTP: killed mid-conversation, before the server accepted."""
    outcome.fault = "SIGKILL dispatchers (S3 after store, SMTP mid-send)"
    run = run_factory("s3", "email")
    proxy.hold("PUT", f"/{run.bucket}/{run.key}")
    handler: HoldingCollector = smtp.handler  # type: ignore[assignment]
    handler.armed = True
    run.start()

    def stored() -> bool:
        if not proxy.held.is_set():
            return False
        try:
            moto_server.client().head_object(Bucket=run.bucket, Key=run.key)
            return True
        except Exception:  # noqa: BLE001 - not there yet
            return False
    run.kill_holder("upload", stored, "S3 to store the object while its answer is held")
    proxy.release()
    run.kill_holder("mail", handler.rcpt_held.is_set, "the SMTP conversation to be open")
    handler.released.set()
    run.finish(outcome, source)
    assert run.log_has(f"reclaimed s3/upload of report {run.name}")
    assert run.log_has("items.xlsx is already at s3://")  # the retry saw the stored object
    assert run.log_has(f"reclaimed email/mail of report {run.name}")
