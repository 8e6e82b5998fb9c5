"""The kustomize base (deploy/kustomization.yaml + deploy/base/): rendered by the real
`kubectl kustomize`, accepted by the real API server (server-side dry run, then a real apply
into a fresh namespace through an overlay), RBAC checked by the API server's authorizer, and
the same names, labels, arguments and rules as the Helm chart renders.

No pods run (no scheduler, no kubelet): the objects are accepted, which is what a base needs.
"""
from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any

import helm_python as helm
import pytest
import yaml

from controlplane.cluster import ControlPlane
from goreports.cli.main import build_parser
from goreports.operator.scaling_logic import PatternRef, parse_scaling_config
from support.k8s import cluster, kubectl_json  # noqa: F401

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
CHART = ROOT / "helm" / "go-reports"
IMAGE = ("registry.example.com/team/go-reports", "9.9.9")
BUILT_IN = ["mysql", "http", "jwt", "aggregate", "excel", "mustache", "csv", "s3", "email",
            "webhook", "drive", "notify"]


def kustomize(cp: ControlPlane, path: Path) -> list[dict[str, Any]]:
    out = cp.kubectl("kustomize", str(path)).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def overlay(tmp: Path, namespace: str) -> Path:
    """An overlay the way a user writes one: another namespace, another image."""
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "kustomization.yaml").write_text(yaml.safe_dump({
        "apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
        "namespace": namespace, "resources": [os.path.relpath(DEPLOY, tmp)],
        "images": [{"name": "go-reports", "newName": IMAGE[0], "newTag": IMAGE[1]}]}))
    return tmp


