"""The chart's optional Reports API (api.enabled) through the real Helm engine (helm-python-sdk):
off by default; when on, a locked-down Deployment whose arguments the real `goreports api` parser
accepts, a Service for REST and gRPC, a generated or existing JWT key Secret, and RBAC limited
to ReportRequests in the served namespaces."""
from __future__ import annotations

import argparse
import base64
from pathlib import Path
from typing import Any, Iterator

import helm_python as helm
import pytest
import yaml

from goreports.cli import api as api_cmd

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "go-reports"
RELEASE, NS = "go-reports", "reports"
KUBE_VERSION = "v1.37.2"
NAME = f"{RELEASE}-api"
ON = {"api": {"enabled": True}}


@pytest.fixture(scope="module")
def chart() -> Iterator[helm.Chart]:
    with helm.Chart.load(CHART) as c:
        yield c


def render(chart: helm.Chart, values: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    manifests = chart.render(values, name=RELEASE, namespace=NS)
    return [d for name, text in sorted(manifests.items()) if not name.endswith(".txt")
            for d in yaml.safe_load_all(text) if d]


def api_objects(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [o for o in objects if o["metadata"].get("labels", {}).get("app.kubernetes.io/component") == "api"]


def one(objects: list[dict[str, Any]], kind: str, namespace: str | None = NS) -> dict[str, Any]:
    found = [o for o in objects if o["kind"] == kind and o["metadata"].get("namespace") == namespace]
    assert len(found) == 1, [o["metadata"] for o in found]
    return found[0]


def container(deploy: dict[str, Any]) -> dict[str, Any]:
    (c,) = deploy["spec"]["template"]["spec"]["containers"]
    return c


def env(deploy: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container(deploy)["env"]}


def test_the_api_is_off_by_default(chart: helm.Chart) -> None:
    assert api_objects(render(chart)) == []


@pytest.mark.parametrize("values", [
    ON,
    {"api": {"enabled": True, "replicas": 3, "jwt": {"existingSecret": "api-keys",
                                                     "publicKey": {"secretName": "idp-key"}}},
     "watchNamespaces": []},
])
def test_lint_is_clean_with_the_api(values: dict[str, Any]) -> None:
    report = helm.lint(CHART, values, strict=True, namespace=NS, kube_version=KUBE_VERSION)
    assert report["errors"] == [] and [m for m in report["messages"] if m["severity"] >= 2] == [], report


def test_schema_refuses_unknown_api_values(chart: helm.Chart) -> None:
    with pytest.raises(helm.HelmValuesError, match="api"):
        chart.validate_schema({"api": {"enabled": True, "jwtSecret": "inline!"}})
    with pytest.raises(helm.HelmValuesError, match="expireHours"):
        chart.validate_schema({"api": {"jwt": {"expireHours": 0}}})


def test_enabled_api_renders_deployment_service_secret_and_account(chart: helm.Chart) -> None:
    objects = api_objects(render(chart, ON))
    assert sorted((o["kind"], o["metadata"]["name"]) for o in objects) == [
        ("Deployment", NAME), ("Role", NAME), ("RoleBinding", NAME), ("Secret", f"{NAME}-jwt"),
        ("Service", NAME), ("ServiceAccount", NAME)]
    deploy = one(objects, "Deployment")
    pod = deploy["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == NAME and pod.get("automountServiceAccountToken", True)
    c = container(deploy)
    args = api_cmd_parser().parse_args(c["args"])
    assert (args.http_port, args.grpc_port, args.print_openapi) == (8000, 50051, False)
    e = env(deploy)
    assert e["JWT_SECRET_KEY"] == {"secretKeyRef": {"name": f"{NAME}-jwt", "key": "jwt-secret-key"}}
    assert (e["JWT_EXPIRE_HOURS"], e["JWT_REFRESH_HOURS"], e["JWT_AUDIENCE"]) == ("2", "168", "go-reports")
    assert "JWT_PUBLIC_KEY_FILE" not in e and "REDIS_ADDR" not in e
    assert {p["name"]: p["containerPort"] for p in c["ports"]} == {"http": 8000, "grpc": 50051}
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert c["readinessProbe"]["grpc"] == {"port": 50051}
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert c["securityContext"]["capabilities"]["drop"] == ["ALL"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    svc = one(objects, "Service")
    assert svc["spec"]["type"] == "ClusterIP"
    assert {p["name"]: (p["port"], p["targetPort"], p["appProtocol"]) for p in svc["spec"]["ports"]} == {
        "http": (80, "http", "http"), "grpc": (50051, "grpc", "grpc")}
    assert svc["spec"]["selector"] == deploy["spec"]["selector"]["matchLabels"]
    secret = one(objects, "Secret")
    key = base64.b64decode(secret["data"]["jwt-secret-key"])
    assert len(key) == 64  # well above the API's 32-byte minimum


def api_cmd_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="goreports")
    sub = parser.add_subparsers(dest="command", required=True)
    api_cmd.add_parser(sub)
    return parser


def test_the_api_may_only_touch_reportrequests(chart: helm.Chart) -> None:
    objects = api_objects(render(chart, ON))
    role = one(objects, "Role")
    assert role["rules"] == [{"apiGroups": ["goreports.io"], "resources": ["reportrequests"],
                              "verbs": ["get", "list", "watch", "create", "delete"]},
                             {"apiGroups": ["goreports.io"], "resources": ["reporttemplates"],
                              "verbs": ["get", "list"]}]
    binding = one(objects, "RoleBinding")
    assert binding["roleRef"]["name"] == NAME
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": NAME, "namespace": NS}]


def test_api_rbac_follows_the_served_namespaces(chart: helm.Chart) -> None:
    listed = api_objects(render(chart, {**ON, "watchNamespaces": ["team-a", "team-b"]}))
    assert sorted(o["metadata"]["namespace"] for o in listed if o["kind"] == "Role") == ["team-a", "team-b"]
    everywhere = api_objects(render(chart, {**ON, "watchNamespaces": []}))
    assert [o["kind"] for o in everywhere if "Role" in o["kind"]] == ["ClusterRole", "ClusterRoleBinding"]
    no_rbac = api_objects(render(chart, {**ON, "rbac": {"create": False}}))
    assert not [o for o in no_rbac if "Role" in o["kind"]]


def test_existing_secret_public_key_and_overrides(chart: helm.Chart) -> None:
    values = {"api": {"enabled": True, "replicas": 2, "httpPort": 9000, "grpcPort": 9443,
                      "service": {"type": "LoadBalancer", "httpPort": 8080},
                      "serviceAccount": {"create": False, "name": "shared"},
                      "jwt": {"existingSecret": "api-keys", "existingSecretKey": "hs256",
                              "publicKey": {"secretName": "idp-key", "key": "rsa.pem"},
                              "expireHours": 0.5, "refreshHours": 24, "audience": "reports"},
                      "extraArgs": ["--grace-period=3"], "extraEnv": [{"name": "X", "value": "1"}]}}
    objects = api_objects(render(chart, values))
    assert not [o for o in objects if o["kind"] in ("Secret", "ServiceAccount")]
    deploy = one(objects, "Deployment")
    assert deploy["spec"]["replicas"] == 2
    e = env(deploy)
    assert e["JWT_SECRET_KEY"] == {"secretKeyRef": {"name": "api-keys", "key": "hs256"}}
    assert e["JWT_PUBLIC_KEY_FILE"] == "/etc/goreports/jwt/rsa.pem"
    assert (e["JWT_EXPIRE_HOURS"], e["JWT_REFRESH_HOURS"], e["JWT_AUDIENCE"], e["X"]) == ("0.5", "24", "reports", "1")
    vol = {v["name"]: v for v in deploy["spec"]["template"]["spec"]["volumes"]}["jwt-public-key"]
    assert vol["secret"]["secretName"] == "idp-key" and vol["secret"]["items"] == [{"key": "rsa.pem", "path": "rsa.pem"}]
    args = api_cmd_parser().parse_args(container(deploy)["args"])
    assert (args.http_port, args.grpc_port, args.grace_period) == (9000, 9443, 3.0)
    assert deploy["spec"]["template"]["spec"]["serviceAccountName"] == "shared"
    assert one(objects, "RoleBinding")["subjects"][0]["name"] == "shared"
    svc = one(objects, "Service")
    assert svc["spec"]["type"] == "LoadBalancer"
    assert {p["name"]: p["port"] for p in svc["spec"]["ports"]} == {"http": 8080, "grpc": 50051}
