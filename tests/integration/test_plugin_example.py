"""The example plugin package (examples/plugin-stage): its own tests, its stage served by a worker
pool of its own (`goreports worker --pattern revenue-at-risk`, found through the entry point),
and the chart deploying that pool.

The plugin is installed into the test environment by scripts/venv.sh (`pip install -e
examples/plugin-stage`); nothing here imports it by path.
"""
from __future__ import annotations

import csv
import datetime as dt
import re
import sqlite3
import subprocess
import sys
import time
import uuid
from decimal import Decimal
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, Iterator

import helm_python as helm
import openpyxl
import pytest
import yaml

from goreports.core import compiler, schema, status as status_mod
from goreports.core.bus.redis import RedisBus
from goreports.operator.scaling_logic import PatternRef, parse_scaling_config
from support.workers import start_worker, stop
from support.loading import load_module

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
PLUGIN = ROOT / "examples" / "plugin-stage"
REPORT = PLUGIN / "report.yaml"
CHART = ROOT / "helm" / "go-reports"
PATTERN = "revenue-at-risk"


def test_the_plugin_is_installed_as_an_entry_point() -> None:
    (ep,) = [e for e in entry_points(group="goreports.stages") if e.name == PATTERN]
    assert ep.value == "goreports_example_stages.revenue_at_risk"
    assert ep.dist is not None and ep.dist.name == "goreports-example-stages"


def test_the_plugin_package_own_tests_pass() -> None:
    """As its author runs them: from its folder, with its own pytest settings and fixtures."""
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
                          cwd=PLUGIN, capture_output=True, text=True, timeout=300)
    summary = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else proc.stderr
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    passed = re.search(r"(\d+) passed", summary)
    assert passed and int(passed.group(1)) >= 20 and "skipped" not in summary, summary


# ------------------------------------------------------------------ its own worker pool

def sample_db(path: Path, rows: int) -> Path:
    module = load_module(ROOT / "examples" / "data" / "make_sales_db.py", "make_sales_db")
    return module.build(path, rows=rows)  # type: ignore[no-any-return]


def expected_at_risk(db: Path, task: dict[str, Any]) -> dict[int, tuple[int, str, str, str]]:
    """The answer computed another way: one GROUP BY in SQL, thresholds applied after.
    customer_id -> (revenue in cents, last paid day, tier, reasons)."""
    as_of = dt.date.fromisoformat(task["asOf"])
    start = as_of - dt.timedelta(days=task["lookbackDays"])
    codes = task["regions"]
    con = sqlite3.connect(db)
    rows = con.execute(
        "SELECT o.customer_id, COUNT(*), SUM(o.status IN ('refunded', 'cancelled')), "
        "       SUM(CASE WHEN o.status = 'paid' THEN CAST(ROUND(o.amount * 100) AS INTEGER) END),"
        "       MAX(CASE WHEN o.status = 'paid' THEN o.order_date END) "
        "FROM orders o JOIN customers c ON c.id = o.customer_id "
        "JOIN regions r ON r.id = c.region_id "
        f"WHERE o.order_date > ? AND o.order_date <= ? AND r.code IN ({','.join('?' * len(codes))}) "
        "GROUP BY o.customer_id", [start.isoformat(), as_of.isoformat(), *codes]).fetchall()
    con.close()
    out = {}
    for cid, orders, bad, cents, last in rows:
        if not cents or cents < task["minRevenue"] * 100:
            continue
        days = (as_of - dt.date.fromisoformat(last)).days
        reasons = []
        if days >= task["inactiveDays"]:
            reasons.append(f"no paid order for {days} days")
        if orders >= task["refundMinOrders"] and bad / orders >= task["refundRate"]:
            reasons.append(f"{bad} of {orders} orders refunded or cancelled")
        if reasons:
            tier = "high" if len(reasons) > 1 or cents >= task["highRevenue"] * 100 else "medium"
            out[cid] = (cents, last, tier, "; ".join(reasons))
    return out


async def run_report(bus: RedisBus, doc: dict[str, Any], timeout: float = 90
                     ) -> tuple[dict[str, Any], dict[str, str]]:
    """Publish the report's chain and fold its events; returns (status, step -> worker)."""
    schema.validate_report(doc)
    uid = uuid.uuid4().hex
    head = compiler.compile_report(doc, uid=uid, prefix="goreports")
    chain = compiler.iter_chain(head)
    st = status_mod.initial_status([(j.name, j.pattern) for j in chain])
    workers: dict[str, str] = {}
    after = "0"
    await bus.publish(head)
    deadline = time.monotonic() + timeout
    while st["phase"] not in status_mod.FINAL_PHASES:
        assert time.monotonic() < deadline, f"report not finished after {timeout}s: {st}"
        for entry_id, ev in await bus.read_events(after, 100, 200):
            after = entry_id
            if ev.report.uid == uid:
                st = status_mod.fold(st, ev)
                if ev.worker:
                    workers[ev.step] = ev.worker
    return st, workers


