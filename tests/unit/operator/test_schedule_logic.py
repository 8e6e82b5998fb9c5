"""ReportSchedule decisions without a cluster: due runs, policies, history, time zones, status."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from goreports.operator import schedule_logic as logic
from goreports.operator.schedule_logic import Child, Policy, ScheduleError

UTC = timezone.utc


def t(text: str) -> datetime:
    """A UTC time from 'YYYY-MM-DD HH:MM[:SS]'."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def schedule(**spec: Any) -> dict[str, Any]:
    status = spec.pop("status", {})
    created = spec.pop("created", "2024-01-01T10:00:00Z")
    base: dict[str, Any] = {
        "schedule": "*/5 * * * *",
        "reportTemplate": {
            "metadata": {"labels": {"team": "sales"}, "annotations": {"note": "x"}},
            "spec": {"steps": [{"name": "collect", "sqlite": {"database": "a.db"}}]},
        },
    }
    base.update(spec)
    return {
        "apiVersion": "goreports.io/v1alpha1", "kind": "ReportSchedule",
        "metadata": {"name": "sales", "namespace": "team-a", "uid": "uid-1", "generation": 2,
                     "creationTimestamp": created},
        "spec": base,
        "status": status,
    }


def run(at: str, phase: str = "", **kw: Any) -> Child:
    when = t(at)
    return Child(name=logic.child_name("sales", when), uid=f"u-{at}", phase=phase,
                 scheduled_at=when, **kw)


# ------------------------------------------------------------------------- validation


@pytest.mark.parametrize("expr, fragment", [
    ("* * * *", "has 4 fields, not 5"),
    ("0 * * * * *", "has 6 fields, not 5"),
    ("61 * * * *", "not a valid cron expression"),
    ("0 0 31 2 *", "not a valid cron expression"),   # parses, never fires
    ("H * * * *", "not a valid cron expression"),
    ("@fortnightly", "not a known macro"),
    ("", "is empty"),
    ("every day", "has 2 fields"),
])
def test_invalid_cron_is_a_clear_error(expr: str, fragment: str) -> None:
    with pytest.raises(ScheduleError) as err:
        logic.parse_schedule(expr, "UTC")
    assert err.value.reason == "InvalidSchedule"
    assert fragment in str(err.value)
    assert "spec.schedule" in str(err.value) and "e.g. '0 6 * * 1-5'" in str(err.value)


def test_invalid_time_zone_is_a_clear_error() -> None:
    with pytest.raises(ScheduleError) as err:
        logic.parse_schedule("0 6 * * *", "Mars/Olympus")
    assert err.value.reason == "InvalidTimeZone"
    assert "spec.timeZone 'Mars/Olympus'" in str(err.value)


@pytest.mark.parametrize("expr", ["*/5 * * * *", "0 6 * * 1-5", "0 0 1 JAN *", "0 0 L * *",
                                  "0 9 * * MON#1", "@hourly", "@daily", "@midnight", "@yearly",
                                  "  0 6 * * *  "])
def test_valid_cron(expr: str) -> None:
    logic.parse_schedule(expr, None)


# --------------------------------------------------------------------------- due runs


def test_due_runs_lists_missed_times_oldest_first() -> None:
    assert logic.due_runs("*/5 * * * *", "UTC", t("2024-01-01 10:00"), t("2024-01-01 10:12")) \
        == [t("2024-01-01 10:05"), t("2024-01-01 10:10")]


def test_due_runs_window_is_open_at_the_start_and_closed_at_now() -> None:
    # The last handled time itself is not due again; a time equal to now is due.
    assert logic.due_runs("*/5 * * * *", "UTC", t("2024-01-01 10:05"), t("2024-01-01 10:10")) \
        == [t("2024-01-01 10:10")]
    assert logic.due_runs("*/5 * * * *", "UTC", t("2024-01-01 10:05"),
                          t("2024-01-01 10:09:59.999")) == []


def test_due_runs_empty_when_clock_is_behind() -> None:
    assert logic.due_runs("* * * * *", "UTC", t("2024-01-01 10:05"), t("2024-01-01 10:00")) == []


