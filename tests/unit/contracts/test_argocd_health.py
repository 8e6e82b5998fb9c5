"""The Argo CD health checks (deploy/argocd/*.lua) run by a real Lua 5.1 interpreter (lupa),
against objects whose status is written by the operator's own status code.

Why Lua 5.1 and a stripped global table: Argo CD runs the scripts with gopher-lua (Lua 5.1)
in a sandbox without `os` and `io`, so a script that leans on a newer Lua or on those
libraries would pass here and break in Argo CD. Why the status comes from `core.status.fold`
and `schedule_logic.fold_status`: when the operator changes what it writes, these tests see it.
"""
from __future__ import annotations

import copy
import datetime as dt
from pathlib import Path
from typing import Any

import pytest
import yaml
from lupa import lua51

from goreports.core import status as report_status
from goreports.operator import schedule_logic
from goreports.proto import events_pb2, job_pb2

ROOT = Path(__file__).resolve().parents[3]
ARGOCD = ROOT / "deploy" / "argocd"
RR_LUA = ARGOCD / "health-reportrequest.lua"
RS_LUA = ARGOCD / "health-reportschedule.lua"
NOW = dt.datetime(2026, 3, 2, 8, 0, 30, tzinfo=dt.UTC)
E = events_pb2


def health(script: Path, obj: dict[str, Any]) -> tuple[str, str]:
    """Run a health script the way Argo CD does: global `obj`, the script returns `hs`."""
    lua = lua51.LuaRuntime(unpack_returned_tuples=True)
    g = lua.globals()
    for unsafe in ("os", "io", "require", "dofile", "loadfile", "debug", "package"):
        g[unsafe] = None  # Argo CD's sandbox has none of these
    g.obj = lua.table_from(copy.deepcopy(obj), recursive=True)
    hs = lua.execute(script.read_text())
    assert hs is not None, f"{script.name} returned nothing"
    result = dict(hs.items())
    assert set(result) <= {"status", "message"}, result
    assert result["status"] in {"Healthy", "Progressing", "Degraded", "Suspended", "Missing",
                                "Unknown"}
    assert isinstance(result.get("message"), str) and result["message"], result
    return result["status"], result["message"]


# ----------------------------------------------------------------------------- ReportRequest

STEPS = [("collect", "sqlite"), ("workbook", "excel"), ("deliver", "s3")]


def event(step: str, state: int, index: int, **kw: Any) -> events_pb2.StageEvent:
    ev = E.StageEvent(report=job_pb2.ReportRef(namespace="reports", name="sales", uid="u1"),
                      step=step, pattern=dict(STEPS)[step], state=state, attempt=1,
                      step_index=index, step_count=len(STEPS), **kw)
    ev.at.FromDatetime(NOW)
    return ev


def report(status: dict[str, Any] | None) -> dict[str, Any]:
    obj: dict[str, Any] = {"apiVersion": "goreports.io/v1alpha1", "kind": "ReportRequest",
                           "metadata": {"name": "sales", "namespace": "reports", "generation": 1},
                           "spec": {"steps": []}}
    if status is not None:
        obj["status"] = status
    return obj


def folded(*events: events_pb2.StageEvent) -> dict[str, Any]:
    st = report_status.initial_status(STEPS, now="2026-03-02T08:00:00Z")
    for ev in events:
        st = report_status.fold(st, ev)
    return st


def test_pending_report_is_progressing() -> None:
    st = folded()
    assert st["phase"] == "Pending"
    assert health(RR_LUA, report(st)) == ("Progressing",
                                          "accepted; waiting for workers (step collect)")


def test_running_report_is_progressing_with_its_step() -> None:
    st = folded(event("collect", E.STEP_STATE_SUCCEEDED, 0, rows=1200),
                event("workbook", E.STEP_STATE_RUNNING, 1, rows=300))
    assert st["phase"] == "Running"
    assert health(RR_LUA, report(st)) == ("Progressing", "running workbook (step workbook)")


def test_succeeded_report_is_healthy() -> None:
    st = folded(event("collect", E.STEP_STATE_SUCCEEDED, 0, rows=1200),
                event("workbook", E.STEP_STATE_SUCCEEDED, 1, rows=1200),
                event("deliver", E.STEP_STATE_SUCCEEDED, 2))
    assert st["phase"] == "Succeeded"
    state, message = health(RR_LUA, report(st))
    ready = next(c for c in st["conditions"] if c["type"] == "Ready")
    assert state == "Healthy"
    assert message == f"{ready['message']} (1200 rows)"


def test_failed_report_is_degraded_with_reason_and_error() -> None:
    st = folded(event("collect", E.STEP_STATE_FAILED, 0, error="query 'orders' failed: no such "
                      "table: ordres", reason="QueryFailed"))
    assert st["phase"] == "Failed"
    assert health(RR_LUA, report(st)) == (
        "Degraded", "QueryFailed: collect: query 'orders' failed: no such table: ordres")


def test_rejected_spec_is_degraded() -> None:
    """What operator/reports.py writes for a spec the compiler refuses."""
    st = {"phase": "Failed", "message": "spec.steps[1].excel.sheets[0].dataset: unknown dataset",
          "conditions": [{"type": "Accepted", "status": "False", "reason": "InvalidSpec",
                          "message": "x"},
                         {"type": "Ready", "status": "False", "reason": "InvalidSpec",
                          "message": "x"}]}
    assert health(RR_LUA, report(st)) == (
        "Degraded", "InvalidSpec: spec.steps[1].excel.sheets[0].dataset: unknown dataset")


