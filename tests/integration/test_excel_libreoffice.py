"""LibreOffice opens what the Excel generator writes: a headless conversion to CSV gives the same
values, and formula-like text stays text (the formula-injection guard survives a real
spreadsheet program, which would otherwise evaluate "=1+1" to 2).

Each conversion runs with a private LibreOffice profile under the test's tmp_path, so parallel
runs never share (or lock) a user installation."""
from __future__ import annotations

import csv
import datetime as dt
import subprocess
from decimal import Decimal
from pathlib import Path

import pytest

from goreports.core import values
from goreports.proto import tasks_pb2
from goreports.workers.generators import excel
from support.servers import require_binary
from unit.workers.stagekit import UID, columns, feed, make_ctx

pytestmark = pytest.mark.integration

COLS = columns(("n", values.INTEGER), ("x", values.FLOAT), ("amount", values.DECIMAL),
               ("ok", values.BOOLEAN), ("day", values.DATE), ("at", values.DATETIME),
               ("text", values.STRING))
TEXTS = ["=1+1", "+49 30 1234", "-x", "@SUM(A1)", '=HYPERLINK("http://x","y")', "#N/A",
         "a & b <c>", "日本語 ✓", "ctrl\x01char", "plain"]


def to_csv(xlsx: Path, tmp_path: Path) -> list[list[str]]:
    soffice = require_binary("soffice")
    out = tmp_path / "csv"
    profile = (tmp_path / "lo-profile").as_uri()
    res = subprocess.run(
        [soffice, f"-env:UserInstallation={profile}", "--headless", "--norestore",
         "--convert-to", "csv:Text - txt - csv (StarCalc):44,34,76,1", "--outdir", str(out),
         str(xlsx)], capture_output=True, text=True, timeout=180)
    target = out / (xlsx.stem + ".csv")
    assert res.returncode == 0 and target.exists(), f"soffice failed: {res.stdout}{res.stderr}"
    with target.open(newline="", encoding="utf-8") as f:
        return list(csv.reader(f))


async def test_libreoffice_reads_the_values_and_keeps_formulas_as_text(tmp_path: Path) -> None:
    rows = [[i - 2, i / 4, Decimal(f"{i * 1000}.5"), i % 2 == 0,
             dt.date(2024, 2, 27) + dt.timedelta(days=i),
             dt.datetime(2024, 5, 6, 23, 59, 58) + dt.timedelta(seconds=i * 61),
             TEXTS[i % len(TEXTS)]] for i in range(40)]
    rows.insert(20, [None, None, None, None, None, None, None])
    ctx = make_ctx(tmp_path, "excel")
    data = await feed(ctx.bus, "d", COLS, rows, batch_rows=9)
    task = tasks_pb2.ExcelGenerator(file_name="lo.xlsx", freeze_header=True, auto_filter=True)
    sheet = task.sheets.add(name="Data", dataset=data)
    sheet.columns.add(name="amount", number_format="0.00")
    await excel.generate_excel(task, ctx)

    got = to_csv(tmp_path / "artifacts" / UID / "lo.xlsx", tmp_path)
    assert got[0] == ["n", "x", "amount", "ok", "day", "at", "text"]
    assert len(got) == len(rows) + 1
    for i, (src, line) in enumerate(zip(rows, got[1:])):
        if src[0] is None:
            assert line == [""] * 7, line  # the all-NULL row: empty cells
            continue
        n, x, amount, ok, day, at, text = src
        want = [str(n), f"{x:g}", f"{amount:.2f}", "TRUE" if ok else "FALSE", day.isoformat(),
                at.strftime("%Y-%m-%d %H:%M:%S"), text.replace("\x01", "\ufffd")]
        assert line == want, (i, line, want)
    formulas = [line[6] for line in got[1:] if line[6].startswith(("=", "+", "-", "@"))]
    assert "=1+1" in formulas and "2" not in [line[6] for line in got[1:]]
