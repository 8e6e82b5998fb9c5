"""ReportSchedule end to end: the schedule controller against a real kube-apiserver.

The operator runs as a subprocess (`kopf run -m goreports.operator.schedules`) with a clock file
that the test advances, so cron minutes pass in milliseconds. Nothing completes reports here (only
the schedule handlers run), so runs stay active until the test patches their status.phase.
Fails, never skips, when the control plane cannot be built or started.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/ -> `controlplane`

from controlplane.cluster import ControlPlane, build_binaries  # noqa: E402

from goreports.operator import schedule_logic as logic  # noqa: E402

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(3600)]

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "sales-schedule.yaml"
TICK = 0.3  # GOREPORTS_SCHEDULE_INTERVAL of the operator under test
WAIT = 90.0  # bounds a wait only: the first one includes kopf's start on a loaded machine

T = TypeVar("T")


@pytest.fixture(scope="module")
def cp() -> Iterator[ControlPlane]:
    bin_dir = build_binaries()  # raises (-> error, not skip) if it cannot be built
    with ControlPlane(bin_dir) as plane:
        plane.apply(ROOT / "deploy" / "crds")
        plane.wait_for_crd("reportrequests.goreports.io")
        plane.wait_for_crd("reportschedules.goreports.io")
        yield plane


class Operator:
    """The schedule controller in a subprocess, watching one namespace, on a file clock."""

    def __init__(self, cp: ControlPlane, namespace: str, workdir: Path) -> None:
        self.cp, self.namespace = cp, namespace
        self.clock_file = workdir / "clock"
        self.log_file = workdir / "operator.log"
        # Start the fake clock at the real time: the API server stamps creationTimestamp with it.
        self.set_clock(datetime.now(timezone.utc).replace(microsecond=0))
        env = dict(os.environ, KUBECONFIG=str(cp.kubeconfig),
                   GOREPORTS_CLOCK_FILE=str(self.clock_file),
                   GOREPORTS_SCHEDULE_INTERVAL=str(TICK))
        self._log = open(self.log_file, "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "kopf", "run", "--standalone", "--namespace", namespace,
             "-m", "goreports.operator.schedules", "--log-format=plain"],
            stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT, env=env,
            cwd=ROOT)

    def set_clock(self, when: datetime) -> None:
        tmp = self.clock_file.with_suffix(".tmp")
        tmp.write_text(when.astimezone(timezone.utc).isoformat())
        os.replace(tmp, self.clock_file)  # atomic: the operator never reads half a file

    def logs(self, lines: int = 60) -> str:
        text = self.log_file.read_text(errors="replace") if self.log_file.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._log.close()

    # -- cluster helpers ---------------------------------------------------------------

    def kubectl(self, *args: str, **kw: Any) -> subprocess.CompletedProcess[str]:
        return self.cp.kubectl(*args, "-n", self.namespace, **kw)

    def apply_schedule(self, name: str, **spec: Any) -> dict[str, Any]:
        doc = yaml.safe_load(EXAMPLE.read_text())
        doc["metadata"] = {"name": name, "namespace": self.namespace}
        doc["spec"].pop("startingDeadlineSeconds")  # the fake clock jumps
        doc["spec"].update({"schedule": "*/5 * * * *", "timeZone": "UTC",
                            "concurrencyPolicy": "Allow", **spec})
        self.kubectl("apply", "-f", "-", input=json.dumps(doc))
        return self.get("reportschedule", name)

    def get(self, kind: str, name: str) -> dict[str, Any]:
        return json.loads(self.kubectl("get", kind, name, "-o", "json").stdout)

    def runs(self, schedule: str) -> dict[str, dict[str, Any]]:
        out = self.kubectl("get", "reportrequests", "-l", f"{logic.SCHEDULE_LABEL}={schedule}",
                           "-o", "json").stdout
        return {o["metadata"]["name"]: o for o in json.loads(out)["items"]}

    def runs_with(self, schedule: str, run: str) -> dict[str, dict[str, Any]] | None:
        """The schedule's runs, once `run` is among them."""
        runs = self.runs(schedule)
        return runs if run in runs else None

    def finish(self, run: str, phase: str) -> None:
        self.kubectl("patch", "reportrequest", run, "--subresource=status", "--type=merge",
                     "-p", json.dumps({"status": {"phase": phase}}))

    def events(self, name: str) -> list[dict[str, Any]]:
        out = self.kubectl("get", "events", "--field-selector",
                           f"involvedObject.name={name}", "-o", "json").stdout
        return json.loads(out)["items"]

    def wait(self, what: str, probe: Callable[[], T | None], timeout: float = WAIT) -> T:
        deadline = time.monotonic() + timeout
        while True:
            got = probe()
            if got:
                return got
            if self.proc.poll() is not None:
                pytest.fail(f"operator exited ({self.proc.returncode}) while waiting for {what}"
                            f"\n{self.logs()}")
            if time.monotonic() > deadline:
                pytest.fail(f"timed out after {timeout}s waiting for {what}\n{self.logs()}")
            time.sleep(0.2)

    def settle(self) -> None:
        """Let the operator tick a few times (to show that something does NOT happen)."""
        time.sleep(TICK * 8)


