"""A real MariaDB server for tests: Debian's `mariadbd` on a free loopback port in a temp datadir.

Why by hand and not a container: the test machines have MariaDB installed and no container
runtime, and a private server per test session keeps tests independent of any system database.
The server is tuned for tests (small buffer pool, no binary log, relaxed flushing): data lives
only as long as the session.

It creates a root password and one test user that may read *and write* the test databases: the
collector must prove that its read-only transaction, not a missing privilege, refuses writes.
`userstat` is on, so tests can read per-user counters (connections, SELECTs) to prove that a
cached run never touched the server.

A missing binary or a server that does not start is a failure (with the tail of its error log),
never a skip.
"""
from __future__ import annotations

import secrets
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import pymysql
import pytest
from pymysql.constants import CLIENT

from support.servers import free_port, require_binary

TEST_USER = "goreports"


@dataclass
class MariaDB:
    """One mariadbd process; `stop()`/`start()` keep the datadir (for fault tests)."""

    port: int = field(default_factory=free_port)
    dir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="goreports-mariadb-")))
    user: str = TEST_USER
    password: str = field(default_factory=lambda: secrets.token_hex(12))
    root_password: str = field(default_factory=lambda: secrets.token_hex(12))
    buffer_pool: str = "256M"
    proc: subprocess.Popen | None = None  # type: ignore[type-arg]
    _admin: pymysql.connections.Connection | None = None  # type: ignore[type-arg]
    _initialised: bool = False

    host = "127.0.0.1"

    @property
    def datadir(self) -> Path:
        return self.dir / "data"

    @property
    def socket(self) -> Path:
        return self.dir / "mariadb.sock"

    @property
    def log(self) -> Path:
        return self.dir / "error.log"

    @property
    def addr(self) -> str:
        return f"{self.host}:{self.port}"

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self, timeout: float = 60.0) -> "MariaDB":
        if not self._initialised:
            self._install()
        cnf = self._write_cnf()
        binary = require_binary("mariadbd")
        self.proc = subprocess.Popen([binary, f"--defaults-file={cnf}"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self._wait_ready(timeout)
        if not self._initialised:
            self._secure()
            self._initialised = True
        return self

    def stop(self) -> None:
        """Shut the server down cleanly (SIGTERM); the datadir stays for `start()`."""
        self._close_admin()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def _install(self) -> None:
        install = require_binary("mariadb-install-db")
        self.datadir.mkdir(parents=True, exist_ok=True)
        res = subprocess.run(
            [install, "--no-defaults", f"--datadir={self.datadir}", "--user=root",
             "--auth-root-authentication-method=normal", "--skip-test-db"],
            capture_output=True, text=True, timeout=180)
        if res.returncode != 0:
            raise RuntimeError(f"mariadb-install-db failed ({res.returncode}):\n"
                               f"{(res.stdout + res.stderr)[-3000:]}")

    def _write_cnf(self) -> Path:
        cnf = self.dir / "my.cnf"
        cnf.write_text("\n".join([
            "[mariadbd]",
            f"datadir={self.datadir}",
            f"port={self.port}",
            "bind-address=127.0.0.1",
            f"socket={self.socket}",
            f"pid-file={self.dir / 'mariadb.pid'}",
            f"log-error={self.log}",
            "user=root",  # mariadbd refuses to run as root without it
            "skip-name-resolve",
            "skip-log-bin",
            f"innodb_buffer_pool_size={self.buffer_pool}",
            "innodb_log_file_size=256M",
            "innodb_flush_log_at_trx_commit=2",  # test data: no fsync per commit
            "innodb_doublewrite=0",
            "max_connections=200",
            "userstat=1",  # per-user counters (INFORMATION_SCHEMA.USER_STATISTICS)
            "character-set-server=utf8mb4",
            "collation-server=utf8mb4_unicode_ci",
            "",
        ]))
        return cnf

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        last: Exception | None = None
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"mariadbd exited with {self.proc.returncode} before accepting "
                                   f"connections; error log tail:\n{self.log_tail()}")
            try:
                conn = self._root_connect()
                conn.close()
                return
            except pymysql.err.MySQLError as e:
                last = e
                time.sleep(0.1)
        self.stop()
        raise TimeoutError(f"mariadbd on port {self.port} did not accept connections within "
                           f"{timeout}s (last error: {last}); error log tail:\n{self.log_tail()}")

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no error log)"

    def _root_connect(self, db: str | None = None, *, multi: bool = False
                      ) -> pymysql.connections.Connection:  # type: ignore[type-arg]
        # Over the socket: before `_secure`, root has no password and only exists @localhost.
        return pymysql.connect(unix_socket=str(self.socket), user="root",
                               password=self.root_password if self._initialised else "",
                               database=db, autocommit=True, charset="utf8mb4",
                               client_flag=CLIENT.MULTI_STATEMENTS if multi else 0,
                               connect_timeout=5)

    def _secure(self) -> None:
        conn = self._root_connect()
        try:
            with conn.cursor() as cur:
                cur.execute("ALTER USER 'root'@'localhost' IDENTIFIED BY %s", (self.root_password,))
                cur.execute("DELETE FROM mysql.global_priv WHERE User = ''")  # anonymous users
                cur.execute("FLUSH PRIVILEGES")
        finally:
            conn.close()
        self._initialised = True
        self.create_user(self.user, self.password)

    # -- administration (as root) ---------------------------------------------------------------
    def create_user(self, user: str, password: str, grants: str = "ALL PRIVILEGES",
                    on: str = "*.*") -> None:
        """A user for any host; default: may read and write every database (not GRANT)."""
        with self._admin_cursor() as cur:
            cur.execute("CREATE OR REPLACE USER %s@'%%' IDENTIFIED BY %s", (user, password))
            cur.execute(f"GRANT {grants} ON {on} TO %s@'%%'", (user,))

    def create_database(self, name: str) -> None:
        """A fresh, empty database."""
        with self._admin_cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
            cur.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")

    def execute_sql(self, sql: str, db: str | None = None) -> None:
        """Run a script (several statements) as root; every result is drained."""
        conn = self._root_connect(db, multi=True)
        try:
            with conn.cursor() as cur:
                cur.execute(sql)
                while cur.nextset():
                    pass
        finally:
            conn.close()

    def query(self, sql: str, args: Any = None, db: str | None = None) -> list[tuple[Any, ...]]:
        """Rows of one statement, as root (a fresh connection: never counted for the test user)."""
        conn = self._root_connect(db)
        try:
            with conn.cursor() as cur:
                cur.execute(sql, args)
                return list(cur.fetchall())
        finally:
            conn.close()

    def global_status(self, name: str) -> int:
        """A server counter from SHOW GLOBAL STATUS (e.g. Com_select, Questions, Connections).

        Read over one long-lived admin connection: SHOW is not counted in Com_select, and reusing
        the connection keeps `Connections` still between two readings."""
        with self._admin_cursor() as cur:
            cur.execute("SHOW GLOBAL STATUS LIKE %s", (name,))
            row = cur.fetchone()
        if row is None:
            raise KeyError(f"MariaDB has no status variable {name!r}")
        return int(row[1])

    def user_statistics(self, user: str) -> dict[str, int]:
        """This user's counters (TOTAL_CONNECTIONS, SELECT_COMMANDS, ROWS_READ, ...)."""
        with self._admin_cursor() as cur:
            cur.execute("SELECT * FROM INFORMATION_SCHEMA.USER_STATISTICS WHERE USER = %s", (user,))
            row = cur.fetchone()
            names = [d[0] for d in cur.description]
        if row is None:
            return {n: 0 for n in names if n != "USER"}
        return {n: int(v) for n, v in zip(names, row) if n != "USER"}

    def _admin_cursor(self) -> Any:
        if self._admin is not None:
            try:
                self._admin.ping()
            except pymysql.err.MySQLError:
                self._close_admin()  # the server restarted: connect again
        if self._admin is None:
            self._admin = self._root_connect()
        return self._admin.cursor()

    def _close_admin(self) -> None:
        if self._admin is not None:
            try:
                self._admin.close()
            except Exception:  # noqa: BLE001 - the server may be gone already
                pass
            self._admin = None

    # -- the test user -------------------------------------------------------------------------
    def connect(self, db: str | None = None, **kwargs: Any
                ) -> pymysql.connections.Connection:  # type: ignore[type-arg]
        """A connection as the test user over TCP."""
        return pymysql.connect(host=self.host, port=self.port, user=self.user,
                               password=self.password, database=db, charset="utf8mb4",
                               autocommit=True, **kwargs)

    def write_credentials(self, root: Path, cred_id: str, *, user: str | None = None,
                          password: str | None = None, host: bool = True, port: bool = True
                          ) -> Path:
        """A credentials folder `root/cred_id/` with `user`, `password` (and `host`, `port`),
        the layout a Secret mounted by the chart has."""
        folder = Path(root) / cred_id
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "user").write_text((user or self.user) + "\n")
        (folder / "password").write_text((password if password is not None else self.password) + "\n")
        for name, wanted, value in (("host", host, self.host), ("port", port, str(self.port))):
            if wanted:
                (folder / name).write_text(value + "\n")
            else:
                (folder / name).unlink(missing_ok=True)
        return folder


@pytest.fixture(scope="session")
def mariadb() -> Iterator[MariaDB]:
    server = MariaDB().start()
    yield server
    server.cleanup()
