"""The benchmark harness: one command, one table (see docs/performance.md for what each figure means).

    scripts/bench [--rows 100000,1000000] [--quick] [--only large,chain,operator,scaling,formats]
                  [--docs docs/performance.md | --no-docs] [--json FILE]

Starts its own MariaDB and Redis on free ports (and the test control plane for the operator and
scaling figures), loads the data, runs the figures, prints one table (figure, value, unit, ratio
to its baseline from the same run, target, met) and rewrites the run section of
docs/performance.md with the machine it ran on.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Callable

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from harness import ROOT, MariaDB, RedisServer, log  # noqa: E402,I001 (puts tests/ on sys.path)
import results  # noqa: E402

FIGURES = ("large", "chain", "operator", "scaling", "formats")
QUICK_ROWS = [2_000]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", default="100000,1000000",
                    help="large-report sizes, comma-separated (default 100000,1000000)")
    ap.add_argument("--quick", action="store_true",
                    help="tiny sizes and counts: a smoke test of the harness, not a measurement")
    ap.add_argument("--only", default=",".join(FIGURES),
                    help=f"figures to run, comma-separated (default all: {','.join(FIGURES)})")
    ap.add_argument("--docs", type=Path, default=ROOT / "docs" / "performance.md",
                    help="markdown file whose run section is rewritten")
    ap.add_argument("--no-docs", action="store_true", help="do not write the markdown file")
    ap.add_argument("--json", type=Path, help="also write the figures as JSON here")
    ap.add_argument("--keep", action="store_true", help="keep the scratch folder (logs, data)")
    args = ap.parse_args(argv)
    args.only = [f.strip() for f in args.only.split(",") if f.strip()]
    unknown = sorted(set(args.only) - set(FIGURES))
    if unknown:
        ap.error(f"--only: unknown figure(s) {unknown}; choose from {','.join(FIGURES)}")
    try:
        args.sizes = sorted({int(x.replace("_", "")) for x in args.rows.split(",") if x.strip()})
    except ValueError:
        ap.error(f"--rows: expected comma-separated row counts, got {args.rows!r}")
    if args.quick:
        args.sizes = QUICK_ROWS
    if not args.sizes or min(args.sizes) < 1:
        ap.error("--rows: give at least one positive row count")
    return args


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


class Progress:
    """Logs each part as it starts and notes the load average then (figures from a busy machine
    are not comparable, so the docs say how busy it was for each part)."""

    def __init__(self) -> None:
        self.notes: list[str] = []
        self.failed: list[str] = []

    def part(self, name: str, what: str, measure: Callable[[], list[results.Figure]]
             ) -> list[results.Figure]:
        """Run one part; a failure is logged and noted, and the other parts still run."""
        self.notes.append(f"load average when `{name}` started: {load()}")
        log(f"{name}: {what}")
        try:
            return measure()
        except Exception as e:  # noqa: BLE001 - reported, and the run exits non-zero
            self.failed.append(name)
            self.notes.append(f"`{name}` FAILED: {type(e).__name__}: {str(e)[-600:]}")
            log(f"{name} FAILED:\n{traceback.format_exc()}")
            return []


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    machine = results.machine(ROOT)
    log(f"{machine['nproc']} cores, load average {machine['load']}; figures: {', '.join(args.only)}; "
        f"rows: {', '.join(f'{n:,}' for n in args.sizes)}{' (quick)' if args.quick else ''}")
    tmp = Path(tempfile.mkdtemp(prefix="goreports-bench-"))
    figures: list[results.Figure] = []
    progress = Progress()
    notes = progress.notes
    redis_srv = RedisServer().start()
    db: MariaDB | None = None
    try:
        needs_db = {"large", "formats"} & set(args.only)
        if needs_db:
            import data
            from large import Env, large_report, other_formats

            db = MariaDB(buffer_pool="1G").start()
            started = time.monotonic()
            data.load_mariadb(db, max(args.sizes))
            log(f"MariaDB: loaded {max(args.sizes):,} rows in {time.monotonic() - started:.1f}s")
            env = Env(db, redis_srv.addr, tmp)
            if "large" in args.only:
                figures += progress.part("large", "mysql -> excel -> local, and its baselines",
                                         lambda: large_report(env, args.sizes))
            if "formats" in args.only:
                figures += progress.part("formats", "mysql -> csv / mustache -> local",
                                         lambda: other_formats(env, max(args.sizes), min(args.sizes)))
        if "chain" in args.only:
            from chain import chain_overhead

            seq, burst = (20, 50) if args.quick else (200, 500)
            redis_flush(redis_srv.addr)  # workers are ready once their consumer group exists
            figures += progress.part("chain", "small reports, sqlite -> csv -> local",
                                     lambda: chain_overhead(redis_srv.addr, tmp / "chain", seq, burst))
        if {"operator", "scaling"} & set(args.only):
            from cluster_figures import operator_figures, scaling_figures, start_control_plane

            redis_flush(redis_srv.addr)
            log("test control plane (kube-apiserver + etcd)")
            cp = start_control_plane()
            try:
                if "operator" in args.only:
                    figures += progress.part(
                        "operator", "ReportRequests -> Succeeded on the test API server",
                        lambda: operator_figures(cp, redis_srv.addr, tmp / "operator",
                                                 singles=3 if args.quick else 20,
                                                 concurrent=20 if args.quick else 200,
                                                 notes=notes))
                    redis_flush(redis_srv.addr)
                if "scaling" in args.only:
                    figures += progress.part(
                        "scaling", "backlog -> Deployment replicas",
                        lambda: scaling_figures(cp, redis_srv.addr, tmp / "scaling",
                                                trials=1 if args.quick else 5, notes=notes))
            finally:
                cp.stop()
    finally:
        redis_srv.cleanup()
        if db is not None:
            db.cleanup()
        if args.keep:
            log(f"scratch folder kept: {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    machine["load_end"] = load()
    if args.quick:
        notes.append("--quick: tiny sizes, a smoke test of the harness; the figures mean nothing")
    shown = shown_args(argv if argv is not None else sys.argv[1:])
    print(results.describe(machine))
    print(results.text_table(figures))
    if args.json:
        results.write_json(args.json, figures, machine, shown)
    if not args.no_docs:
        results.write_docs(args.docs, results.run_section(figures, machine, shown, notes))
        log(f"wrote the run section of {args.docs}")
    if progress.failed:
        log(f"failed: {', '.join(progress.failed)} (see the notes above the table's docs section)")
        return 1
    return 0


def shown_args(argv: list[str]) -> str:
    """The command line as the docs show it: without the options that only choose outputs."""
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a in ("--docs", "--json"):
            skip = True
        elif not a.startswith(("--docs=", "--json=", "--no-docs", "--keep")):
            out.append(a)
    return " ".join(out)


def redis_flush(addr: str) -> None:
    import redis

    r = redis.Redis(*addr.split(":"))
    r.flushall()
    r.close()


if __name__ == "__main__":
    sys.exit(main())
