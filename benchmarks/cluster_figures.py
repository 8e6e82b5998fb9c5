"""Operator and scaling figures, on the test control plane (a real kube-apiserver + etcd).

Operator: ReportRequests created through the API server, the operator (`goreports operator`)
accepting and compiling them, sqlite/csv/local workers running them, the operator folding the
events into `status`. Latency per report runs from just before its create call to the moment a
watch on the API server sees `status.phase: Succeeded` (timestamps in status have 1 s
resolution, too coarse). The operator's CPU seconds (user + system, from /proc via psutil) and
peak RSS are its own.

Scaling: the operator's scaler with the chart's default interval (2 s) on a Deployment with no
pods (no kubelet runs): a backlog is put on the pool's stream and the time until the
Deployment's `spec.replicas` is raised is taken; then the backlog is drained (read and
acknowledged, as workers would) and the time until it is back at the minimum is taken — which
is the cool-down plus up to one interval, by design.
"""
from __future__ import annotations

import json
import queue
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psutil
import redis
import yaml
from kubernetes import client, config, watch

from harness import PeakRss, running_workers  # noqa: I001 (puts tests/ on sys.path first)
from controlplane.cluster import ControlPlane
from data import SMALL_SQL, small_sqlite
from results import Figure, percentile
from support.k8s import OperatorProcess

ROOT = Path(__file__).resolve().parent.parent
GROUP, VERSION, PLURAL = "goreports.io", "v1alpha1", "reportrequests"
SCALE_UP_TARGET_S = 5.0
SCALING_INTERVAL_S = 2.0  # the chart's default scaling.intervalSeconds
COOLDOWN_S = 5.0          # the chart's default is 300 s; shortened so that the run stays short


def start_control_plane() -> ControlPlane:
    cp = ControlPlane().start()
    try:
        # One file at a time: only ReportRequests are required here, and a CRD that is being
        # worked on must not stop the figures that do not need it.
        for f in sorted((ROOT / "deploy" / "crds").glob("*.yaml")):
            name = yaml.safe_load(f.read_text())["metadata"]["name"]
            try:
                cp.apply(f)
                cp.wait_for_crd(name)
            except Exception as e:  # noqa: BLE001
                if name.startswith(f"{PLURAL}."):
                    raise
                print(f"[bench] warning: CRD {name} not applied: {str(e)[-400:]}")
    except BaseException:
        cp.stop()
        raise
    return cp


def _api(cp: ControlPlane) -> client.ApiClient:
    return config.new_client_from_config(config_file=str(cp.kubeconfig))


def _namespace(cp: ControlPlane, name: str) -> str:
    cp.kubectl("create", "namespace", name)
    return name


# -- operator -------------------------------------------------------------------------------------

class PhaseWatch:
    """A watch on ReportRequests that records when each first reaches a final phase.

    The watch is re-opened from the last resourceVersion whenever the API server ends it; and
    should an update still be missed, `wait` lists the objects after a quiet second and records
    what it finds (`missed` counts those, with the time of the listing: a later, upper bound).
    """

    def __init__(self, api: client.ApiClient, ns: str) -> None:
        self.objects = client.CustomObjectsApi(api)
        self.ns = ns
        self.done: dict[str, tuple[float, str]] = {}
        self.missed = 0
        self.reopened = -1  # times the watch was (re)opened after the first
        self.changed = threading.Condition()
        self._watch = watch.Watch()
        self._stopped = threading.Event()
        self._errors: queue.Queue[BaseException] = queue.Queue()
        self._thread = threading.Thread(target=self._run, daemon=True, name="rr-watch")
        self._thread.start()

    def _record(self, obj: dict[str, Any], at: float) -> bool:
        phase = (obj.get("status") or {}).get("phase")
        name = obj["metadata"]["name"]
        if phase in ("Succeeded", "Failed") and name not in self.done:
            with self.changed:
                self.done[name] = (at, phase)
                self.changed.notify_all()
            return True
        return False

    def _run(self) -> None:
        rv: str | None = None
        while not self._stopped.is_set():
            self.reopened += 1
            try:
                kwargs: dict[str, Any] = {"timeout_seconds": 300}
                if rv:
                    kwargs["resource_version"] = rv
                for ev in self._watch.stream(self.objects.list_namespaced_custom_object, GROUP,
                                             VERSION, self.ns, PLURAL, **kwargs):
                    if ev["type"] == "ERROR":
                        rv = None  # e.g. 410 Gone: list and watch afresh
                        break
                    rv = ev["object"]["metadata"].get("resourceVersion") or rv
                    self._record(ev["object"], time.perf_counter())
            except client.ApiException as e:
                if e.status == 410:
                    rv = None
                    continue
                self._errors.put(e)
                return
            except Exception as e:  # noqa: BLE001 - handed to the waiting thread
                if self._stopped.is_set():
                    return
                self._errors.put(e)
                return

    def _list(self) -> None:
        now = time.perf_counter()
        for obj in self.objects.list_namespaced_custom_object(GROUP, VERSION, self.ns,
                                                               PLURAL)["items"]:
            if self._record(obj, now):
                self.missed += 1

    def wait(self, names: set[str], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            with self.changed:
                before = len(self.done)
                if names <= self.done.keys():
                    break
                if not self._errors.empty():
                    raise RuntimeError(f"watching ReportRequests failed: {self._errors.get()}")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{len(names - self.done.keys())} of {len(names)} "
                                       f"ReportRequest(s) not finished after {timeout:.0f}s")
                self.changed.wait(min(left, 1.0))
                quiet = len(self.done) == before
            if quiet:
                self._list()
        failed = sorted(n for n in names if self.done[n][1] == "Failed")
        if failed:
            status = self.objects.get_namespaced_custom_object(GROUP, VERSION, self.ns, PLURAL,
                                                               failed[0]).get("status", {})
            raise RuntimeError(f"{len(failed)} ReportRequest(s) failed, e.g. {failed[0]}: "
                               f"{status.get('message')}")

    def stop(self) -> None:
        self._stopped.set()
        self._watch.stop()


