"""The stage through go-reports itself, on a real redis-server: the report compiles with a
`custom` step, the stage writes its dataset through the normal dataset writer, the stock `csv`
generator renders it and the `local` dispatcher delivers the file (`goreports run --redis`)."""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import pytest

from goreports.cli.run import execute
from goreports.core.settings import Settings
from goreports.workers import registry

from goreports_example_stages import PATTERN


def report(db: Path, out: Path, task: dict[str, Any], datasets: list[str] | None = None
           ) -> dict[str, Any]:
    return {
        "apiVersion": "goreports.io/v1alpha1", "kind": "ReportRequest",
        "metadata": {"name": "at-risk", "namespace": "sales"},
        "spec": {"maxAttempts": 1, "steps": [
            {"name": "at-risk", "custom": {
                "pattern": PATTERN, "channel": "collectors",
                "datasets": datasets or ["revenue_at_risk"],
                "task": {"database": str(db), **task}}},
            {"name": "table", "csv": {"fileName": "at-risk.csv", "dataset": "revenue_at_risk"}},
            {"name": "deliver", "local": {"path": str(out)}},
        ]},
    }


@pytest.fixture
def settings(tmp_path: Path, redis_addr: str) -> Settings:
    return Settings(redis_addr=redis_addr, prefix=f"plugin-{tmp_path.name}", visibility_timeout=5,
                    heartbeat_interval=1, retry_base_delay=0.05,
                    artifact_dir=tmp_path / "staging", work_dir=tmp_path / "work",
                    credentials_dir=tmp_path / "credentials")


def test_the_entry_point_registers_the_stage() -> None:
    registry.load_builtin_stages()
    spec = registry.get(PATTERN)
    assert (spec.channel, spec.fn.__module__) == (
        "collectors", "goreports_example_stages.revenue_at_risk")


async def test_report_with_the_custom_collector(sales_db: Path, tmp_path: Path, redis_addr: str,
                                                settings: Settings) -> None:
    out = tmp_path / "out"
    status = await execute(report(sales_db, out, {"asOf": "2024-12-31", "regions": ["EU"]}),
                           settings, redis_addr=redis_addr)
    assert status["phase"] == "Succeeded", status.get("message")
    step = next(s for s in status["steps"] if s["name"] == "at-risk")
    assert (step["rows"], step["message"]) == (3, "3 of 3 customers at risk (7 orders read)")
    with open(out / "at-risk.csv", newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["customer_id", "customer", "region", "segment", "orders", "refund_rate",
                       "last_paid_order", "days_inactive", "revenue_at_risk", "tier", "reasons"]
    assert rows[1:] == [
        ["1", "Quiet Ltd", "EU", "enterprise", "2", "0.0", "2024-07-15", "169", "1500.50",
         "medium", "no paid order for 169 days"],
        ["2", "Busy GmbH", "EU", "mid-market", "4", "0.5", "2024-12-01", "30", "500.00",
         "medium", "2 of 4 orders refunded or cancelled"],
        ["7", "Tiny", "EU", "small business", "1", "0.0", "2024-01-05", "361", "9.99", "medium",
         "no paid order for 361 days"],
    ]


@pytest.mark.parametrize("task, datasets, message", [
    ({"asOf": "2024-12-31", "refundRate": 2}, None,
     "step 'at-risk': task.refundRate must be a fraction above 0 and at most 1"),
    ({"asOf": "2024-12-31"}, ["at_risk"],
     "step 'at-risk' writes dataset 'revenue_at_risk' but its spec does not declare it"),
])
async def test_a_wrong_task_fails_the_report_with_a_reason(
        sales_db: Path, tmp_path: Path, redis_addr: str, settings: Settings,
        task: dict[str, Any], datasets: list[str] | None, message: str) -> None:
    doc = report(sales_db, tmp_path / "out", task, datasets)
    if datasets:  # the csv step must read a dataset that exists for the spec to compile
        doc["spec"]["steps"][1]["csv"]["dataset"] = datasets[0]
    status = await execute(doc, settings, redis_addr=redis_addr)
    assert status["phase"] == "Failed"
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert ready["reason"] == "InvalidTask" and message in ready["message"], ready
    assert not (tmp_path / "out").exists()
