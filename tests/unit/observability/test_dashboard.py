"""The Grafana dashboard and the alert rules query only metrics core/metrics.py defines, and
every go-reports metric appears on the dashboard."""
from __future__ import annotations

import json
import re
from pathlib import Path

from goreports.core import metrics

CHART = Path(__file__).resolve().parents[3] / "helm" / "go-reports"


def known() -> dict[str, str]:
    """sample name -> family name, for every family of the registry."""
    out = {}
    for fam in metrics.REGISTRY.collect():
        out[fam.name] = fam.name
        suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count")}.get(fam.type, ())
        for s in suffixes:
            out[fam.name + s] = fam.name
    return out


def names(text: str) -> set[str]:
    return set(re.findall(r"\b(goreports_[a-z_]+)", text))


def dashboard_queries() -> list[str]:
    dash = json.loads((CHART / "dashboards" / "go-reports.json").read_text())
    out = [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]
    out += [v["query"]["query"] for v in dash["templating"]["list"] if isinstance(v.get("query"), dict)]
    return out


def test_dashboard_parses_and_queries_known_metrics() -> None:
    dash = json.loads((CHART / "dashboards" / "go-reports.json").read_text())
    assert dash["uid"] == "go-reports" and {v["name"] for v in dash["templating"]["list"]} == {"datasource", "namespace"}
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
    used = set().union(*map(names, dashboard_queries()))
    assert used and used <= set(known()), sorted(used - set(known()))
    families = {f for f in known().values() if f.startswith("goreports_")}
    assert families <= {known()[n] for n in used}, sorted(families - {known()[n] for n in used})


def test_alert_rules_query_known_metrics() -> None:
    text = (CHART / "templates" / "monitoring-prometheusrule.yaml").read_text()
    used = names(text)
    assert {"goreports_dead_letters", "goreports_jobs_failed_total", "goreports_jobs_started_total",
            "goreports_jobs_backlog", "goreports_workers"} <= used
    assert used <= set(known()), sorted(used - set(known()))
