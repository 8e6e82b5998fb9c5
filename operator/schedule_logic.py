"""What a ReportSchedule should do now: plain functions over plain data, no I/O.

Why: the decisions of a cron controller (which runs are due, whether the concurrency policy lets
one start, which finished runs to forget, what the status says) are where the bugs hide, so they
live here and are tested without a cluster; `schedules.py` only fetches, applies and patches.

The rules follow the Kubernetes CronJob controller:

* Runs due are the cron times in (last handled time, now]; the last handled time is the
  latest of `status.lastScheduleTime` and `status.lastSkippedTime`, else the schedule's
  creation time. With `startingDeadlineSeconds`, times older than now minus the deadline are
  dropped. When several runs are due (operator down, schedule suspended), only the most recent
  one starts; the older ones are reported as missed. More than 100 missed runs are not listed.
* A run's ReportRequest is named `<schedule>-<unix minute of its time>`, so a restart or a second
  operator cannot start the same run twice: creating an existing name is a 409, and the run is
  already there.
* Forbid skips a due run while another run is active (and records it in lastSkippedTime, so the
  run is really skipped, not delayed as CronJob does); Replace deletes the active runs first.

Time zones: cron fields are matched in `spec.timeZone` (croniter over zoneinfo); every time that
leaves this module is UTC. Daylight saving time, as croniter handles it (tests pin it): a time
inside a skipped hour (02:30 when clocks jump 02:00 -> 03:00) runs once, at the first valid
instant after the gap (03:00); a time inside a repeated hour (02:30 when clocks fall back 03:00
-> 02:00) matches twice, at both instants, and each gets its own run (their UTC minutes differ).
"""
from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from enum import Enum
from typing import Any, Iterable, Mapping, Sequence
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter
from croniter.croniter import CroniterError

from goreports.core.status import set_condition

GROUP = "goreports.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
PLURAL = "reportschedules"
KIND = "ReportSchedule"
CHILD_PLURAL = "reportrequests"
CHILD_KIND = "ReportRequest"

SCHEDULE_LABEL = "goreports.io/schedule"
SCHEDULED_AT_ANNOTATION = "goreports.io/scheduled-at"

# Like CronJob: beyond this many missed runs, stop listing them and start only the latest.
MAX_MISSED = 100
DEFAULT_TIME_ZONE = "UTC"
DEFAULT_SUCCESS_LIMIT = 3
DEFAULT_FAILED_LIMIT = 1
FINISHED_PHASES = frozenset({"Succeeded", "Failed"})

# The status keys this controller owns (anything else in status is left alone).
STATUS_KEYS = ("lastScheduleTime", "lastSkippedTime", "lastSuccessfulTime", "nextScheduleTime",
               "active", "activeCount", "conditions", "observedGeneration")

_MACROS = frozenset({"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight",
                     "@hourly"})


class Policy(str, Enum):
    """spec.concurrencyPolicy."""

    ALLOW = "Allow"
    FORBID = "Forbid"
    REPLACE = "Replace"


class ScheduleError(ValueError):
    """spec.schedule or spec.timeZone cannot be used; `reason` is the condition reason."""

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


# ------------------------------------------------------------------------------------ times


