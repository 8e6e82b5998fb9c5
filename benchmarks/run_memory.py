"""Peak memory and wall time of `goreports run` on the sample and on a 10x larger database.

    .venv/bin/python benchmarks/run_memory.py [--rows 60000] [--factor 10]

Builds both SQLite databases in a temporary folder, runs examples/sales-report.yaml against each
(Excel, Mustache, CSV, local delivery), and prints one line per run. Memory must stay nearly
flat: the chain streams rows in batches and the Excel writer is write-only.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent


def measure(spec: Path, out: Path) -> tuple[float, float]:
    proc = psutil.Popen([str(Path(sys.executable).with_name("goreports")), "run", str(spec), "--out",
                         str(out), "-q"], cwd=ROOT, stdout=subprocess.DEVNULL)
    peak, t0 = 0, time.monotonic()
    while proc.poll() is None:
        try:
            peak = max(peak, proc.memory_info().rss)
        except psutil.NoSuchProcess:
            break
        time.sleep(0.05)
    if proc.returncode:
        raise SystemExit(f"goreports run {spec} failed with {proc.returncode}")
    return peak / 2**20, time.monotonic() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=60_000)
    ap.add_argument("--factor", type=int, default=10)
    args = ap.parse_args()
    template = (ROOT / "examples" / "sales-report.yaml").read_text()
    with tempfile.TemporaryDirectory() as tmp:
        for rows in (args.rows, args.rows * args.factor):
            db = Path(tmp) / f"sales-{rows}.db"
            subprocess.run([sys.executable, str(ROOT / "examples/data/make_sales_db.py"), "--rows",
                            str(rows), "--out", str(db)], check=True, capture_output=True)
            spec = Path(tmp) / f"sales-{rows}.yaml"
            spec.write_text(template.replace("examples/data/sales.db", str(db)))
            mb, secs = measure(spec, Path(tmp) / f"out-{rows}")
            print(f"goreports run, {rows:>9,} orders: peak RSS {mb:6.1f} MB, {secs:6.1f} s, "
                  f"{rows / secs:8,.0f} rows/s")


if __name__ == "__main__":
    main()