@pytest.fixture
def op(cp: ControlPlane, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Operator]:
    namespace = request.node.name.replace("_", "-")[:50].strip("-").lower()
    cp.kubectl("create", "namespace", namespace)
    operator = Operator(cp, namespace, tmp_path)
    yield operator
    operator.stop()


def boundaries(schedule: dict[str, Any], count: int) -> list[datetime]:
    """The first `count` */5 times after the schedule was created."""
    created = logic.parse_time(schedule["metadata"]["creationTimestamp"])
    assert created is not None
    times, at = [], created
    for _ in range(count):
        at = logic.next_run("*/5 * * * *", "UTC", at)
        times.append(at)
    return times


def status_of(op: Operator, name: str) -> dict[str, Any]:
    return op.get("reportschedule", name).get("status") or {}


def condition(status: dict[str, Any], ctype: str) -> dict[str, Any]:
    return next((c for c in status.get("conditions") or [] if c["type"] == ctype), {})


# ------------------------------------------------------------------------------- tests


def test_allow_creates_each_run_once_with_owner_labels_and_events(op: Operator) -> None:
    sched = op.apply_schedule("sales")
    b1, b2 = boundaries(sched, 2)
    op.wait("Ready condition", lambda: condition(status_of(op, "sales"), "Ready"))
    op.settle()
    assert op.runs("sales") == {}  # nothing due before the first boundary

    op.set_clock(b1 + timedelta(seconds=1))
    first = logic.child_name("sales", b1)
    runs = op.wait(f"run {first}", lambda: op.runs("sales") or None)
    assert list(runs) == [first]
    rr = runs[first]
    template = sched["spec"]["reportTemplate"]
    assert rr["spec"] == template["spec"]
    assert rr["metadata"]["labels"] == {**template["metadata"]["labels"],
                                        logic.SCHEDULE_LABEL: "sales"}
    assert rr["metadata"]["annotations"][logic.SCHEDULED_AT_ANNOTATION] == logic.format_time(b1)
    assert rr["metadata"]["annotations"]["goreports.io/owner"] == "sales-ops@example.com"
    [owner] = rr["metadata"]["ownerReferences"]
    assert (owner["kind"], owner["name"], owner["uid"], owner["controller"],
            owner["blockOwnerDeletion"]) == ("ReportSchedule", "sales",
                                             sched["metadata"]["uid"], True, True)

    st = op.wait("status after the first run",
                 lambda: (s := status_of(op, "sales")).get("lastScheduleTime") and s)
    assert st["lastScheduleTime"] == logic.format_time(b1)
    assert st["active"] == [{"name": first, "uid": rr["metadata"]["uid"]}]
    assert st["activeCount"] == 1
    assert st["nextScheduleTime"] == logic.format_time(b2)
    assert condition(st, "Ready")["status"] == "True"
    assert condition(st, "Suspended")["status"] == "False"
    created_events = op.wait("Created event", lambda: [
        e for e in op.events("sales") if e["reason"] == "Created"])
    assert first in created_events[0]["message"]

    op.settle()
    assert list(op.runs("sales")) == [first]  # ticking again creates nothing new

    op.set_clock(b2 + timedelta(seconds=1))
    second = logic.child_name("sales", b2)
    runs = op.wait(f"run {second}", lambda: op.runs_with("sales", second))
    assert sorted(runs) == sorted([first, second])  # Allow: side by side
    st = op.wait("two active runs", lambda: (s := status_of(op, "sales")).get("activeCount") == 2
                 and s)
    assert [a["name"] for a in st["active"]] == [first, second]

    # The printer columns the CRD declares.
    table = op.kubectl("get", "rsched", "sales").stdout
    assert table.split()[:6] == ["NAME", "SCHEDULE", "SUSPEND", "ACTIVE", "LAST", "SCHEDULE"]