def format_time(value: datetime) -> str:
    """RFC 3339 in UTC, second precision (what Kubernetes writes)."""
    return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(value: Any) -> datetime | None:
    """An RFC 3339 string (or datetime) as aware UTC; None for missing or unreadable values."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)).astimezone(
        timezone.utc)


def _latest(*values: datetime | None) -> datetime | None:
    present = [v for v in values if v is not None]
    return max(present) if present else None


# --------------------------------------------------------------------------------- schedule


def parse_schedule(schedule: str, tz: str | None = None) -> ZoneInfo:
    """Check a 5-field cron expression (or @hourly, @daily, ...) and an IANA time zone.

    Returns the zone; raises ScheduleError (reason InvalidSchedule or InvalidTimeZone) with a
    message that says what to fix.
    """
    tz_name = tz or DEFAULT_TIME_ZONE
    try:
        zone = ZoneInfo(tz_name)
    except (ZoneInfoNotFoundError, ValueError) as e:
        raise ScheduleError(f"spec.timeZone {tz_name!r} is not a known IANA time zone; use a "
                            f"name like 'Europe/Berlin' or 'UTC'", reason="InvalidTimeZone") from e
    expr = (schedule or "").strip()
    hint = ("use 5 fields 'minute hour day-of-month month day-of-week' in spec.timeZone, "
            "e.g. '0 6 * * 1-5', or @hourly/@daily/@weekly/@monthly/@yearly")
    if not expr:
        raise ScheduleError(f"spec.schedule is empty: {hint}", reason="InvalidSchedule")
    fields = expr.split()
    if expr.startswith("@"):
        if expr not in _MACROS:
            raise ScheduleError(f"spec.schedule {expr!r} is not a known macro: {hint}",
                                reason="InvalidSchedule")
    elif len(fields) != 5:
        raise ScheduleError(f"spec.schedule {expr!r} has {len(fields)} fields, not 5: {hint}",
                            reason="InvalidSchedule")
    try:
        # One next time proves the expression parses and can ever fire ('0 0 31 2 *' cannot).
        croniter(expr, datetime(2000, 1, 1, tzinfo=zone)).get_next(datetime)
    except (CroniterError, ValueError, KeyError) as e:
        raise ScheduleError(f"spec.schedule {expr!r} is not a valid cron expression ({e}): "
                            f"{hint}", reason="InvalidSchedule") from e
    return zone


@dataclass(frozen=True)
class DueRuns:
    """Cron times in the window, oldest first; `truncated` when more than MAX_MISSED were due
    (then `times` holds only the most recent)."""

    times: tuple[datetime, ...]
    truncated: bool = False

    @property
    def latest(self) -> datetime | None:
        return self.times[-1] if self.times else None


def scan_runs(schedule: str, tz: str | None, last_schedule_time: datetime, now: datetime,
              starting_deadline: float | None = None) -> DueRuns:
    """Cron times t with earliest < t <= now, where earliest is `last_schedule_time` raised to
    now - starting_deadline when a deadline is set. Work is bounded by MAX_MISSED."""
    zone = parse_schedule(schedule, tz)
    expr = schedule.strip()
    earliest = last_schedule_time.astimezone(timezone.utc)
    if starting_deadline is not None:
        earliest = max(earliest, now - timedelta(seconds=starting_deadline))
    if earliest >= now:
        return DueRuns(())
    it = croniter(expr, earliest.astimezone(zone))
    times: list[datetime] = []
    while True:
        t = it.get_next(datetime).astimezone(timezone.utc)
        if t > now:
            return DueRuns(tuple(times))
        if len(times) == MAX_MISSED:
            break
        times.append(t)
    # Too many: only the most recent one counts. get_prev from the next whole second after
    # `now` (floored) finds a time equal to `now` too.
    ref = now.replace(microsecond=0) + timedelta(seconds=1)
    latest = croniter(expr, ref.astimezone(zone)).get_prev(datetime).astimezone(timezone.utc)
    return DueRuns((latest,), truncated=True)


def due_runs(schedule: str, tz: str | None, last_schedule_time: datetime, now: datetime,
             starting_deadline: float | None = None) -> list[datetime]:
    """Missed and current run times, oldest first (UTC). `last_schedule_time` is the last time
    already handled, or the schedule's creation time. More than MAX_MISSED: only the latest."""
    return list(scan_runs(schedule, tz, last_schedule_time, now, starting_deadline).times)


def next_run(schedule: str, tz: str | None, after: datetime) -> datetime:
    """The first cron time strictly after `after` (UTC)."""
    zone = parse_schedule(schedule, tz)
    return croniter(schedule.strip(), after.astimezone(zone)).get_next(datetime).astimezone(
        timezone.utc)


# ----------------------------------------------------------------------------------- runs


def child_name(schedule_name: str, scheduled_at: datetime) -> str:
    """The ReportRequest name of the run at `scheduled_at`: `<schedule>-<unix minutes>`."""
    return f"{schedule_name}-{int(scheduled_at.timestamp()) // 60}"


_CHILD_NAME = re.compile(r"^(?P<schedule>.+)-(?P<minute>\d+)$")


def time_from_name(name: str) -> datetime | None:
    """The scheduled time encoded in a run's name (None if it is not one)."""
    m = _CHILD_NAME.match(name)
    return datetime.fromtimestamp(int(m["minute"]) * 60, timezone.utc) if m else None


@dataclass(frozen=True)
class Child:
    """What the schedule needs to know about one of its ReportRequests."""

    name: str
    uid: str = ""
    phase: str = ""
    scheduled_at: datetime | None = None
    created: datetime | None = None
    completed: datetime | None = None
    deleting: bool = False

    @property
    def finished(self) -> bool:
        return self.phase in FINISHED_PHASES

    @property
    def active(self) -> bool:
        """Counts against the concurrency policy: not finished and not being deleted."""
        return not self.finished and not self.deleting

    @property
    def sort_time(self) -> datetime:
        return (self.scheduled_at or time_from_name(self.name) or self.created
                or datetime.min.replace(tzinfo=timezone.utc))


