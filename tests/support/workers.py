"""Start `goreports worker` processes against a test Redis, and build test jobs."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

from google.protobuf import struct_pb2
from google.protobuf.json_format import ParseDict

from goreports.proto import job_pb2
from support.servers import terminate

ROOT = Path(__file__).resolve().parents[2]
TESTS = ROOT / "tests"


def worker_env(redis_addr: str, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(REDIS_ADDR=redis_addr, GOREPORTS_STAGE_MODULES="support.stages",
               PYTHONPATH=os.pathsep.join(p for p in (str(TESTS), env.get("PYTHONPATH", "")) if p),
               GOREPORTS_VISIBILITY_TIMEOUT="2", GOREPORTS_HEARTBEAT_INTERVAL="0.5",
               GOREPORTS_RETRY_BASE_DELAY="0.05", GOREPORTS_LOG_LEVEL="INFO")
    env.update(extra)
    return env


def start_worker(redis_addr: str, *patterns: str, log: Path | None = None,
                 cli_args: tuple[str, ...] = (), **extra: str) -> subprocess.Popen:  # type: ignore[type-arg]
    args = [sys.executable, "-m", "goreports.cli.main", "worker", *cli_args]
    for p in patterns:
        args += ["--pattern", p]
    out = open(log, "ab") if log else subprocess.DEVNULL
    return subprocess.Popen(args, env=worker_env(redis_addr, **extra), cwd=ROOT, stdout=out,
                            stderr=subprocess.STDOUT if log else subprocess.DEVNULL)


def stop(proc: subprocess.Popen) -> None:  # type: ignore[type-arg]
    terminate(proc, timeout=30)


def struct_job(name: str, channel: str, pattern: str, task: dict[str, Any], *, uid: str,
               nxt: job_pb2.Job | None = None, max_attempts: int = 3, index: int = 0,
               count: int = 1) -> job_pb2.Job:
    s = ParseDict(task, struct_pb2.Struct())
    j = job_pb2.Job(name=name, channel=channel, pattern=pattern, attempt=1, max_attempts=max_attempts,
                    report=job_pb2.ReportRef(namespace="default", name=f"r-{uid[:6]}", uid=uid),
                    step_index=index, step_count=count, trace_id=uid)
    j.task.Pack(s)
    if nxt is not None:
        j.next.CopyFrom(nxt)
    return j


def wait_for(cond: Callable[[], Any], timeout: float = 30.0, interval: float = 0.05,
             what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
