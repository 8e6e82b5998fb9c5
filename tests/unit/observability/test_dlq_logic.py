"""The pure parts of `goreports dlq`: durations, the replayed job, the rows it prints."""
from __future__ import annotations

import time

import pytest
from google.protobuf import struct_pb2

from goreports.cli import dlq
from goreports.core.bus.base import DeadLetter
from goreports.proto import job_pb2


def chain() -> job_pb2.Job:
    head = job_pb2.Job(name="collect", channel="collectors", pattern="sqlite", attempt=3, max_attempts=3,
                       rerun=True, trace_id="t", report=job_pb2.ReportRef(namespace="ns", name="r", uid="u"))
    head.task.Pack(struct_pb2.Struct(fields={"database": struct_pb2.Value(string_value="a.db")}))
    head.next.CopyFrom(job_pb2.Job(name="table", channel="generators", pattern="csv"))
    head.next.next.CopyFrom(job_pb2.Job(name="notify", channel="notifiers", pattern="notify"))
    return head


@pytest.mark.parametrize("text, seconds", [("90s", 90), ("15m", 900), ("1h30m", 5400), ("2d", 172800),
                                           ("1w", 604800), ("0.5h", 1800)])
def test_parse_duration(text: str, seconds: float) -> None:
    assert dlq.parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "1", "h", "1h 2m", "forever", "-1h"])
def test_parse_duration_refuses(text: str) -> None:
    with pytest.raises(ValueError, match="is not a duration"):
        dlq.parse_duration(text)


def test_job_for_replay_is_a_fresh_first_attempt() -> None:
    job = chain()
    again = dlq.job_for_replay(job)
    assert again.attempt == 1 and not again.rerun and again.next.next.name == "notify"
    assert job.attempt == 3  # the dead copy is untouched
    assert dlq.later_steps(job) == ["table", "notify"]


def test_deadline_passed() -> None:
    job = chain()
    assert not dlq.deadline_passed(job, time.time())
    job.deadline.FromSeconds(int(time.time()) - 1)
    assert dlq.deadline_passed(job, time.time())


def test_rows_and_description() -> None:
    dl = DeadLetter("1700000000000-0", chain(), "QueryFailed: no such table", "sqlite", "collectors", 0.0)
    row = dlq.dead_row(dl, 1700000000 + 7200)
    assert row["report"] == "ns/r" and row["age"] == "2h" and row["attempt"] == 3
    d = dlq.describe(dl)
    assert d["deadAt"] == "2023-11-14T22:13:20Z" and d["nextSteps"] == ["table", "notify"]
    assert d["task"]["database"] == "a.db" and d["deadline"] is None
    broken = chain()
    broken.task.type_url = "type.googleapis.com/no.Such"
    assert dlq.describe(DeadLetter("1-0", broken, "x", "p", "c", 1.0))["task"]["@type"].endswith("no.Such")
