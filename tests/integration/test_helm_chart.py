"""The Helm chart through the real Helm engine (helm-python-sdk, Helm v4): lint, schema, and
the rendered objects for default and non-default values.

Installing the rendered chart into a real API server is tests/e2e/test_helm_install.py.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Iterator

import helm_python as helm
import pytest
import yaml

from goreports.cli.main import build_parser
from goreports.operator.scaling_logic import PatternRef, parse_scaling_config

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "go-reports"
RELEASE, NS = "go-reports", "reports"
KUBE_VERSION = "v1.37.2"  # the test control plane's (tests/controlplane/README.md)

DEFAULT_POOLS = {
    "collectors": ("collectors", ["mysql", "http"]),
    "validators": ("validators", ["jwt"]),
    "aggregators": ("aggregators", ["aggregate"]),
    "generators": ("generators", ["excel", "mustache", "csv"]),
    "dispatchers": ("dispatchers", ["s3", "email", "webhook", "drive"]),
    "notifiers": ("notifiers", ["notify"]),
}

# The operator's permissions, exactly (resource -> verbs), in every watched namespace.
CR_VERBS = {"get", "list", "watch", "patch", "update", "create", "delete"}
SUB_VERBS = {"get", "patch", "update"}
OPERATOR_RULES = {
    **{("goreports.io", r): CR_VERBS for r in ("reportrequests", "reportschedules", "reporttemplates")},
    **{("goreports.io", f"{r}/{s}"): SUB_VERBS
       for r in ("reportrequests", "reportschedules", "reporttemplates") for s in ("status", "finalizers")},
    ("", "events"): {"create", "patch"},
}
PEERING_VERBS = {"get", "list", "watch", "patch"}
# The scaler's, in the release namespace only: read Deployments, change the pools' scale.
SCALER_RULES = {("apps", "deployments"): {"get", "list", "watch"},
                ("apps", "deployments/scale"): {"get", "patch", "update"}}


@pytest.fixture(scope="module")
def chart() -> Iterator[helm.Chart]:
    with helm.Chart.load(CHART) as c:
        yield c


class Rendered:
    """The rendered manifests as objects, with lookups by kind and name."""

    def __init__(self, manifests: dict[str, str]) -> None:
        self.notes = next((v for k, v in manifests.items() if k.endswith("NOTES.txt")), "")
        self.objects: list[dict[str, Any]] = []
        for name, text in sorted(manifests.items()):
            if name.endswith(".txt"):
                continue
            self.objects.extend(d for d in yaml.safe_load_all(text) if d)

    def all(self, kind: str) -> list[dict[str, Any]]:
        return [o for o in self.objects if o["kind"] == kind]

    def get(self, kind: str, name: str, namespace: str | None = None) -> dict[str, Any]:
        found = [o for o in self.all(kind) if o["metadata"]["name"] == name
                 and (namespace is None or o["metadata"].get("namespace") == namespace)]
        assert len(found) == 1, f"{kind} {namespace}/{name}: found {len(found)}"
        return found[0]

    def names(self, kind: str) -> set[tuple[str | None, str]]:
        return {(o["metadata"].get("namespace"), o["metadata"]["name"]) for o in self.all(kind)}

    def operator(self) -> dict[str, Any]:
        return self.get("Deployment", f"{RELEASE}-operator", NS)

    def operator_args(self) -> list[str]:
        return container(self.operator())["args"]

    def pool(self, name: str) -> dict[str, Any]:
        return self.get("Deployment", f"{RELEASE}-worker-{name}", NS)

    def pools(self) -> list[dict[str, Any]]:
        return [d for d in self.all("Deployment")
                if d["metadata"]["labels"].get("app.kubernetes.io/component") == "worker"]


def render(chart: helm.Chart, values: dict[str, Any] | None = None, namespace: str = NS) -> Rendered:
    return Rendered(chart.render(values, name=RELEASE, namespace=namespace))


def container(deploy: dict[str, Any]) -> dict[str, Any]:
    (c,) = deploy["spec"]["template"]["spec"]["containers"]
    return c


def env(deploy: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container(deploy)["env"]}


def mounts(deploy: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {m["mountPath"]: m for m in container(deploy).get("volumeMounts", [])}


def volumes(deploy: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {v["name"]: v for v in deploy["spec"]["template"]["spec"].get("volumes", [])}


def rules(role: dict[str, Any]) -> dict[tuple[str, str], set[str]]:
    """(apiGroup, resource) -> the union of verbs granted on it."""
    out: dict[tuple[str, str], set[str]] = {}
    for rule in role["rules"]:
        for group in rule["apiGroups"]:
            for res in rule["resources"]:
                out.setdefault((group, res), set()).update(rule["verbs"])
    return out


def pool_values(**overrides: Any) -> list[dict[str, Any]]:
    pools = [{"name": n, "channel": ch, "patterns": ps} for n, (ch, ps) in DEFAULT_POOLS.items()]
    for p in pools:
        p.update(overrides.get(p["name"], {}))
    return pools


# -- lint and schema --------------------------------------------------------------------------

@pytest.mark.parametrize("values", [
    None,
    {"operator": {"replicas": 2}, "watchNamespaces": ["team-a", "team-b"]},
    {"watchNamespaces": [], "operator": {"peering": {"enabled": True}},
     "redis": {"enabled": False, "addr": "redis.example:6380", "existingSecret": "redis-auth"},
     "artifacts": {"store": "s3", "s3": {"bucket": "reports", "credentials": {"id": "s3", "secretName": "s3-keys"}}},
     "workers": {"health": {"enabled": True}}},
])
def test_lint_is_clean(values: dict[str, Any] | None) -> None:
    report = helm.lint(CHART, values, strict=True, namespace=NS, kube_version=KUBE_VERSION)
    problems = [m for m in report["messages"] if m["severity"] >= 2]
    assert report["errors"] == [] and problems == [], report


def test_schema_rejects_a_bad_value(chart: helm.Chart) -> None:
    bad = {"workers": {"pools": [{"name": "x", "channel": "collectors", "patterns": ["mysql"], "maxReplicas": "x"}]}}
    with pytest.raises(helm.HelmValuesError, match=r"/workers/pools/0/maxReplicas.*want integer"):
        chart.validate_schema(bad)
    # An install renders through the same check.
    with pytest.raises(helm.HelmError, match="maxReplicas"):
        chart.render(bad, name=RELEASE, namespace=NS)


@pytest.mark.parametrize("values, where", [
    ({"operatr": {}}, "additional properties 'operatr'"),
    ({"operator": {"replicas": "2"}}, "/operator/replicas"),
    ({"workers": {"pools": [{"name": "Bad_Name", "channel": "c", "patterns": ["p"]}]}}, "/workers/pools/0/name"),
    ({"workers": {"pools": [{"name": "p", "channel": "c", "patterns": []}]}}, "/workers/pools/0/patterns"),
    ({"workers": {"defaults": {"credentials": [{"id": "../etc", "secretName": "s"}]}}}, "/workers/defaults/credentials/0/id"),
    ({"artifacts": {"store": "s3"}}, "/artifacts/s3/bucket"),
    ({"artifacts": {"store": "nfs"}}, "/artifacts/store"),
    ({"watchNamespaces": ["Not A Namespace"]}, "/watchNamespaces/0"),
])
def test_schema_names_the_bad_value(chart: helm.Chart, values: dict[str, Any], where: str) -> None:
    with pytest.raises(helm.HelmValuesError) as e:
        chart.validate_schema(values)
    assert where in str(e.value)


@pytest.mark.parametrize("values, message", [
    ({"redis": {"enabled": False}}, "set redis.addr"),
    ({"workers": {"pools": [{"name": "a", "channel": "c", "patterns": ["p"], "minReplicas": 3, "maxReplicas": 2}]}},
     "maxReplicas (2) is below minReplicas (3)"),
    ({"workers": {"pools": [{"name": "a", "channel": "c", "patterns": ["p"]},
                            {"name": "b", "channel": "c", "patterns": ["p"]}]}}, "served by two pools"),
    ({"workers": {"pools": [{"name": "a", "channel": "c", "patterns": ["p"]},
                            {"name": "a", "channel": "c", "patterns": ["q"]}]}}, "two pools are named"),
    ({"artifacts": {"persistence": {"create": False}}}, "needs a ReadWriteMany volume"),
    ({"workers": {"pools": [{"name": "a", "channel": "c", "patterns": ["p"],
                             "credentials": [{"id": "x", "secretName": "s1"}, {"id": "x", "secretName": "s2"}]}]}},
     "mounted from two Secrets"),
])
def test_inconsistent_values_fail_with_a_message(chart: helm.Chart, values: dict[str, Any], message: str) -> None:
    with pytest.raises(helm.HelmRenderError, match=re.escape(message)):
        chart.render(values, name=RELEASE, namespace=NS)


# -- CRDs -------------------------------------------------------------------------------------

def test_chart_crds_are_exact_copies_of_deploy_crds(chart: helm.Chart) -> None:
    sources = sorted(p for p in (ROOT / "deploy" / "crds").iterdir() if p.is_file())
    assert sources, "deploy/crds is empty"
    for src in sources:
        copy = CHART / "crds" / src.name
        assert copy.is_file(), f"{copy} is missing: run scripts/sync_chart_crds.sh"
        assert copy.read_bytes() == src.read_bytes(), f"{copy} differs from {src}: run scripts/sync_chart_crds.sh"
    # And Helm sees them (plus kopf's peering CRDs), as it installs them before the templates.
    helm_crds = {d["metadata"]["name"] for c in chart.crds for d in yaml.safe_load_all(c["data"]) if d}
    for src in sources:
        for doc in yaml.safe_load_all(src.read_text()):
            assert doc["metadata"]["name"] in helm_crds
    assert {"kopfpeerings.kopf.dev", "clusterkopfpeerings.kopf.dev"} <= helm_crds
    peering = [d for c in chart.crds for d in yaml.safe_load_all(c["data"])
               if d and d["metadata"]["name"] == "kopfpeerings.kopf.dev"]
    assert peering[0]["spec"]["scope"] == "Namespaced"
    assert peering[0]["spec"]["versions"][0]["name"] == "v1"


# -- default values ---------------------------------------------------------------------------

def test_defaults_render_the_expected_objects(chart: helm.Chart) -> None:
    r = render(chart)
    assert r.names("ServiceAccount") == {(NS, f"{RELEASE}-operator"), (NS, f"{RELEASE}-worker")}
    assert r.names("Role") == {(NS, f"{RELEASE}-operator"), (NS, f"{RELEASE}-scaler")}
    assert r.names("RoleBinding") == {(NS, f"{RELEASE}-operator"), (NS, f"{RELEASE}-scaler")}
    assert r.all("ClusterRole") == [] and r.all("ClusterRoleBinding") == []
    assert r.all("KopfPeering") == [] and r.all("ClusterKopfPeering") == []
    assert {d["metadata"]["name"] for d in r.pools()} == {f"{RELEASE}-worker-{p}" for p in DEFAULT_POOLS}
    assert r.names("Service") == {(NS, f"{RELEASE}-redis")}
    assert r.names("PersistentVolumeClaim") == {(NS, f"{RELEASE}-artifacts")}
    assert r.get("PersistentVolumeClaim", f"{RELEASE}-artifacts")["spec"]["accessModes"] == ["ReadWriteMany"]
    for obj in r.objects:
        labels = obj["metadata"]["labels"]
        assert labels["app.kubernetes.io/name"] == "go-reports", obj["metadata"]
        assert labels["app.kubernetes.io/instance"] == RELEASE
        assert labels["app.kubernetes.io/managed-by"] == "Helm"
        assert labels["app.kubernetes.io/version"] == "0.1.0"
    assert "kubectl get rr" in r.notes


def test_default_operator_serves_the_release_namespace_standalone(chart: helm.Chart) -> None:
    r = render(chart)
    op = r.operator()
    assert op["spec"]["replicas"] == 1
    assert op["spec"]["strategy"]["type"] == "Recreate"
    args = r.operator_args()
    assert args[0] == "operator"
    assert f"--namespace={NS}" in args and "--all-namespaces" not in args
    assert not any(a.startswith("--peering") for a in args)
    assert "--liveness=http://0.0.0.0:8080/healthz" in args
    probe = container(op)["livenessProbe"]["httpGet"]
    assert probe["path"] == "/healthz" and probe["port"] == "health"
    e = env(op)
    assert e["GOREPORTS_SCALING_FILE"] == "/etc/goreports/scaling.yaml"
    assert e["REDIS_ADDR"] == f"{RELEASE}-redis:6379"
    assert e["REDIS_PASS"] == {"secretKeyRef": {"name": f"{RELEASE}-redis", "key": "redis-password"}}
    assert e["GOREPORTS_LOG_FORMAT"] == "json"
    assert e["GOREPORTS_CREDENTIALS_DIR"] == "/var/run/goreports/credentials"
    assert e["GOREPORTS_ARTIFACT_STORE"] == "local"
    assert mounts(op)["/etc/goreports"]["readOnly"] is True
    assert volumes(op)["scaling"]["configMap"]["name"] == f"{RELEASE}-scaling"
    assert op["spec"]["template"]["spec"]["serviceAccountName"] == f"{RELEASE}-operator"


def test_operator_rbac_is_exactly_the_listed_permissions(chart: helm.Chart) -> None:
    r = render(chart)
    assert rules(r.get("Role", f"{RELEASE}-operator", NS)) == OPERATOR_RULES
    scaler = r.get("Role", f"{RELEASE}-scaler", NS)
    assert rules(scaler) == SCALER_RULES
    # Changing the scale is limited to the pools' own Deployments.
    (patch_rule,) = [x for x in scaler["rules"] if "patch" in x["verbs"]]
    assert set(patch_rule["resourceNames"]) == {f"{RELEASE}-worker-{p}" for p in DEFAULT_POOLS}
    # Nothing grants access to Secrets, pods or anything cluster-wide.
    for role in r.all("Role") + r.all("ClusterRole"):
        for rule in role["rules"]:
            assert "secrets" not in rule["resources"] and "*" not in rule["verbs"] + rule["resources"]
    for binding in r.all("RoleBinding"):
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": f"{RELEASE}-operator", "namespace": NS}]


def test_workers_have_no_rbac_and_no_token(chart: helm.Chart) -> None:
    r = render(chart, {"watchNamespaces": []})
    sa = r.get("ServiceAccount", f"{RELEASE}-worker", NS)
    assert sa["automountServiceAccountToken"] is False
    for binding in r.all("RoleBinding") + r.all("ClusterRoleBinding"):
        for subject in binding["subjects"]:
            assert subject["name"] != f"{RELEASE}-worker", binding["metadata"]
    for d in r.pools():
        spec = d["spec"]["template"]["spec"]
        assert spec["serviceAccountName"] == f"{RELEASE}-worker"
        assert spec["automountServiceAccountToken"] is False


def test_worker_pools_defaults(chart: helm.Chart) -> None:
    r = render(chart)
    for name, (channel, patterns) in DEFAULT_POOLS.items():
        d = r.pool(name)
        meta = d["metadata"]
        assert meta["labels"]["goreports.io/pool"] == name
        assert meta["labels"]["goreports.io/patterns"] == ".".join(patterns)
        assert re.fullmatch(r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?", meta["labels"]["goreports.io/patterns"])
        assert d["spec"]["template"]["metadata"]["labels"]["goreports.io/pool"] == name
        assert meta["annotations"] == {
            "goreports.io/channel": channel, "goreports.io/patterns": ",".join(patterns),
            "goreports.io/autoscale": "true", "goreports.io/min-replicas": "1",
            "goreports.io/max-replicas": "5", "goreports.io/target-backlog": "10",
            "goreports.io/cooldown-seconds": "300"}
        assert d["spec"]["replicas"] == 1  # minReplicas
        args = container(d)["args"]
        assert args == ["worker", *[f"--pattern={p}" for p in patterns], "--concurrency=4", "--grace-period=25"]
        assert env(d)["GOREPORTS_ARTIFACT_DIR"] == "/var/lib/goreports/artifacts"
        assert volumes(d)["artifacts"]["persistentVolumeClaim"]["claimName"] == f"{RELEASE}-artifacts"
        assert "livenessProbe" not in container(d)  # workers.health is off by default


def test_every_pod_is_locked_down(chart: helm.Chart) -> None:
    r = render(chart)
    deployments = r.all("Deployment")
    assert len(deployments) == 1 + len(DEFAULT_POOLS) + 1  # operator, pools, redis
    for d in deployments:
        pod = d["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        c = container(d)
        sc = c["securityContext"]
        assert sc["readOnlyRootFilesystem"] is True
        assert sc["allowPrivilegeEscalation"] is False
        assert sc["capabilities"]["drop"] == ["ALL"]
        assert "emptyDir" in volumes(d)["tmp"] and "/tmp" in mounts(d)


def test_scaling_configmap_is_what_the_scaler_reads(chart: helm.Chart) -> None:
    r = render(chart, {"workers": {"pools": pool_values(notifiers={"autoscale": False},
                                                          collectors={"minReplicas": 0, "maxReplicas": 8,
                                                                      "targetBacklog": 3, "cooldownSeconds": 60})}})
    cm = r.get("ConfigMap", f"{RELEASE}-scaling", NS)
    cfg = parse_scaling_config(yaml.safe_load(cm["data"]["scaling.yaml"]), source="rendered ConfigMap")
    assert cfg.namespace == NS and cfg.interval_seconds == 2.0
    by_name = {p.deployment: p for p in cfg.pools}
    assert set(by_name) == {f"{RELEASE}-worker-{p}" for p in DEFAULT_POOLS if p != "notifiers"}
    c = by_name[f"{RELEASE}-worker-collectors"]
    assert c.patterns == (PatternRef("collectors", "mysql"), PatternRef("collectors", "http"))
    assert (c.min_replicas, c.max_replicas, c.target_backlog, c.cooldown_seconds) == (0, 8, 3, 60.0)
    assert r.pool("collectors")["spec"]["replicas"] == 0
    # A pool the scaler leaves alone is not in its Role either.
    (patch_rule,) = [x for x in r.get("Role", f"{RELEASE}-scaler", NS)["rules"] if "patch" in x["verbs"]]
    assert f"{RELEASE}-worker-notifiers" not in patch_rule["resourceNames"]
    # The operator restarts when the configuration changes.
    before = r.operator()["spec"]["template"]["metadata"]["annotations"]["checksum/scaling"]
    after = render(chart).operator()["spec"]["template"]["metadata"]["annotations"]["checksum/scaling"]
    assert before != after


def test_scaling_disabled_drops_the_config_and_the_scaler_role(chart: helm.Chart) -> None:
    r = render(chart, {"scaling": {"enabled": False}})
    assert r.all("ConfigMap") == []
    assert (NS, f"{RELEASE}-scaler") not in r.names("Role")
    assert "GOREPORTS_SCALING_FILE" not in env(r.operator())


def test_chart_arguments_are_accepted_by_the_goreports_command(chart: helm.Chart) -> None:
    """The chart and the CLI agree: the rendered args parse with the real argument parser."""
    parser = build_parser()
    for values in (None, {"operator": {"replicas": 2}, "watchNamespaces": ["a", "b"]}, {"watchNamespaces": []}):
        r = render(chart, values)
        op = parser.parse_args(r.operator_args())
        assert op.command == "operator"
        for d in r.pools():
            w = parser.parse_args(container(d)["args"])
            assert w.command == "worker" and w.concurrency == 4
            assert w.pattern == d["metadata"]["annotations"]["goreports.io/patterns"].split(",")


# -- non-default values -----------------------------------------------------------------------

def test_two_replicas_turn_kopf_peering_on(chart: helm.Chart) -> None:
    r = render(chart, {"operator": {"replicas": 2}})
    op = r.operator()
    assert op["spec"]["replicas"] == 2
    assert op["spec"]["strategy"]["type"] == "RollingUpdate"
    assert "--peering=go-reports" in r.operator_args()
    (peering,) = r.all("KopfPeering")
    assert peering["apiVersion"] == "kopf.dev/v1"
    assert (peering["metadata"]["namespace"], peering["metadata"]["name"]) == (NS, "go-reports")
    assert rules(r.get("Role", f"{RELEASE}-operator", NS)) == {
        **OPERATOR_RULES, ("kopf.dev", "kopfpeerings"): PEERING_VERBS}


def test_watch_namespaces_give_one_role_per_namespace(chart: helm.Chart) -> None:
    r = render(chart, {"watchNamespaces": ["team-a", "team-b"], "operator": {"peering": {"enabled": True}}})
    args = r.operator_args()
    assert [a for a in args if a.startswith("--namespace")] == ["--namespace=team-a", "--namespace=team-b"]
    assert "--peering=go-reports" in args and r.operator()["spec"]["replicas"] == 1
    assert r.names("Role") == {("team-a", f"{RELEASE}-operator"), ("team-b", f"{RELEASE}-operator"),
                               (NS, f"{RELEASE}-scaler")}
    for ns in ("team-a", "team-b"):
        assert rules(r.get("Role", f"{RELEASE}-operator", ns)) == {
            **OPERATOR_RULES, ("kopf.dev", "kopfpeerings"): PEERING_VERBS}
        binding = r.get("RoleBinding", f"{RELEASE}-operator", ns)
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": f"{RELEASE}-operator", "namespace": NS}]
        assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                      "name": f"{RELEASE}-operator"}
    assert r.names("KopfPeering") == {("team-a", "go-reports"), ("team-b", "go-reports")}
    assert r.all("ClusterRole") == []
    # The Deployments the scaler changes stay in the release namespace.
    assert r.get("Role", f"{RELEASE}-scaler")["metadata"]["namespace"] == NS


def test_all_namespaces_use_a_cluster_role(chart: helm.Chart) -> None:
    r = render(chart, {"watchNamespaces": [], "operator": {"replicas": 3}})
    args = r.operator_args()
    assert "--all-namespaces" in args and not any(a.startswith("--namespace") for a in args)
    assert r.names("Role") == {(NS, f"{RELEASE}-scaler")}
    role = r.get("ClusterRole", f"{RELEASE}-operator")
    assert rules(role) == {**OPERATOR_RULES, ("kopf.dev", "clusterkopfpeerings"): PEERING_VERBS}
    binding = r.get("ClusterRoleBinding", f"{RELEASE}-operator")
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": f"{RELEASE}-operator", "namespace": NS}]
    assert r.all("KopfPeering") == []
    (cp,) = r.all("ClusterKopfPeering")
    assert cp["metadata"]["name"] == "go-reports" and "namespace" not in cp["metadata"]


def test_pool_credentials_are_mounted_read_only(chart: helm.Chart) -> None:
    r = render(chart, {"workers": {"pools": pool_values(
        collectors={"credentials": [{"id": "sales-db", "secretName": "sales-db-credentials"},
                                    {"id": "crm_api.v2", "secretName": "crm-token"}]})}})
    d = r.pool("collectors")
    m = mounts(d)
    vols = volumes(d)
    for cred_id, secret in (("sales-db", "sales-db-credentials"), ("crm_api.v2", "crm-token")):
        mount = m[f"/var/run/goreports/credentials/{cred_id}"]
        assert mount["readOnly"] is True
        vol = vols[mount["name"]]
        assert vol["secret"]["secretName"] == secret
        assert vol["secret"]["defaultMode"] == 0o440
        assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", mount["name"]) and len(mount["name"]) <= 63
    # Only that pool gets them; the operator never does.
    for other in DEFAULT_POOLS:
        if other != "collectors":
            assert not any(p.startswith("/var/run/goreports/credentials") for p in mounts(r.pool(other)))
    assert not any(p.startswith("/var/run/goreports/credentials") for p in mounts(r.operator()))


def test_pool_overrides(chart: helm.Chart) -> None:
    r = render(chart, {"workers": {"pools": pool_values(generators={
        "image": {"repository": "registry.example/goreports-excel", "tag": "1.2.3"},
        "concurrency": 2, "extraEnv": [{"name": "GOREPORTS_BATCH_ROWS", "value": "1000"}],
        "nodeSelector": {"pool": "big"}, "tolerations": [{"key": "big", "operator": "Exists"}],
        "resources": {"limits": {"memory": "4Gi"}}})}})
    d = r.pool("generators")
    c = container(d)
    assert c["image"] == "registry.example/goreports-excel:1.2.3"
    assert "--concurrency=2" in c["args"]
    assert env(d)["GOREPORTS_BATCH_ROWS"] == "1000"
    assert d["spec"]["template"]["spec"]["nodeSelector"] == {"pool": "big"}
    assert c["resources"] == {"limits": {"memory": "4Gi"}}
    assert container(r.pool("collectors"))["image"] == "go-reports:0.1.0"


def test_external_redis_with_existing_secret(chart: helm.Chart) -> None:
    r = render(chart, {"redis": {"enabled": False, "addr": "redis.infra:6379", "existingSecret": "redis-auth",
                                 "existingSecretKey": "password", "tls": True, "db": 3}})
    assert [d for d in r.all("Deployment") if d["metadata"]["name"].endswith("-redis")] == []
    assert r.all("Service") == [] and r.all("Secret") == []
    for d in [r.operator(), *r.pools()]:
        e = env(d)
        assert e["REDIS_ADDR"] == "redis.infra:6379"
        assert e["REDIS_PASS"] == {"secretKeyRef": {"name": "redis-auth", "key": "password"}}
        assert (e["REDIS_TLS"], e["REDIS_DB"]) == ("true", "3")


def test_embedded_redis(chart: helm.Chart) -> None:
    r = render(chart, {"redis": {"persistence": {"enabled": True, "size": "5Gi"}}})
    d = r.get("Deployment", f"{RELEASE}-redis", NS)
    c = container(d)
    assert c["image"] == "redis:7-alpine"
    assert c["args"][:3] == ["redis-server", "--appendonly", "yes"]
    assert "$(REDIS_PASSWORD)" in c["args"]  # the value itself never appears in the spec
    assert volumes(d)["data"]["persistentVolumeClaim"]["claimName"] == f"{RELEASE}-redis"
    assert r.get("PersistentVolumeClaim", f"{RELEASE}-redis")["spec"]["resources"]["requests"]["storage"] == "5Gi"
    secret = r.get("Secret", f"{RELEASE}-redis", NS)
    assert len(secret["data"]["redis-password"]) >= 40  # 32 random characters, base64
    assert r.get("Service", f"{RELEASE}-redis")["spec"]["ports"][0]["port"] == 6379
    emptydir = render(chart)
    assert "emptyDir" in volumes(emptydir.get("Deployment", f"{RELEASE}-redis", NS))["data"]


def test_s3_artifact_store(chart: helm.Chart) -> None:
    r = render(chart, {"artifacts": {"store": "s3", "s3": {
        "bucket": "reports", "prefix": "stage/", "endpoint": "https://s3.example",
        "credentials": {"id": "artifact-s3", "secretName": "s3-keys"}}}})
    assert r.all("PersistentVolumeClaim") == []
    for d in [r.operator(), *r.pools()]:
        e = env(d)
        assert (e["GOREPORTS_ARTIFACT_STORE"], e["GOREPORTS_ARTIFACT_S3_BUCKET"], e["GOREPORTS_ARTIFACT_S3_PREFIX"],
                e["GOREPORTS_ARTIFACT_S3_ENDPOINT"], e["GOREPORTS_ARTIFACT_S3_CREDENTIALS_ID"]) == (
            "s3", "reports", "stage/", "https://s3.example", "artifact-s3")
        assert "GOREPORTS_ARTIFACT_DIR" not in e and "artifacts" not in volumes(d)
        mount = mounts(d)["/var/run/goreports/credentials/artifact-s3"]
        assert volumes(d)[mount["name"]]["secret"]["secretName"] == "s3-keys"


def test_existing_artifacts_claim(chart: helm.Chart) -> None:
    r = render(chart, {"artifacts": {"persistence": {"existingClaim": "shared-nfs"}}})
    assert r.all("PersistentVolumeClaim") == []
    for d in [r.operator(), *r.pools()]:
        assert volumes(d)["artifacts"]["persistentVolumeClaim"]["claimName"] == "shared-nfs"


def test_worker_health_probes_are_opt_in(chart: helm.Chart) -> None:
    r = render(chart, {"workers": {"health": {"enabled": True, "port": 9191}}})
    for d in r.pools():
        c = container(d)
        assert c["ports"] == [{"name": "http", "containerPort": 9191, "protocol": "TCP"}]
        assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
        assert c["readinessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
        assert env(d)["GOREPORTS_HEALTH_PORT"] == "9191"
        assert d["spec"]["template"]["metadata"]["annotations"]["prometheus.io/port"] == "9191"