def find(objs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    found = [o for o in objs if o["kind"] == kind and o["metadata"]["name"].startswith(name)]
    assert len(found) == 1, f"{kind} {name}: {len(found)} found"
    return found[0]


def container(deploy: dict[str, Any]) -> dict[str, Any]:
    (c,) = deploy["spec"]["template"]["spec"]["containers"]
    return c


@pytest.fixture(scope="module")
def base(cluster: ControlPlane) -> list[dict[str, Any]]:  # noqa: F811
    """`kubectl kustomize deploy/`, once (it takes seconds: the CRDs are large)."""
    return kustomize(cluster, DEPLOY)


def test_base_holds_every_crd_and_renders_the_default_image(base: list[dict[str, Any]]) -> None:
    objs = base
    crds = {o["metadata"]["name"] for o in objs if o["kind"] == "CustomResourceDefinition"}
    want = {yaml.safe_load(f.read_text())["metadata"]["name"]
            for f in (DEPLOY / "crds").glob("*.yaml")}
    assert crds == want, "deploy/kustomization.yaml must list every file of deploy/crds/"
    for f in (DEPLOY / "crds").glob("*.yaml"):  # the same objects, not just the same names
        crd = yaml.safe_load(f.read_text())
        assert find(objs, "CustomResourceDefinition", crd["metadata"]["name"]) == crd
    images = {c["image"] for o in objs if o["kind"] == "Deployment"
              for c in o["spec"]["template"]["spec"]["containers"]}
    assert images == {"go-reports:0.1.0"}
    namespaced = [o for o in objs if o["kind"] not in ("CustomResourceDefinition", "Namespace")]
    assert {o["metadata"].get("namespace") for o in namespaced} == {"go-reports"}


def test_overlay_is_accepted_by_the_api_server(cluster: ControlPlane,  # noqa: F811
                                               tmp_path: Path) -> None:
    ns = f"kz-{uuid.uuid4().hex[:8]}"
    objs = kustomize(cluster, overlay(tmp_path / "overlay", ns))
    manifest = yaml.safe_dump_all(objs)
    assert find(objs, "Namespace", ns)
    for kind in ("ServiceAccount", "Role", "RoleBinding", "ConfigMap", "Deployment",
                 "PersistentVolumeClaim"):
        assert all(o["metadata"]["namespace"] == ns for o in objs if o["kind"] == kind)
    for deploy in (o for o in objs if o["kind"] == "Deployment"):
        assert container(deploy)["image"] == f"{IMAGE[0]}:{IMAGE[1]}"
    binding = find(objs, "RoleBinding", "go-reports-operator")
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "go-reports-operator",
                                    "namespace": ns}]

    apply = ("apply", "--server-side", "--force-conflicts", "--field-manager=kustomize-test",
             "-f", "-")
    # A server dry run validates every object (schemas, RBAC rules, references) without storing
    # it; namespaced objects need their namespace to exist, so that one goes first, for real.
    cluster.kubectl(*apply, input=yaml.safe_dump(find(objs, "Namespace", ns)))
    dry = cluster.kubectl(*apply, "--dry-run=server", input=manifest)
    assert dry.stdout.count("serverside-applied (server dry run)") == len(objs), dry.stdout
    assert not kubectl_json(cluster, "-n", ns, "get", "deployments")["items"]
    cluster.kubectl(*apply, input=manifest)
    live = kubectl_json(cluster, "-n", ns, "get", "deployments,serviceaccounts,roles,rolebindings,"
                                                  "configmaps,persistentvolumeclaims")["items"]
    names = {(o["kind"], o["metadata"]["name"]) for o in live}
    assert {("Deployment", "go-reports-operator"), ("Deployment", "go-reports-worker-all"),
            ("ServiceAccount", "go-reports-operator"), ("ServiceAccount", "go-reports-worker"),
            ("Role", "go-reports-operator"), ("Role", "go-reports-scaler"),
            ("ConfigMap", "go-reports-scaling"),
            ("PersistentVolumeClaim", "go-reports-artifacts")} <= names
    # The generated config map (hashed name) is the one the pods read.
    config = find(objs, "ConfigMap", "go-reports-config-")["metadata"]["name"]
    assert ("ConfigMap", config) in names
    assert container(find(objs, "Deployment", "go-reports-worker-all"))["envFrom"][0] == {
        "configMapRef": {"name": config}}

    # The API server's authorizer: what each service account may do in the namespace.
    def can(sa: str, *what: str) -> bool:
        proc = cluster.kubectl("auth", "can-i", *what, "-n", ns,
                               f"--as=system:serviceaccount:{ns}:{sa}", check=False)
        return proc.stdout.strip() == "yes"

    assert can("go-reports-operator", "patch", "reportrequests.goreports.io", "--subresource=status")
    assert can("go-reports-operator", "create", "reportrequests.goreports.io")
    assert can("go-reports-operator", "list", "reporttemplates.goreports.io")
    assert can("go-reports-operator", "patch", "deployments.apps/go-reports-worker-all",
               "--subresource=scale")
    assert not can("go-reports-operator", "patch", "deployments.apps/go-reports-operator",
                   "--subresource=scale")
    assert not can("go-reports-operator", "get", "secrets")
    assert not can("go-reports-worker", "get", "reportrequests.goreports.io")
    # ... and the resources themselves are served there: the plugin example's report (a custom
    # step declaring its dataset) passes the CRD's schema and CEL rules.
    cluster.kubectl("-n", ns, "get", "reportrequests,reportschedules,reporttemplates")
    created = cluster.kubectl("-n", ns, "create", "--dry-run=server", "-f",
                              str(ROOT / "examples" / "plugin-stage" / "report.yaml"))
    assert "reportrequest.goreports.io/revenue-at-risk created (server dry run)" in created.stdout


# ------------------------------------------------------------------------- same as the chart

@pytest.fixture(scope="module")
def chart_objects() -> list[dict[str, Any]]:
    """The chart for a release named go-reports in namespace go-reports, with the base's one
    pool and an external Redis (the base brings no Redis of its own)."""
    values = {"redis": {"enabled": False, "addr": "redis:6379"},
              "workers": {"pools": [{"name": "all", "channel": "collectors",
                                     "patterns": BUILT_IN}]}}
    with helm.Chart.load(CHART) as chart:
        manifests = chart.render(values, name="go-reports", namespace="go-reports")
    return [d for n, t in sorted(manifests.items()) if not n.endswith(".txt")
            for d in yaml.safe_load_all(t) if d]