def test_forbid_skips_while_a_run_is_active(op: Operator) -> None:
    sched = op.apply_schedule("nightly", concurrencyPolicy="Forbid")
    b1, b2, b3 = boundaries(sched, 3)
    op.set_clock(b1 + timedelta(seconds=1))
    first = logic.child_name("nightly", b1)
    op.wait(f"run {first}", lambda: op.runs("nightly") or None)

    op.set_clock(b2 + timedelta(seconds=1))
    st = op.wait("lastSkippedTime", lambda: (s := status_of(op, "nightly")).get(
        "lastSkippedTime") and s)
    assert st["lastSkippedTime"] == logic.format_time(b2)
    assert st["lastScheduleTime"] == logic.format_time(b1)
    op.settle()
    assert list(op.runs("nightly")) == [first]
    skipped = [e for e in op.events("nightly") if e["reason"] == "Skipped"]
    assert skipped and f"{first} still active" in skipped[0]["message"]

    # Once the active run finished, the skipped run stays skipped; the next one starts on time.
    op.finish(first, "Succeeded")
    op.settle()
    assert list(op.runs("nightly")) == [first]
    op.set_clock(b3 + timedelta(seconds=1))
    third = logic.child_name("nightly", b3)
    op.wait(f"run {third}", lambda: op.runs_with("nightly", third))
    st = op.wait("active is only the third run",
                 lambda: (s := status_of(op, "nightly")).get("active") == [
                     {"name": third, "uid": op.runs("nightly")[third]["metadata"]["uid"]}] and s)
    assert st["lastSuccessfulTime"]


def test_replace_deletes_the_active_run(op: Operator) -> None:
    sched = op.apply_schedule("hourly", concurrencyPolicy="Replace")
    b1, b2 = boundaries(sched, 2)
    op.set_clock(b1 + timedelta(seconds=1))
    first, second = logic.child_name("hourly", b1), logic.child_name("hourly", b2)
    op.wait(f"run {first}", lambda: op.runs("hourly") or None)
    op.set_clock(b2 + timedelta(seconds=1))
    op.wait(f"{second} replacing {first}", lambda: list(op.runs("hourly")) == [second])
    assert any(e["reason"] == "Replaced" for e in op.events("hourly"))


def test_history_limits_prune_finished_runs(op: Operator) -> None:
    sched = op.apply_schedule("weekly", successfulRunsHistoryLimit=1, failedRunsHistoryLimit=1)
    times = boundaries(sched, 4)
    names = [logic.child_name("weekly", b) for b in times]
    for at, name in zip(times, names):
        op.set_clock(at + timedelta(seconds=1))
        op.wait(f"run {name}", lambda n=name: op.runs_with("weekly", n))
    op.finish(names[0], "Succeeded")
    op.finish(names[1], "Failed")
    op.settle()
    assert sorted(op.runs("weekly")) == sorted(names)  # within the limits: all kept
    op.finish(names[2], "Succeeded")
    op.finish(names[3], "Failed")
    op.wait("oldest finished runs pruned",
            lambda: sorted(op.runs("weekly")) == sorted(names[2:]))
    st = op.wait("no active runs", lambda: (s := status_of(op, "weekly")).get(
        "activeCount") == 0 and s)
    assert st["active"] == []
    assert any(e["reason"] == "Pruned" for e in op.events("weekly"))


