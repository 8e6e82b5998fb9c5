"""The Helm chart installed into a real kube-apiserver (tests/controlplane), and the scaler
driving the installed pools with the chart's own RBAC.

- `helm install` through the real Helm engine (helm-python-sdk): CRDs from crds/ first, then
  every template object, accepted by the API server; `helm upgrade` keeps the replicas the
  scaler chose.
- The rendered manifests of another configuration applied with the real `kubectl apply`.
- RBAC checked by the API server's authorizer (`kubectl auth can-i --as <ServiceAccount>`).
- The scaler (`run_scaler`) against a real redis-server and the API server, impersonating the
  operator's ServiceAccount, so that the chart's Role is what allows it.

No pods run (no kubelet, no scheduler): Deployments are accepted and their scale changes, which
is all the chart and the scaler need. Fails, never skips, when the control plane cannot be built.
"""
from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any, Iterator

import helm_python as helm
import kubernetes
import pytest
import yaml

from controlplane.cluster import ControlPlane, build_binaries
from goreports.core.bus.redis import RedisBus
from goreports.core.keys import Keys
from goreports.core.settings import Settings
from goreports.operator.scaling import run_scaler, scale_once
from goreports.operator.scaling_logic import parse_scaling_config
from goreports.proto import job_pb2
from support.servers import RedisServer

# A cold build of the control plane binaries takes ~15-25 minutes; later runs reuse the cache.
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(3600)]

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "go-reports"
NS = "reports"
RELEASE = "go-reports"
OPERATOR_SA = f"system:serviceaccount:{NS}:{RELEASE}-operator"
WORKER_SA = f"system:serviceaccount:{NS}:{RELEASE}-worker"

POOLS = [
    {"name": "collectors", "channel": "collectors", "patterns": ["mysql", "http"],
     "credentials": [{"id": "sales-db", "secretName": "sales-db"}]},
    {"name": "generators", "channel": "generators", "patterns": ["excel", "mustache", "csv"],
     "minReplicas": 0, "maxReplicas": 4, "targetBacklog": 10, "cooldownSeconds": 300},
    {"name": "dispatchers", "channel": "dispatchers", "patterns": ["s3", "email", "webhook"]},
]
# The installed release: two peered operators serving two namespaces, the embedded Redis.
INSTALL_VALUES: dict[str, Any] = {
    "operator": {"replicas": 2},
    "watchNamespaces": [NS, "team-a"],
    "workers": {"pools": POOLS},
}


@pytest.fixture(scope="module")
def cp() -> Iterator[ControlPlane]:
    bin_dir = build_binaries()  # raises (an error, not a skip) when it cannot be built
    with ControlPlane(bin_dir) as plane:
        for ns in (NS, "team-a", "team-b", "elsewhere", "reports-b"):
            plane.kubectl("create", "namespace", ns)
        yield plane


@pytest.fixture(scope="module")
def release(cp: ControlPlane) -> dict[str, Any]:
    with helm.Config(kubeconfig_path=cp.kubeconfig, namespace=NS) as cfg:
        return cfg.install(str(CHART), RELEASE, INSTALL_VALUES, namespace=NS, timeout=180)


def objects_of(manifest: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(manifest) if d]


def kubectl_json(cp: ControlPlane, *args: str) -> Any:
    return json.loads(cp.kubectl(*args, "-o", "json").stdout)


def get_object(cp: ControlPlane, obj: dict[str, Any]) -> dict[str, Any]:
    kind = obj["kind"]
    group = obj["apiVersion"].split("/")[0] if "/" in obj["apiVersion"] else ""
    resource = f"{kind.lower()}.{group}" if group else kind.lower()
    args = ["get", resource, obj["metadata"]["name"]]
    if obj["metadata"].get("namespace"):
        args += ["-n", obj["metadata"]["namespace"]]
    return kubectl_json(cp, *args)


