"""examples/sales-report.yaml on a small build of the sample database: the spec is valid, its
queries run, and its sheets, template and CSV fit the datasets the queries produce."""
from __future__ import annotations

import asyncio
from pathlib import Path

import openpyxl
import pytest
import yaml
from google.protobuf import struct_pb2

from goreports.core import schema, values
from goreports.core.bus.memory import MemoryBus
from goreports.proto import tasks_pb2
from goreports.workers.collectors.sqlite import collect_sqlite
from goreports.workers.generators.csv import generate_csv
from goreports.workers.generators.excel import generate_excel
from goreports.workers.generators.mustache import generate_mustache

from unit.workers.stagekit import UID, make_ctx, output, ref
from support.loading import load_module

ROOT = Path(__file__).resolve().parents[3]
SPEC = ROOT / "examples" / "sales-report.yaml"


def load_maker():  # type: ignore[no-untyped-def]
    return load_module(ROOT / "examples" / "data" / "make_sales_db.py", "make_sales_db")


def test_sample_database_is_deterministic(tmp_path: Path) -> None:
    maker = load_maker()
    a = maker.build(tmp_path / "a.db", rows=500)
    b = maker.build(tmp_path / "b.db", rows=500)
    assert a.read_bytes() == b.read_bytes()
    assert maker.main(["--rows", "10", "--out", str(a)]) == 0  # exists: kept
    assert a.read_bytes() == b.read_bytes()


async def test_example_report_runs_on_the_sample_data(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    doc = yaml.safe_load(SPEC.read_text())
    schema.validate_report(doc)
    steps = {s["name"]: s for s in doc["spec"]["steps"]}
    db = load_maker().build(tmp_path / "sales.db", rows=3_000)
    monkeypatch.chdir(ROOT)  # templateDir is relative to the repository root

    bus = MemoryBus()
    collect = tasks_pb2.SqliteCollector(database=str(db))
    for q in steps["collect"]["sqlite"]["queries"]:
        query = collect.query_list.add(name=q["name"], sql=q["sql"],
                                       output=output(bus, q["name"], readers=["workbook"]))
        for k, v in q.get("parameters", {}).items():
            query.parameters.add(name=k, value=struct_pb2.Value(string_value=v))
    book = steps["workbook"]["excel"]
    excel = tasks_pb2.ExcelGenerator(file_name=book["fileName"], freeze_header=True,
                                     auto_filter=True)
    for s in book["sheets"]:
        sheet = excel.sheets.add(name=s["name"], dataset=ref(bus, s["dataset"]))
        for c in s.get("columns", []):
            sheet.columns.add(name=c["name"], header=c.get("header", ""),
                              number_format=c.get("numberFormat", ""), width=c.get("width", 0))
    collected, workbook = await asyncio.wait_for(asyncio.gather(
        collect_sqlite(collect, make_ctx(tmp_path, "collect", bus=bus)),
        generate_excel(excel, make_ctx(tmp_path, "workbook", bus=bus))), 60)
    assert workbook.rows == collected.rows > 3_000  # orders + regions

    wb = openpyxl.load_workbook(tmp_path / "artifacts" / UID / "sales.xlsx")
    assert wb.sheetnames == ["Orders", "By region"]
    header = [c.value for c in wb["Orders"][1]]
    assert header[:3] == ["Order", "Date", "Customer"]
    customers = [r[2] for r in wb["Orders"].iter_rows(min_row=2, values_only=True)]
    assert any(str(c).startswith("=") for c in customers)  # hostile names stayed text
    assert all(c.data_type == "s" for c in wb["Orders"]["C"][1:] if c.value is not None)

    m = steps["summary"]["mustache"]
    summary = tasks_pb2.MustacheGenerator(file_name=m["fileName"], template_file=m["templateFile"],
                                          template_dir=m["templateDir"],
                                          datasets=[ref(bus, d) for d in m["datasets"]])
    summary.data.update(doc["spec"]["parameters"])
    await generate_mustache(summary, make_ctx(tmp_path, "summary", bus=bus))
    html = (tmp_path / "artifacts" / UID / "summary.html").read_text()
    assert "Middle East &amp; Africa" in html and "<h1>Sales report</h1>" in html

    c = steps["region-csv"]["csv"]
    csv_task = tasks_pb2.CsvGenerator(file_name=c["fileName"], dataset=ref(bus, c["dataset"]),
                                      delimiter=c["delimiter"], header=c["header"])
    await generate_csv(csv_task, make_ctx(tmp_path, "region-csv", bus=bus))
    lines = (tmp_path / "artifacts" / UID / "sales_by_region.csv").read_text().splitlines()
    assert lines[0] == "region,orders,units,revenue,first_order,last_order" and len(lines) == 6


async def test_example_orders_columns_are_typed(tmp_path: Path) -> None:
    from unit.workers.stagekit import drain

    doc = yaml.safe_load(SPEC.read_text())
    q = doc["spec"]["steps"][0]["sqlite"]["queries"][0]
    db = load_maker().build(tmp_path / "sales.db", rows=300)
    ctx = make_ctx(tmp_path, "collect")
    task = tasks_pb2.SqliteCollector(database=str(db))
    query = task.query_list.add(name="orders", sql=q["sql"], output=output(ctx.bus, "orders"))
    query.parameters.add(name="since", value=struct_pb2.Value(string_value="2023-01-01"))
    await collect_sqlite(task, ctx)
    cols, _ = await drain(ctx.bus, "orders")
    types = {c.name: c.type for c in cols}
    assert types["order_date"] == values.DATE and types["created_at"] == values.DATETIME
    assert types["amount"] == types["unit_price"] == values.DECIMAL
    assert types["discount"] == values.FLOAT and types["quantity"] == values.INTEGER