def test_starting_deadline_drops_late_runs() -> None:
    since, now = t("2024-01-01 10:00"), t("2024-01-01 10:12")
    # 10:10 is 120 s late: within 150 s, beyond 100 s.
    assert logic.due_runs("*/5 * * * *", "UTC", since, now, 150) == [t("2024-01-01 10:10")]
    assert logic.due_runs("*/5 * * * *", "UTC", since, now, 100) == []
    assert logic.due_runs("*/5 * * * *", "UTC", since, now, 600) == [t("2024-01-01 10:05"),
                                                                     t("2024-01-01 10:10")]


def test_more_than_100_missed_runs_gives_only_the_latest() -> None:
    since = t("2024-01-01 00:00")
    exactly = logic.scan_runs("* * * * *", "UTC", since, since + timedelta(minutes=100))
    assert len(exactly.times) == 100 and not exactly.truncated
    many = logic.scan_runs("* * * * *", "UTC", since, t("2024-01-03 07:42:30"))
    assert many.truncated and many.times == (t("2024-01-03 07:42"),)
    # A run exactly at `now` is the latest one.
    at_now = logic.scan_runs("*/5 * * * *", "UTC", since, t("2024-01-05 00:00"))
    assert at_now.truncated and at_now.times == (t("2024-01-05 00:00"),)
    assert logic.due_runs("*/5 * * * *", "UTC", since, t("2024-01-05 00:04")) \
        == [t("2024-01-05 00:00")]


def test_time_zone_moves_the_utc_time_with_dst() -> None:
    winter = logic.due_runs("0 6 * * *", "Europe/Berlin", t("2024-01-15 00:00"),
                            t("2024-01-16 00:00"))
    summer = logic.due_runs("0 6 * * *", "Europe/Berlin", t("2024-07-15 00:00"),
                            t("2024-07-16 00:00"))
    assert winter == [t("2024-01-15 05:00")]
    assert summer == [t("2024-07-15 04:00")]
    ny = logic.due_runs("30 9 * * 1-5", "America/New_York", t("2024-03-08 00:00"),
                        t("2024-03-12 00:00"))  # Fri, (weekend, DST starts Sun), Mon
    assert ny == [t("2024-03-08 14:30"), t("2024-03-11 13:30")]


def test_dst_spring_forward_runs_a_skipped_time_once_after_the_gap() -> None:
    # Europe/Berlin 2024-03-31: 02:00 -> 03:00 local (01:00 UTC).
    daily = logic.due_runs("30 2 * * *", "Europe/Berlin", t("2024-03-30 12:00"),
                           t("2024-04-01 12:00"))
    assert daily == [t("2024-03-31 01:00"),   # 03:00 CEST: right after the gap, once
                     t("2024-04-01 00:30")]   # 02:30 CEST the next day
    halfhourly = logic.due_runs("*/30 * * * *", "Europe/Berlin", t("2024-03-30 23:50"),
                                t("2024-03-31 01:40"))
    assert halfhourly == [t("2024-03-31 00:00"), t("2024-03-31 00:30"), t("2024-03-31 01:00"),
                          t("2024-03-31 01:30")]  # local 01:00, 01:30, 03:00, 03:30


def test_dst_fall_back_runs_a_repeated_time_twice() -> None:
    # Europe/Berlin 2024-10-27: 03:00 CEST -> 02:00 CET (01:00 UTC); 02:30 happens twice.
    daily = logic.due_runs("30 2 * * *", "Europe/Berlin", t("2024-10-26 12:00"),
                           t("2024-10-27 12:00"))
    assert daily == [t("2024-10-27 00:30"), t("2024-10-27 01:30")]
    names = {logic.child_name("sales", d) for d in daily}
    assert len(names) == 2  # each instant is its own run


def test_next_run() -> None:
    assert logic.next_run("0 6 * * 1-5", "Europe/Berlin", t("2024-01-05 06:00")) \
        == t("2024-01-08 05:00")  # Fri 07:00 CET -> Mon 06:00 CET


# ------------------------------------------------------------------------------ names


def test_child_name_is_the_unix_minute() -> None:
    at = t("2024-01-01 10:05")
    assert logic.child_name("sales", at) == f"sales-{int(at.timestamp()) // 60}" == "sales-28401725"
    assert logic.child_name("sales", at + timedelta(seconds=59)) == "sales-28401725"
    assert logic.time_from_name("sales-28401725") == at
    assert logic.time_from_name("sales") is None


