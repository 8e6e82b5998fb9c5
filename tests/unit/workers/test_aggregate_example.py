"""examples/aggregate-report.yaml runs (on a small build of the sample database, in process) and
its region summary equals the same computation in SQLite."""
from __future__ import annotations

import asyncio
import csv
import sqlite3
from dataclasses import replace
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import openpyxl
import yaml

from goreports.cli.run import execute
from goreports.core.settings import Settings
from support.loading import load_module

ROOT = Path(__file__).resolve().parents[3]
SPEC = ROOT / "examples" / "aggregate-report.yaml"


def sample_db(path: Path, rows: int) -> Path:
    module = load_module(ROOT / "examples" / "data" / "make_sales_db.py", "make_sales_db")
    return module.build(path, rows=rows)  # type: ignore[no-any-return]


async def test_example_report_matches_sqlite(tmp_path: Path) -> None:
    db = sample_db(tmp_path / "sales.db", 3000)
    doc = yaml.safe_load(SPEC.read_text())
    for step in doc["spec"]["steps"]:
        if "sqlite" in step:
            step["sqlite"]["database"] = str(db)
        if "local" in step:
            step["local"]["path"] = str(tmp_path / "out")
    settings = replace(Settings.from_env({}), artifact_dir=tmp_path / "staging",
                       work_dir=tmp_path / "work", credentials_dir=tmp_path / "credentials",
                       visibility_timeout=30.0, batch_rows=100, window_batches=4)
    st = await asyncio.wait_for(execute(doc, settings), 90)
    assert st["phase"] == "Succeeded", st

    con = sqlite3.connect(db)
    amounts: dict[str, list[Decimal]] = {}
    for region, amount in con.execute(
            "SELECT r.name, o.amount FROM orders o JOIN customers c ON c.id = o.customer_id "
            "JOIN regions r ON r.id = c.region_id"):
        amounts.setdefault(region, []).append(Decimal(amount))
    with open(tmp_path / "out" / "revenue_by_region.csv", newline="") as f:
        got = {r["region"]: r for r in csv.DictReader(f)}
    assert set(got) == set(amounts)
    for region, values in amounts.items():
        row = got[region]
        total = sum(values, Decimal(0))
        assert int(row["orders"]) == len(values)
        assert Decimal(row["revenue"]) == total
        scale = max(-v.as_tuple().exponent for v in values)  # type: ignore[operator]
        avg = (total / len(values)).quantize(Decimal(1).scaleb(-(scale + 4)), ROUND_HALF_UP)
        assert row["average_order"] == str(avg)

    wb = openpyxl.load_workbook(tmp_path / "out" / "revenue.xlsx", read_only=True)
    assert wb.sheetnames == ["By region", "2024 by status", "Orders"]
    orders = list(wb["Orders"].iter_rows(values_only=True))
    assert len(orders) - 1 == 3000
    assert orders[0][-3:] == ("Customer", "segment", "region")
    steps = {s["name"]: s for s in st["steps"]}
    n_2024 = con.execute("SELECT COUNT(DISTINCT status) FROM orders "
                         "WHERE order_date >= '2024-01-01'").fetchone()[0]
    assert steps["combine"]["rows"] == 3000 + n_2024
    assert steps["enrich"]["rows"] == 3000
