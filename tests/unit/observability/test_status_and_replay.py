"""`goreports status` tables and the operator's replay reset, as pure functions."""
from __future__ import annotations

from goreports.cli.status import phase_table_rows, stream_table_rows
from goreports.core.metrics import StreamStats
from goreports.operator.replay import reset_for_replay


def test_phase_rows() -> None:
    reports = [{"metadata": {"namespace": "b"}, "status": {"phase": "Failed"}},
               {"metadata": {"namespace": "a"}, "status": {"phase": "Running"}},
               {"metadata": {"namespace": "a"}},
               {"metadata": {"namespace": "a"}, "status": {"phase": "Succeeded"}}]
    assert phase_table_rows(reports) == [
        {"namespace": "a", "Pending": 1, "Running": 1, "Succeeded": 1, "Failed": 0, "total": 3},
        {"namespace": "b", "Pending": 0, "Running": 0, "Succeeded": 0, "Failed": 1, "total": 1}]
    assert phase_table_rows([]) == []


def test_stream_rows() -> None:
    [row] = stream_table_rows([StreamStats("collectors", "mysql", 9, 2, 5, 1, 4, 1)])
    assert row == {"channel": "collectors", "pattern": "mysql", "backlog": 7, "pending": 2, "lag": 5,
                   "workers": 1, "consumers": 4, "dead": 1}


def failed_status() -> dict:
    return {"phase": "Failed", "completionTime": "t1", "message": "collect: boom", "currentStep": "collect",
            "steps": [{"name": "collect", "state": "Succeeded"},
                      {"name": "table", "state": "Failed", "message": "boom", "finishedAt": "t1", "attempts": 3},
                      {"name": "deliver", "state": "Cancelled", "message": "dropped"}],
            "conditions": [{"type": "Ready", "status": "False", "reason": "QueryFailed", "message": "boom",
                            "lastTransitionTime": "t0", "observedGeneration": 1}]}


def test_replay_reset_makes_a_failed_report_run_again() -> None:
    old = failed_status()
    new = reset_for_replay(old, "2025-01-01T00:00:00Z", "t2")
    assert old == failed_status()  # not modified in place
    assert new["phase"] == "Running" and "completionTime" not in new
    assert [s["state"] for s in new["steps"]] == ["Succeeded", "Pending", "Pending"]
    assert new["steps"][1] == {"name": "table", "state": "Pending", "attempts": 3}
    assert new["currentStep"] == "table" and "table, deliver queued again" in new["message"]
    [ready] = new["conditions"]
    assert (ready["status"], ready["reason"], ready["lastTransitionTime"]) == ("Unknown", "Replayed", "t2")


def test_replay_reset_leaves_other_phases_alone() -> None:
    for phase in ("Running", "Succeeded", "Pending"):
        st = {**failed_status(), "phase": phase}
        assert reset_for_replay(st, "x", "t") is st
