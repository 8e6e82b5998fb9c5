"""`goreports dlq list | show | replay | purge`: the dead-letter streams, for operators.

A job lands in `{prefix}:dead:{channel}:{pattern}` when its stage failed for good (a permanent
error, retries exhausted, a worker crash loop, a deadline) and its report failed with it. Once
the cause is fixed (the table exists, the password is right), `replay` runs the job again and
the report finishes:

1. the ReportRequest gets the annotation `goreports.io/replay=<time>`; the operator's replay
   handler (operator/replay.py) turns its status from Failed back to Running, which status
   folding needs before it accepts the job's new events; the command waits for that;
2. the report's `cancelled` marker is removed (workers drop jobs of failed reports), and the
   markers of the steps after the replayed one too (a failure notifier that ran marks its step
   done, which would make the success-path notifier a duplicate);
3. the job is published again with attempt 1 and its dead entry removed, in one transaction;
4. an audit record `replayed` names who did it.

Refused, with the reason: a report that no longer exists or already succeeded, and a job whose
report deadline has passed (workers would drop it; create a new ReportRequest instead).
`--no-status` skips step 1 (no cluster: a report run with `goreports run --redis`).

`purge` removes dead letters (all of a pattern, or those older than `--older-than`).
"""
from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import re
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable

from google.protobuf import json_format
from rich.console import Console
from rich.table import Table

from goreports.cli.status import GROUP, REPORTS, VERSION, add_redis_args, custom_api, settings_from
from goreports.core import audit
from goreports.core.bus.base import DeadLetter
from goreports.core.bus.redis import RedisBus
from goreports.core.metrics import split_stream_key
from goreports.core.settings import Settings
from goreports.proto import job_pb2

REPLAY_ANNOTATION = "goreports.io/replay"
_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


class ReplayRefused(Exception):
    """This dead letter cannot be replayed now; the message says why and what to do."""


# -- pure helpers -----------------------------------------------------------------------------
def parse_duration(text: str) -> float:
    """`90s`, `15m`, `1h30m`, `2d` -> seconds."""
    t = text.strip().lower()
    parts = _DURATION.findall(t)
    if not parts or "".join(n + u for n, u in parts) != t:
        raise ValueError(f"{text!r} is not a duration (e.g. 30m, 1h, 2d, 1h30m)")
    return sum(float(n) * _UNITS[u] for n, u in parts)


def entry_seconds(entry_id: str) -> float:
    """When a stream entry was added (its id is `<ms>-<seq>`)."""
    return int(entry_id.partition("-")[0]) / 1000


def job_for_replay(job: job_pb2.Job) -> job_pb2.Job:
    """The dead job as it is published again: a fresh first attempt."""
    out = job_pb2.Job()
    out.CopyFrom(job)
    out.attempt = 1
    out.rerun = False
    return out


def later_steps(job: job_pb2.Job) -> list[str]:
    """Names of the steps after this job in its chain."""
    out, cur = [], job
    while cur.HasField("next"):
        cur = cur.next
        out.append(cur.name)
    return out


def deadline_passed(job: job_pb2.Job, now: float) -> bool:
    return bool(job.HasField("deadline") and job.deadline.seconds and now > job.deadline.ToSeconds())


def dead_row(dl: DeadLetter, now: float) -> dict[str, Any]:
    r = dl.job.report
    return {"id": dl.entry_id, "channel": dl.channel, "pattern": dl.pattern,
            "report": f"{r.namespace}/{r.name}" if r.namespace else r.name, "uid": r.uid,
            "step": dl.job.name, "attempt": dl.job.attempt, "age": _age(now - (dl.at or entry_seconds(dl.entry_id))),
            "reason": dl.reason}


def describe(dl: DeadLetter) -> dict[str, Any]:
    """Everything `show` prints (the task as JSON; tasks hold credential ids, never secrets)."""
    j = dl.job
    task: Any
    try:
        task = json_format.MessageToDict(j.task) if j.HasField("task") else None
        if isinstance(task, dict) and set(task) == {"@type", "value"} and isinstance(task["value"], dict):
            task = {"@type": task["@type"], **task["value"]}  # a Struct task (custom stages)
    except Exception:  # an unknown or broken task type: show what it claims to be
        task = {"@type": j.task.type_url, "bytes": len(j.task.value)}
    return {"id": dl.entry_id, "stream": f"dead:{dl.channel}:{dl.pattern}",
            "deadAt": _iso(dl.at or entry_seconds(dl.entry_id)), "reason": dl.reason,
            "report": {"namespace": j.report.namespace, "name": j.report.name, "uid": j.report.uid},
            "step": j.name, "stepIndex": j.step_index, "stepCount": j.step_count,
            "attempt": j.attempt, "maxAttempts": j.max_attempts, "traceId": j.trace_id,
            "deadline": j.deadline.ToJsonString() if j.HasField("deadline") and j.deadline.seconds else None,
            "failureNotifier": j.failure or None, "nextSteps": later_steps(j), "task": task}


