"""The benchmark harness runs end to end: `benchmarks/run.py --quick --only chain,large,formats`.

Not a timed test: it checks that the harness measures every figure (a positive value, a ratio
where a baseline is named) and writes its outputs, never what the figures are. The quick run
starts its own MariaDB, Redis and worker processes (~30 s on a quiet 2-core machine).
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

ROOT = Path(__file__).resolve().parents[2]
RUN_BEGIN = "<!-- bench:run:begin (scripts/bench rewrites this section) -->"
RUN_END = "<!-- bench:run:end -->"

# Every figure the three parts must produce (substrings of the figure names).
EXPECTED = [
    "bare fetch (a, SSCursor)", "bare fetch rows/s", "plain openpyxl script (b)",
    "chain to .xlsx, end to end", "chain speed-up over plain script (b)", "large 2,000: chain rows/s",
    "peak RSS mysql worker", "peak RSS excel worker", "peak RSS local worker",
    "peak RSS plain script (b)",
    "csv 2,000: chain rows/s", "csv 2,000: chain end to end", "peak RSS csv worker",
    "mustache 2,000: chain rows/s", "mustache 2,000: chain end to end", "peak RSS mustache worker",
    "one at a time (20): end to end p50", "one at a time (20): end to end p99",
    "one at a time (20): per hop p50", "one at a time (20): per hop p99",
    "hop to collect p50", "hop to generate p50", "hop to deliver p50",
    "burst of 50: reports/s", "burst of 50: end to end p50", "burst of 50: per hop p99",
]


def test_quick_run_measures_every_figure(tmp_path: Path) -> None:
    docs = tmp_path / "performance.md"
    docs.write_text(f"# Intro kept\n\n{RUN_BEGIN}\nan old run\n{RUN_END}\n\nOutro kept\n")
    figures_json = tmp_path / "figures.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "run.py"), "--quick", "--only",
         "chain,large,formats", "--docs", str(docs), "--json", str(figures_json)],
        cwd=ROOT, capture_output=True, text=True, timeout=220)
    assert proc.returncode == 0, f"{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"

    result = json.loads(figures_json.read_text())
    figures = result["figures"]
    names = [f["figure"] for f in figures]
    missing = [e for e in EXPECTED if not any(e in n for n in names)]
    assert not missing, f"figures missing: {missing}\nhave: {names}"
    for f in figures:
        assert f["value"] > 0, f
        if f["baseline"]:
            assert f["ratio"] is not None and f["ratio"] > 0, f
        if f["target"] and "~" not in f["target"]:
            assert f["met"] in (True, False), f  # a target is always judged

    # one printed table with every figure, and the machine it ran on
    lines = proc.stdout.splitlines()
    assert lines[1].split()[:3] == ["figure", "value", "unit"], proc.stdout[:500]
    for name in names:
        assert name in proc.stdout
    assert f"{result['machine']['nproc']} cores" in lines[0]

    # the run section is replaced, the hand-written text around it kept
    md = docs.read_text()
    assert md.startswith("# Intro kept\n") and md.rstrip().endswith("Outro kept")
    assert "an old run" not in md and md.count(RUN_BEGIN) == 1
    assert "| figure | value | unit |" in md and "burst of 50: reports/s" in md
    assert "--quick" in md
