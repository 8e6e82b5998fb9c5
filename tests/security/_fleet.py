"""Real worker processes for the security suite, and a driver that runs whole reports through them.

Why not the operator: most hostile inputs are refused by a stage, and what the suite must show is
the outcome a user sees — the report's phase and reason — plus everything the platform wrote on
the way (logs, events, dead letters). The driver does what the operator does without a cluster:
validate, compile, publish the head job, fold the StageEvents into a status with
goreports.core.status (the operator's own folding). The e2e test of the secrets runs the real
operator for the rest.

One `goreports worker` process serves every built-in pattern (plus the test stages), with its
log in the fleet folder, so the secret tests can read every line it wrote.
"""
from __future__ import annotations

import asyncio
import json
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis
import redis.asyncio as aioredis

from goreports.core import compiler, schema, status
from goreports.core.bus.redis import RedisBus
from goreports.core.keys import Keys
from goreports.proto import events_pb2, job_pb2
from support.servers import RedisServer
from support.workers import start_worker, stop

PREFIX = "goreports"
PATTERNS = ("sqlite", "mysql", "http", "jwt", "aggregate", "excel", "mustache", "csv", "local",
            "s3", "email", "webhook", "notify", "test-effect")


@dataclass
class Outcome:
    """How one report ended, and everything the platform said about it."""

    uid: str
    status: dict[str, Any]
    events: list[events_pb2.StageEvent]

    @property
    def phase(self) -> str:
        return str(self.status.get("phase"))

    @property
    def failed(self) -> events_pb2.StageEvent | None:
        return next((e for e in self.events if e.state == events_pb2.STEP_STATE_FAILED), None)

    @property
    def reason(self) -> str:
        return self.failed.reason if self.failed else ""

    @property
    def error(self) -> str:
        return self.failed.error if self.failed else ""


@dataclass
class Fleet:
    root: Path
    redis_server: RedisServer = field(default_factory=RedisServer)
    procs: list[subprocess.Popen] = field(default_factory=list)  # type: ignore[type-arg]
    env: dict[str, str] = field(default_factory=dict)

    @property
    def credentials_dir(self) -> Path:
        return self.root / "credentials"

    @property
    def staging_dir(self) -> Path:
        return self.root / "staging"

    @property
    def out_dir(self) -> Path:
        return self.root / "out"

    @property
    def logs(self) -> list[Path]:
        return sorted(self.root.glob("*.log"))

    def start(self) -> "Fleet":
        for d in (self.credentials_dir, self.staging_dir, self.out_dir, self.root / "work"):
            d.mkdir(parents=True, exist_ok=True)
        self.redis_server.start()
        self.env = {"GOREPORTS_CREDENTIALS_DIR": str(self.credentials_dir),
                    "GOREPORTS_ARTIFACT_DIR": str(self.staging_dir),
                    "GOREPORTS_WORK_DIR": str(self.root / "work"),
                    "GOREPORTS_LOG_LEVEL": "DEBUG", "GOREPORTS_LOG_FORMAT": "json",
                    "GOREPORTS_VISIBILITY_TIMEOUT": "10", "GOREPORTS_HTTP_ALLOW_HOSTS": ""}
        self.procs.append(start_worker(self.redis_server.addr, *PATTERNS,
                                       log=self.root / "worker.log", **self.env))
        return self

    def stop(self) -> None:
        for p in self.procs:
            stop(p)
        self.procs.clear()
        self.redis_server.cleanup()

    def alive(self) -> bool:
        return all(p.poll() is None for p in self.procs)

    def redis(self) -> redis.Redis:
        host, port = self.redis_server.addr.split(":")
        return redis.Redis(host=host, port=int(port))

    def bus(self) -> RedisBus:
        host, port = self.redis_server.addr.split(":")
        return RedisBus(aioredis.Redis(host=host, port=int(port)), Keys(PREFIX))

    async def run(self, doc: dict[str, Any], timeout: float = 60.0) -> Outcome:
        """Validate, compile and publish one ReportRequest; wait for its final phase."""
        schema.validate_report(doc)
        uid = str(uuid.uuid4())
        head = compiler.compile_report(doc, uid=uid, prefix=PREFIX)
        return await self.run_chain(head, timeout)

    async def run_chain(self, head: job_pb2.Job, timeout: float = 60.0) -> Outcome:
        chain = compiler.iter_chain(head)
        uid = head.report.uid
        bus = self.bus()
        st = status.initial_status([(j.name, j.pattern) for j in chain])
        mine: list[events_pb2.StageEvent] = []
        after = "0-0"
        try:
            await bus.publish(head)
            deadline = time.monotonic() + timeout
            while st["phase"] not in status.FINAL_PHASES:
                if not self.alive():
                    raise RuntimeError(f"a worker process died; log tail:\n{self.log_tail()}")
                if time.monotonic() > deadline:
                    raise TimeoutError(f"report {uid} not final after {timeout}s: "
                                       f"{json.dumps(st)[:2000]}\n{self.log_tail()}")
                for entry_id, ev in await bus.read_events(after, 200, 200):
                    after = entry_id
                    if ev.report.uid == uid:
                        mine.append(ev)
                        st = status.fold(st, ev)
                await asyncio.sleep(0)
        finally:
            await bus.r.aclose()
        return Outcome(uid, st, mine)

    def log_tail(self, chars: int = 3000) -> str:
        return "\n".join(p.read_text(errors="replace")[-chars:] for p in self.logs)

    def dead_letters(self) -> list[tuple[str, dict[bytes, bytes]]]:
        """Every entry of every dead-letter stream: (stream, fields)."""
        r = self.redis()
        out = []
        for key in r.scan_iter(f"{PREFIX}:dead:*"):
            out += [(key.decode(), f) for _, f in r.xrange(key)]
        return out

    def everything_written(self) -> bytes:
        """Logs, the events, dead-letter and audit streams, and every other stream entry and
        string key in Redis: all the platform wrote outside the delivered reports."""
        parts = [p.read_bytes() for p in self.logs]
        r = self.redis()
        for key in r.scan_iter("*"):
            kind = r.type(key)
            if kind == b"stream":
                for _, fields in r.xrange(key):
                    parts += [k + b"=" + v for k, v in fields.items()]
            elif kind == b"string":
                parts.append(r.get(key) or b"")
            elif kind == b"zset":
                parts += [m for m, _ in r.zrange(key, 0, -1, withscores=True)]
            elif kind == b"hash":
                parts += [k + b"=" + v for k, v in r.hgetall(key).items()]
        return b"\n".join(parts)


def sqlite_step(db: Path, sql: str, name: str = "rows") -> dict[str, Any]:
    return {"name": "collect", "sqlite": {"database": str(db), "queries": [{"name": name, "sql": sql}]}}


def report(name: str, *steps: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "goreports.io/v1alpha1", "kind": "ReportRequest",
            "metadata": {"name": name, "namespace": "security"},
            "spec": {"steps": list(steps), "maxAttempts": 2, **spec}}
