"""The notifier's pure parts and its decisions that need no network: when it stays silent,
how its mail text renders, and which artifacts it lists."""
from __future__ import annotations

from pathlib import Path

import pytest

from goreports.core.errors import PermanentError
from goreports.proto import tasks_pb2
from goreports.workers.notifiers.notify import (DEFAULT_BODY, DEFAULT_SUBJECT, notify, render,
                                                stored_artifacts)

from unit.workers.stagekit import UID, make_ctx


def test_render_is_plain_text() -> None:
    payload = {"report": {"namespace": "ns", "name": "r&d"}, "outcome": "failure",
               "error": "a < b & c", "artifacts": [], "traceId": "t1"}
    assert render(DEFAULT_SUBJECT, payload) == "Report ns/r&d: failure"
    body = render(DEFAULT_BODY, payload)
    assert "Error: a < b & c" in body and "Trace id: t1" in body
    ok = render(DEFAULT_BODY, {**payload, "error": None, "outcome": "success", "artifacts": [
        {"name": "s.csv", "size": 3, "sha256": "aa", "location": "file:///s.csv"}]})
    assert "Error" not in ok and "- s.csv (3 bytes, sha256 aa): file:///s.csv" in ok


async def test_silent_when_the_outcome_is_not_asked_for(tmp_path: Path) -> None:
    ctx = make_ctx(tmp_path, "tell")
    task = tasks_pb2.Notifier(when=["failure"], webhook=tasks_pb2.WebhookDispatcher(
        url="http://169.254.169.254/never-called"))
    result = await notify(task, ctx)  # success: nothing is sent, so no guard error either
    assert "no notification on success" in result.message


async def test_refuses_bad_tasks(tmp_path: Path) -> None:
    ctx = make_ctx(tmp_path, "tell")
    with pytest.raises(PermanentError, match="neither a webhook nor an e-mail"):
        await notify(tasks_pb2.Notifier(when=["success"]), ctx)
    with pytest.raises(PermanentError, match="unknown"):
        await notify(tasks_pb2.Notifier(when=["always"]), ctx)


async def test_stored_artifacts_skips_missing_ones(tmp_path: Path) -> None:
    ctx = make_ctx(tmp_path, "tell")
    src = tmp_path / "a.csv"
    src.write_bytes(b"abc")
    await ctx.artifacts.put(UID, "a.csv", src)
    found = await stored_artifacts(ctx, ["a.csv", "missing.xlsx", "a.csv"])
    assert [(a.name, a.size) for a in found] == [("a.csv", 3)]
