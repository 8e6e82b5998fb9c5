"""core.status.fold: StageEvents -> ReportRequest status (pure)."""
from __future__ import annotations

from typing import Any

from goreports.core import status
from goreports.proto import events_pb2

E = events_pb2
STEPS = [("collect", "mysql"), ("table", "excel"), ("deliver", "local")]


def ev(step: str, state: int, *, rows: int = 0, index: int = 0, **kw: Any) -> events_pb2.StageEvent:
    e = E.StageEvent(step=step, pattern=dict(STEPS)[step], state=state, rows=rows,
                     step_index=index, step_count=len(STEPS), **kw)
    e.at.seconds = 1_800_000_000 + index
    return e


def run(*events: events_pb2.StageEvent) -> dict[str, Any]:
    s = status.initial_status(STEPS)
    for e in events:
        s = status.fold(s, e)
    return s


def states(s: dict[str, Any]) -> dict[str, str]:
    return {x["name"]: x["state"] for x in s["steps"]}


def test_a_chain_runs_to_succeeded_and_the_input_is_not_changed() -> None:
    s0 = status.initial_status(STEPS)
    s1 = status.fold(s0, ev("collect", E.STEP_STATE_RUNNING))
    assert s0["phase"] == "Pending" and s1["phase"] == "Running"
    s = run(ev("collect", E.STEP_STATE_RUNNING), ev("collect", E.STEP_STATE_SUCCEEDED, rows=10),
            ev("table", E.STEP_STATE_SUCCEEDED, rows=10, index=1),
            ev("deliver", E.STEP_STATE_SUCCEEDED, index=2))
    assert s["phase"] == "Succeeded" and set(states(s).values()) == {"Succeeded"}
    assert s["rows"] == 10 and s["currentStep"] == ""


def test_a_collectors_succeeded_after_the_last_step_still_completes_its_step() -> None:
    """A streaming collector reports its end when its stage returns, which can be after the
    generator and the dispatcher are done (seen: Succeeded with collect Running at 17,800 of
    20,000 rows)."""
    s = run(ev("collect", E.STEP_STATE_RUNNING, rows=17_800),
            ev("table", E.STEP_STATE_SUCCEEDED, rows=20_000, index=1),
            ev("deliver", E.STEP_STATE_SUCCEEDED, index=2))
    assert s["phase"] == "Succeeded" and states(s)["collect"] == "Running"
    done = status.fold(s, ev("collect", E.STEP_STATE_SUCCEEDED, rows=20_000, duration_seconds=4.5))
    assert done["phase"] == "Succeeded" and done["completionTime"] == s["completionTime"]
    assert states(done) == {"collect": "Succeeded", "table": "Succeeded", "deliver": "Succeeded"}
    collect = done["steps"][0]
    assert (collect["rows"], collect["durationSeconds"]) == (20_000, 4.5)
    ready = {c["type"]: c for c in done["conditions"]}["Ready"]
    assert ready["status"] == "True" and ready["message"].startswith("20000 rows")


def test_nothing_else_changes_a_final_report() -> None:
    s = run(ev("collect", E.STEP_STATE_RUNNING), ev("table", E.STEP_STATE_SUCCEEDED, index=1),
            ev("deliver", E.STEP_STATE_SUCCEEDED, index=2))
    for late in (ev("collect", E.STEP_STATE_FAILED, error="boom"),
                 ev("collect", E.STEP_STATE_RETRYING, error="again"),
                 ev("collect", E.STEP_STATE_RUNNING, rows=5),
                 ev("table", E.STEP_STATE_SUCCEEDED, rows=99, index=1),  # already final
                 ev("deliver", E.STEP_STATE_FAILED, index=2)):
        assert status.fold(s, late) == s
    failed = run(ev("collect", E.STEP_STATE_FAILED, error="no database", reason="RetriesExhausted"))
    assert failed["phase"] == "Failed"
    assert status.fold(failed, ev("table", E.STEP_STATE_SUCCEEDED, index=1)) == failed