def _rr(name: str, db: Path, out: Path) -> dict[str, Any]:
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "ReportRequest",
            "metadata": {"name": name},
            "spec": {"steps": [
                {"name": "collect", "sqlite": {"database": str(db),
                                               "queries": [{"name": "items", "sql": SMALL_SQL}]}},
                {"name": "generate", "csv": {"fileName": f"{name}.csv", "dataset": "items"}},
                {"name": "deliver", "local": {"path": str(out)}}]}}


def operator_figures(cp: ControlPlane, redis_addr: str, tmp: Path, singles: int,
                     concurrent: int, notes: list[str]) -> list[Figure]:
    """The figures; how many finishes the watch missed is appended to `notes`."""
    tmp.mkdir(parents=True, exist_ok=True)
    ns = _namespace(cp, "bench-operator")
    db = small_sqlite(tmp / "small.db")
    out = tmp / "out"
    api = _api(cp)
    objects = client.CustomObjectsApi(api)

    def create(name: str) -> float:
        t = time.perf_counter()
        objects.create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, _rr(name, db, out))
        return t

    sampler = PeakRss()
    with running_workers(redis_addr, tmp, "sqlite", "csv", "local"):
        op = OperatorProcess(cp, redis_addr, tmp, ns)
        proc = psutil.Process(op.proc.pid)
        sampler.watch("operator", op.proc.pid)
        sampler.start()
        phases = PhaseWatch(api, ns)
        try:
            warm = "warm-up"
            create(warm)
            phases.wait({warm}, 120)
            single: list[float] = []
            for i in range(singles):
                name = f"one-{i}"
                t = create(name)
                phases.wait({name}, 120)
                single.append(phases.done[name][0] - t)
            cpu0 = sum(proc.cpu_times()[:2])
            names = [f"many-{i}" for i in range(concurrent)]
            started = time.perf_counter()
            with ThreadPoolExecutor(16) as pool:
                created = dict(zip(names, pool.map(create, names)))
            phases.wait(set(names), 120 + concurrent)
            wall = max(phases.done[n][0] for n in names) - started
            cpu = sum(proc.cpu_times()[:2]) - cpu0
            many = [phases.done[n][0] - created[n] for n in names]
            if phases.missed or phases.reopened:
                notes.append(f"operator: the watch was re-opened {phases.reopened} time(s); "
                             f"{phases.missed} of {concurrent + singles + 1} finishes were found by "
                             f"listing instead (their latency is an upper bound)")
        finally:
            phases.stop()
            rss = sampler.stop()["operator"]
            op.stop()
    api.close()
    return [
        Figure(f"operator, 1 report ({singles} runs): apply -> Succeeded p50",
               percentile(single, 50) * 1000, "ms"),
        Figure(f"operator, 1 report ({singles} runs): apply -> Succeeded p99",
               percentile(single, 99) * 1000, "ms"),
        Figure(f"operator, {concurrent} at once: apply -> Succeeded p50",
               percentile(many, 50) * 1000, "ms"),
        Figure(f"operator, {concurrent} at once: apply -> Succeeded p99",
               percentile(many, 99) * 1000, "ms"),
        Figure(f"operator, {concurrent} at once: all Succeeded", wall, "s"),
        Figure(f"operator, {concurrent} at once: operator CPU", cpu, "CPU s"),
        Figure(f"operator, {concurrent} at once: operator CPU per report", cpu / concurrent * 1000,
               "CPU ms"),
        Figure("operator: peak RSS (whole run)", rss, "MB"),
    ]