def test_suspend_and_invalid_schedule(op: Operator) -> None:
    sched = op.apply_schedule("paused", suspend=True)
    b1, b2 = boundaries(sched, 2)
    op.set_clock(b1 + timedelta(seconds=1))
    st = op.wait("Suspended condition",
                 lambda: condition(s := status_of(op, "paused"), "Suspended") and s)
    assert condition(st, "Suspended")["status"] == "True"
    assert condition(st, "Ready")["reason"] == "Suspended"
    op.settle()
    assert op.runs("paused") == {}
    # The short name works ("rs" would not: kubectl resolves it to ReplicaSets).
    assert "paused" in op.kubectl("get", "rsched").stdout
    assert "paused" not in op.kubectl("get", "rs", check=False).stdout

    # Resumed: the latest missed run starts (CronJob semantics, no starting deadline set).
    # Clock first: a timer tick between the two steps must not see the schedule resumed at b1.
    op.set_clock(b2 + timedelta(seconds=1))
    op.kubectl("patch", "rsched", "paused", "--type=merge", "-p", '{"spec":{"suspend":false}}')
    op.wait("run after resume",
            lambda: list(op.runs("paused")) == [logic.child_name("paused", b2)])

    # Valid for the CRD pattern, but never fires: a condition and one Warning, no crash loop.
    op.apply_schedule("never", schedule="0 0 31 2 *")
    st = op.wait("InvalidSchedule", lambda: condition(s := status_of(op, "never"), "Ready").get(
        "reason") == "InvalidSchedule" and s)
    assert condition(st, "Ready")["status"] == "False"
    assert "0 0 31 2 *" in condition(st, "Ready")["message"]
    op.settle()
    warnings = [e for e in op.events("never") if e["reason"] == "InvalidSchedule"]
    assert len(warnings) == 1 and warnings[0]["type"] == "Warning"
    assert op.proc.poll() is None


def test_api_server_enforces_the_schedule_schema(op: Operator) -> None:
    doc = yaml.safe_load(EXAMPLE.read_text())
    doc["metadata"] = {"name": "x" * 53, "namespace": op.namespace}
    res = op.kubectl("create", "-f", "-", input=json.dumps(doc), check=False)
    assert res.returncode != 0 and "at most 52 characters" in res.stderr
    doc["metadata"]["name"] = "bad-cron"
    doc["spec"]["schedule"] = "* * * *"
    res = op.kubectl("create", "-f", "-", input=json.dumps(doc), check=False)
    assert res.returncode != 0 and "spec.schedule" in res.stderr
    doc["spec"]["schedule"] = "0 6 * * *"
    doc["spec"]["reportTemplate"]["spec"]["steps"][0]["excel"] = {"fileName": "x.xlsx"}
    res = op.kubectl("create", "-f", "-", input=json.dumps(doc), check=False)
    assert res.returncode != 0 and "exactly one stage kind" in res.stderr  # RR rules embedded

    # The example as it is; its template may change (no immutability rule); defaults apply.
    op.kubectl("apply", "-f", str(EXAMPLE))
    op.kubectl("patch", "rsched", "sales-daily", "--type=json", "-p", json.dumps([
        {"op": "replace", "path": "/spec/reportTemplate/spec/description", "value": "changed"}]))
    got = op.get("reportschedule", "sales-daily")
    assert got["spec"]["reportTemplate"]["spec"]["description"] == "changed"
    assert got["spec"]["concurrencyPolicy"] == "Forbid" and got["spec"]["suspend"] is False
    assert got["spec"]["reportTemplate"]["spec"]["deadlineSeconds"] == 1800
    assert "maxAttempts" not in got["spec"]["reportTemplate"]["spec"]  # the compiler's default
    explain = op.cp.kubectl("explain", "reportschedule.spec.concurrencyPolicy").stdout
    assert "Replace" in explain


