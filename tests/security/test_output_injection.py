"""Hostile values in the data: formula injection in .xlsx and .csv, markup in Mustache HTML, and
a 10 MB cell — each through a whole report on real worker processes, checked in the delivered
files."""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import openpyxl

from goreports.workers.generators.cells import EXCEL_MAX_CHARS, looks_like_formula
from security._fleet import Fleet, report, sqlite_step
from security.conftest import BIG_CELL, HOSTILE_ROWS

TEMPLATE = ("<table>{{#datasets.rows.rows}}<tr><td>{{id}}</td><td>{{txt}}</td></tr>"
            "{{/datasets.rows.rows}}</table>")


async def test_formulas_and_markup_from_data_stay_text(fleet: Fleet, hostile_db: Path,
                                                         tmp_path: Path, record: Any) -> None:
    out_dir = tmp_path / "out"
    out = await fleet.run(report(
        "hostile-values", sqlite_step(hostile_db, "SELECT id, txt FROM hostile ORDER BY id"),
        {"name": "book", "excel": {"fileName": "hostile.xlsx"}},
        {"name": "flat", "csv": {"fileName": "hostile.csv", "dataset": "rows"}},
        {"name": "page", "mustache": {"fileName": "hostile.html", "template": TEMPLATE,
                                      "datasets": ["rows"]}},
        {"name": "deliver", "local": {"path": str(out_dir)}}))
    assert out.phase == "Succeeded", out.status

    # .xlsx: every cell from data is a string cell (never the formula type), text unchanged
    ws = openpyxl.load_workbook(out_dir / "hostile.xlsx").active
    cells = {row[0].value: row[1] for row in ws.iter_rows(min_row=2)}
    for rid, text in HOSTILE_ROWS:
        cell = cells[rid]
        assert cell.data_type == "s", (rid, cell.data_type, cell.value)
        assert cell.value == text
        if looks_like_formula(text):
            assert cell.quotePrefix, rid  # Excel keeps it text even when a user edits it
    # and in the workbook's XML no formula element exists at all
    import zipfile
    with zipfile.ZipFile(out_dir / "hostile.xlsx") as z:
        sheets = [n for n in z.namelist() if n.startswith("xl/worksheets/")]
        assert sheets and not any(b"<f>" in z.read(n) or b"<f " in z.read(n) for n in sheets)
    record("formula injection", "cells `=HYPERLINK(…)`, `+1+cmd|…`, `-2+3`, `@SUM(…)`, "
           "tab- and CR-prefixed `=1+1` in .xlsx", "string cells with quotePrefix, text "
           "unchanged; no formula element in the sheet XML")

    # .csv: formula-like text gets a leading apostrophe (OWASP); other text is unchanged
    with open(out_dir / "hostile.csv", newline="", encoding="utf-8") as f:
        rows = {int(r["id"]): r["txt"] for r in csv.DictReader(f)}
    for rid, text in HOSTILE_ROWS:
        assert rows[rid] == ("'" + text if looks_like_formula(text) else text), rid
    record("formula injection", "the same values in .csv",
           "prefixed with `'` (`'=HYPERLINK(…)`); other text unchanged")

    # Mustache: markup in data is escaped in HTML; data is never rendered as a template
    html = (out_dir / "hostile.html").read_text(encoding="utf-8")
    # chevron escapes & < > " (not '): safe in element text and double-quoted attributes
    assert "<script>" not in html and "&lt;script&gt;alert('x')&lt;/script&gt;" in html, html
    assert "{{#lambda}}x{{/lambda}} {{{raw}}} &amp; &quot;quotes&quot;" in html, html
    record("Mustache injection", "`<script>alert('x')</script>` and `{{#lambda}}…{{{raw}}}` in "
           "data, HTML template", "HTML-escaped (`&lt;script&gt;…`); tags in data are not "
           "rendered")


async def test_a_10_mb_cell(fleet: Fleet, hostile_db: Path, tmp_path: Path,
                            record: Any) -> None:
    out_dir = tmp_path / "out"
    out = await fleet.run(report(
        "big-cell", sqlite_step(hostile_db, "SELECT id, txt FROM big"),
        {"name": "book", "excel": {"fileName": "big.xlsx"}},
        {"name": "flat", "csv": {"fileName": "big.csv", "dataset": "rows"}},
        {"name": "deliver", "local": {"path": str(out_dir)}}), timeout=120)
    assert out.phase == "Succeeded", out.status
    ws = openpyxl.load_workbook(out_dir / "big.xlsx", read_only=True).active
    [(rid, text)] = list(ws.iter_rows(min_row=2, values_only=True))
    kept = text.index("…")
    assert rid == 1 and len(text) == EXCEL_MAX_CHARS and set(text[:kept]) == {"x"}
    assert text[kept:] == f"…[truncated {BIG_CELL - kept:,} chars]", text[kept:]
    with open(out_dir / "big.csv", newline="", encoding="utf-8") as f:
        csv.field_size_limit(BIG_CELL * 2)
        [row] = list(csv.DictReader(f))
    assert len(row["txt"]) == BIG_CELL and row["txt"].endswith("tail")
    record("10 MB cell", "one 10,485,760-character text value, to .xlsx and .csv",
           f".xlsx: cut to Excel's limit of {EXCEL_MAX_CHARS:,} characters, ending with "
           "`…[truncated N chars]` (the file stays valid); .csv: the whole value")
