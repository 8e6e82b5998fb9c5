"""`goreports run` end to end, as a user runs it: the embedded sample, bad specs, failures, and
memory that stays flat as the data grows."""
from __future__ import annotations

import datetime as dt
import sqlite3
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import openpyxl
import psutil
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
GOREPORTS = Path(sys.executable).with_name("goreports")
SAMPLE_DB = ROOT / "examples" / "data" / "sales.db"

pytestmark = pytest.mark.integration


def run(*args: str, cwd: Path = ROOT, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(GOREPORTS), "run", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture(scope="module")
def sample_db() -> Path:
    subprocess.run([sys.executable, str(ROOT / "examples/data/make_sales_db.py")], check=True,
                   capture_output=True)
    return SAMPLE_DB


def norm(v: object) -> object:
    """One comparable form for a SQLite value and the cell it became (numbers as rounded
    floats, ISO text and dates as datetimes)."""
    if isinstance(v, bool) or v is None:
        return v
    if isinstance(v, (int, float, Decimal)):
        return round(float(v), 6)
    if isinstance(v, dt.datetime):
        return v.replace(microsecond=0)
    if isinstance(v, dt.date):
        return dt.datetime(v.year, v.month, v.day)
    if isinstance(v, str):
        try:
            return round(float(Decimal(v)), 6)
        except ArithmeticError:
            pass
        try:
            return norm(dt.datetime.fromisoformat(v))
        except ValueError:
            return v
    return v


def test_sample_report_writes_the_sql_rows(sample_db: Path, tmp_path: Path) -> None:
    res = run("examples/sales-report.yaml", "--out", str(tmp_path))
    assert res.returncode == 0, res.stderr
    assert "Succeeded" in res.stdout and "sales.xlsx" in res.stdout
    spec = yaml.safe_load((ROOT / "examples/sales-report.yaml").read_text())
    queries = {q["name"]: q for q in spec["spec"]["steps"][0]["sqlite"]["queries"]}
    con = sqlite3.connect(sample_db)
    wb = openpyxl.load_workbook(tmp_path / "sales.xlsx", read_only=True)
    assert wb.sheetnames == ["Orders", "By region"]
    for sheet, dataset in (("Orders", "orders"), ("By region", "sales_by_region")):
        q = queries[dataset]
        sql_rows = con.execute(q["sql"], q.get("parameters", {})).fetchall()
        rows = list(wb[sheet].iter_rows(values_only=True))[1:]
        assert len(rows) == len(sql_rows) and len(rows) > 0
        for got, want in zip(rows, sql_rows):
            assert [norm(g) for g in got] == [norm(w) for w in want]
    assert len(list(wb["Orders"].iter_rows(values_only=True))) - 1 >= 50_000
    html = (tmp_path / "summary.html").read_text()
    assert "<html" in html.lower() and "region" in html.lower()
    assert (tmp_path / "sales_by_region.csv").read_text().count("\n") == len(
        con.execute(queries["sales_by_region"]["sql"], {"since": "2023-01-01"}).fetchall()) + 1


def test_malformed_spec_is_rejected_before_anything_runs(tmp_path: Path) -> None:
    doc = yaml.safe_load((ROOT / "examples/sales-report.yaml").read_text())
    steps = doc["spec"]["steps"]
    steps[0]["sqlite"]["queries"][0]["name"] = "Orders!"        # bad dataset name
    steps[1]["excel"]["shets"] = steps[1]["excel"].pop("sheets")  # unknown field
    doc["spec"]["maxAttempts"] = "three"                         # wrong type
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(doc))
    res = run(str(bad), "--out", str(tmp_path / "out"))
    assert res.returncode == 2
    for path in ("spec.steps[0].sqlite.queries[0].name", "spec.steps[1].excel", "spec.maxAttempts"):
        assert path in res.stderr, res.stderr
    assert "shets" in res.stderr and "integer" in res.stderr
    assert not (tmp_path / "out").exists()


def test_unreadable_and_non_yaml_files_get_a_clear_error(tmp_path: Path) -> None:
    res = run(str(tmp_path / "missing.yaml"))
    assert res.returncode == 2 and "cannot read" in res.stderr
    (tmp_path / "x.yaml").write_text("spec: [unclosed")
    res = run(str(tmp_path / "x.yaml"))
    assert res.returncode == 2 and "not valid YAML" in res.stderr