def test_name_taken_by_a_foreign_request_then_a_run_left_by_a_crash(op: Operator) -> None:
    sched = op.apply_schedule("conflict")
    b1, b2 = boundaries(sched, 2)
    first, second = logic.child_name("conflict", b1), logic.child_name("conflict", b2)
    foreign = logic.build_child(sched, b1)
    del foreign["metadata"]["ownerReferences"]  # someone else's ReportRequest, same name
    op.kubectl("create", "-f", "-", input=json.dumps(foreign))

    op.set_clock(b1 + timedelta(seconds=1))
    st = op.wait("CreateFailed", lambda: condition(s := status_of(op, "conflict"), "Ready").get(
        "reason") == "CreateFailed" and s)
    ready = condition(st, "Ready")
    assert ready["status"] == "False" and "does not belong to this schedule" in ready["message"]
    assert "lastScheduleTime" not in st
    op.wait("CreateFailed Warning", lambda: [e for e in op.events("conflict")
                                              if e["reason"] == "CreateFailed"])

    # Freed: the same run is created at the next tick, and the schedule is Ready again.
    op.kubectl("delete", "reportrequest", first)
    rr = op.wait(f"own run {first}", lambda: (op.runs_with("conflict", first) or {}).get(first))
    assert rr["metadata"]["ownerReferences"][0]["uid"] == sched["metadata"]["uid"]
    op.wait("Ready again", lambda: condition(status_of(op, "conflict"), "Ready").get(
        "status") == "True")

    # A run that exists already (created just before an operator crash) is recorded, not
    # created again: its content stays what it was.
    left = logic.build_child(sched, b2)
    left["spec"]["description"] = "created before the crash"
    op.kubectl("create", "-f", "-", input=json.dumps(left))
    op.set_clock(b2 + timedelta(seconds=1))
    op.wait("lastScheduleTime at the second run", lambda: status_of(op, "conflict").get(
        "lastScheduleTime") == logic.format_time(b2))
    assert op.runs("conflict")[second]["spec"]["description"] == "created before the crash"
    assert not [e for e in op.events("conflict")
                if e["reason"] == "Created" and second in e["message"]]


def test_a_schedule_may_name_a_catalog_template(op: Operator) -> None:
    """A schedule's report may be a catalog reference (`template: {name, parameters}`): the real
    API server accepts it, and each run is a ReportRequest carrying that reference, which the
    report operator resolves when the run is accepted (tests/e2e/test_catalog.py)."""
    ref = {"name": "sales", "parameters": {"dispatchTo": "email", "region": "EMEA"}}
    sched = op.apply_schedule("from-catalog", reportTemplate={
        "metadata": {"labels": {"team": "sales"}}, "spec": {"template": ref}})
    assert sched["spec"]["reportTemplate"]["spec"]["template"] == ref
    b1, _ = boundaries(sched, 2)
    op.wait("Ready condition", lambda: condition(status_of(op, "from-catalog"), "Ready"))
    op.set_clock(b1 + timedelta(seconds=1))
    first = logic.child_name("from-catalog", b1)
    runs = op.wait(f"run {first}", lambda: op.runs_with("from-catalog", first))
    assert runs[first]["spec"]["template"] == ref
    assert "steps" not in runs[first]["spec"]

    # Both a template and steps: refused by the API server, as for a ReportRequest.
    doc = op.get("reportschedule", "from-catalog")
    doc["spec"]["reportTemplate"]["spec"]["steps"] = (
        yaml.safe_load(EXAMPLE.read_text())["spec"]["reportTemplate"]["spec"]["steps"])
    refused = op.kubectl("apply", "-f", "-", input=json.dumps(doc), check=False)
    assert refused.returncode != 0, refused.stdout
    assert "set exactly one of steps (a full spec) or template" in refused.stderr, refused.stderr