def test_child_from_body() -> None:
    obj = {"metadata": {"name": "sales-28401725", "uid": "u1",
                        "creationTimestamp": "2024-01-01T10:05:02Z",
                        "annotations": {logic.SCHEDULED_AT_ANNOTATION: "2024-01-01T10:05:00Z"}},
           "status": {"phase": "Succeeded", "completionTime": "2024-01-01T10:06:00Z"}}
    c = logic.child_from_body(obj)
    assert (c.name, c.uid, c.phase, c.finished, c.active) == \
        ("sales-28401725", "u1", "Succeeded", True, False)
    assert c.scheduled_at == t("2024-01-01 10:05") and c.completed == t("2024-01-01 10:06")
    pending = logic.child_from_body({"metadata": {"name": "x-1"}})
    assert pending.active and not pending.finished and pending.phase == ""
    running = logic.child_from_body({"metadata": {"name": "x-1"}, "status": {"phase": "Running"}})
    assert running.active
    going = logic.child_from_body({"metadata": {"name": "x-1", "deletionTimestamp": "2024"}})
    assert not going.active


def test_build_child() -> None:
    body = schedule()
    body["spec"]["reportTemplate"]["metadata"]["labels"][logic.SCHEDULE_LABEL] = "forged"
    at = t("2024-01-01 10:05")
    rr = logic.build_child(body, at)
    assert rr["apiVersion"] == "goreports.io/v1alpha1" and rr["kind"] == "ReportRequest"
    meta = rr["metadata"]
    assert meta["name"] == "sales-28401725" and meta["namespace"] == "team-a"
    assert meta["labels"] == {"team": "sales", logic.SCHEDULE_LABEL: "sales"}
    assert meta["annotations"] == {"note": "x",
                                   logic.SCHEDULED_AT_ANNOTATION: "2024-01-01T10:05:00Z"}
    assert meta["ownerReferences"] == [{
        "apiVersion": "goreports.io/v1alpha1", "kind": "ReportSchedule", "name": "sales",
        "uid": "uid-1", "controller": True, "blockOwnerDeletion": True}]
    assert rr["spec"] == body["spec"]["reportTemplate"]["spec"]
    rr["spec"]["steps"].clear()  # a copy, not the template itself
    assert body["spec"]["reportTemplate"]["spec"]["steps"]
    assert logic.owned_by(rr, "uid-1") and not logic.owned_by(rr, "uid-2")


# ----------------------------------------------------------------------------- policies


def test_decide_nothing_due() -> None:
    d = logic.decide(Policy.FORBID, [run("2024-01-01 10:00")], None)
    assert not d.create and d.delete == () and d.reason == "NothingDue"


@pytest.mark.parametrize("policy", list(Policy))
def test_decide_without_active_runs_always_creates(policy: Policy) -> None:
    d = logic.decide(policy, [], t("2024-01-01 10:05"))
    assert d.create and d.delete == () and d.reason == "Scheduled"


def test_allow_runs_side_by_side() -> None:
    d = logic.decide("Allow", [run("2024-01-01 10:00")], t("2024-01-01 10:05"))
    assert d.create and d.delete == ()


def test_forbid_skips_while_one_is_active() -> None:
    d = logic.decide("Forbid", [run("2024-01-01 10:00")], t("2024-01-01 10:05"))
    assert not d.create and d.reason == "Skipped"
    assert "sales-28401720 still active" in d.message and "2024-01-01T10:05:00Z" in d.message


def test_replace_deletes_the_active_ones_then_creates() -> None:
    active = [run("2024-01-01 10:00"), run("2024-01-01 10:05")]
    d = logic.decide("Replace", active, t("2024-01-01 10:10"))
    assert d.create and d.delete == ("sales-28401720", "sales-28401725")
    assert d.reason == "Replaced"


def test_unknown_policy_is_refused() -> None:
    with pytest.raises(ValueError):
        logic.decide("Sometimes", [], t("2024-01-01 10:05"))


# ------------------------------------------------------------------------------ history