def _age(seconds: float) -> str:
    s = max(0, int(seconds))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if s >= size:
            return f"{s // size}{unit}"
    return f"{s}s"


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


# -- Redis ------------------------------------------------------------------------------------
@dataclass
class DeadStore:
    """The dead-letter streams of one installation (one key prefix)."""

    bus: RedisBus

    async def streams(self, pattern: str | None = None) -> list[tuple[str, str, str]]:
        """[(key, channel, pattern)] of every dead-letter stream (of one pattern, if given)."""
        prefix = self.bus.keys.prefix
        out = []
        for key in await self.bus.stream_keys(f"{prefix}:dead:*"):
            cp = split_stream_key(key, prefix, "dead")
            if cp and (pattern is None or cp[1] == pattern):
                out.append((key, *cp))
        return out

    def _decode(self, entry_id: Any, f: dict[bytes, bytes], channel: str, pattern: str) -> DeadLetter:
        job = job_pb2.Job()
        job.ParseFromString(f[b"job"])
        return DeadLetter(entry_id.decode() if isinstance(entry_id, bytes) else entry_id, job,
                          f.get(b"reason", b"").decode(), pattern, channel,
                          float(f.get(b"at", b"0") or 0))

    async def newest(self, pattern: str | None, limit: int) -> list[DeadLetter]:
        out: list[DeadLetter] = []
        for key, channel, pat in await self.streams(pattern):
            for eid, f in await self.bus.r.xrevrange(key, count=limit):
                out.append(self._decode(eid, f, channel, pat))
        out.sort(key=lambda d: entry_seconds(d.entry_id), reverse=True)
        return out[:limit]

    async def all(self, pattern: str | None) -> list[DeadLetter]:
        out: list[DeadLetter] = []
        for key, channel, pat in await self.streams(pattern):
            low = "-"
            while batch := await self.bus.r.xrange(key, min=low, count=500):
                out += [self._decode(e, f, channel, pat) for e, f in batch]
                low = f"({out[-1].entry_id}"  # exclusive: after the last one read
        return out

    async def find(self, entry_id: str, pattern: str | None) -> DeadLetter:
        found = []
        for key, channel, pat in await self.streams(pattern):
            for eid, f in await self.bus.r.xrange(key, min=entry_id, max=entry_id, count=1):
                found.append(self._decode(eid, f, channel, pat))
        if not found:
            where = f"pattern {pattern!r}" if pattern else "any dead-letter stream"
            raise LookupError(f"no dead letter {entry_id} in {where} (see `goreports dlq list`)")
        if len(found) > 1:
            raise LookupError(f"{entry_id} is in several streams ({', '.join(d.pattern for d in found)}): "
                              f"add --pattern")
        return found[0]

    async def requeue(self, dl: DeadLetter) -> str:
        """Publish the job again (attempt 1, stored copy refreshed) and drop its dead entry,
        atomically."""
        job = job_for_replay(dl.job)
        payload = job.SerializeToString()
        keys = self.bus.keys
        async with self.bus.r.pipeline(transaction=True) as p:
            p.xadd(keys.jobs(job.channel, job.pattern), {"job": payload})
            p.set(keys.stored_job(job.report.uid, job.name), payload, ex=self.bus.ttl)
            p.xdel(keys.dead(dl.channel, dl.pattern), dl.entry_id)
            res = await p.execute()
        return res[0].decode() if isinstance(res[0], bytes) else str(res[0])

    async def clear_markers(self, job: job_pb2.Job) -> None:
        """Let workers accept the report again, and the steps after this one run again."""
        keys, uid = self.bus.keys, job.report.uid
        doomed = [keys.cancelled(uid), keys.marker(uid, "lock", job.name)]
        for step in later_steps(job):
            doomed += [keys.marker(uid, "done", step), keys.marker(uid, "next", step),
                       keys.marker(uid, "notify-failure", step), keys.marker(uid, "lock", step)]
        await self.bus.r.delete(*doomed)

    async def purge(self, pattern: str | None, older_than: float | None, now: float) -> dict[str, int]:
        removed: dict[str, int] = {}
        for key, _, pat in await self.streams(pattern):
            if older_than is None:
                n = int(await self.bus.r.xlen(key))
                await self.bus.r.delete(key)
            else:
                cutoff = int((now - older_than) * 1000)
                n = int(await self.bus.r.xtrim(key, minid=f"{cutoff}-0", approximate=False))
            removed[pat] = removed.get(pat, 0) + n
        return removed