def env_of(objs: list[dict[str, Any]], deploy: dict[str, Any]) -> dict[str, str]:
    """The container's environment as the pod sees it (envFrom config map + env)."""
    c = container(deploy)
    out: dict[str, Any] = {}
    for src in c.get("envFrom", []):
        if "configMapRef" in src:
            out.update(find(objs, "ConfigMap", src["configMapRef"]["name"])["data"])
    for e in c.get("env", []):
        out[e["name"]] = e.get("value", e.get("valueFrom"))
    return out


def test_base_matches_what_the_chart_renders(base: list[dict[str, Any]],
                                             chart_objects: list[dict[str, Any]]) -> None:
    for kind, name in (("Deployment", "go-reports-operator"),
                       ("Deployment", "go-reports-worker-all")):
        ours, theirs = find(base, kind, name), find(chart_objects, kind, name)
        c_ours, c_theirs = container(ours), container(theirs)
        chart_args = [a.replace("--namespace=go-reports", "--namespace=$(POD_NAMESPACE)")
                      for a in c_theirs["args"]]
        assert c_ours["args"] == chart_args, name
        assert env_of(base, ours) == env_of(chart_objects, theirs), name
        for key in ("ports", "livenessProbe", "securityContext", "resources", "volumeMounts"):
            assert c_ours.get(key) == c_theirs.get(key), f"{name}: {key}"
        spec_ours, spec_theirs = ours["spec"]["template"]["spec"], theirs["spec"]["template"]["spec"]
        for key in ("serviceAccountName", "securityContext", "terminationGracePeriodSeconds",
                    "automountServiceAccountToken"):
            assert spec_ours.get(key) == spec_theirs.get(key), f"{name}: {key}"
        assert ours["spec"]["selector"] == theirs["spec"]["selector"], name
        assert ours["spec"].get("strategy") == theirs["spec"].get("strategy"), name
        labels = theirs["spec"]["template"]["metadata"]["labels"]
        assert {k: v for k, v in ours["spec"]["template"]["metadata"]["labels"].items()
                if k in labels} == {k: v for k, v in labels.items()
                                    if k != "goreports.io/patterns"}, name
        vols_ours = {v["name"]: v for v in spec_ours["volumes"]}
        vols_theirs = {v["name"]: v for v in spec_theirs["volumes"]}
        assert vols_ours == vols_theirs, name
    for kind, name in (("Role", "go-reports-operator"), ("Role", "go-reports-scaler"),
                       ("ServiceAccount", "go-reports-worker")):
        ours, theirs = find(base, kind, name), find(chart_objects, kind, name)
        for key in ("rules", "automountServiceAccountToken"):
            assert ours.get(key) == theirs.get(key), f"{kind} {name}: {key}"
    ours_pvc = find(base, "PersistentVolumeClaim", "go-reports-artifacts")["spec"]
    theirs_pvc = find(chart_objects, "PersistentVolumeClaim", "go-reports-artifacts")["spec"]
    assert ours_pvc == theirs_pvc


def test_base_scaling_config_and_arguments_are_valid(base: list[dict[str, Any]]) -> None:
    config = parse_scaling_config(yaml.safe_load(
        find(base, "ConfigMap", "go-reports-scaling")["data"]["scaling.yaml"]))
    assert config.namespace is None  # the operator's own namespace, whatever the overlay says
    (pool,) = config.pools
    assert pool.deployment == "go-reports-worker-all"
    assert [p.pattern for p in pool.patterns] == BUILT_IN
    assert PatternRef("dispatchers", "s3") in pool.patterns
    worker_args = container(find(base, "Deployment", "go-reports-worker-all"))["args"]
    assert [a.split("=", 1)[1] for a in worker_args if a.startswith("--pattern=")] == BUILT_IN
    role = find(base, "Role", "go-reports-scaler")
    assert role["rules"][1]["resourceNames"] == [pool.deployment]
    parser = build_parser()
    for name in ("go-reports-operator", "go-reports-worker-all"):
        args = container(find(base, "Deployment", name))["args"]
        parser.parse_args(args)  # the goreports command accepts the base's arguments