def child_from_body(obj: Mapping[str, Any]) -> Child:
    """A Child from a ReportRequest object as the API returns it."""
    meta = obj.get("metadata") or {}
    status = obj.get("status") or {}
    return Child(
        name=meta.get("name", ""),
        uid=meta.get("uid", ""),
        phase=status.get("phase") or "",
        scheduled_at=parse_time((meta.get("annotations") or {}).get(SCHEDULED_AT_ANNOTATION)),
        created=parse_time(meta.get("creationTimestamp")),
        completed=parse_time(status.get("completionTime")),
        deleting=bool(meta.get("deletionTimestamp")),
    )


def owned_by(obj: Mapping[str, Any], owner_uid: str) -> bool:
    """True when `owner_uid` is the controller owner of `obj`."""
    refs = (obj.get("metadata") or {}).get("ownerReferences") or []
    return any(r.get("uid") == owner_uid and r.get("controller") for r in refs)


@dataclass(frozen=True)
class Decision:
    """What the concurrency policy says about a due run."""

    create: bool
    delete: tuple[str, ...] = ()
    reason: str = ""
    message: str = ""


def decide(policy: Policy | str, active: Sequence[Child], due: datetime | None) -> Decision:
    """Apply spec.concurrencyPolicy to one due run, given the active runs."""
    if due is None:
        return Decision(False, reason="NothingDue", message="no run is due")
    policy = Policy(policy)
    at = format_time(due)
    names = tuple(c.name for c in active)
    if policy is Policy.FORBID and names:
        return Decision(False, reason="Skipped",
                        message=f"run at {at} skipped: concurrencyPolicy is Forbid and "
                                f"{', '.join(names)} still active")
    if policy is Policy.REPLACE and names:
        return Decision(True, delete=names, reason="Replaced",
                        message=f"run at {at} replaces {', '.join(names)} "
                                f"(concurrencyPolicy is Replace)")
    return Decision(True, reason="Scheduled", message=f"run at {at} starts")


def prune(children: Iterable[Child], success_limit: int, failed_limit: int) -> list[str]:
    """Finished runs beyond the history limits (the oldest ones), oldest first."""
    doomed: list[Child] = []
    for phase, limit in (("Succeeded", success_limit), ("Failed", failed_limit)):
        done = sorted((c for c in children if c.phase == phase and not c.deleting),
                      key=lambda c: (c.sort_time, c.name), reverse=True)
        doomed += done[max(limit, 0):]
    return [c.name for c in sorted(doomed, key=lambda c: (c.sort_time, c.name))]


def build_child(schedule: Mapping[str, Any], scheduled_at: datetime) -> dict[str, Any]:
    """The ReportRequest of the run at `scheduled_at`: reportTemplate plus the schedule's label,
    scheduled-at annotation and controller owner reference (garbage collection, `kubectl tree`)."""
    meta = schedule["metadata"]
    template = (schedule.get("spec") or {}).get("reportTemplate") or {}
    tmeta = template.get("metadata") or {}
    return {
        "apiVersion": API_VERSION,
        "kind": CHILD_KIND,
        "metadata": {
            "name": child_name(meta["name"], scheduled_at),
            "namespace": meta.get("namespace"),
            "labels": {**(tmeta.get("labels") or {}), SCHEDULE_LABEL: meta["name"]},
            "annotations": {**(tmeta.get("annotations") or {}),
                            SCHEDULED_AT_ANNOTATION: format_time(scheduled_at)},
            "ownerReferences": [{
                "apiVersion": API_VERSION, "kind": KIND, "name": meta["name"],
                "uid": meta["uid"], "controller": True, "blockOwnerDeletion": True,
            }],
        },
        "spec": copy.deepcopy(template.get("spec") or {}),
    }


# ----------------------------------------------------------------------------------- plan


@dataclass(frozen=True)
class Event:
    """A Kubernetes Event to post on the schedule."""

    type: str  # Normal | Warning
    reason: str
    message: str


@dataclass
class Plan:
    """One reconciliation of a schedule: what to delete, create and remember."""

    ready: tuple[str, str, str]  # (status, reason, message) of the Ready condition
    suspended: bool = False
    due: datetime | None = None
    create: dict[str, Any] | None = None
    replace: list[str] = field(default_factory=list)
    prune: list[str] = field(default_factory=list)
    last_schedule_time: datetime | None = None
    last_skipped_time: datetime | None = None
    next_time: datetime | None = None
    events: list[Event] = field(default_factory=list)