def test_prune_keeps_the_newest_per_phase_and_returns_oldest_first() -> None:
    children = [
        run("2024-01-01 10:00", "Succeeded"), run("2024-01-01 10:05", "Failed"),
        run("2024-01-01 10:10", "Succeeded"), run("2024-01-01 10:15", "Succeeded"),
        run("2024-01-01 10:20", "Failed"), run("2024-01-01 10:25", "Succeeded"),
        run("2024-01-01 10:30", "Running"), run("2024-01-01 09:00", ""),  # active: never pruned
    ]
    names = logic.prune(children, success_limit=2, failed_limit=1)
    assert names == [logic.child_name("sales", t("2024-01-01 10:00")),
                     logic.child_name("sales", t("2024-01-01 10:05")),
                     logic.child_name("sales", t("2024-01-01 10:10"))]
    assert logic.prune(children, 10, 10) == []
    assert len(logic.prune(children, 0, 0)) == 6


def test_prune_orders_by_scheduled_time_then_creation() -> None:
    # No annotation: the name's minute decides; a foreign name falls back to creation time.
    a = Child(name="sales-28401720", phase="Succeeded")                     # 10:00
    b = Child(name="sales-28401730", phase="Succeeded")                     # 10:10
    c = Child(name="renamed", phase="Succeeded", created=t("2024-01-01 10:05"))
    assert logic.prune([b, c, a], 1, 1) == ["sales-28401720", "renamed"]


def test_prune_ignores_runs_being_deleted() -> None:
    children = [run("2024-01-01 10:00", "Succeeded", deleting=True),
                run("2024-01-01 10:05", "Succeeded")]
    assert logic.prune(children, 1, 1) == []


# ------------------------------------------------------------------------------- plan


def test_plan_first_run_counts_from_creation() -> None:
    body = schedule(created="2024-01-01T10:03:00Z")
    p = logic.plan(body, [], t("2024-01-01 10:04"))
    assert p.create is None and p.due is None and p.next_time == t("2024-01-01 10:05")
    p = logic.plan(body, [], t("2024-01-01 10:05:01"))
    assert p.create is not None and p.create["metadata"]["name"] == "sales-28401725"
    assert p.last_schedule_time == t("2024-01-01 10:05") and p.events == []
    assert p.next_time == t("2024-01-01 10:10")
    assert p.ready == ("True", "Scheduling",
                       "next run at 2024-01-01T10:10:00Z (schedule '*/5 * * * *' in UTC)")


def test_plan_missed_runs_start_only_the_latest() -> None:
    body = schedule(status={"lastScheduleTime": "2024-01-01T10:05:00Z"})
    p = logic.plan(body, [], t("2024-01-01 10:31"))
    assert p.create["metadata"]["name"] == logic.child_name("sales", t("2024-01-01 10:30"))
    [ev] = p.events
    assert (ev.type, ev.reason) == ("Warning", "MissedSchedule")
    assert ev.message.startswith("4 earlier run(s) were missed")


def test_plan_existing_run_is_recorded_not_created_again() -> None:
    # The operator created the run, then died before writing status: no second run, and a
    # Forbid policy does not mistake the run for a competitor.
    body = schedule(concurrencyPolicy="Forbid",
                    status={"lastScheduleTime": "2024-01-01T10:00:00Z"})
    p = logic.plan(body, [run("2024-01-01 10:05")], t("2024-01-01 10:06"))
    assert p.create is None and p.last_schedule_time == t("2024-01-01 10:05")
    assert p.last_skipped_time is None and p.events == []


def test_plan_forbid_skips_and_does_not_retry_the_skipped_run() -> None:
    body = schedule(concurrencyPolicy="Forbid",
                    status={"lastScheduleTime": "2024-01-01T10:00:00Z"})
    active = [run("2024-01-01 10:00", "Running")]
    p = logic.plan(body, active, t("2024-01-01 10:06"))
    assert p.create is None and p.last_skipped_time == t("2024-01-01 10:05")
    assert p.last_schedule_time == t("2024-01-01 10:00")
    assert [e.reason for e in p.events] == ["Skipped"]
    # Next tick: the run finished, but 10:05 stays skipped; 10:10 starts on time.
    body["status"]["lastSkippedTime"] = "2024-01-01T10:05:00Z"
    done = [run("2024-01-01 10:00", "Succeeded")]
    assert logic.plan(body, done, t("2024-01-01 10:08")).create is None
    p = logic.plan(body, done, t("2024-01-01 10:10"))
    assert p.create["metadata"]["name"] == logic.child_name("sales", t("2024-01-01 10:10"))