def can_i(cp: ControlPlane, user: str, verb: str, resource: str, namespace: str | None = None,
          subresource: str | None = None) -> bool:
    args = ["auth", "can-i", verb, resource, f"--as={user}"]
    if namespace:
        args += ["-n", namespace]
    if subresource:
        args.append(f"--subresource={subresource}")
    out = cp.kubectl(*args, check=False)
    answer = out.stdout.strip()
    assert answer in ("yes", "no"), f"kubectl {' '.join(args)}: {out.stdout} {out.stderr}"
    return answer == "yes"


def replicas(cp: ControlPlane, deployment: str) -> int:
    return int(kubectl_json(cp, "get", "deployment", deployment, "-n", NS)["spec"]["replicas"])


# -- helm install -----------------------------------------------------------------------------

def test_helm_install_creates_every_object(cp: ControlPlane, release: dict[str, Any]) -> None:
    assert release["status"] == "deployed", {k: v for k, v in release.items() if k != "manifest"}
    # CRDs from crds/ (go-reports' and kopf's), installed by Helm before the templates.
    for crd in [p for p in (CHART / "crds").glob("*.yaml")]:
        for doc in yaml.safe_load_all(crd.read_text()):
            if doc:
                cp.wait_for_crd(doc["metadata"]["name"])
    objects = objects_of(release["manifest"])
    kinds = {o["kind"] for o in objects}
    assert {"Deployment", "Role", "RoleBinding", "ServiceAccount", "ConfigMap", "KopfPeering",
            "Service", "Secret", "PersistentVolumeClaim"} <= kinds
    for obj in objects:
        live = get_object(cp, obj)
        assert live["metadata"]["labels"]["app.kubernetes.io/instance"] == RELEASE
    # Values that reach the API server as they were rendered.
    op = kubectl_json(cp, "get", "deployment", f"{RELEASE}-operator", "-n", NS)
    args = op["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--peering=go-reports" in args and f"--namespace={NS}" in args and "--namespace=team-a" in args
    for ns in (NS, "team-a"):
        kubectl_json(cp, "get", "kopfpeerings.kopf.dev", "go-reports", "-n", ns)
    assert replicas(cp, f"{RELEASE}-worker-generators") == 0
    assert replicas(cp, f"{RELEASE}-worker-collectors") == 1


def test_rendered_manifests_apply_with_kubectl(cp: ControlPlane, release: dict[str, Any],
                                               tmp_path: Path) -> None:
    """Another configuration (all namespaces, external Redis, S3 store, probes), applied the way
    a GitOps tool would: `helm template` output through `kubectl apply`."""
    values = {
        "watchNamespaces": [], "operator": {"replicas": 2},
        "redis": {"enabled": False, "addr": "redis.infra:6379", "existingSecret": "redis-auth"},
        "artifacts": {"store": "s3", "s3": {"bucket": "reports", "endpoint": "https://s3.example",
                                            "credentials": {"id": "artifact-s3", "secretName": "s3-keys"}}},
        "workers": {"health": {"enabled": True},
                    "pools": [{**POOLS[0], "credentials": [{"id": "crm_api.v2", "secretName": "crm"}]}, POOLS[1]]},
    }
    with helm.Chart.load(CHART) as chart:
        rendered = chart.render(values, name="gr-apply", namespace="reports-b")
    docs = [d for name, text in sorted(rendered.items()) if not name.endswith(".txt")
            for d in yaml.safe_load_all(text) if d]
    manifest = tmp_path / "rendered.yaml"
    manifest.write_text(yaml.safe_dump_all(docs))
    cp.apply(CHART / "crds")  # what `helm install` does first; CRDs exist already: a no-op update
    out = cp.kubectl("apply", "-f", str(manifest))  # raises with kubectl's stderr on any rejection
    lines = [line for line in out.stdout.splitlines() if line.strip()]
    assert len(lines) == len(docs), out.stdout
    assert all(line.endswith(("created", "configured", "unchanged")) for line in lines), out.stdout
    for obj in docs:
        get_object(cp, obj)
    kubectl_json(cp, "get", "clusterkopfpeerings.kopf.dev", "gr-apply-go-reports")
    kubectl_json(cp, "get", "clusterrole", "gr-apply-go-reports-operator")


# -- RBAC, as the API server's authorizer sees it ---------------------------------------------

def test_operator_rbac(cp: ControlPlane, release: dict[str, Any]) -> None:
    for ns in (NS, "team-a"):
        for verb in ("get", "list", "watch", "patch", "update", "create", "delete"):
            assert can_i(cp, OPERATOR_SA, verb, "reportrequests.goreports.io", ns)
            assert can_i(cp, OPERATOR_SA, verb, "reportschedules.goreports.io", ns)
        assert can_i(cp, OPERATOR_SA, "patch", "reportrequests.goreports.io", ns, subresource="status")
        assert can_i(cp, OPERATOR_SA, "update", "reportrequests.goreports.io", ns, subresource="status")
        assert can_i(cp, OPERATOR_SA, "create", "events", ns)
        assert can_i(cp, OPERATOR_SA, "patch", "kopfpeerings.kopf.dev", ns)
        # Never Secrets: credentials reach the workers as mounted volumes.
        assert not can_i(cp, OPERATOR_SA, "get", "secrets", ns)
        assert not can_i(cp, OPERATOR_SA, "list", "pods", ns)
    # Namespaces it does not serve stay closed.
    for ns in ("team-b", "elsewhere"):
        assert not can_i(cp, OPERATOR_SA, "list", "reportrequests.goreports.io", ns)
        assert not can_i(cp, OPERATOR_SA, "create", "events", ns)
    # The scaler: read Deployments here, change the scale of the pools only.
    assert can_i(cp, OPERATOR_SA, "list", "deployments.apps", NS)
    assert can_i(cp, OPERATOR_SA, "patch", f"deployments.apps/{RELEASE}-worker-generators", NS, subresource="scale")
    assert not can_i(cp, OPERATOR_SA, "patch", f"deployments.apps/{RELEASE}-redis", NS, subresource="scale")
    assert not can_i(cp, OPERATOR_SA, "patch", f"deployments.apps/{RELEASE}-worker-generators", NS)
    assert not can_i(cp, OPERATOR_SA, "delete", "deployments.apps", NS)
    assert not can_i(cp, OPERATOR_SA, "list", "deployments.apps", "team-a")
    assert not can_i(cp, OPERATOR_SA, "list", "namespaces")


def test_workers_can_do_nothing(cp: ControlPlane, release: dict[str, Any]) -> None:
    sa = kubectl_json(cp, "get", "serviceaccount", f"{RELEASE}-worker", "-n", NS)
    assert sa["automountServiceAccountToken"] is False
    for verb, resource in (("get", "secrets"), ("list", "pods"), ("get", "configmaps"),
                           ("list", "reportrequests.goreports.io"), ("create", "events"),
                           ("patch", "deployments.apps"), ("get", "kopfpeerings.kopf.dev")):
        for ns in (NS, "team-a"):
            assert not can_i(cp, WORKER_SA, verb, resource, ns), (verb, resource, ns)


# -- the scaler on the installed pools --------------------------------------------------------

@pytest.fixture(scope="module")
def redis_srv() -> Iterator[RedisServer]:
    server = RedisServer().start()
    yield server
    server.cleanup()


def apps_api_as(cp: ControlPlane, user: str) -> kubernetes.client.AppsV1Api:
    """An AppsV1Api that acts as `user` (impersonation), so its own RBAC applies."""
    conf = kubernetes.client.Configuration()
    kubernetes.config.load_kube_config(config_file=str(cp.kubeconfig), client_configuration=conf)
    return kubernetes.client.AppsV1Api(kubernetes.client.ApiClient(
        conf, header_name="Impersonate-User", header_value=user))


async def wait_for(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not await asyncio.to_thread(predicate):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.1)


async def test_scaler_scales_installed_pools(cp: ControlPlane, release: dict[str, Any],
                                             redis_srv: RedisServer) -> None:
    cm = kubectl_json(cp, "get", "configmap", f"{RELEASE}-scaling", "-n", NS)
    config = parse_scaling_config(yaml.safe_load(cm["data"]["scaling.yaml"]), source="installed ConfigMap")
    assert config.namespace == NS
    generators = f"{RELEASE}-worker-generators"
    gen_pool = next(p for p in config.pools if p.deployment == generators)
    api = apps_api_as(cp, OPERATOR_SA)
    bus = RedisBus.from_settings(Settings(redis_addr=redis_srv.addr))
    keys = Keys()
    try:
        for i in range(25):  # 25 excel jobs waiting: ceil(25 / 10) = 3 replicas
            await bus.publish(job_pb2.Job(name=f"workbook-{i}", channel="generators", pattern="excel"))

        stop = asyncio.Event()
        loop = asyncio.create_task(run_scaler(bus, api, NS, config, interval=0.2, stop=stop))
        try:
            await wait_for(lambda: replicas(cp, generators) == 3, 90, f"{generators} at 3 replicas")
        finally:
            stop.set()
            states = await asyncio.wait_for(loop, 60)
        assert states[generators].backlog == 25 and states[generators].changes == 1
        assert states[generators].error is None, states[generators].error
        # Pools without backlog stay at their minReplicas, untouched.
        assert replicas(cp, f"{RELEASE}-worker-collectors") == 1
        assert states[f"{RELEASE}-worker-collectors"].changes == 0

        # `helm upgrade` keeps the scaler's choice (the chart looks the live replicas up).
        with helm.Config(kubeconfig_path=cp.kubeconfig, namespace=NS) as cfg:
            upgraded = cfg.upgrade(str(CHART), RELEASE, INSTALL_VALUES, namespace=NS, timeout=180)
        assert upgraded["status"] == "deployed" and upgraded["revision"] == 2
        assert replicas(cp, generators) == 3

        # A worker takes every job: they are in flight (pending), so the pool keeps its size.
        deliveries = await bus.fetch("generators", "excel", "w1", 100, 0)
        assert len(deliveries) == 25
        await scale_once(bus, api, NS, config.pools, states)
        assert replicas(cp, generators) == 3
        # All done (acknowledged): the backlog is empty, but the cool-down has not passed.
        await bus.r.xack(keys.jobs("generators", "excel"), "excel", *[d.entry_id for d in deliveries])
        await scale_once(bus, api, NS, config.pools, states)
        assert replicas(cp, generators) == 3
        assert "cooldown" in states[generators].reason
        # One cool-down later the pool goes to its minReplicas: zero.
        later = time.monotonic() + gen_pool.cooldown_seconds + 1
        await scale_once(bus, api, NS, config.pools, states, clock=lambda: later)
        assert replicas(cp, generators) == 0
        assert "scaling down 3 -> 0" in states[generators].reason
    finally:
        await bus.close()


async def test_scaler_reports_a_missing_deployment_and_goes_on(cp: ControlPlane, release: dict[str, Any],
                                                              redis_srv: RedisServer) -> None:
    config = parse_scaling_config({"pools": [
        {"deployment": "no-such-pool", "patterns": [{"channel": "collectors", "pattern": "mysql"}],
         "minReplicas": 0, "maxReplicas": 2},
        {"deployment": f"{RELEASE}-worker-dispatchers", "patterns": [{"channel": "dispatchers", "pattern": "s3"}],
         "minReplicas": 2, "maxReplicas": 3}]})
    api = apps_api_as(cp, OPERATOR_SA)
    bus = RedisBus.from_settings(Settings(redis_addr=redis_srv.addr))
    try:
        states: dict[str, Any] = {}
        await scale_once(bus, api, NS, config.pools, states)
        # Not in the scaler Role's resourceNames, and absent: reported, never fatal.
        assert states["no-such-pool"].error and "no-such-pool" in states["no-such-pool"].error
        # The other pool was handled in the same round (raised to its new minReplicas).
        assert replicas(cp, f"{RELEASE}-worker-dispatchers") == 2
    finally:
        await bus.close()
