"""Tools for the fault-injection suite (tests/reliability): a Redis with AOF that can be killed
and restarted, a TCP proxy that counts HTTP requests and can hold one response, an SMTP handler
that can hold one RCPT, and the results file the suite's table is rendered from.

Why these exist: a fault test must put the crash at a known point (after S3 stored the object
but before the dispatcher heard back; while the SMTP conversation is open) instead of hoping a
timer lands there, and it must count what the targets really received.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import re
import signal
import socket
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from support.machine import describe
from support.servers import RedisServer
from support.smtp import Collector

ROOT = Path(__file__).resolve().parents[2]
RESULTS_ENV = "GOREPORTS_RELIABILITY_RESULTS"
DEFAULT_RESULTS = ROOT / "out" / "reliability-results.jsonl"


# -- Redis with AOF --------------------------------------------------------------------------------

@dataclass
class AofRedis(RedisServer):
    """redis-server with `appendonly yes` and `appendfsync always`: every write acknowledged to a
    client is on disk, so a SIGKILL loses nothing. `kill()` + `start()` keep port and data dir."""

    appendonly: bool = True

    def args(self, binary: str) -> list[str]:
        return [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                "--appendonly", "yes", "--appendfsync", "always", "--dir", str(self.dir),
                "--protected-mode", "no", "--loglevel", "warning",
                "--logfile", str(self.dir / "redis.log")]

    def start(self) -> "AofRedis":
        super().start()
        return self

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
        self.proc = None


# -- an HTTP-counting TCP proxy ----------------------------------------------------------------------

_REQUEST_LINE = re.compile(rb"(GET|PUT|POST|HEAD|DELETE) (\S+) HTTP/1\.[01]\r\n")


class HoldingProxy:
    """A TCP proxy (own thread and event loop) in front of an HTTP/1.1 server.

    It records every request line that passes (method, path), and when armed with `hold(method,
    path_prefix)` it forwards the first matching request whole but holds the server's answer
    until `release()`: the target has done the work, the client has not heard of it.
    """

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        # Bound now (port 0: the kernel's pick), listened on in start(): no other process can
        # take the port between choosing it and serving on it.
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self.port = int(self._sock.getsockname()[1])
        self.requests: list[tuple[str, str]] = []
        self.held = threading.Event()
        self._released = threading.Event()
        self._hold: tuple[str, str] | None = None
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True,
                                        name="holding-proxy")
        self._server: asyncio.AbstractServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "HoldingProxy":
        self._thread.start()
        fut = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._handle, sock=self._sock), self._loop)
        self._server = fut.result(10)
        return self

    def stop(self) -> None:
        self._released.set()
        if self._server is not None:
            self._server.close()
        self._sock.close()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def hold(self, method: str, path_prefix: str) -> None:
        with self._lock:
            self._hold = (method, path_prefix)
            self.held.clear()
            self._released.clear()

    def release(self) -> None:
        self._released.set()

    def count(self, method: str, path_prefix: str) -> int:
        with self._lock:
            return sum(1 for m, p in self.requests if m == method and p.startswith(path_prefix))

    def _seen(self, method: str, path: str) -> bool:
        """Record a request line; True when this request's answer must be held."""
        with self._lock:
            self.requests.append((method, path))
            if self._hold and method == self._hold[0] and path.startswith(self._hold[1]):
                self._hold = None
                return True
        return False

    async def _handle(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        try:
            up_r, up_w = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            client_w.close()
            return
        holding = asyncio.Event()

        async def upstream() -> None:
            tail = b""
            while data := await client_r.read(65536):
                buf = tail + data
                for m in _REQUEST_LINE.finditer(buf):
                    if m.end() > len(tail) and self._seen(m[1].decode(), m[2].decode()):
                        holding.set()
                        self.held.set()
                tail = buf[-512:]
                up_w.write(data)
                await up_w.drain()
            up_w.close()

        async def downstream() -> None:
            while data := await up_r.read(65536):
                while holding.is_set() and not self._released.is_set():
                    await asyncio.sleep(0.02)
                client_w.write(data)
                await client_w.drain()
            client_w.close()

        await asyncio.gather(upstream(), downstream(), return_exceptions=True)
        for w in (client_w, up_w):
            w.close()


# -- an SMTP handler that can hold one RCPT ---------------------------------------------------------

@dataclass
class HoldingCollector(Collector):
    """aiosmtpd handler (keeps messages) that, when armed, leaves the next RCPT TO unanswered
    until released: the sender is mid-conversation, nothing is accepted yet."""

    armed: bool = False
    rcpt_held: threading.Event = field(default_factory=threading.Event)
    released: threading.Event = field(default_factory=threading.Event)

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,
                          rcpt_options: list[str]) -> str:
        if self.armed:
            self.armed = False
            self.rcpt_held.set()
            while not self.released.is_set():
                await asyncio.sleep(0.02)
        envelope.rcpt_tos.append(address)
        return "250 OK"