# -- the status reset through the API server ----------------------------------------------------
def reset_report_status(api: Any, job: job_pb2.Job, timeout: float, stamp: str,
                        sleep: Callable[[float], None] = time.sleep) -> str:
    """Ask the operator to turn the Failed report back to Running (the replay annotation) and
    wait until it did. Returns the phase the report had. Raises ReplayRefused."""
    from kubernetes.client.rest import ApiException

    r = job.report
    where = f"ReportRequest {r.namespace}/{r.name}"
    try:
        obj = api.get_namespaced_custom_object(GROUP, VERSION, r.namespace, REPORTS, r.name)
    except ApiException as e:
        if e.status == 404:
            raise ReplayRefused(f"{where} no longer exists: nothing to replay into "
                                f"(remove the dead letter with `goreports dlq purge`)") from None
        raise
    if obj["metadata"].get("uid") != r.uid:
        raise ReplayRefused(f"{where} was deleted and created again (uid {obj['metadata'].get('uid')}, "
                            f"the job belongs to {r.uid}): the job cannot be replayed into it")
    phase = (obj.get("status") or {}).get("phase", "")
    if phase == "Succeeded":
        raise ReplayRefused(f"{where} already succeeded: nothing to replay")
    if phase != "Failed":
        return phase  # still running (e.g. a dead failure notifier): nothing to reset
    api.patch_namespaced_custom_object(GROUP, VERSION, r.namespace, REPORTS, r.name,
                                       {"metadata": {"annotations": {REPLAY_ANNOTATION: stamp}}})
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        obj = api.get_namespaced_custom_object(GROUP, VERSION, r.namespace, REPORTS, r.name)
        if (obj.get("status") or {}).get("phase") != "Failed":
            return phase
        sleep(0.2)
    raise ReplayRefused(f"the operator did not reset the status of {where} within {timeout:g}s "
                        f"(is it running, and does it watch {r.namespace}?); the job was not "
                        f"published — run the replay again")


# -- commands ---------------------------------------------------------------------------------
def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("dlq", help="list, show, replay or purge dead-lettered jobs")
    dsub = p.add_subparsers(dest="dlq_command", required=True)

    ls = dsub.add_parser("list", help="the newest dead letters")
    add_redis_args(ls)
    ls.add_argument("--pattern", "-p", help="only this pattern's dead letters")
    ls.add_argument("--limit", type=int, default=50, help="at most this many (default 50)")
    ls.add_argument("--json", action="store_true", help="print JSON lines")
    ls.set_defaults(func=cmd_list)

    sh = dsub.add_parser("show", help="one dead letter in full")
    add_redis_args(sh)
    sh.add_argument("id", help="the entry id from `dlq list`")
    sh.add_argument("--pattern", "-p", help="the pattern, when the id is in several streams")
    sh.set_defaults(func=cmd_show)

    rp = dsub.add_parser("replay", help="run dead-lettered jobs again after fixing the cause")
    add_redis_args(rp)
    which = rp.add_mutually_exclusive_group(required=True)
    which.add_argument("id", nargs="?", help="the entry id from `dlq list`")
    which.add_argument("--all", action="store_true", help="every dead letter (of --pattern)")
    rp.add_argument("--pattern", "-p", help="only this pattern's dead letters")
    rp.add_argument("--timeout", type=float, default=60.0,
                    help="seconds to wait for the operator to reset a report's status (default 60)")
    rp.add_argument("--no-status", action="store_true",
                    help="do not touch ReportRequests (reports run without a cluster)")
    rp.set_defaults(func=cmd_replay)

    pg = dsub.add_parser("purge", help="delete dead letters")
    add_redis_args(pg)
    pg.add_argument("--pattern", "-p", help="only this pattern's dead letters")
    pg.add_argument("--older-than", metavar="DURATION",
                    help="only those older than this (30m, 1h, 7d); default: all")
    pg.set_defaults(func=cmd_purge)