def plan(schedule: Mapping[str, Any], children: Sequence[Child], now: datetime) -> Plan:
    """Decide everything for one tick of a schedule, given its own runs and the time."""
    meta = schedule.get("metadata") or {}
    spec = schedule.get("spec") or {}
    status = schedule.get("status") or {}
    name = meta.get("name", "")
    expr = spec.get("schedule") or ""
    tz = spec.get("timeZone") or DEFAULT_TIME_ZONE
    last_schedule = parse_time(status.get("lastScheduleTime"))
    last_skipped = parse_time(status.get("lastSkippedTime"))
    out = Plan(ready=("True", "Scheduling", ""), suspended=bool(spec.get("suspend")),
               last_schedule_time=last_schedule, last_skipped_time=last_skipped)
    out.prune = prune(children, int(spec.get("successfulRunsHistoryLimit", DEFAULT_SUCCESS_LIMIT)),
                      int(spec.get("failedRunsHistoryLimit", DEFAULT_FAILED_LIMIT)))
    try:
        parse_schedule(expr, tz)
    except ScheduleError as e:
        out.ready = ("False", e.reason, str(e))
        return out
    since = (_latest(last_schedule, last_skipped) or parse_time(meta.get("creationTimestamp"))
             or now)
    out.next_time = next_run(expr, tz, max(now, since))
    if out.suspended:
        # Like CronJob: nothing is recorded, so missed runs count from the last handled time
        # when suspend is lifted (bounded by startingDeadlineSeconds).
        out.ready = ("True", "Suspended", "spec.suspend is true: no new runs are created")
        return out
    deadline = spec.get("startingDeadlineSeconds")
    runs = scan_runs(expr, tz, since, now, None if deadline is None else float(deadline))
    out.ready = ("True", "Scheduling", f"next run at {format_time(out.next_time)} "
                                       f"(schedule {expr!r} in {tz})")
    due = out.due = runs.latest
    if due is None:
        return out
    if runs.truncated or len(runs.times) > 1:
        count = f"more than {MAX_MISSED}" if runs.truncated else str(len(runs.times) - 1)
        out.events.append(Event("Warning", "MissedSchedule",
                                f"{count} earlier run(s) were missed (operator down or schedule "
                                f"suspended); only the run at {format_time(due)} starts"))
    own_name = child_name(name, due)
    if any(c.name == own_name for c in children):
        # Created before a restart, or by another operator: the run exists, just record it.
        out.last_schedule_time = due
        return out
    decision = decide(spec.get("concurrencyPolicy") or Policy.ALLOW.value,
                      [c for c in children if c.active], due)
    if decision.create:
        out.create = build_child(schedule, due)
        out.replace = list(decision.delete)
        out.last_schedule_time = due
        if decision.delete:
            out.events.append(Event("Normal", "Replaced", decision.message))
    else:
        out.last_skipped_time = due
        out.events.append(Event("Normal", "Skipped", decision.message))
    return out


# --------------------------------------------------------------------------------- status


def fold_status(schedule: Mapping[str, Any], children: Sequence[Child], p: Plan,
                now: datetime) -> dict[str, Any]:
    """The status after the plan was applied; `children` are the runs that exist afterwards
    (the created one included, with its uid)."""
    meta = schedule.get("metadata") or {}
    old = schedule.get("status") or {}
    generation = int(meta.get("generation") or 1)
    active = sorted((c for c in children if c.active), key=lambda c: (c.sort_time, c.name))
    succeeded = [c.completed or c.sort_time for c in children if c.phase == "Succeeded"]
    last_success = _latest(parse_time(old.get("lastSuccessfulTime")), *succeeded)
    new: dict[str, Any] = {
        "observedGeneration": generation,
        "active": [{"name": c.name, "uid": c.uid} for c in active],
        "activeCount": len(active),
        "conditions": copy.deepcopy(old.get("conditions") or []),
    }
    for key, value in (("lastScheduleTime", p.last_schedule_time),
                       ("lastSkippedTime", p.last_skipped_time),
                       ("lastSuccessfulTime", last_success),
                       ("nextScheduleTime", p.next_time)):
        if value is not None:
            new[key] = format_time(value)
    stamp = format_time(now)
    set_condition(new, "Ready", *p.ready, stamp, generation)
    if p.suspended:
        set_condition(new, "Suspended", "True", "Suspended",
                      "spec.suspend is true: no new runs are created", stamp, generation)
    else:
        set_condition(new, "Suspended", "False", "Active", "runs are created on schedule",
                      stamp, generation)
    return new


def status_patch(old: Mapping[str, Any] | None, new: Mapping[str, Any]) -> dict[str, Any]:
    """A merge patch from `old` to `new` over the keys this controller owns (None deletes)."""
    old = old or {}
    patch: dict[str, Any] = {}
    for key in STATUS_KEYS:
        if key in new:
            if old.get(key) != new[key]:
                patch[key] = new[key]
        elif old.get(key) is not None:
            patch[key] = None
    return patch
