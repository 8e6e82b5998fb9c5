"""A burst of 1,000 small ReportRequests through the real Reports API: all Succeeded, none lost,
none delivered twice, and how long it took.

Real processes: `goreports api` (REST), `goreports operator`, and one `goreports worker` per
pool (sqlite, csv, local) on the real kube-apiserver and redis-server. Each report reads 10
rows from SQLite, writes a CSV and delivers it to a folder. "Delivered twice" is counted from
the events stream (Succeeded events of the deliver step per report: a step that ran again would
emit a second one) and from the job streams (one head job per report).
"""
from __future__ import annotations

import csv
import signal
import sqlite3
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Iterator

import pytest
import redis

from goreports.proto import events_pb2, job_pb2
from support.api import ApiProcess, call, token
from support.faults import Outcome
from support.k8s import OperatorProcess, cluster  # noqa: F401
from support.servers import RedisServer
from support.workers import start_worker, stop

pytestmark = [pytest.mark.reliability, pytest.mark.e2e, pytest.mark.timeout(600)]

REPORTS = 1000
ROWS = 10
CLIENTS = 16  # concurrent API callers


@pytest.fixture
def redis_srv() -> Iterator[RedisServer]:
    server = RedisServer().start()
    yield server
    server.cleanup()


def phases(cluster: Any, ns: str) -> dict[str, str]:  # noqa: F811
    out = cluster.kubectl("get", "rr", "-n", ns, "-o",
                          'jsonpath={range .items[*]}{.metadata.name}={.status.phase}{"\\n"}{end}',
                          timeout=60).stdout
    return dict(line.split("=", 1) for line in out.splitlines() if line)


def wait_all_final(cluster: Any, ns: str, stall: float) -> dict[str, str] | None:  # noqa: F811
    """Every report's phase once all are final; None when nothing finished for `stall` s."""
    last, since = -1, time.monotonic()
    while True:
        got = phases(cluster, ns)
        done = sum(1 for p in got.values() if p in ("Succeeded", "Failed"))
        if done == REPORTS:
            return got
        if done != last:
            last, since = done, time.monotonic()
        elif time.monotonic() - since > stall:
            return None
        time.sleep(2)


def diagnose(redis_srv: RedisServer, cluster: Any, ns: str, names: list[str]) -> str:  # noqa: F811
    """What Redis holds for stuck reports: markers, dataset streams and cursors, pending jobs."""
    r = redis.Redis(*redis_srv.addr.split(":"), decode_responses=False)
    lines = []
    for name in names:
        uid = cluster.kubectl("get", "rr", name, "-n", ns, "-o", "jsonpath={.metadata.uid}").stdout
        lines.append(f"== {name} {uid} status={phases(cluster, ns).get(name)}")
        for key in sorted(r.scan_iter(match=f"goreports:*{uid}*")):
            kind = r.type(key).decode()
            if kind == "string":
                lines.append(f"{key.decode()} = {r.get(key)!r} ttl={r.ttl(key)}")
            elif kind == "hash":
                lines.append(f"{key.decode()} = {r.hgetall(key)!r}")
            elif kind == "stream":
                from goreports.proto import dataset_pb2
                entries = []
                for eid, f in r.xrange(key):
                    e = dataset_pb2.DatasetEntry.FromString(f[b"d"])
                    k = e.WhichOneof("kind")
                    entries.append(f"{eid.decode()}:{k}:{getattr(e, k).generation}")
                lines.append(f"{key.decode()} = {entries}")
        for ev in [events_pb2.StageEvent.FromString(f[b"d"]) for _, f in r.xrange("goreports:events")]:
            if ev.report.uid == uid:
                lines.append(f"event {ev.step} {events_pb2.StepState.Name(ev.state)} rows={ev.rows} "
                             f"worker={ev.worker} {ev.error[:100]}")
    for stream in ("collectors:sqlite", "generators:csv", "dispatchers:local"):
        key = f"goreports:jobs:{stream}"
        lines.append(f"{key} groups={r.xinfo_groups(key)}")
        for p in r.xpending_range(key, stream.split(":")[1], "-", "+", 20):
            job = job_pb2.Job.FromString(r.xrange(key, p["message_id"], p["message_id"])[0][1][b"job"])
            lines.append(f"  pending {p} {job.report.name} rerun={job.rerun} attempt={job.attempt}")
    return "\n".join(lines)