async def _with_store(settings: Settings, fn: Callable[[DeadStore], Any]) -> Any:
    bus = RedisBus.from_settings(settings)
    try:
        return await fn(DeadStore(bus))
    finally:
        await bus.close()


def cmd_list(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    dead = asyncio.run(_with_store(settings, lambda s: s.newest(args.pattern, args.limit)))
    now = time.time()
    rows = [dead_row(d, now) for d in dead]
    if args.json:
        for row in rows:
            print(json.dumps(row))
        return 0
    console = Console()
    if not rows:
        console.print("no dead letters" + (f" for pattern {args.pattern}" if args.pattern else ""))
        return 0
    t = Table(title="Dead letters (newest first)")
    for col in ("id", "pattern", "report", "step", "attempt", "age", "reason"):
        t.add_column(col, overflow="fold")
    for row in rows:
        t.add_row(row["id"], row["pattern"], row["report"], row["step"], str(row["attempt"]),
                  row["age"], row["reason"][:200])
    console.print(t)
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    try:
        dl = asyncio.run(_with_store(settings, lambda s: s.find(args.id, args.pattern)))
    except LookupError as e:
        print(f"error: {e.args[0]}", file=sys.stderr)
        return 1
    print(json.dumps(describe(dl), indent=2))
    return 0


async def replay_one(store: DeadStore, dl: DeadLetter, api: Any, *, timeout: float, who: str,
                     now: float | None = None) -> str:
    """Replay one dead letter (the steps of the module docstring); returns a one-line summary."""
    job = dl.job
    r = job.report
    where = f"{r.namespace}/{r.name}" if r.namespace else r.name
    if deadline_passed(job, now or time.time()):
        raise ReplayRefused(f"the deadline of report {where} ({job.deadline.ToJsonString()}) has "
                            f"passed: workers would drop the job; create a new ReportRequest")
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    phase = "unknown"
    if api is not None and r.namespace:
        phase = await asyncio.to_thread(reset_report_status, api, job, timeout, stamp)
    await store.clear_markers(job)
    new_id = await store.requeue(dl)
    await audit.AuditLog(store.bus).safe_append(audit.build_record(
        "replayed", namespace=r.namespace, name=r.name, uid=r.uid, who=who, outcome="Requeued",
        message=f"{job.name} ({dl.pattern}) from dead letter {dl.entry_id}: {dl.reason}"[:1000],
        trace_id=job.trace_id, previousPhase=phase))
    return f"replayed {dl.entry_id} ({dl.pattern}, step {job.name} of {where}) as {new_id}"


def cmd_replay(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    api = None
    if not args.no_status:
        try:
            api = custom_api()
        except Exception as e:
            print(f"error: cannot load a Kubernetes configuration: {e}", file=sys.stderr)
            return 1
        if api is None:
            print("error: no KUBECONFIG and not in a cluster: a Failed report cannot be set back "
                  "to Running; use --no-status for reports run without a cluster", file=sys.stderr)
            return 1
    who = f"{_user()} (goreports dlq replay)"

    async def run(store: DeadStore) -> int:
        if args.all:
            targets = await store.all(args.pattern)
        else:
            try:
                targets = [await store.find(args.id, args.pattern)]
            except LookupError as e:
                print(f"error: {e.args[0]}", file=sys.stderr)
                return 1
        if not targets:
            print("no dead letters to replay")
            return 0
        failed = 0
        for dl in targets:
            try:
                print(await replay_one(store, dl, api, timeout=args.timeout, who=who))
            except ReplayRefused as e:
                failed += 1
                print(f"not replayed {dl.entry_id} ({dl.pattern}, step {dl.job.name}): {e}",
                      file=sys.stderr)
        return 1 if failed else 0

    return int(asyncio.run(_with_store(settings, run)))


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # a container without a passwd entry or $USER
        return "unknown"


def cmd_purge(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    try:
        older = parse_duration(args.older_than) if args.older_than else None
    except ValueError as e:
        print(f"error: --older-than: {e}", file=sys.stderr)
        return 2
    removed = asyncio.run(_with_store(settings, lambda s: s.purge(args.pattern, older, time.time())))
    total = sum(removed.values())
    detail = ", ".join(f"{p}: {n}" for p, n in sorted(removed.items()) if n)
    print(f"removed {total} dead letter(s)" + (f" ({detail})" if detail else ""))
    return 0