# -- scaling --------------------------------------------------------------------------------------

def _deployment(name: str, replicas: int) -> dict[str, Any]:
    labels = {"app.kubernetes.io/name": "go-reports", "goreports.io/pool": name}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "labels": labels},
            "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels}, "spec": {"containers": [
                         {"name": "worker", "image": "go-reports:bench",
                          "args": ["worker", "--pattern", "excel"]}]}}}}


def _until(cond: Any, timeout: float, what: str) -> float:
    """Seconds until `cond()` is true (polled every 20 ms)."""
    started = time.perf_counter()
    while not cond():
        if time.perf_counter() - started > timeout:
            raise TimeoutError(f"{what}: not within {timeout:.0f}s")
        time.sleep(0.02)
    return time.perf_counter() - started


def scaling_figures(cp: ControlPlane, redis_addr: str, tmp: Path, trials: int,
                    notes: list[str]) -> list[Figure]:
    """The figures; the settings they were measured with are appended to `notes`."""
    tmp.mkdir(parents=True, exist_ok=True)
    ns = _namespace(cp, "bench-scaling")
    pool, minimum, maximum, per_replica, backlog = "pool-bench", 1, 5, 10, 50
    cp.kubectl("apply", "-n", ns, "-f", "-", input=json.dumps(_deployment(pool, minimum)))
    cfg = tmp / "scaling.yaml"
    cfg.write_text(yaml.safe_dump({"namespace": ns, "intervalSeconds": SCALING_INTERVAL_S, "pools": [
        {"deployment": pool, "patterns": [{"channel": "generators", "pattern": "excel"}],
         "minReplicas": minimum, "maxReplicas": maximum, "targetBacklog": per_replica,
         "cooldownSeconds": COOLDOWN_S}]}))
    api = _api(cp)
    apps = client.AppsV1Api(api)
    r = redis.Redis(*redis_addr.split(":"))
    stream, group = "goreports:jobs:generators:excel", "excel"

    def replicas() -> int:
        return int(apps.read_namespaced_deployment_scale(pool, ns).spec.replicas or 0)

    up: list[float] = []
    full: list[float] = []
    down: list[float] = []
    op = OperatorProcess(cp, redis_addr, tmp, ns, GOREPORTS_SCALING_FILE=str(cfg))
    try:
        _until(lambda: replicas() == minimum, 30, "pool at its minimum before the first trial")
        time.sleep(SCALING_INTERVAL_S)  # the scaler is running (one round seen)
        for trial in range(trials):
            # a random phase against the scaler's rounds (the previous trial ended on one)
            time.sleep(random.uniform(0, SCALING_INTERVAL_S))
            with r.pipeline() as p:
                for i in range(backlog):
                    p.xadd(stream, {"job": b"bench-%d-%d" % (trial, i)})
                p.execute()
            up.append(_until(lambda: replicas() > minimum, 30, "replicas raised after a backlog"))
            full.append(_until(lambda: replicas() == maximum, 30, "replicas at the maximum")
                        + up[-1])
            try:
                r.xgroup_create(stream, group, id="0", mkstream=True)
            except redis.ResponseError:
                pass
            entries = r.xreadgroup(group, "bench", {stream: ">"}, count=10 * backlog)
            r.xack(stream, group, *[eid for eid, _ in entries[0][1]])
            down.append(_until(lambda: replicas() == minimum, COOLDOWN_S + 30,
                               "replicas back to the minimum after the drain"))
    finally:
        op.stop()
        r.close()
        api.close()
    figures = [
        Figure(f"scaling: backlog -> replicas raised (median of {trials})", percentile(up, 50), "s",
               "", None, f"< {SCALE_UP_TARGET_S:.0f} s", percentile(up, 50) < SCALE_UP_TARGET_S),
        Figure(f"scaling: backlog -> replicas raised (max of {trials})", max(up), "s"),
        Figure(f"scaling: backlog -> at the maximum {maximum} (median)", percentile(full, 50), "s"),
        Figure(f"scaling: drained -> back to the minimum (median of {trials})",
               percentile(down, 50), "s", "", None,
               f"~ cool-down {COOLDOWN_S:.0f} s + <= {SCALING_INTERVAL_S:.0f} s",
               percentile(down, 50) <= COOLDOWN_S + SCALING_INTERVAL_S + 1.0),
    ]
    notes.append(f"scaling: interval {SCALING_INTERVAL_S:.0f} s (the chart's default), cool-down "
             f"{COOLDOWN_S:.0f} s (the chart's default is 300 s), backlog {backlog} jobs, "
             f"targetBacklog {per_replica}, replicas {minimum}..{maximum}")
    return figures
