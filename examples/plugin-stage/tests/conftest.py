"""Fixtures of the plugin's own tests: a small sales database with known answers, and a real
redis-server (from PATH) on a free port for the tests that run the stage through go-reports."""
from __future__ import annotations

import shutil
import socket
import sqlite3
import subprocess
import time
from pathlib import Path
from typing import Iterator

import pytest

SCHEMA = """
CREATE TABLE regions (id INTEGER PRIMARY KEY, code TEXT NOT NULL UNIQUE, name TEXT NOT NULL);
CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT NOT NULL, email TEXT,
                        region_id INTEGER NOT NULL REFERENCES regions(id), segment TEXT NOT NULL,
                        created_at TEXT NOT NULL);
CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER NOT NULL, product_id INTEGER,
                     order_date TEXT NOT NULL, quantity INTEGER, unit_price TEXT, discount REAL,
                     amount TEXT NOT NULL, status TEXT NOT NULL, created_at TEXT, note TEXT);
"""
REGIONS = [(1, "EU", "Europe"), (2, "NA", "North America")]
CUSTOMERS = [  # id, name, region, segment
    (1, "Quiet Ltd", 1, "enterprise"), (2, "Busy GmbH", 1, "mid-market"),
    (3, "Fine Inc", 2, "enterprise"), (4, "Big Gone SA", 2, "enterprise"),
    (5, "Old Co", 1, "small business"), (6, "Both Bad", 2, "small business"),
    (7, "Tiny", 1, "small business"),
]
ORDERS = [  # customer, day, status, amount -- inserted out of customer order on purpose
    (2, "2024-12-01", "paid", "200.00"), (1, "2024-06-01", "paid", "1000.00"),
    (2, "2024-11-01", "refunded", "100.00"), (2, "2024-10-01", "cancelled", "80.00"),
    (2, "2024-09-01", "paid", "300.00"), (1, "2024-07-15", "paid", "500.50"),
    (3, "2024-12-20", "paid", "70000.00"), (4, "2024-03-01", "paid", "60000.00"),
    (4, "2024-02-01", "refunded", "10.00"), (5, "2023-06-01", "paid", "5000.00"),
    (5, "2024-01-01", "paid", "5.00"),  # the window starts after 2024-01-01: not counted
    (6, "2024-05-01", "paid", "100.10"), (6, "2024-05-02", "refunded", "20.00"),
    (6, "2024-05-03", "cancelled", "20.00"), (7, "2024-01-05", "paid", "9.99"),
    (3, "2025-01-02", "cancelled", "1.00"),  # after asOf: not counted
]


def make_sales_db(path: Path) -> Path:
    con = sqlite3.connect(path)
    con.executescript(SCHEMA)
    con.executemany("INSERT INTO regions VALUES (?,?,?)", REGIONS)
    con.executemany("INSERT INTO customers VALUES (?,?,NULL,?,?,'2022-01-01 00:00:00')",
                    CUSTOMERS)
    con.executemany("INSERT INTO orders (customer_id, order_date, status, amount) "
                    "VALUES (?,?,?,?)", ORDERS)
    con.commit()
    con.close()
    return path


@pytest.fixture
def sales_db(tmp_path: Path) -> Path:
    return make_sales_db(tmp_path / "sales.db")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def redis_addr(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    binary = shutil.which("redis-server")
    assert binary, "these tests need redis-server on PATH (Debian: apt-get install redis-server)"
    port = _free_port()
    proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--dir", str(tmp_path_factory.mktemp("redis"))],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            assert proc.poll() is None and time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.02)
    yield f"127.0.0.1:{port}"
    proc.terminate()
    proc.wait(10)
