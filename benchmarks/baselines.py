"""The large report's baselines, each run in a process of its own so its time and memory are its own.

    python benchmarks/baselines.py fetch    --host H --port P --user U --db D --sql SQL
    python benchmarks/baselines.py openpyxl --host H --port P --user U --db D --sql SQL --out F

The password comes from BENCH_DB_PASSWORD. Prints one JSON line: {"rows": n, "seconds": s},
timed from connecting to the last row fetched (fetch) or the file saved (openpyxl), so the
interpreter's start-up is not counted (the chain's workers are started before its clock too).

(a) fetch: PyMySQL's unbuffered cursor (SSCursor), rows fetched and dropped: the floor.
(b) openpyxl: the plain script a person would write: the same cursor straight into openpyxl's
    write-only workbook.
"""
from __future__ import annotations

import argparse
import json
import os
import time

import pymysql
import pymysql.cursors

BATCH = 10_000


def connect(args: argparse.Namespace) -> pymysql.connections.Connection:  # type: ignore[type-arg]
    return pymysql.connect(host=args.host, port=args.port, user=args.user,
                           password=os.environ.get("BENCH_DB_PASSWORD", ""), database=args.db,
                           charset="utf8mb4", cursorclass=pymysql.cursors.SSCursor)


def fetch(args: argparse.Namespace) -> int:
    conn = connect(args)
    n = 0
    try:
        with conn.cursor() as cur:
            cur.execute(args.sql)
            while batch := cur.fetchmany(BATCH):
                n += len(batch)
    finally:
        conn.close()
    return n


def plain_openpyxl(args: argparse.Namespace) -> int:
    from openpyxl import Workbook

    wb = Workbook(write_only=True)
    ws = wb.create_sheet("rows")
    conn = connect(args)
    n = 0
    try:
        with conn.cursor() as cur:
            cur.execute(args.sql)
            ws.append([d[0] for d in cur.description])
            while batch := cur.fetchmany(BATCH):
                for row in batch:
                    # BIT(1) arrives as bytes; openpyxl cannot write bytes
                    ws.append([v == b"\x01" if isinstance(v, bytes) else v for v in row])
                n += len(batch)
    finally:
        conn.close()
    wb.save(args.out)
    return n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("kind", choices=("fetch", "openpyxl"))
    for name in ("host", "user", "db", "sql"):
        ap.add_argument(f"--{name}", required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--out")
    args = ap.parse_args()
    started = time.perf_counter()
    rows = fetch(args) if args.kind == "fetch" else plain_openpyxl(args)
    print(json.dumps({"rows": rows, "seconds": time.perf_counter() - started}))


if __name__ == "__main__":
    main()