def test_burst_of_1000_reports_through_the_api(cluster, redis_srv, tmp_path: Path,  # noqa: F811
                                               outcome: Outcome) -> None:
    outcome.fault = f"Burst of {REPORTS} ReportRequests via the REST API"
    ns = f"burst-{uuid.uuid4().hex[:6]}"
    cluster.kubectl("create", "namespace", ns)
    db = tmp_path / "tiny.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, label TEXT)")
        conn.executemany("INSERT INTO t VALUES (?, ?)", [(i, f"row-{i}") for i in range(ROWS)])
    out = tmp_path / "out"
    env = {"GOREPORTS_ARTIFACT_DIR": str(tmp_path / "staging"),
           "GOREPORTS_STAGE_MODULES": "support.stages,support.taskdump",  # SIGUSR1: task stacks
           # No worker is killed here: the product's default visibility timeout, not the 2 s of
           # the kill tests, so that a live worker starved for 2.5 s on a loaded 2-core machine
           # is not taken over (and its step run twice). Heartbeats stay frequent (0.5 s).
           "GOREPORTS_VISIBILITY_TIMEOUT": "30"}
    workers = [start_worker(redis_srv.addr, p, log=tmp_path / f"w-{p}.log", cli_args=("--concurrency", "16"), **env)
               for p in ("sqlite", "csv", "local")]
    api = ApiProcess(cluster.kubeconfig, tmp_path)
    op = OperatorProcess(cluster, redis_srv.addr, tmp_path, ns, name="op-burst")
    tok = token("burst", [ns])
    names = [f"burst-{i:04d}" for i in range(REPORTS)]

    def create(name: str) -> int:
        spec = {"steps": [
            {"name": "collect", "sqlite": {"database": str(db), "queries": [
                {"name": "t", "sql": "SELECT id, label FROM t ORDER BY id"}]}},
            {"name": "table", "csv": {"fileName": f"{name}.csv", "dataset": "t"}},
            {"name": "deliver", "local": {"path": str(out)}}]}
        status, _, body = call("POST", f"{api.url}/v1/namespaces/{ns}/reports",
                               {"metadata": {"name": name}, "spec": spec}, token=tok, timeout=120)
        assert status == 201, (name, status, body)
        return status

    try:
        t0 = time.monotonic()
        with ThreadPoolExecutor(CLIENTS) as pool:
            list(pool.map(create, names))
        accepted_s = time.monotonic() - t0

        final = wait_all_final(cluster, ns, stall=60)
        if final is None:
            got = phases(cluster, ns)
            stuck = sorted(n for n, p in got.items() if p not in ("Succeeded", "Failed"))
            for w in workers:
                w.send_signal(signal.SIGUSR1)
            time.sleep(2)
            dumps = "\n".join(f"=== {p.name}\n{p.read_text()[p.read_text().find('=== taskdump'):][:8000]}"
                              for p in sorted(tmp_path.glob("w-*.log")))
            raise AssertionError(f"{dumps}\n"f"not finished: {Counter(got.values())}; stuck: {stuck[:5]}\n"
                                 f"{diagnose(redis_srv, cluster, ns, stuck[:3])}")
        seconds = time.monotonic() - t0
        r = redis.Redis(*redis_srv.addr.split(":"))
        uids = {}
        for _, f in r.xrange("goreports:jobs:collectors:sqlite"):
            job = job_pb2.Job.FromString(f[b"job"])
            uids.setdefault(job.report.name, []).append(job.report.uid)
        delivered: Counter[str] = Counter()
        for _, f in r.xrange("goreports:events"):
            ev = events_pb2.StageEvent.FromString(f[b"d"])
            if ev.step == "deliver" and ev.state == events_pb2.STEP_STATE_SUCCEEDED:
                delivered[ev.report.name] += 1
        files = sorted(p.name for p in out.glob("*.csv"))
        succeeded = sum(1 for p in final.values() if p == "Succeeded")
        outcome.reports, outcome.completed = REPORTS, succeeded
        outcome.losses = REPORTS - succeeded
        outcome.duplicates = sum(n - 1 for n in delivered.values() if n > 1) + \
            sum(len(u) - 1 for u in uids.values() if len(u) > 1)
        outcome.seconds = seconds
        outcome.note = (f"{REPORTS} created in {accepted_s:.0f} s by {CLIENTS} clients; "
                        f"all final after {seconds:.0f} s ({REPORTS / seconds:.1f} reports/s)")
        assert succeeded == REPORTS, Counter(final.values())
        assert sorted(uids) == names and all(len(u) == 1 for u in uids.values()), "chains published"
        assert sorted(delivered) == names and set(delivered.values()) == {1}, delivered.most_common(3)
        assert files == [f"{n}.csv" for n in names]
        with open(out / files[-1], newline="") as f:
            assert len(list(csv.reader(f))) == ROWS + 1
        print(f"\nburst: {outcome.note}")
    finally:
        op.stop()
        api.stop()
        for w in workers:
            stop(w)
