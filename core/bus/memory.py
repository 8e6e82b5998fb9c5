"""The in-process bus for `goreports run`: the Redis bus's contract in plain Python structures.

Streams are lists of (id, payload); consumer groups keep a pending list with owner, delivery
count and last-touch time, so reclaiming, retries and dead letters behave as on Redis. Every
method runs without awaiting in between its reads and writes, which is what makes the
multi-step operations (`complete`, `retry`, ...) atomic on one event loop.
"""
from __future__ import annotations

import asyncio
import fnmatch
import time
from dataclasses import dataclass, field

from goreports.core.bus.base import Backlog, Bus, DeadLetter, Delivery, entry_id_less
from goreports.core.keys import Keys
from goreports.proto import events_pb2, job_pb2


@dataclass
class _Pending:
    consumer: str
    deliveries: int
    touched: float


@dataclass
class _Group:
    last_delivered: str = "0-0"
    pending: dict[str, _Pending] = field(default_factory=dict)


@dataclass
class _Stream:
    entries: list[tuple[str, bytes]] = field(default_factory=list)
    groups: dict[str, _Group] = field(default_factory=dict)
    extra: dict[str, dict[str, str]] = field(default_factory=dict)  # per-entry fields (dead letters)


class MemoryBus(Bus):
    def __init__(self, keys: Keys | None = None, ttl: int = 7 * 24 * 3600) -> None:
        self.keys = keys or Keys()
        self.ttl = ttl
        self._streams: dict[str, _Stream] = {}
        self._kv: dict[str, tuple[str, float | None]] = {}
        self._hashes: dict[str, dict[str, str]] = {}
        self._delayed: list[tuple[float, bytes]] = []
        self._seq_ms = 0
        self._seq = 0
        self._changed = asyncio.Condition()

    # -- helpers -------------------------------------------------------------------------------
    def _next_id(self) -> str:
        ms = int(time.time() * 1000)
        if ms <= self._seq_ms:
            self._seq += 1
        else:
            self._seq_ms, self._seq = ms, 0
        return f"{self._seq_ms}-{self._seq}"

    def _stream(self, key: str) -> _Stream:
        s = self._streams.get(key)
        if s is None:
            s = self._streams[key] = _Stream()
        return s

    def _append(self, key: str, data: bytes) -> str:
        entry_id = self._next_id()
        self._stream(key).entries.append((entry_id, data))
        return entry_id

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def _wait(self, block_ms: int) -> None:
        if block_ms <= 0:
            return
        # asyncio.timeout, not wait_for: a cancellation racing wait_for's timeout can leave the
        # condition's lock released twice (RuntimeError) and the bus blocked for good (3.11).
        async with self._changed:
            try:
                async with asyncio.timeout(block_ms / 1000):
                    await self._changed.wait()
            except TimeoutError:
                pass

    def _alive(self, key: str) -> str | None:
        item = self._kv.get(key)
        if item is None:
            return None
        value, expires = item
        if expires is not None and expires < time.time():
            del self._kv[key]
            return None
        return value

    def _set_nx(self, key: str, value: str, ttl: int | None) -> bool:
        if self._alive(key) is not None:
            return False
        self._kv[key] = (value, time.time() + ttl if ttl else None)
        return True

    def _store_job(self, job: job_pb2.Job) -> None:
        if job.report.uid:
            self._kv[self.keys.stored_job(job.report.uid, job.name)] = (
                job.SerializeToString().hex(), time.time() + self.ttl)

    def _publish_now(self, job: job_pb2.Job) -> str:
        self._store_job(job)
        return self._append(self.keys.jobs(job.channel, job.pattern), job.SerializeToString())

    def _ack(self, d: Delivery) -> None:
        s = self._stream(self.keys.jobs(d.channel, d.pattern))
        s.groups.setdefault(d.pattern, _Group()).pending.pop(d.entry_id, None)

    # -- jobs ----------------------------------------------------------------------------------
    async def publish(self, job: job_pb2.Job) -> str:
        entry_id = self._publish_now(job)
        await self._notify()
        return entry_id

    async def publish_once(self, job: job_pb2.Job, marker: str) -> bool:
        if not self._set_nx(marker, "1", self.ttl):
            return False
        self._publish_now(job)
        await self._notify()
        return True

    async def fetch(self, channel: str, pattern: str, consumer: str, count: int,
                    block_ms: int) -> list[Delivery]:
        deadline = time.monotonic() + block_ms / 1000
        while True:
            s = self._stream(self.keys.jobs(channel, pattern))
            g = s.groups.setdefault(pattern, _Group())
            out: list[Delivery] = []
            for entry_id, data in s.entries:
                if len(out) >= count:
                    break
                if entry_id_less(g.last_delivered, entry_id):
                    g.last_delivered = entry_id
                    g.pending[entry_id] = _Pending(consumer, 1, time.monotonic())
                    out.append(Delivery(entry_id, channel, pattern, _job(data), 1))
            if out:
                return out
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return []
            await self._wait(int(remaining * 1000))

    async def reclaim(self, channel: str, pattern: str, consumer: str, min_idle_ms: int,
                      count: int) -> list[Delivery]:
        s = self._stream(self.keys.jobs(channel, pattern))
        g = s.groups.setdefault(pattern, _Group())
        now = time.monotonic()
        entries = dict(s.entries)
        out: list[Delivery] = []
        for entry_id, p in list(g.pending.items()):
            if len(out) >= count:
                break
            if (now - p.touched) * 1000 >= min_idle_ms:
                if entry_id not in entries:  # trimmed or deleted: drop it, as XAUTOCLAIM does
                    del g.pending[entry_id]
                    continue
                p.consumer, p.deliveries, p.touched = consumer, p.deliveries + 1, now
                out.append(Delivery(entry_id, channel, pattern, _job(entries[entry_id]), p.deliveries))
        return out

    async def touch(self, delivery: Delivery, consumer: str) -> None:
        g = self._stream(self.keys.jobs(delivery.channel, delivery.pattern)).groups.get(delivery.pattern)
        if g and delivery.entry_id in g.pending:
            p = g.pending[delivery.entry_id]
            p.consumer, p.touched = consumer, time.monotonic()

    async def complete(self, delivery: Delivery, *, next_job: job_pb2.Job | None,
                       next_marker: str | None, done_marker: str | None) -> None:
        if next_job is not None and (next_marker is None or self._set_nx(next_marker, "1", self.ttl)):
            self._publish_now(next_job)
        if done_marker is not None:
            self._kv[done_marker] = ("1", time.time() + self.ttl)
        self._ack(delivery)
        await self._notify()

    async def retry(self, delivery: Delivery, job: job_pb2.Job, delay: float) -> None:
        self._delayed.append((time.time() + delay, job.SerializeToString()))
        self._ack(delivery)
        await self._notify()

    async def release(self, delivery: Delivery) -> None:
        self._publish_now(delivery.job)
        self._ack(delivery)
        await self._notify()

    async def dead_letter(self, delivery: Delivery, reason: str) -> None:
        key = self.keys.dead(delivery.channel, delivery.pattern)
        entry_id = self._append(key, delivery.job.SerializeToString())
        self._stream(key).extra[entry_id] = {"reason": reason, "at": str(time.time())}
        self._ack(delivery)
        await self._notify()

    async def promote_due(self, now: float | None = None) -> int:
        now = time.time() if now is None else now
        due = [d for d in self._delayed if d[0] <= now]
        if not due:
            return 0
        self._delayed = [d for d in self._delayed if d[0] > now]
        for _, data in due:
            self._publish_now(_job(data))
        await self._notify()
        return len(due)

    async def backlog(self, channel: str, pattern: str) -> Backlog:
        s = self._stream(self.keys.jobs(channel, pattern))
        g = s.groups.setdefault(pattern, _Group())
        lag = sum(1 for eid, _ in s.entries if entry_id_less(g.last_delivered, eid))
        return Backlog(length=len(s.entries), pending=len(g.pending), lag=lag)

    async def dead_letters(self, channel: str, pattern: str, count: int = 100) -> list[DeadLetter]:
        s = self._stream(self.keys.dead(channel, pattern))
        return [DeadLetter(eid, _job(data), s.extra.get(eid, {}).get("reason", ""), pattern, channel,
                           float(s.extra.get(eid, {}).get("at", 0)))
                for eid, data in s.entries[:count]]

    async def stored_job(self, uid: str, step: str) -> job_pb2.Job | None:
        raw = self._alive(self.keys.stored_job(uid, step))
        return None if raw is None else _job(bytes.fromhex(raw))

    # -- markers -------------------------------------------------------------------------------
    async def set_marker(self, key: str, value: str = "1", ttl: int | None = None) -> bool:
        return self._set_nx(key, value, ttl)

    async def get_marker(self, key: str) -> str | None:
        return self._alive(key)

    async def delete_marker(self, key: str) -> None:
        self._kv.pop(key, None)

    async def refresh_marker(self, key: str, ttl: int) -> bool:
        value = self._alive(key)
        if value is None:
            return False
        self._kv[key] = (value, time.time() + ttl)
        return True

    # -- events --------------------------------------------------------------------------------
    async def emit(self, event: events_pb2.StageEvent) -> str:
        entry_id = self._append(self.keys.events(), event.SerializeToString())
        await self._notify()
        return entry_id

    async def read_events(self, after_id: str, count: int, block_ms: int
                          ) -> list[tuple[str, events_pb2.StageEvent]]:
        raw = await self.stream_read(self.keys.events(), after_id, count, block_ms)
        out = []
        for entry_id, data in raw:
            ev = events_pb2.StageEvent()
            ev.ParseFromString(data)
            out.append((entry_id, ev))
        return out

    # -- plain streams -------------------------------------------------------------------------
    async def stream_add(self, key: str, data: bytes, ttl: int | None = None) -> str:
        entry_id = self._append(key, data)
        await self._notify()
        return entry_id

    async def stream_read(self, key: str, after_id: str, count: int, block_ms: int
                          ) -> list[tuple[str, bytes]]:
        deadline = time.monotonic() + block_ms / 1000
        after = "0-0" if after_id in ("0", "") else after_id
        while True:
            s = self._streams.get(key)
            if s is not None:
                out = [(eid, d) for eid, d in s.entries if entry_id_less(after, eid)][:count]
                if out:
                    return out
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return []
            await self._wait(int(remaining * 1000))

    async def stream_len(self, key: str) -> int:
        s = self._streams.get(key)
        return 0 if s is None else len(s.entries)

    async def stream_trim(self, key: str, min_id: str) -> int:
        s = self._streams.get(key)
        if s is None:
            return 0
        before = len(s.entries)
        s.entries = [(eid, d) for eid, d in s.entries if not entry_id_less(eid, min_id)]
        return before - len(s.entries)

    async def stream_group_read(self, key: str, group: str, consumer: str, count: int,
                                block_ms: int) -> list[tuple[str, bytes]]:
        deadline = time.monotonic() + block_ms / 1000
        while True:
            s = self._stream(key)
            g = s.groups.setdefault(group, _Group())
            out: list[tuple[str, bytes]] = []
            for entry_id, data in s.entries:
                if len(out) >= count:
                    break
                if entry_id_less(g.last_delivered, entry_id):
                    g.last_delivered = entry_id
                    g.pending[entry_id] = _Pending(consumer, 1, time.monotonic())
                    out.append((entry_id, data))
            remaining = deadline - time.monotonic()
            if out or remaining <= 0:
                return out
            await self._wait(int(remaining * 1000))

    async def stream_group_ack(self, key: str, group: str, ids: list[str]) -> None:
        g = self._stream(key).groups.setdefault(group, _Group())
        for i in ids:
            g.pending.pop(i, None)

    async def stream_group_reclaim(self, key: str, group: str, consumer: str, min_idle_ms: int,
                                   count: int) -> list[tuple[str, bytes]]:
        s = self._stream(key)
        g = s.groups.setdefault(group, _Group())
        entries = dict(s.entries)
        now = time.monotonic()
        out: list[tuple[str, bytes]] = []
        for entry_id, p in list(g.pending.items()):
            if len(out) >= count:
                break
            if (now - p.touched) * 1000 >= min_idle_ms and entry_id in entries:
                p.consumer, p.deliveries, p.touched = consumer, p.deliveries + 1, now
                out.append((entry_id, entries[entry_id]))
        return out

    async def hash_set(self, key: str, field: str, value: str) -> None:
        self._hashes.setdefault(key, {})[field] = value

    async def hash_get_all(self, key: str) -> dict[str, str]:
        return dict(self._hashes.get(key, {}))

    # -- lifecycle -----------------------------------------------------------------------------
    async def delete_report(self, uid: str) -> int:
        patterns = self.keys.report_pattern(uid)
        n = 0
        for store in (self._streams, self._kv, self._hashes):
            for key in [k for k in store if any(fnmatch.fnmatchcase(k, p) for p in patterns)]:
                del store[key]  # type: ignore[attr-defined]
                n += 1
        return n

    async def delete_keys(self, keys: list[str]) -> int:
        n = 0
        for k in keys:
            for store in (self._streams, self._kv, self._hashes):
                if k in store:
                    del store[k]  # type: ignore[attr-defined]
                    n += 1
        return n

    async def scan_keys(self, match: str) -> list[str]:
        found = set()
        for store in (self._streams, self._kv, self._hashes):
            found.update(k for k in store if fnmatch.fnmatchcase(k, match))
        return sorted(found)

    async def stream_keys(self, match: str) -> list[str]:
        return sorted(k for k in self._streams if fnmatch.fnmatchcase(k, match))

    async def close(self) -> None:
        return None


def _job(data: bytes) -> job_pb2.Job:
    job = job_pb2.Job()
    job.ParseFromString(data)
    return job