# -- workers ---------------------------------------------------------------------------------------

def lease_holder_pid(value: bytes | str | None) -> int | None:
    """The pid of the worker holding a step's lease (marker value `<host>-<pid>-<hex> <entry>`)."""
    if not value:
        return None
    text = value.decode() if isinstance(value, bytes) else value
    try:
        return int(text.split()[0].rsplit("-", 2)[1])
    except (IndexError, ValueError):
        return None


def sigkill(pid: int) -> None:
    os.kill(pid, signal.SIGKILL)


# -- results ---------------------------------------------------------------------------------------

@dataclass
class Outcome:
    """One fault test's figures, one line of docs/reliability.md's table."""

    fault: str
    reports: int = 0
    completed: int = 0
    duplicates: int = 0
    losses: int = 0
    seconds: float = 0.0
    note: str = ""
    test: str = ""
    run: str = ""
    at: str = ""
    machine: str = ""


class Results:
    """Appends outcomes as JSON lines; one `run` id per test session."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.run = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ") + f"-{os.getpid()}"
        self.machine = describe()

    def record(self, outcome: Outcome) -> None:
        outcome.run = self.run
        outcome.machine = self.machine
        outcome.at = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
        outcome.seconds = round(outcome.seconds, 1)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a") as f:
            f.write(json.dumps(asdict(outcome)) + "\n")


def results_path() -> Path:
    return Path(os.environ.get(RESULTS_ENV) or DEFAULT_RESULTS)


class Stopwatch:
    def __init__(self) -> None:
        self.t0 = time.monotonic()

    @property
    def seconds(self) -> float:
        return time.monotonic() - self.t0


# -- ReportRequests on the test control plane -------------------------------------------------------

def apply_report(cluster: Any, ns: str, doc: dict[str, Any]) -> dict[str, Any]:
    """kubectl apply one ReportRequest; returns the stored object (with its uid)."""
    import yaml

    res = cluster.kubectl("apply", "-n", ns, "-f", "-", input=yaml.safe_dump(doc), check=False)
    if res.returncode != 0:
        raise AssertionError(f"kubectl apply refused {doc['metadata']['name']}: {res.stderr}")
    return get_report(cluster, ns, doc["metadata"]["name"])


def get_report(cluster: Any, ns: str, name: str) -> dict[str, Any]:
    from support.k8s import kubectl_json

    return kubectl_json(cluster, "get", "rr", name, "-n", ns)  # type: ignore[no-any-return]


def wait_final(cluster: Any, ns: str, name: str, timeout: float = 120) -> dict[str, Any]:
    """The ReportRequest once its phase is Succeeded or Failed."""
    from support.k8s import in_phase
    from support.workers import wait_for

    def done() -> dict[str, Any] | None:
        obj = get_report(cluster, ns, name)
        return obj if in_phase(obj) else None
    return wait_for(done, timeout, 0.2, what=f"{name} to finish")  # type: ignore[no-any-return]


def jobs_of(r: Any, stream: str, uid: str) -> int:
    """How many jobs of report `uid` were ever put on a job stream (first deliveries; retries
    and reruns are new entries too)."""
    from goreports.proto import job_pb2

    return sum(1 for _, f in r.xrange(stream) if job_pb2.Job.FromString(f[b"job"]).report.uid == uid)


def events_of(r: Any, uid: str, prefix: str = "goreports") -> list[Any]:
    """Every StageEvent of one report still in the events stream, oldest first."""
    from goreports.proto import events_pb2

    out = []
    for _, f in r.xrange(f"{prefix}:events"):
        ev = events_pb2.StageEvent.FromString(next(iter(f.values())))
        if ev.report.uid == uid:
            out.append(ev)
    return out


# -- the source table -------------------------------------------------------------------------------

ITEMS_SQL = "SELECT id, name, qty FROM items ORDER BY id"


def row_digest(rows: Any) -> tuple[int, str]:
    """(row count, sha256 over the rows' text): computed the same way for the source table and
    for the delivered file, so equal digests mean every row arrived once, in order."""
    import hashlib

    h = hashlib.sha256()
    n = 0
    for row in rows:
        h.update("\x1f".join(map(str, row)).encode() + b"\x1e")
        n += 1
    return n, h.hexdigest()


def make_items_db(mariadb: Any, db: str, rows: int) -> tuple[int, str]:
    """A fresh database `db` with `items(id, name, qty)` of `rows` rows; returns its digest."""
    mariadb.create_database(db)
    mariadb.execute_sql(
        "CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(40) NOT NULL, qty INT NOT NULL);"
        f"INSERT INTO items SELECT seq, CONCAT('item-', seq), seq % 97 FROM seq_1_to_{rows};", db=db)
    return row_digest(mariadb.query(ITEMS_SQL, db=db))