def test_plan_replace() -> None:
    body = schedule(concurrencyPolicy="Replace",
                    status={"lastScheduleTime": "2024-01-01T10:00:00Z"})
    p = logic.plan(body, [run("2024-01-01 10:00", "Running"), run("2024-01-01 09:55", "Failed")],
                   t("2024-01-01 10:05"))
    assert p.replace == ["sales-28401720"] and p.create is not None
    assert [e.reason for e in p.events] == ["Replaced"]


def test_plan_suspend_creates_nothing_and_keeps_the_missed_runs() -> None:
    body = schedule(suspend=True, status={"lastScheduleTime": "2024-01-01T10:00:00Z"})
    p = logic.plan(body, [run("2024-01-01 09:00", "Succeeded")] * 1, t("2024-01-01 10:20"))
    assert p.create is None and p.suspended
    assert p.ready == ("True", "Suspended", "spec.suspend is true: no new runs are created")
    assert p.last_schedule_time == t("2024-01-01 10:00") and p.last_skipped_time is None
    # Resumed: the most recent missed run starts (CronJob semantics) ...
    body["spec"]["suspend"] = False
    p = logic.plan(body, [], t("2024-01-01 10:21"))
    assert p.due == t("2024-01-01 10:20") and p.create is not None
    # ... unless it is past the starting deadline.
    body["spec"]["startingDeadlineSeconds"] = 30
    assert logic.plan(body, [], t("2024-01-01 10:21")).create is None


def test_plan_history_limits() -> None:
    body = schedule(successfulRunsHistoryLimit=1, failedRunsHistoryLimit=0,
                    status={"lastScheduleTime": "2024-01-01T10:10:00Z"})
    children = [run("2024-01-01 10:00", "Succeeded"), run("2024-01-01 10:05", "Failed"),
                run("2024-01-01 10:10", "Succeeded")]
    p = logic.plan(body, children, t("2024-01-01 10:11"))
    assert p.prune == ["sales-28401720", "sales-28401725"]


def test_plan_defaults_keep_3_succeeded_and_1_failed() -> None:
    body = schedule(status={"lastScheduleTime": "2024-01-01T11:00:00Z"})
    children = [run(f"2024-01-01 10:{m:02d}", "Succeeded") for m in range(0, 30, 5)]
    children += [run(f"2024-01-01 10:{m:02d}", "Failed") for m in range(30, 45, 5)]
    p = logic.plan(body, children, t("2024-01-01 11:01"))
    assert len(p.prune) == 3 + 2


def test_plan_invalid_schedule_sets_ready_false_and_still_prunes() -> None:
    body = schedule(schedule="*/5 * * *", failedRunsHistoryLimit=0)
    p = logic.plan(body, [run("2024-01-01 10:00", "Failed")], t("2024-01-01 10:11"))
    assert p.create is None and p.ready[0:2] == ("False", "InvalidSchedule")
    assert "has 4 fields" in p.ready[2]
    assert p.prune == ["sales-28401720"]
    p = logic.plan(schedule(timeZone="Nowhere/Land"), [], t("2024-01-01 10:11"))
    assert p.ready[0:2] == ("False", "InvalidTimeZone") and p.create is None


def test_plan_time_zone() -> None:
    body = schedule(schedule="0 6 * * *", timeZone="Asia/Tokyo",
                    status={"lastScheduleTime": "2024-01-01T21:00:00Z"})
    p = logic.plan(body, [], t("2024-01-02 21:00"))  # 06:00 JST on Jan 3
    assert p.due == t("2024-01-02 21:00") and p.next_time == t("2024-01-03 21:00")
    assert p.create["metadata"]["annotations"][logic.SCHEDULED_AT_ANNOTATION] \
        == "2024-01-02T21:00:00Z"


def test_simulated_day_hourly_allow_with_history() -> None:
    """Many ticks against an in-memory cluster: one run per hour, never twice, history bounded."""
    body = schedule(schedule="0 * * * *", successfulRunsHistoryLimit=2,
                    created="2024-01-01T00:00:30Z")
    cluster: dict[str, Child] = {}
    created: list[str] = []
    now = t("2024-01-01 00:00:30")
    while now < t("2024-01-02 00:00:30"):
        now += timedelta(seconds=50)
        p = logic.plan(body, list(cluster.values()), now)
        for name in p.prune:
            del cluster[name]
        if p.create:
            name = p.create["metadata"]["name"]
            assert name not in cluster
            created.append(name)
            cluster[name] = logic.child_from_body(p.create)
        # every run finishes by the next tick
        cluster = {n: Child(**{**c.__dict__, "phase": "Succeeded"}) for n, c in cluster.items()}
        body["status"] = logic.fold_status(body, list(cluster.values()), p, now)
    assert len(created) == 24 and len(set(created)) == 24
    assert created[0] == logic.child_name("sales", t("2024-01-01 01:00"))
    # The last run finished after the last prune: two kept plus that one.
    assert len(cluster) == 3
    assert logic.plan(body, list(cluster.values()), now).prune == [created[-3]]
    assert body["status"]["lastScheduleTime"] == "2024-01-02T00:00:00Z"


