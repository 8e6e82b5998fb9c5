"""Garbage on the job streams, fed to a real worker process on a real Redis.

Whoever can write to Redis is trusted, but a bug, a version skew or a hand-made `XADD` puts
entries on a pattern's stream that are not Jobs of that stage. The promise: the worker
dead-letters each one (with a reason), never crash-loops on it, never retries it forever, and
keeps serving a good job afterwards.
"""
from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

from google.protobuf import any_pb2
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from goreports.proto import job_pb2
from security._fleet import PREFIX, Fleet
from support.workers import struct_job, wait_for

# streams of real stages (channel, pattern) and of the test stage
TARGETS = [("collectors", "sqlite"), ("generators", "csv"), ("dispatchers", "local"),
           ("dispatchers", "email"), ("dispatchers", "test-effect")]
STAGE_TYPES = {"goreports.v1.SqliteCollector", "goreports.v1.CsvGenerator",
               "goreports.v1.LocalDispatcher", "goreports.v1.EmailDispatcher",
               "google.protobuf.Struct"}


def _stream(channel: str, pattern: str) -> str:
    return f"{PREFIX}:jobs:{channel}:{pattern}"


def _dead(channel: str, pattern: str) -> str:
    return f"{PREFIX}:dead:{channel}:{pattern}"


@st.composite
def garbage_jobs(draw: st.DrawFn, channel: str, pattern: str) -> job_pb2.Job:
    """A Job that parses, with fuzzed fields and a task of no stage's type (its report uid is
    set when it is sent: a second job of an already failed report is dropped, not
    dead-lettered, which is right but not what this test counts)."""
    type_name = draw(st.text(max_size=30).filter(lambda t: t not in STAGE_TYPES))
    task = any_pb2.Any(type_url=draw(st.sampled_from(["", "type.googleapis.com/"])) + type_name,
                       value=draw(st.binary(max_size=64)))
    job = job_pb2.Job(
        name=draw(st.text(max_size=20)), channel=channel, pattern=pattern, task=task,
        report=job_pb2.ReportRef(namespace=draw(st.text(max_size=10)),
                                 name=draw(st.text(max_size=10))),
        attempt=draw(st.integers(0, 2 ** 31 - 1)),
        max_attempts=draw(st.integers(0, 2 ** 31 - 1)),
        step_index=draw(st.integers(0, 50)), step_count=draw(st.integers(0, 50)),
        trace_id=draw(st.text(max_size=10)))
    job.deadline.seconds = draw(st.one_of(st.just(0), st.integers(-2 ** 40, 2 ** 40),
                                          st.integers(-2 ** 62, 2 ** 62)))
    return job


def _undecodable(data: bytes) -> bool:
    try:
        job_pb2.Job.FromString(data)
    except Exception:  # noqa: BLE001 - DecodeError, or anything the parser raises
        return True
    return False


def entries(channel: str, pattern: str) -> st.SearchStrategy[dict[str, Any]]:
    """Stream entries: undecodable bytes, a missing `job` field, or a fuzzed Job. (Random bytes
    that happen to parse are left out: they form a Job of report uid "" and repeat each other's
    uid, and a job of an already failed report is dropped, not dead-lettered — right, but not
    what this test counts; `garbage_jobs` covers Jobs that parse, each with its own report.)"""
    return st.one_of(
        st.binary(min_size=1, max_size=200).filter(_undecodable).map(lambda b: {"job": b}),
        st.binary(max_size=50).map(lambda b: {"jib": b}),
        garbage_jobs(channel, pattern).map(lambda j: {"job": j}))


def _dead_count(fleet: Fleet) -> dict[str, int]:
    r = fleet.redis()
    return {f"{c}:{p}": r.xlen(_dead(c, p)) for c, p in TARGETS}


def _state(fleet: Fleet) -> dict[str, Any]:
    """Dead letters per stream, entries still pending, retries waiting."""
    r = fleet.redis()
    return {"dead": _dead_count(fleet),
            "pending": sum(r.xpending(_stream(c, p), p)["pending"] for c, p in TARGETS
                           if r.exists(_stream(c, p))),
            "delayed": r.zcard(f"{PREFIX}:delayed")}


def _settled(fleet: Fleet, expected: dict[str, int]) -> bool:
    return _state(fleet) == {"dead": expected, "pending": 0, "delayed": 0}


def test_garbage_jobs_are_dead_lettered_and_the_worker_keeps_serving(
        fleet: Fleet, tmp_path: Path, record: Any) -> None:
    r = fleet.redis()
    for c, p in TARGETS:  # the worker's groups exist once it has polled each stream
        wait_for(lambda: r.exists(_stream(c, p)) and r.xinfo_groups(_stream(c, p)), 90,
                 what=f"the worker's group on {p}")
    injected = {"n": 0}

    @settings(max_examples=25, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
    @given(st.sampled_from(TARGETS).flatmap(
        lambda t: st.tuples(st.just(t), st.lists(entries(*t), min_size=1, max_size=4))))
    def feed(case: tuple[tuple[str, str], list[dict[str, Any]]]) -> None:
        (channel, pattern), batch = case
        expected = _dead_count(fleet)
        expected[f"{channel}:{pattern}"] += len(batch)
        for fields in batch:
            if isinstance(fields.get("job"), job_pb2.Job):
                job = job_pb2.Job()
                job.CopyFrom(fields["job"])
                job.report.uid = str(uuid.uuid4())
                fields = {"job": job.SerializeToString()}
            r.xadd(_stream(channel, pattern), fields)
        injected["n"] += len(batch)
        try:
            wait_for(lambda: _settled(fleet, expected), 60, 0.05)
        except TimeoutError:
            raise AssertionError(f"{len(batch)} garbage entries on {pattern}: expected dead "
                                 f"letters {expected}, got {_state(fleet)}; batch {batch!r}; "
                                 f"log: {fleet.log_tail(3000)}") from None
        assert fleet.alive()

    feed()
    # every dead letter says why
    reasons = [f.get(b"reason", b"").decode() for _, f in fleet.dead_letters()]
    assert reasons and all(reasons), reasons
    kinds = {x.split(":", 1)[0] for x in reasons}
    assert kinds <= {"InvalidJob", "InvalidTask", "DeadlineExceeded"}, kinds

    # and a good job afterwards is served by the same process
    uid = uuid.uuid4().hex
    effect = tmp_path / "effect"
    r.xadd(_stream("dispatchers", "test-effect"), {"job": struct_job(
        "deliver", "dispatchers", "test-effect", {"effectFile": str(effect)},
        uid=uid).SerializeToString()})
    wait_for(effect.exists, 60, what="the good job after the garbage")
    assert effect.read_text().split()[0] == uid
    assert fleet.alive()
    record("garbage jobs", f"{injected['n']} fuzzed stream entries on 5 job streams "
           "(undecodable bytes, entries without a job, Jobs with fuzzed fields, deadlines and "
           "tasks of no stage's type; hypothesis) fed to a real worker process",
           f"each dead-lettered with a reason ({', '.join(sorted(kinds))}); nothing retried "
           "or left pending; the same process then served a good job")
