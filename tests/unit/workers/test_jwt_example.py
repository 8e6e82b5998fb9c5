"""examples/validated-report.yaml runs as its comment says (on a small build of the sample
database, in process): the caller's regions are the only ones left, and the same token fails
the report in deny mode, an expired one with TokenExpired."""
from __future__ import annotations

import asyncio
import csv
import sqlite3
import time
from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from typing import Any

import jwt
import pytest
import yaml

from goreports.cli.run import execute
from goreports.core.settings import Settings
from support.loading import load_module

ROOT = Path(__file__).resolve().parents[3]
SPEC = ROOT / "examples" / "validated-report.yaml"
SECRET = "example-only-secret-change-me-0123456789"  # the one the example's comment writes


def sample_db(path: Path, rows: int) -> Path:
    module = load_module(ROOT / "examples" / "data" / "make_sales_db.py", "make_sales_db")
    return module.build(path, rows=rows)  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return sample_db(tmp_path_factory.mktemp("db") / "sales.db", 4000)


def setup(tmp_path: Path, db: Path, *, exp_in: int = 3600, mode: str = "filter"
          ) -> tuple[dict[str, Any], Settings]:
    """The example's commands: a key folder, a token folder; paths pointed at tmp."""
    creds = tmp_path / "credentials"
    (creds / "example-jwt-key").mkdir(parents=True)
    (creds / "example-jwt-key" / "secret").write_text(SECRET)
    (creds / "example-caller").mkdir()
    now = int(time.time())
    token = jwt.encode({"sub": "analyst", "regions": ["EU", "NA"], "aud": "goreports",
                        "iat": now - 7200, "exp": now + exp_in},
                       (creds / "example-jwt-key" / "secret").read_text(), "HS256")
    (creds / "example-caller" / "token").write_text(token + "\n")
    doc = yaml.safe_load(SPEC.read_text())
    for step in doc["spec"]["steps"]:
        if "sqlite" in step:
            step["sqlite"]["database"] = str(db)
        if "local" in step:
            step["local"]["path"] = str(tmp_path / "out")
        if "jwt" in step:
            step["jwt"]["mode"] = mode
    settings = replace(Settings.from_env({}), artifact_dir=tmp_path / "staging",
                       work_dir=tmp_path / "work", credentials_dir=creds,
                       visibility_timeout=30.0)
    return doc, settings


def reason(st: dict[str, Any]) -> str:
    return next(c["reason"] for c in st["conditions"] if c["type"] == "Ready")


async def test_example_keeps_only_the_callers_regions(tmp_path: Path, db: Path) -> None:
    doc, settings = setup(tmp_path, db)
    st = await asyncio.wait_for(execute(doc, settings), 60)
    assert st["phase"] == "Succeeded", st
    con = sqlite3.connect(db)
    want = con.execute(
        "SELECT r.code, COUNT(*), SUM(CAST(o.amount AS REAL)) FROM orders o "
        "JOIN customers c ON c.id = o.customer_id JOIN regions r ON r.id = c.region_id "
        "WHERE o.order_date >= '2024-01-01' GROUP BY r.code").fetchall()
    visible = {code: n for code, n, _ in want if code in ("EU", "NA")}
    with open(tmp_path / "out" / "visible_orders.csv", newline="") as f:
        orders = list(csv.DictReader(f))
    assert {r["region"] for r in orders} == {"EU", "NA"}
    assert len(orders) == sum(visible.values())
    with open(tmp_path / "out" / "visible_region_totals.csv", newline="") as f:
        totals = {r["region"]: r for r in csv.DictReader(f)}
    assert {k: int(v["orders"]) for k, v in totals.items()} == visible
    exact = sum((Decimal(r["amount"]) for r in orders if r["region"] == "EU"), Decimal(0))
    assert Decimal(totals["EU"]["revenue"]) == exact
    steps = {s["name"]: s for s in st["steps"]}
    assert steps["check-access"]["rows"] == len(orders) + 2


async def test_example_in_deny_mode_and_with_an_expired_token(tmp_path: Path, db: Path) -> None:
    doc, settings = setup(tmp_path / "deny", db, mode="deny")
    st = await asyncio.wait_for(execute(doc, settings), 60)
    assert st["phase"] == "Failed" and reason(st) == "AccessDenied"
    assert "rule 'own-regions'" in st["message"]
    doc, settings = setup(tmp_path / "expired", db, exp_in=-3600)
    st = await asyncio.wait_for(execute(doc, settings), 60)
    assert st["phase"] == "Failed" and reason(st) == "TokenExpired"
    assert not (tmp_path / "expired" / "out").exists()
