"""The bus on Redis Streams (redis-py asyncio).

One stream per channel and pattern (`jobs:{channel}:{pattern}`) with a consumer group named after
the pattern. Multi-step operations are Lua scripts or MULTI transactions, so "publish next, mark
done, acknowledge" happens entirely or not at all. Entries hold protobuf bytes, never pickle.
"""
from __future__ import annotations

import ssl
import time
from typing import Any, Sequence

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff
from google.protobuf.message import DecodeError
from redis.exceptions import NoScriptError, ResponseError

from goreports.core.bus.base import Backlog, Bus, DeadLetter, Delivery, Start
from goreports.core.keys import Keys
from goreports.core.settings import Settings
from goreports.proto import events_pb2, job_pb2

# KEYS: 1 marker  2 stream  3 stored-job key   ARGV: 1 payload  2 ttl
_PUBLISH_ONCE = """
if redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[2]) then
  redis.call('XADD', KEYS[2], '*', 'job', ARGV[1])
  redis.call('SET', KEYS[3], ARGV[1], 'EX', ARGV[2])
  return 1
end
return 0
"""

# KEYS: 1 job stream  2 next marker  3 next stream  4 done marker  5 stored-next key
# ARGV: 1 group  2 entry id  3 next payload ('' = none)  4 ttl  5 use marker ('1'/'0')  6 done ('1'/'0')
_COMPLETE_STEPS = """
if ARGV[3] ~= '' then
  local publish = true
  if ARGV[5] == '1' then
    publish = redis.call('SET', KEYS[2], '1', 'NX', 'EX', ARGV[4])
  end
  if publish then
    redis.call('XADD', KEYS[3], '*', 'job', ARGV[3])
    redis.call('SET', KEYS[5], ARGV[3], 'EX', ARGV[4])
  end
end
if ARGV[6] == '1' then
  redis.call('SET', KEYS[4], '1', 'EX', ARGV[4])
end
local acked = redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
"""
_COMPLETE = _COMPLETE_STEPS + "return acked\n"

# The events stream keeps about this many entries (emit and the scripts below).
EVENTS_MAXLEN = 1_000_000

# Bus.start_job in one round trip.
# KEYS: 1 cancelled  2 done marker  3 lease  4 events
# ARGV: 1 read cancelled  2 read done  3 take lease ('1'/'0' each)  4 holder  5 lease ttl
#       6 event payload ('' = none)  7 events maxlen
# Returns {0} started, {1, value} cancelled, {2} done, {3} busy.
_START = """
if ARGV[1] == '1' then
  local c = redis.call('GET', KEYS[1])
  if c then return {1, c} end
end
if ARGV[2] == '1' then
  local d = redis.call('GET', KEYS[2])
  if d and d ~= '' then return {2} end
end
if ARGV[3] == '1' and not redis.call('SET', KEYS[3], ARGV[4], 'NX', 'EX', ARGV[5]) then
  return {3}
end
if ARGV[6] ~= '' then
  redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[7], '*', 'd', ARGV[6])
end
return {0}
"""

# Bus.finish_job in one round trip: the event, then _COMPLETE's steps (same KEYS 1-5 and
# ARGV 1-6), then the lease and the cancelled key.
# KEYS: 6 events  7 lease  8 cancelled
# ARGV: 7 event payload ('' = none)  8 events maxlen  9 drop lease  10 read cancelled ('1'/'0')
_FINISH = """
if ARGV[7] ~= '' then
  redis.call('XADD', KEYS[6], 'MAXLEN', '~', ARGV[8], '*', 'd', ARGV[7])
end
""" + _COMPLETE_STEPS + """
if ARGV[9] == '1' then
  redis.call('DEL', KEYS[7])
end
if ARGV[10] == '1' then
  return redis.call('GET', KEYS[8])
end
return false
"""