@pytest.mark.parametrize("status", [None, {}, {"phase": ""}, {"conditions": []}])
def test_report_without_status_waits_for_the_operator(status: dict[str, Any] | None) -> None:
    assert health(RR_LUA, report(status)) == (
        "Progressing", "Waiting for the go-reports operator to accept the report")


def test_unknown_phase_is_progressing_and_named() -> None:
    state, message = health(RR_LUA, report({"phase": "Paused"}))
    assert state == "Progressing" and "Paused" in message


def test_failed_report_without_message_or_conditions() -> None:
    assert health(RR_LUA, report({"phase": "Failed"})) == ("Degraded", "the report failed")


# ---------------------------------------------------------------------------- ReportSchedule

def schedule(**spec: Any) -> dict[str, Any]:
    return {"apiVersion": "goreports.io/v1alpha1", "kind": "ReportSchedule",
            "metadata": {"name": "nightly", "namespace": "reports", "generation": 2,
                         "uid": "s1", "creationTimestamp": "2026-03-01T00:00:00Z"},
            "spec": {"schedule": "0 6 * * *", "suspend": False,
                     "reportTemplate": {"spec": {"steps": []}}, **spec}}


def reconciled(obj: dict[str, Any], active: int = 0) -> dict[str, Any]:
    """The schedule with the status the operator writes after one tick."""
    children = [schedule_logic.Child(name=f"nightly-{i}", uid=f"c{i}", phase="Running",
                                     created=NOW, scheduled_at=NOW) for i in range(active)]
    plan = schedule_logic.plan(obj, children, NOW)
    out = copy.deepcopy(obj)
    out["status"] = schedule_logic.fold_status(obj, children, plan, NOW)
    return out


def test_scheduling_schedule_is_healthy() -> None:
    state, message = health(RS_LUA, reconciled(schedule()))
    assert state == "Healthy"
    assert message.startswith("next run at 2026-03-03T06:00:00Z"), message


def test_schedule_with_active_runs_says_so() -> None:
    state, message = health(RS_LUA, reconciled(schedule(), active=2))
    assert state == "Healthy" and message.endswith("; 2 run(s) active")


def test_suspended_schedule_is_suspended() -> None:
    obj = reconciled(schedule(suspend=True), active=1)
    assert any(c["type"] == "Suspended" and c["status"] == "True"
               for c in obj["status"]["conditions"])
    assert health(RS_LUA, obj) == (
        "Suspended", "spec.suspend is true: no new runs are created (1 run(s) still active)")


def test_suspend_shows_before_the_operator_reconciles() -> None:
    obj = reconciled(schedule())
    obj["spec"]["suspend"] = True
    obj["metadata"]["generation"] = 3
    assert health(RS_LUA, obj)[0] == "Suspended"


def test_resumed_schedule_waits_for_the_operator() -> None:
    """spec.suspend went back to false; the status still says Suspended (older generation)."""
    obj = reconciled(schedule(suspend=True))
    obj["spec"]["suspend"] = False
    obj["metadata"]["generation"] = 3
    assert health(RS_LUA, obj) == (
        "Progressing", "Waiting for the go-reports operator to reconcile generation 3")


@pytest.mark.parametrize("spec, reason", [({"schedule": "61 * * * *"}, "InvalidSchedule"),
                                          ({"timeZone": "Mars/Olympus"}, "InvalidTimeZone")])
def test_broken_schedule_is_degraded(spec: dict[str, Any], reason: str) -> None:
    state, message = health(RS_LUA, reconciled(schedule(**spec)))
    assert state == "Degraded"
    assert message.startswith(f"{reason}: ") and len(message) > len(reason) + 10


def test_schedule_without_status_or_ready_is_progressing() -> None:
    waiting = ("Progressing", "Waiting for the go-reports operator to reconcile the schedule")
    assert health(RS_LUA, schedule()) == waiting
    assert health(RS_LUA, {**schedule(), "status": {"conditions": []}}) == waiting
    assert health(RS_LUA, {**schedule(), "spec": {}}) == waiting


# ------------------------------------------------------------------------------ the ConfigMap

def test_argocd_cm_patch_carries_the_exact_scripts_under_the_crd_kinds() -> None:
    patch = yaml.safe_load((ARGOCD / "argocd-cm-patch.yaml").read_text())
    assert (patch["kind"], patch["metadata"]["name"]) == ("ConfigMap", "argocd-cm")
    keys = {}
    for crd_file, script in (("goreports.io_reportrequests.yaml", RR_LUA),
                             ("goreports.io_reportschedules.yaml", RS_LUA)):
        crd = yaml.safe_load((ROOT / "deploy" / "crds" / crd_file).read_text())
        key = f"resource.customizations.health.{crd['spec']['group']}_{crd['spec']['names']['kind']}"
        keys[key] = script.read_text()
    assert patch["data"] == keys, ("deploy/argocd/argocd-cm-patch.yaml differs from the .lua "
                                   "files: copy them into it again")