def test_failing_step_exits_non_zero_with_the_reason(sample_db: Path, tmp_path: Path) -> None:
    doc = {"apiVersion": "goreports.io/v1alpha1", "kind": "ReportRequest", "metadata": {"name": "broken"},
           "spec": {"maxAttempts": 1, "steps": [
               {"name": "collect", "sqlite": {"database": str(sample_db), "queries": [
                   {"name": "x", "sql": "SELECT * FROM no_such_table"}]}},
               {"name": "sheet", "csv": {"fileName": "x.csv", "dataset": "x"}},
               {"name": "deliver", "local": {"path": str(tmp_path / "out")}}]}}
    f = tmp_path / "broken.yaml"
    f.write_text(yaml.safe_dump(doc))
    res = run(str(f))
    assert res.returncode == 1
    assert "report broken failed" in res.stderr and "collect" in res.stderr
    assert "no_such_table" in res.stderr


def peak_rss_mb(args: list[str], cwd: Path) -> tuple[float, float]:
    proc = psutil.Popen([str(GOREPORTS), "run", *args], cwd=cwd, stdout=subprocess.DEVNULL,
                        stderr=subprocess.PIPE)
    peak = 0
    started = time.monotonic()
    while proc.poll() is None:
        try:
            peak = max(peak, proc.memory_info().rss)
        except psutil.NoSuchProcess:
            break
        time.sleep(0.05)
    assert proc.returncode == 0, proc.stderr.read().decode() if proc.stderr else ""
    return peak / 2**20, time.monotonic() - started


def test_memory_stays_flat_as_rows_grow(tmp_path: Path) -> None:
    """10x the rows must not mean 10x the memory (CSV keeps the test quick; the Excel path is
    measured by benchmarks/)."""
    figures = {}
    for rows in (20_000, 200_000):
        db = tmp_path / f"s{rows}.db"
        subprocess.run([sys.executable, str(ROOT / "examples/data/make_sales_db.py"), "--rows",
                        str(rows), "--out", str(db)], check=True, capture_output=True)
        spec = {"apiVersion": "goreports.io/v1alpha1", "kind": "ReportRequest", "metadata": {"name": f"m{rows}"},
                "spec": {"steps": [
                    {"name": "collect", "sqlite": {"database": str(db), "queries": [
                        {"name": "orders", "sql": "SELECT * FROM orders"}]}},
                    {"name": "file", "csv": {"fileName": "orders.csv", "dataset": "orders"}},
                    {"name": "deliver", "local": {"path": str(tmp_path / f"out{rows}")}}]}}
        f = tmp_path / f"m{rows}.yaml"
        f.write_text(yaml.safe_dump(spec))
        figures[rows] = peak_rss_mb([str(f)], tmp_path)
    small, large = figures[20_000][0], figures[200_000][0]
    print(f"\npeak RSS of goreports run: 20k rows {small:.0f} MB ({figures[20_000][1]:.1f}s), "
          f"200k rows {large:.0f} MB ({figures[200_000][1]:.1f}s)")
    assert large < small * 1.3 + 10, figures


def test_run_on_a_real_redis(sample_db: Path, redis_server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import redis as redis_lib

    doc = {"apiVersion": "goreports.io/v1alpha1", "kind": "ReportRequest", "metadata": {"name": "onredis"},
           "spec": {"steps": [
               {"name": "collect", "sqlite": {"database": str(sample_db), "queries": [
                   {"name": "orders", "sql": "SELECT id, amount FROM orders ORDER BY id LIMIT 3000"}]}},
               {"name": "file", "csv": {"fileName": "orders.csv", "dataset": "orders"}},
               {"name": "deliver", "local": {"path": str(tmp_path / "out")}}]}}
    f = tmp_path / "r.yaml"
    f.write_text(yaml.safe_dump(doc))
    r = redis_lib.Redis(*redis_server.addr.split(":"))
    before = set(r.scan_iter(match="goreports:data:*"))  # the server is shared by the session
    res = run(str(f), "--redis", redis_server.addr)
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "out" / "orders.csv").read_text().count("\n") == 3001
    assert r.xlen("goreports:jobs:collectors:sqlite") >= 1  # it really went through Redis
    assert set(r.scan_iter(match="goreports:data:*")) <= before  # and cleaned its datasets