# KEYS: 1 delayed zset   ARGV: 1 now  2 limit
_PROMOTE = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
for _, m in ipairs(due) do
  if redis.call('ZREM', KEYS[1], m) == 1 then
    local sep = string.find(m, '\\0', 1, true)
    redis.call('XADD', string.sub(m, 1, sep - 1), '*', 'job', string.sub(m, sep + 1))
  end
end
return #due
"""


# Two-command writes as one command (a script costs the client about half of a pipeline).
# KEYS: 1 stream  ARGV: 1 payload  2 ttl
_STREAM_ADD = """
local id = redis.call('XADD', KEYS[1], '*', 'd', ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[2])
return id
"""
# KEYS: 1 hash  ARGV: 1 field  2 value  3 ttl
_HASH_SET = """
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[3])
return 1
"""


# Bus.stream_begin. KEYS: 1 stream  2 generation key  3 cursors hash
# ARGV: 1 header  2 ttl  3 generation  4 producer step  5 cursors ttl
_STREAM_BEGIN = """
redis.call('HSET', KEYS[3], '__producer__', ARGV[4])
redis.call('EXPIRE', KEYS[3], ARGV[5])
redis.call('SET', KEYS[2], ARGV[3], 'EX', ARGV[2])
local id = redis.call('XADD', KEYS[1], '*', 'd', ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[2])
return id
"""
# Bus.stream_end. KEYS: 1 stream  2 generation key   ARGV: 1 ttl  2 generation  3... entries
# Generations are decimal nanoseconds (above 2^53): compared as text, length first.
_STREAM_END = """
local cur = redis.call('GET', KEYS[2])
if cur and (#cur > #ARGV[2] or (#cur == #ARGV[2] and cur > ARGV[2])) then
  return false
end
local ids = {}
for i = 3, #ARGV do
  ids[#ids + 1] = redis.call('XADD', KEYS[1], '*', 'd', ARGV[i])
end
redis.call('EXPIRE', KEYS[1], ARGV[1])
return ids
"""


class _Script:
    """A Lua script run by EVALSHA straight through the client (redis-py's Script object
    costs a third more CPU per call, and a small report makes several calls per stage);
    loaded again on NOSCRIPT (a restarted or flushed Redis)."""

    def __init__(self, client: aioredis.Redis, text: str) -> None:
        self._client = client
        self._script = client.register_script(text)

    async def __call__(self, *, keys: list[Any], args: list[Any]) -> Any:
        try:
            return await self._client.execute_command("EVALSHA", self._script.sha, len(keys),
                                                      *keys, *args)
        except NoScriptError:
            return await self._script(keys=keys, args=args)


def _retry() -> Retry:
    """What `redis.asyncio.Redis()` gives its own pool and a pool built here would not: a
    command on a dead pooled connection (Redis restarted) reconnects and is sent again, up to
    10 times, 10 ms to 1 s apart, instead of failing."""
    return Retry(ExponentialWithJitterBackoff(base=0.01, cap=1.0), 10)


def connect(settings: Settings) -> aioredis.Redis:
    """A client from REDIS_ADDR / REDIS_DB / REDIS_PASS (+ REDIS_TLS, REDIS_TLS_CA).

    The pool blocks: redis-py's default pool raises "Too many connections" once 100 commands
    are in flight, which a burst of 200 ReportRequests did to the operator (its accept handler
    failed, and kopf retried it only a minute later). Here a command past the limit waits for
    a free connection, up to `redis_pool_wait` seconds."""
    limits: dict[str, Any] = {"max_connections": settings.redis_max_connections,
                              "timeout": settings.redis_pool_wait, "retry": _retry()}
    if settings.redis_addr.startswith(("redis://", "rediss://", "unix://")):
        pool = aioredis.BlockingConnectionPool.from_url(
            settings.redis_addr, db=settings.redis_db, password=settings.redis_pass, **limits)
        return aioredis.Redis.from_pool(pool)
    host, port = settings.redis_host_port()
    kwargs: dict[str, Any] = {}
    if settings.redis_tls:
        kwargs.update(connection_class=aioredis.SSLConnection, ssl_ca_certs=settings.redis_tls_ca,
                      ssl_cert_reqs=ssl.CERT_REQUIRED if settings.redis_tls_ca else ssl.CERT_NONE)
    pool = aioredis.BlockingConnectionPool(
        host=host, port=port, db=settings.redis_db, password=settings.redis_pass,
        username=settings.redis_username, socket_keepalive=True, health_check_interval=30,
        **limits, **kwargs)
    return aioredis.Redis.from_pool(pool)


class RedisBus(Bus):
    def __init__(self, client: aioredis.Redis, keys: Keys | None = None,
                 ttl: int = 7 * 24 * 3600) -> None:
        self.r = client
        self.keys = keys or Keys()
        self.ttl = ttl
        self._groups: set[str] = set()
        self._publish_once = _Script(self.r, _PUBLISH_ONCE)
        self._complete = _Script(self.r, _COMPLETE)
        self._start = _Script(self.r, _START)
        self._finish = _Script(self.r, _FINISH)
        self._promote = _Script(self.r, _PROMOTE)
        self._stream_add = _Script(self.r, _STREAM_ADD)
        self._hash_set = _Script(self.r, _HASH_SET)
        self._stream_begin = _Script(self.r, _STREAM_BEGIN)
        self._stream_end = _Script(self.r, _STREAM_END)

    @classmethod
    def from_settings(cls, settings: Settings) -> "RedisBus":
        return cls(connect(settings), Keys(settings.prefix), settings.report_ttl)

    async def _ensure_group(self, stream: str, group: str) -> None:
        if (stream, group) in self._groups:  # type: ignore[comparison-overlap]
            return
        try:
            await self.r.xgroup_create(stream, group, id="0", mkstream=True)
        except ResponseError as e:
            if "BUSYGROUP" not in str(e):
                raise
        self._groups.add((stream, group))  # type: ignore[arg-type]

    def _stream_of(self, job: job_pb2.Job) -> str:
        return self.keys.jobs(job.channel, job.pattern)

    # -- jobs ----------------------------------------------------------------------------------
    async def publish(self, job: job_pb2.Job) -> str:
        payload = job.SerializeToString()
        async with self.r.pipeline(transaction=True) as p:
            p.xadd(self._stream_of(job), {"job": payload})
            if job.report.uid:
                p.set(self.keys.stored_job(job.report.uid, job.name), payload, ex=self.ttl)
            res = await p.execute()
        return res[0].decode()

    async def publish_once(self, job: job_pb2.Job, marker: str) -> bool:
        keys = [marker, self._stream_of(job), self.keys.stored_job(job.report.uid, job.name)]
        return bool(await self._publish_once(keys=keys, args=[job.SerializeToString(), self.ttl]))

    async def _deliveries(self, channel: str, pattern: str, raw: list[Any],
                          counts: dict[str, int] | None = None) -> list[Delivery]:
        out = []
        for entry_id, fields in raw:
            if not fields:  # deleted entry still in the PEL
                continue
            eid = entry_id.decode()
            job = job_pb2.Job()
            try:
                job.ParseFromString(fields[b"job"])
            except (KeyError, DecodeError) as e:
                await self._dead_letter_entry(channel, pattern, eid, fields, e)
                continue
            out.append(Delivery(eid, channel, pattern, job, (counts or {}).get(eid, 1)))
        return out

    async def _dead_letter_entry(self, channel: str, pattern: str, entry_id: str,
                                 fields: dict[bytes, bytes], error: Exception) -> None:
        """An entry that is not a Job goes to the dead letters at once (its bytes kept under
        `raw`); left pending it would fail every fetch and reclaim that meets it."""
        what = "has no 'job' field" if isinstance(error, KeyError) else f"cannot be parsed: {error}"
        async with self.r.pipeline(transaction=True) as p:
            p.xadd(self.keys.dead(channel, pattern),
                   {"job": b"", "raw": fields.get(b"job", b"")[:65536],
                    "reason": f"InvalidJob: stream entry {entry_id} {what}".encode(),
                    "at": str(time.time()), "pattern": pattern, "channel": channel},
                   maxlen=100_000, approximate=True)
            p.xack(self.keys.jobs(channel, pattern), pattern, entry_id)
            await p.execute()

    async def fetch(self, channel: str, pattern: str, consumer: str, count: int,
                    block_ms: int) -> list[Delivery]:
        stream = self.keys.jobs(channel, pattern)
        await self._ensure_group(stream, pattern)
        res = await self.r.xreadgroup(pattern, consumer, {stream: ">"}, count=count,
                                      block=block_ms if block_ms > 0 else None)
        if not res:
            return []
        return await self._deliveries(channel, pattern, res[0][1])

    async def reclaim(self, channel: str, pattern: str, consumer: str, min_idle_ms: int,
                      count: int) -> list[Delivery]:
        stream = self.keys.jobs(channel, pattern)
        await self._ensure_group(stream, pattern)
        res = await self.r.xautoclaim(stream, pattern, consumer, min_idle_ms, "0-0", count=count)
        claimed = [e for e in res[1] if e[1]]
        if not claimed:
            return []
        counts: dict[str, int] = {}
        for entry_id, _ in claimed:
            info = await self.r.xpending_range(stream, pattern, min=entry_id, max=entry_id, count=1)
            if info:
                counts[entry_id.decode()] = int(info[0]["times_delivered"])
        return await self._deliveries(channel, pattern, claimed, counts)

    async def touch(self, delivery: Delivery, consumer: str) -> None:
        await self.r.xclaim(self.keys.jobs(delivery.channel, delivery.pattern), delivery.pattern,
                            consumer, 0, [delivery.entry_id], justid=True)

    async def complete(self, delivery: Delivery, *, next_job: job_pb2.Job | None,
                       next_marker: str | None, done_marker: str | None) -> None:
        keys, args = self._complete_params(delivery, next_job, next_marker, done_marker)
        await self._complete(keys=keys, args=args)

    def _complete_params(self, delivery: Delivery, next_job: job_pb2.Job | None,
                         next_marker: str | None, done_marker: str | None
                         ) -> tuple[list[Any], list[Any]]:
        """KEYS and ARGV of _COMPLETE_STEPS."""
        stream = self.keys.jobs(delivery.channel, delivery.pattern)
        nk = next_job if next_job is not None else job_pb2.Job()
        keys = [stream, next_marker or stream, self._stream_of(nk) if next_job else stream,
                done_marker or stream,
                self.keys.stored_job(nk.report.uid, nk.name) if next_job else stream]
        args = [delivery.pattern, delivery.entry_id,
                next_job.SerializeToString() if next_job is not None else b"", self.ttl,
                "1" if next_marker else "0", "1" if done_marker else "0"]
        return keys, args

    async def start_job(self, *, cancelled: str | None, done_marker: str | None,
                        lease: str | None, holder: str, lease_ttl: int,
                        event: events_pb2.StageEvent | None) -> tuple[Start, str | None]:
        events = self.keys.events()
        res = await self._start(
            keys=[cancelled or events, done_marker or events, lease or events, events],
            args=["1" if cancelled else "0", "1" if done_marker else "0", "1" if lease else "0",
                  holder, lease_ttl, event.SerializeToString() if event is not None else b"",
                  EVENTS_MAXLEN])
        outcome = (Start.STARTED, Start.CANCELLED, Start.DONE, Start.BUSY)[int(res[0])]
        return outcome, (res[1].decode() if outcome is Start.CANCELLED else None)

    async def finish_job(self, delivery: Delivery, *, event: events_pb2.StageEvent | None,
                         next_job: job_pb2.Job | None, next_marker: str | None,
                         done_marker: str | None, lease: str | None,
                         cancelled: str | None) -> str | None:
        keys, args = self._complete_params(delivery, next_job, next_marker, done_marker)
        events = self.keys.events()
        keys += [events, lease or events, cancelled or events]
        args += [event.SerializeToString() if event is not None else b"", EVENTS_MAXLEN,
                 "1" if lease else "0", "1" if cancelled else "0"]
        value = await self._finish(keys=keys, args=args)
        return None if value is None else value.decode()

    async def retry(self, delivery: Delivery, job: job_pb2.Job, delay: float) -> None:
        member = self._stream_of(job).encode() + b"\x00" + job.SerializeToString()
        async with self.r.pipeline(transaction=True) as p:
            p.zadd(self.keys.delayed(), {member: time.time() + delay})
            p.xack(self.keys.jobs(delivery.channel, delivery.pattern), delivery.pattern,
                   delivery.entry_id)
            await p.execute()

    async def release(self, delivery: Delivery) -> None:
        stream = self.keys.jobs(delivery.channel, delivery.pattern)
        async with self.r.pipeline(transaction=True) as p:
            p.xadd(stream, {"job": delivery.job.SerializeToString()})
            p.xack(stream, delivery.pattern, delivery.entry_id)
            await p.execute()

    async def dead_letter(self, delivery: Delivery, reason: str) -> None:
        async with self.r.pipeline(transaction=True) as p:
            p.xadd(self.keys.dead(delivery.channel, delivery.pattern),
                   {"job": delivery.job.SerializeToString(), "reason": reason.encode(),
                    "at": str(time.time()), "pattern": delivery.pattern,
                    "channel": delivery.channel}, maxlen=100_000, approximate=True)
            p.xack(self.keys.jobs(delivery.channel, delivery.pattern), delivery.pattern,
                   delivery.entry_id)
            await p.execute()

    async def promote_due(self, now: float | None = None) -> int:
        return int(await self._promote(keys=[self.keys.delayed()],
                                       args=[time.time() if now is None else now, 100]))

    async def backlog(self, channel: str, pattern: str) -> Backlog:
        stream = self.keys.jobs(channel, pattern)
        await self._ensure_group(stream, pattern)
        length = await self.r.xlen(stream)
        for g in await self.r.xinfo_groups(stream):
            name = g["name"].decode() if isinstance(g["name"], bytes) else g["name"]
            if name == pattern:
                lag = g.get("lag")
                return Backlog(length=length, pending=int(g["pending"]),
                               lag=int(lag) if lag is not None else length)
        return Backlog(length=length, pending=0, lag=length)

    async def dead_letters(self, channel: str, pattern: str, count: int = 100) -> list[DeadLetter]:
        out = []
        for entry_id, f in await self.r.xrange(self.keys.dead(channel, pattern), count=count):
            job = job_pb2.Job()
            job.ParseFromString(f[b"job"])
            out.append(DeadLetter(entry_id.decode(), job, f.get(b"reason", b"").decode(), pattern,
                                  channel, float(f.get(b"at", b"0"))))
        return out

    async def stored_job(self, uid: str, step: str) -> job_pb2.Job | None:
        raw = await self.r.get(self.keys.stored_job(uid, step))
        if raw is None:
            return None
        job = job_pb2.Job()
        job.ParseFromString(raw)
        return job

    # -- markers -------------------------------------------------------------------------------
    async def set_marker(self, key: str, value: str = "1", ttl: int | None = None) -> bool:
        return bool(await self.r.set(key, value, nx=True, ex=ttl))

    async def get_marker(self, key: str) -> str | None:
        v = await self.r.get(key)
        return None if v is None else v.decode()

    async def delete_marker(self, key: str) -> None:
        await self.r.delete(key)

    async def refresh_marker(self, key: str, ttl: int) -> bool:
        return bool(await self.r.expire(key, ttl))

    # -- events --------------------------------------------------------------------------------
    async def emit(self, event: events_pb2.StageEvent) -> str:
        eid = await self.r.xadd(self.keys.events(), {"d": event.SerializeToString()},
                                maxlen=EVENTS_MAXLEN, approximate=True)
        return eid.decode()

    async def read_events(self, after_id: str, count: int, block_ms: int
                          ) -> list[tuple[str, events_pb2.StageEvent]]:
        res = await self.r.xread({self.keys.events(): after_id}, count=count,
                                 block=block_ms if block_ms > 0 else None)
        out = []
        for _, entries in res or []:
            for entry_id, f in entries:
                ev = events_pb2.StageEvent()
                ev.ParseFromString(f[b"d"])
                out.append((entry_id.decode(), ev))
        return out

    # -- plain streams -------------------------------------------------------------------------
    async def stream_add(self, key: str, data: bytes, ttl: int | None = None) -> str:
        if ttl is None:
            return (await self.r.xadd(key, {"d": data})).decode()
        return (await self._stream_add(keys=[key], args=[data, ttl])).decode()

    async def stream_begin(self, key: str, header: bytes, *, ttl: int, generation_key: str,
                           generation: int, cursors_key: str, producer: str) -> str:
        return (await self._stream_begin(
            keys=[key, generation_key, cursors_key],
            args=[header, ttl, str(generation), producer, self.ttl])).decode()

    async def stream_end(self, key: str, entries: Sequence[bytes], *, ttl: int,
                         generation_key: str, generation: int) -> list[str] | None:
        ids = await self._stream_end(keys=[key, generation_key],
                                     args=[ttl, str(generation), *entries])
        return None if ids is None else [i.decode() for i in ids]

    async def stream_read(self, key: str, after_id: str, count: int, block_ms: int
                          ) -> list[tuple[str, bytes]]:
        res = await self.r.xread({key: after_id}, count=count,
                                 block=block_ms if block_ms > 0 else None)
        if not res:
            return []
        return [(eid.decode(), f[b"d"]) for eid, f in res[0][1]]

    async def stream_len(self, key: str) -> int:
        return int(await self.r.xlen(key))

    async def stream_trim(self, key: str, min_id: str) -> int:
        return int(await self.r.xtrim(key, minid=min_id, approximate=False))

    async def stream_group_read(self, key: str, group: str, consumer: str, count: int,
                                block_ms: int) -> list[tuple[str, bytes]]:
        await self._ensure_group(key, group)
        res = await self.r.xreadgroup(group, consumer, {key: ">"}, count=count,
                                      block=block_ms if block_ms > 0 else None)
        if not res:
            return []
        return [(eid.decode(), f.get(b"d", b"")) for eid, f in res[0][1] if f]

    async def stream_group_ack(self, key: str, group: str, ids: list[str]) -> None:
        if ids:
            await self.r.xack(key, group, *ids)

    async def stream_group_reclaim(self, key: str, group: str, consumer: str, min_idle_ms: int,
                                   count: int) -> list[tuple[str, bytes]]:
        await self._ensure_group(key, group)
        res = await self.r.xautoclaim(key, group, consumer, min_idle_ms, "0-0", count=count)
        return [(eid.decode(), f.get(b"d", b"")) for eid, f in res[1] if f]

    async def hash_set(self, key: str, field: str, value: str) -> None:
        await self._hash_set(keys=[key], args=[field, value, self.ttl])

    async def hash_get_all(self, key: str) -> dict[str, str]:
        return {k.decode(): v.decode() for k, v in (await self.r.hgetall(key)).items()}

    # -- lifecycle -----------------------------------------------------------------------------
    async def delete_report(self, uid: str) -> int:
        n = 0
        for pattern in self.keys.report_pattern(uid):
            batch = [k async for k in self.r.scan_iter(match=pattern, count=500)]
            for i in range(0, len(batch), 500):
                n += await self.r.unlink(*batch[i:i + 500])
        return n

    async def delete_keys(self, keys: list[str]) -> int:
        n = 0
        for i in range(0, len(keys), 500):
            n += await self.r.unlink(*keys[i:i + 500])
        return n

    async def scan_keys(self, match: str) -> list[str]:
        return sorted({k.decode() async for k in self.r.scan_iter(match=match, count=500)})

    async def stream_keys(self, match: str) -> list[str]:
        return sorted({k.decode() async for k in self.r.scan_iter(match=match, _type="stream")})

    async def close(self) -> None:
        await self.r.aclose()
