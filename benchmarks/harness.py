"""The benchmark's moving parts: servers, worker processes, a memory sampler, the bus.

Why a module of its own: every figure needs the same things (a real Redis and MariaDB started on
free ports, `goreports worker` processes, peak RSS sampled from outside), and the figures should
differ only in what they measure. The servers are the test suite's own helpers
(tests/support), so the benchmark runs exactly what the tests run.
"""
from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping

import psutil
import redis

ROOT = Path(__file__).resolve().parent.parent
TESTS = ROOT / "tests"
if str(TESTS) not in sys.path:
    sys.path.append(str(TESTS))  # support.* (never the repository root: operator/ shadows stdlib)

from goreports.core import compiler, schema  # noqa: E402
from goreports.core.bus.redis import RedisBus  # noqa: E402
from goreports.core.keys import Keys  # noqa: E402
from goreports.proto import events_pb2, job_pb2  # noqa: E402
from support.mariadb import MariaDB  # noqa: E402,F401  (re-exported for the figures)
from support.servers import RedisServer, terminate  # noqa: E402,F401

MB = 2 ** 20
PREFIX = "goreports"


def log(msg: str) -> None:
    """Progress on stderr (the table goes to stdout)."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


class BenchError(RuntimeError):
    """A figure could not be measured (a worker died, a report failed); the message says why."""


# -- memory ---------------------------------------------------------------------------------------

class PeakRss:
    """Samples the resident set of processes (each with its children) every `interval` seconds.

    From outside, so the process measured pays nothing; ~50 ms catches every plateau that
    matters for a run of seconds. VmHWM would be exact but misses children.
    """

    def __init__(self, interval: float = 0.05) -> None:
        self.interval = interval
        self.peaks: dict[str, int] = {}
        self._procs: dict[str, psutil.Process] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def watch(self, name: str, pid: int) -> None:
        self._procs[name] = psutil.Process(pid)
        self.peaks.setdefault(name, 0)

    def start(self) -> "PeakRss":
        self._thread.start()
        return self

    def stop(self) -> dict[str, float]:
        """Stop sampling; peak RSS per name in MB."""
        self._stop.set()
        self._thread.join()
        self.sample()
        return {n: v / MB for n, v in self.peaks.items()}

    def sample(self) -> None:
        for name, proc in list(self._procs.items()):
            self.peaks[name] = max(self.peaks[name], tree_rss(proc))

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval)


def tree_rss(proc: psutil.Process) -> int:
    """RSS of a process plus its children (0 once it is gone)."""
    total = 0
    try:
        procs = [proc, *proc.children(recursive=True)]
    except psutil.Error:
        return 0
    for p in procs:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            pass
    return total


# -- workers --------------------------------------------------------------------------------------

@dataclass
class Workers:
    """`goreports worker` processes, one per pattern, started together and ready to consume."""

    redis_addr: str
    tmp: Path
    env: Mapping[str, str] = field(default_factory=dict)
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)  # type: ignore[type-arg]

    def start(self, *patterns: str, concurrency: int = 4) -> "Workers":
        for p in patterns:
            env = dict(os.environ)
            env.update(REDIS_ADDR=self.redis_addr, GOREPORTS_LOG_LEVEL="WARNING",
                       GOREPORTS_WORK_DIR=str(self.tmp / "work"),
                       GOREPORTS_ARTIFACT_DIR=str(self.tmp / "staging"),
                       GOREPORTS_CREDENTIALS_DIR=str(self.tmp / "credentials"),
                       GOREPORTS_VISIBILITY_TIMEOUT="60", GOREPORTS_HEARTBEAT_INTERVAL="5")
            env.update(self.env)
            (self.tmp / "work").mkdir(parents=True, exist_ok=True)
            with open(self.log(p), "ab") as out:
                self.procs[p] = subprocess.Popen(
                    [sys.executable, "-m", "goreports.cli.main", "worker", "--pattern", p,
                     "--concurrency", str(concurrency)],
                    env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
        self.wait_ready(patterns)
        return self

    def log(self, pattern: str) -> Path:
        return self.tmp / f"worker-{pattern}.log"

    def wait_ready(self, patterns: tuple[str, ...], timeout: float = 90.0) -> None:
        """Until each worker has created its pattern's consumer group (it does so right before
        its first blocking read; Redis is flushed before each figure, so the group is new)."""
        r = redis.Redis(*self.redis_addr.split(":"))
        deadline = time.monotonic() + timeout
        waiting = set(patterns)
        while waiting:
            self.check()
            for p in list(waiting):
                stream = Keys(PREFIX).jobs(compiler.STAGES[p].channel, p)
                try:
                    groups = {g["name"].decode() for g in r.xinfo_groups(stream)}
                except redis.ResponseError:  # no stream yet
                    continue
                if p in groups:
                    waiting.discard(p)
            if time.monotonic() > deadline:
                raise BenchError(f"worker(s) {sorted(waiting)} did not start consuming within "
                                 f"{timeout:.0f}s; see {self.tmp}/worker-*.log")
            time.sleep(0.05)
        r.close()

    def check(self) -> None:
        for p, proc in self.procs.items():
            if proc.poll() is not None:
                raise BenchError(f"the {p} worker exited with {proc.returncode}:\n"
                                 f"{self.log(p).read_text(errors='replace')[-3000:]}")

    def stop(self) -> None:
        for proc in self.procs.values():
            proc.terminate()
        for proc in self.procs.values():
            terminate(proc, timeout=30)
        self.procs.clear()


@contextmanager
def running_workers(redis_addr: str, tmp: Path, *patterns: str, sampler: PeakRss | None = None,
                    **env: str) -> Iterator[Workers]:
    w = Workers(redis_addr, tmp, env)
    try:
        w.start(*patterns)
        if sampler is not None:
            for p, proc in w.procs.items():
                sampler.watch(p, proc.pid)
        yield w
    finally:
        w.stop()


# -- reports on the bus ---------------------------------------------------------------------------

def report_doc(name: str, steps: list[dict[str, Any]]) -> dict[str, Any]:
    doc = {"apiVersion": "goreports.io/v1alpha1", "kind": "ReportRequest",
           "metadata": {"name": name, "namespace": "bench"},
           "spec": {"deadlineSeconds": 3600, "maxAttempts": 1, "steps": steps}}
    schema.validate_report(doc)
    return doc


def compile_doc(doc: dict[str, Any]) -> tuple[str, job_pb2.Job]:
    uid = str(uuid.uuid4())
    return uid, compiler.compile_report(doc, uid=uid)


def new_bus(redis_addr: str) -> RedisBus:
    import redis.asyncio as aioredis

    host, port = redis_addr.split(":")
    return RedisBus(aioredis.Redis(host=host, port=int(port)), Keys(PREFIX))


async def wait_reports(bus: RedisBus, uids: set[str], workers: Workers | None, *,
                       timeout: float, after: str
                       ) -> dict[str, list[events_pb2.StageEvent]]:
    """Block on the events stream until every report in `uids` has finished its last step.

    Returns every event of those reports; a Failed event or a dead worker raises BenchError.
    `after` must be an events-stream id from before the reports were published.
    """
    events: dict[str, list[events_pb2.StageEvent]] = {u: [] for u in uids}
    open_ = set(uids)
    deadline = time.monotonic() + timeout
    cursor = after
    while open_:
        if workers is not None:
            workers.check()
        if time.monotonic() > deadline:
            raise BenchError(f"{len(open_)} of {len(uids)} report(s) unfinished after {timeout:.0f}s")
        for eid, ev in await bus.read_events(cursor, 1000, 500):
            cursor = eid
            uid = ev.report.uid
            if uid not in events:
                continue
            events[uid].append(ev)
            if ev.state == events_pb2.STEP_STATE_FAILED:
                raise BenchError(f"report {ev.report.name} failed at {ev.step} ({ev.reason}): "
                                 f"{ev.error}")
            if (ev.state == events_pb2.STEP_STATE_SUCCEEDED and ev.step_count
                    and ev.step_index == ev.step_count - 1):
                open_.discard(uid)
    return events


async def last_event_id(bus: RedisBus) -> str:
    """The id to read the events stream after (so that only new events are seen)."""
    entries = await bus.r.xrevrange(bus.keys.events(), count=1)
    return entries[0][0].decode() if entries else "0"


def run_async(coro: Any) -> Any:
    return asyncio.run(coro)