# ----------------------------------------------------------------------------- status


def test_fold_status_and_minimal_patch() -> None:
    body = schedule(status={"lastScheduleTime": "2024-01-01T10:00:00Z",
                            "lastSuccessfulTime": "2024-01-01T09:00:00Z",
                            "kopf": {"keep": "me"}})
    children = [run("2024-01-01 10:00", "Succeeded", completed=t("2024-01-01 10:02")),
                run("2024-01-01 10:05", "Running"), run("2024-01-01 09:50", "Pending"),
                run("2024-01-01 09:45", "", deleting=True)]
    now = t("2024-01-01 10:06")
    p = logic.plan(body, children, now)
    status = logic.fold_status(body, children, p, now)
    assert status["observedGeneration"] == 2
    assert [a["name"] for a in status["active"]] == [
        logic.child_name("sales", t("2024-01-01 09:50")),
        logic.child_name("sales", t("2024-01-01 10:05"))]
    assert status["active"][0]["uid"] == "u-2024-01-01 09:50"
    assert status["activeCount"] == 2
    assert status["lastSuccessfulTime"] == "2024-01-01T10:02:00Z"
    assert status["lastScheduleTime"] == "2024-01-01T10:05:00Z"
    assert status["nextScheduleTime"] == "2024-01-01T10:10:00Z"
    assert "lastSkippedTime" not in status
    conds = {c["type"]: c for c in status["conditions"]}
    assert conds["Ready"]["status"] == "True" and conds["Ready"]["reason"] == "Scheduling"
    assert conds["Ready"]["lastTransitionTime"] == "2024-01-01T10:06:00Z"
    assert conds["Suspended"]["status"] == "False"
    assert conds["Ready"]["observedGeneration"] == 2

    patch = logic.status_patch(body["status"], status)
    assert "kopf" not in patch and "lastSuccessfulTime" in patch
    body["status"] = {**body["status"], **patch}
    # Nothing changed: an empty patch (no status churn every tick), transition times kept.
    later = t("2024-01-01 10:07")
    again = logic.fold_status(body, children, logic.plan(body, children, later), later)
    assert logic.status_patch(body["status"], again) == {}
    # Suspending flips one condition and stamps only it.
    body["spec"]["suspend"] = True
    p = logic.plan(body, children, later)
    suspended = logic.fold_status(body, children, p, later)
    patch = logic.status_patch(body["status"], suspended)
    assert list(patch) == ["conditions"]
    conds = {c["type"]: c for c in suspended["conditions"]}
    assert conds["Suspended"]["status"] == "True"
    assert conds["Suspended"]["lastTransitionTime"] == "2024-01-01T10:07:00Z"
    assert conds["Ready"]["lastTransitionTime"] == "2024-01-01T10:06:00Z"
    assert conds["Ready"]["reason"] == "Suspended"


def test_status_patch_deletes_dropped_keys() -> None:
    assert logic.status_patch({"lastSkippedTime": "x", "other": 1}, {}) == {"lastSkippedTime": None}
    assert logic.status_patch(None, {"activeCount": 0}) == {"activeCount": 0}


def test_time_helpers() -> None:
    assert logic.format_time(datetime(2024, 1, 1, 12, 0, 5, 999, tzinfo=UTC)) \
        == "2024-01-01T12:00:05Z"
    assert logic.parse_time("2024-01-01T12:00:05Z") == datetime(2024, 1, 1, 12, 0, 5, tzinfo=UTC)
    assert logic.parse_time("2024-01-01T14:00:05+02:00") == datetime(2024, 1, 1, 12, 0, 5,
                                                                      tzinfo=UTC)
    assert logic.parse_time("yesterday") is None and logic.parse_time(None) is None
