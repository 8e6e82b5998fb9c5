"""The chart's monitoring objects on the real API server: with the Prometheus Operator's CRDs
applied from tests/e2e/crds/, the rendered chart with monitoring enabled (ServiceMonitor,
PrometheusRule, dashboard ConfigMap, metrics Services) is accepted as a whole with kubectl's
strict field validation, reads back unchanged (nothing pruned), the CRDs really validate (a bad
ServiceMonitor is refused), and the dashboard read back from the API server parses and queries
only metrics that core/metrics.py defines."""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Iterator

import helm_python as helm
import pytest
import yaml

from goreports.core import metrics
from support.k8s import cluster, kubectl_json, namespace  # noqa: F401

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "go-reports"
CRDS = Path(__file__).resolve().parent / "crds"
RELEASE = "go-reports"
VALUES: dict[str, Any] = {
    "monitoring": {"serviceMonitor": {"enabled": True, "labels": {"release": "prom"}},
                   "prometheusRule": {"enabled": True, "alertLabels": {"team": "reports"}},
                   "dashboard": {"enabled": True}},
    "workers": {"health": {"enabled": True}},
    "notifyOnFailure": {"enabled": True, "notify": {"webhook": {"url": "https://hooks.example.com/x"}}},
}


@pytest.fixture(scope="module")
def monitoring_crds(cluster) -> None:  # noqa: F811
    cluster.apply(CRDS)
    for f in sorted(CRDS.glob("*.yaml")):
        cluster.wait_for_crd(yaml.safe_load(f.read_text())["metadata"]["name"])


@pytest.fixture(scope="module")
def chart() -> Iterator[helm.Chart]:
    with helm.Chart.load(CHART) as c:
        yield c


def rendered(chart: helm.Chart, ns: str) -> list[dict[str, Any]]:
    out = []
    for name, text in sorted(chart.render(VALUES, name=RELEASE, namespace=ns).items()):
        if not name.endswith(".txt"):
            out += [d for d in yaml.safe_load_all(text) if d]
    return out


def promql_metrics(expr: str) -> set[str]:
    return set(re.findall(r"\b(goreports_[a-z_]+)", expr))


def known_samples() -> set[str]:
    """Every sample name core/metrics.py can expose (counters add _total, histograms add
    _bucket/_sum/_count)."""
    names: set[str] = set()
    for fam in metrics.REGISTRY.collect():
        names.add(fam.name)
        if fam.type == "counter":
            names.add(fam.name + "_total")
        if fam.type == "histogram":
            names |= {fam.name + s for s in ("_bucket", "_sum", "_count")}
    return names


def test_rendered_chart_with_monitoring_is_accepted(cluster, namespace, monitoring_crds, chart) -> None:  # noqa: F811
    objects = rendered(chart, namespace)
    kinds = {o["kind"] for o in objects}
    assert {"ServiceMonitor", "PrometheusRule", "ConfigMap", "Service", "Deployment"} <= kinds
    res = cluster.kubectl("apply", "--validate=strict", "-f", "-",
                          input=yaml.safe_dump_all(objects), check=False)
    assert res.returncode == 0, res.stderr

    for o in objects:
        if o["kind"] not in ("ServiceMonitor", "PrometheusRule"):
            continue
        live = kubectl_json(cluster, "get", f"{o['kind'].lower()}.monitoring.coreos.com",
                            o["metadata"]["name"], "-n", namespace)
        assert live["spec"] == o["spec"], f"{o['kind']} changed (pruned?) on the way through the API server"
    rule = next(o for o in objects if o["kind"] == "PrometheusRule")
    alerts = {r["alert"]: r for g in rule["spec"]["groups"] for r in g["rules"]}
    assert set(alerts) == {"GoReportsDeadLettersGrowing", "GoReportsFailureRatioHigh",
                           "GoReportsBacklogNotDraining", "GoReportsNoWorkers", "GoReportsOperatorDown"}
    assert all(r["labels"]["team"] == "reports" for r in alerts.values())
    assert f'up{{job="{RELEASE}-operator-metrics", namespace="{namespace}"}}' in alerts["GoReportsOperatorDown"]["expr"]
    known = known_samples()
    for name, r in alerts.items():
        assert promql_metrics(str(r["expr"])) <= known, name

    # The metrics Services select the pods the chart runs, on the ports they serve.
    services = {o["metadata"]["name"]: o for o in objects if o["kind"] == "Service"}
    op_svc = services[f"{RELEASE}-operator-metrics"]
    assert op_svc["spec"]["selector"]["app.kubernetes.io/component"] == "operator"
    assert services[f"{RELEASE}-worker-metrics"]["spec"]["ports"][0]["port"] == 9090
    sm = next(o for o in objects if o["kind"] == "ServiceMonitor")
    assert sm["metadata"]["labels"]["release"] == "prom"
    assert sm["spec"]["selector"]["matchLabels"]["goreports.io/metrics"] == "true"
    assert all(svc["metadata"]["labels"]["goreports.io/metrics"] == "true"
               for n, svc in services.items() if n.endswith("-metrics"))

    # The dashboard as Grafana's sidecar will read it: from the API server.
    cm = kubectl_json(cluster, "get", "configmap", f"{RELEASE}-dashboard", "-n", namespace)
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    dashboard = json.loads(cm["data"]["go-reports.json"])
    assert dashboard["uid"] == "go-reports" and dashboard["panels"]
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    assert exprs and all(promql_metrics(e) <= known for e in exprs), \
        sorted(set().union(*map(promql_metrics, exprs)) - known)


def test_the_crds_validate_monitoring_objects(cluster, namespace, monitoring_crds) -> None:  # noqa: F811
    bad = {"apiVersion": "monitoring.coreos.com/v1", "kind": "ServiceMonitor",
           "metadata": {"name": "bad", "namespace": namespace},
           "spec": {"selector": {}, "endpoints": [{"port": "metrics", "scheme": "ftp"}]}}
    res = cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump(bad), check=False)
    assert res.returncode != 0 and "scheme" in res.stderr, res.stderr
    unknown = {"apiVersion": "monitoring.coreos.com/v1", "kind": "PrometheusRule",
               "metadata": {"name": "bad", "namespace": namespace},
               "spec": {"groups": [{"name": "g", "rules": [{"alert": "A", "expr": "up", "severity": "x"}]}]}}
    res = cluster.kubectl("apply", "--validate=strict", "-f", "-", input=yaml.safe_dump(unknown), check=False)
    assert res.returncode != 0 and "severity" in res.stderr, res.stderr


def test_lint_is_clean_and_inconsistent_values_are_refused(chart) -> None:
    report = helm.lint(CHART, VALUES, strict=True, namespace="reports", kube_version="v1.37.2")
    assert report["errors"] == [] and [m for m in report["messages"] if m["severity"] >= 2] == [], report
    with pytest.raises(helm.HelmRenderError, match="needs workers.health.enabled=true"):
        chart.render({"monitoring": {"serviceMonitor": {"enabled": True}}}, name=RELEASE, namespace="reports")
    with pytest.raises(helm.HelmValuesError, match="notifyOnFailure/notify"):
        chart.validate_schema({"notifyOnFailure": {"enabled": True}})
    with pytest.raises(helm.HelmValuesError, match="backlogWindow"):
        chart.validate_schema({"monitoring": {"prometheusRule": {"backlogWindow": "soon"}}})