async def test_plugin_worker_pool_completes_a_report(bus: RedisBus, redis_server: Any,
                                                      tmp_path: Path) -> None:
    """custom (plugin pool) -> excel + csv -> local (stock pool): two worker processes, each
    serving only its patterns, meeting through the real Redis."""
    db = sample_db(tmp_path / "sales.db", 20_000)
    doc = yaml.safe_load(REPORT.read_text())
    steps = {s["name"]: s for s in doc["spec"]["steps"]}
    steps["at-risk"]["custom"]["task"]["database"] = str(db)
    steps["deliver"]["local"]["path"] = str(tmp_path / "out")
    task = steps["at-risk"]["custom"]["task"]
    env = {"GOREPORTS_ARTIFACT_DIR": str(tmp_path / "staging"), "GOREPORTS_STAGE_MODULES": ""}
    plugin_log, stock_log = tmp_path / "plugin.log", tmp_path / "stock.log"
    plugin = start_worker(redis_server.addr, PATTERN, log=plugin_log, **env)
    stock = start_worker(redis_server.addr, "excel", "csv", "local", log=stock_log, **env)
    try:
        status, workers = await run_report(bus, doc)
    finally:
        stop(plugin)
        stop(stock)
    assert status["phase"] == "Succeeded", (status["message"], plugin_log.read_text()[-3000:])
    # The custom step ran in the plugin's pool, the rest in the stock pool.
    assert workers["at-risk"] != workers["workbook"] == workers["table"] == workers["deliver"]
    assert f"serving {PATTERN} (concurrency" in plugin_log.read_text()
    assert "serving excel, csv, local (concurrency" in stock_log.read_text()

    want = expected_at_risk(db, task)
    assert 20 < len(want) < 1000  # the rules select some customers, not none and not all
    with open(tmp_path / "out" / "revenue-at-risk.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    got = {int(r["customer_id"]): (int(Decimal(r["revenue_at_risk"]) * 100), r["last_paid_order"],
                                   r["tier"], r["reasons"]) for r in rows}
    assert got == want
    assert {r["region"] for r in rows} <= {"EU", "NA"} and len(rows) == len(got)
    step = next(s for s in status["steps"] if s["name"] == "at-risk")
    assert step["rows"] == len(want) and step["message"].startswith(f"{len(want)} of ")

    # The excel generator typed the plugin's columns: numbers, dates, decimals.
    ws = openpyxl.load_workbook(tmp_path / "out" / "revenue-at-risk.xlsx", read_only=True)["At risk"]
    header, first = [list(r) for r in ws.iter_rows(min_row=1, max_row=2, values_only=True)]
    assert header[:4] == ["ID", "Customer", "Region", "Segment"] and len(header) == 11
    assert isinstance(first[0], int) and isinstance(first[4], int) and isinstance(first[5], float)
    assert isinstance(first[6], dt.datetime) and isinstance(first[8], (int, float))
    assert sum(1 for _ in ws.iter_rows(values_only=True)) == len(want) + 1


# ------------------------------------------------------------------ the chart deploys its pool

@pytest.fixture(scope="module")
def chart() -> Iterator[helm.Chart]:
    with helm.Chart.load(CHART) as c:
        yield c


PLUGIN_POOL = {"name": "revenue", "channel": "collectors", "patterns": [PATTERN],
               "image": {"repository": "registry.example.com/go-reports-revenue", "tag": "1.2.0"},
               "credentials": [{"id": "sales-db", "secretName": "sales-db"}],
               "maxReplicas": 2}


def rendered(chart: helm.Chart, values: dict[str, Any]) -> list[dict[str, Any]]:
    manifests = chart.render(values, name="go-reports", namespace="reports")
    return [d for name, text in sorted(manifests.items()) if not name.endswith(".txt")
            for d in yaml.safe_load_all(text) if d]


def by_name(objs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in objs if o["kind"] == kind}


def test_chart_deploys_the_plugin_as_an_extra_pool(chart: helm.Chart) -> None:
    objs = rendered(chart, {"workers": {"extraPools": [PLUGIN_POOL]}})
    deployments = by_name(objs, "Deployment")
    pool = deployments["go-reports-worker-revenue"]
    (c,) = pool["spec"]["template"]["spec"]["containers"]
    assert c["image"] == "registry.example.com/go-reports-revenue:1.2.0"
    assert c["args"] == ["worker", f"--pattern={PATTERN}", "--concurrency=4",
                         "--grace-period=25"]
    assert pool["metadata"]["labels"]["goreports.io/pool"] == "revenue"
    assert pool["metadata"]["annotations"]["goreports.io/channel"] == "collectors"
    assert {m["mountPath"] for m in c["volumeMounts"]} >= {"/var/run/goreports/credentials/sales-db"}
    assert pool["spec"]["template"]["spec"]["automountServiceAccountToken"] is False
    # The default pools stay: extraPools adds, it does not replace.
    assert {f"go-reports-worker-{n}" for n in ("collectors", "generators", "dispatchers")} <= set(
        deployments)
    # The scaler knows the pool and may scale it (and only the pools).
    config = parse_scaling_config(yaml.safe_load(
        by_name(objs, "ConfigMap")["go-reports-scaling"]["data"]["scaling.yaml"]))
    revenue = next(p for p in config.pools if p.deployment == "go-reports-worker-revenue")
    assert list(revenue.patterns) == [PatternRef("collectors", PATTERN)]
    assert revenue.max_replicas == 2
    scaler = by_name(objs, "Role")["go-reports-scaler"]
    scale_rule = next(r for r in scaler["rules"] if r["resources"] == ["deployments/scale"])
    assert "go-reports-worker-revenue" in scale_rule["resourceNames"]


def test_chart_refuses_a_plugin_pool_that_takes_a_served_pattern(chart: helm.Chart) -> None:
    with pytest.raises(Exception) as e:
        rendered(chart, {"workers": {"extraPools": [{**PLUGIN_POOL, "patterns": ["mysql"]}]}})
    assert "pattern \"mysql\" is served by two pools (collectors and revenue)" in str(e.value)
    with pytest.raises(Exception) as e:
        rendered(chart, {"workers": {"extraPools": [{**PLUGIN_POOL, "name": "generators"}]}})
    assert "two pools are named \"generators\"" in str(e.value)
    with pytest.raises(Exception) as e:  # the values schema checks extra pools like pools
        rendered(chart, {"workers": {"extraPools": [{"name": "revenue", "channel": "collectors"}]}})
    assert "patterns" in str(e.value)
