"""Write statements in collector queries: refused, with a clear report failure, table unchanged.

Through whole reports on real worker processes: the MySQL collector against a real MariaDB whose
user MAY write (so only the read-only transaction and the statement check stop the write), and
the SQLite collector against a file the worker could write. The table's checksum is taken
before and after each report.
"""
from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from security._fleet import Fleet, report
from support import secrets
from support.mariadb import MariaDB, mariadb  # noqa: F401  (session fixture)

DB = "secdb"
CRED = "sec-mariadb"

MYSQL_WRITES = [
    ("DELETE FROM accounts", "1792"),
    ("UPDATE accounts SET balance = 0", "1792"),
    ("INSERT INTO accounts SELECT id + 100, balance FROM accounts", "1792"),
    ("REPLACE INTO accounts VALUES (1, 0)", "1792"),
    ("SELECT 1; DELETE FROM accounts", "more than one statement"),
    ("CREATE TABLE sneaky (a INT)", "'CREATE' statement"),
    ("DROP TABLE accounts", "'DROP' statement"),
    ("SELECT * FROM accounts FOR UPDATE", "READ ONLY transaction"),
    ("SELECT * FROM accounts INTO OUTFILE '/tmp/goreports-sec-out.txt'", "INTO OUTFILE"),
    ("LOAD DATA LOCAL INFILE '/etc/passwd' INTO TABLE accounts", "'LOAD' statement"),
    ("SET SESSION TRANSACTION READ WRITE", "'SET' statement"),
    ("SELECT wipe()", "1792"),
]

SQLITE_WRITES = [
    "DELETE FROM accounts",
    "UPDATE accounts SET balance = 0",
    "INSERT INTO accounts SELECT id + 100, balance FROM accounts",
    "SELECT 1; DELETE FROM accounts",
    "CREATE TABLE sneaky (a INT)",
    "DROP TABLE accounts",
    "ATTACH DATABASE 'sneaky.db' AS x",
    "PRAGMA writable_schema = 1",
    "WITH d AS (DELETE FROM accounts RETURNING *) SELECT * FROM d",
]


@pytest.fixture(scope="module")
def accounts(mariadb: MariaDB, fleet: Fleet) -> MariaDB:  # noqa: F811
    mariadb.create_database(DB)
    mariadb.execute_sql("""
        CREATE TABLE accounts (id INT PRIMARY KEY, balance DECIMAL(12,2) NOT NULL);
        INSERT INTO accounts SELECT seq, seq * 10 FROM seq_1_to_50;
        CREATE FUNCTION wipe() RETURNS INT MODIFIES SQL DATA BEGIN DELETE FROM accounts; RETURN 1; END;
    """, db=DB)
    mariadb.create_user(secrets.MARIADB_USER, secrets.MARIADB_PASSWORD)  # may write: ALL
    mariadb.write_credentials(fleet.credentials_dir, CRED, user=secrets.MARIADB_USER,
                              password=secrets.MARIADB_PASSWORD)
    return mariadb


def mysql_checksum(db: MariaDB) -> str:
    rows = db.query("SELECT id, balance FROM accounts ORDER BY id", db=DB)
    return hashlib.sha256(repr(rows).encode()).hexdigest() + f"/{len(rows)}"


def mysql_report(name: str, sql: str) -> dict[str, Any]:
    return report(name, {"name": "collect", "mysql": {
        "instance": "sec", "dbName": DB, "credentialsId": CRED,
        "queries": [{"name": "rows", "sql": sql}]}},
        {"name": "file", "csv": {"fileName": "rows.csv", "dataset": "rows"}},
        {"name": "deliver", "local": {"path": "unused"}})


@pytest.mark.parametrize("sql, expected", MYSQL_WRITES)
async def test_mysql_write_is_refused_and_the_table_is_unchanged(
        accounts: MariaDB, fleet: Fleet, sql: str, expected: str, record: Any) -> None:
    before = mysql_checksum(accounts)
    out = await fleet.run(mysql_report("mysql-write", sql))
    assert out.phase == "Failed", out.status
    assert out.reason == "StatementRefused", (out.reason, out.error)
    assert expected in out.error and "'rows'" in out.error, out.error
    assert mysql_checksum(accounts) == before
    assert not accounts.query("SHOW TABLES LIKE 'sneaky'", db=DB)
    assert not Path("/tmp/goreports-sec-out.txt").exists()
    record("SQL writes (MariaDB)", f"`{sql}`",
           f"Failed, StatementRefused: {out.error.split(': ', 1)[-1][:160]}; table checksum "
           "unchanged")


def _sqlite_db(folder: Path) -> Path:
    path = folder / "accounts.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE accounts (id INTEGER PRIMARY KEY, balance INTEGER)")
    conn.executemany("INSERT INTO accounts VALUES (?, ?)", [(i, i * 10) for i in range(1, 51)])
    conn.commit()
    conn.close()
    return path


def sqlite_checksum(path: Path) -> str:
    conn = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)
    try:
        rows = conn.execute("SELECT id, balance FROM accounts ORDER BY id").fetchall()
        tables = conn.execute("SELECT name FROM sqlite_master ORDER BY name").fetchall()
    finally:
        conn.close()
    return hashlib.sha256(repr((rows, tables)).encode()).hexdigest()


@pytest.mark.parametrize("sql", SQLITE_WRITES)
async def test_sqlite_write_is_refused_and_the_file_is_unchanged(
        fleet: Fleet, tmp_path: Path, sql: str, record: Any) -> None:
    db = _sqlite_db(tmp_path)
    before = sqlite_checksum(db), db.read_bytes()
    out = await fleet.run(report(
        "sqlite-write", {"name": "collect", "sqlite": {"database": str(db), "queries": [
            {"name": "rows", "sql": sql}]}},
        {"name": "file", "csv": {"fileName": "rows.csv", "dataset": "rows"}},
        {"name": "deliver", "local": {"path": str(tmp_path / "out")}}))
    assert out.phase == "Failed", out.status
    assert out.reason in ("StatementRefused", "QueryFailed"), (out.reason, out.error)
    assert "'rows'" in out.error
    assert (sqlite_checksum(db), db.read_bytes()) == before
    assert not (tmp_path / "sneaky.db").exists() and not (Path.cwd() / "sneaky.db").exists()
    record("SQL writes (SQLite)", f"`{sql}`",
           f"Failed, {out.reason}: {out.error.split(': ', 1)[-1][:160]}; file unchanged")
