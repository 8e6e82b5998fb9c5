"""The bus interface: jobs, datasets, markers and events, with two implementations.

`RedisBus` (Redis Streams) is what runs in a cluster; `MemoryBus` is the same contract in one
process for `goreports run`. The contract test suite (tests/integration/test_bus_contract.py)
runs against both. Semantics the runtime relies on:

- `complete` publishes the next job (at most once per report step), records the step as done
  and acknowledges the delivery in one atomic step: a job is never acknowledged before its next
  job exists, and a re-delivered job never publishes its next job twice.
- `reclaim` hands over deliveries idle longer than the visibility timeout (dead workers);
  `touch` keeps a long job's claim alive.
- `retry` moves a job to the delayed set and acknowledges the delivery atomically;
  `promote_due` puts due jobs back on their streams.
- `start_job` / `finish_job` (what a worker does around a stage) and `stream_begin` /
  `stream_end` (a dataset's first and last writes) are the single steps above merged: the
  base class composes them from those steps, RedisBus runs each as one script, because a
  small report's cost is mostly round trips.
"""
from __future__ import annotations

import abc
import enum
from dataclasses import dataclass
from typing import Sequence

from goreports.core.keys import Keys
from goreports.proto import events_pb2, job_pb2


@dataclass
class Delivery:
    """A job handed to one consumer; `deliveries` counts hand-overs (1 = first delivery)."""

    entry_id: str
    channel: str
    pattern: str
    job: job_pb2.Job
    deliveries: int = 1


class Start(str, enum.Enum):
    """What `Bus.start_job` found before a stage may run."""

    STARTED = "started"      # lease taken (when asked for), Running event appended
    CANCELLED = "cancelled"  # the report is cancelled or failed
    DONE = "done"            # the step's effect is already done (a re-delivery)
    BUSY = "busy"            # another worker holds the step's lease


@dataclass(frozen=True)
class Backlog:
    """What the scaler and `goreports status` need about one job stream."""

    length: int   # entries in the stream
    pending: int  # delivered, not acknowledged
    lag: int      # not yet delivered to the group

    @property
    def total(self) -> int:
        return self.pending + self.lag


@dataclass(frozen=True)
class DeadLetter:
    entry_id: str
    job: job_pb2.Job
    reason: str
    pattern: str
    channel: str
    at: float


class Bus(abc.ABC):
    """One interface over Redis Streams and the in-process bus."""

    keys: Keys
    ttl: int

    # -- jobs --------------------------------------------------------------------------------
    @abc.abstractmethod
    async def publish(self, job: job_pb2.Job) -> str:
        """Put a job on its stream (`jobs:{channel}:{pattern}`); also keep a copy by step."""

    @abc.abstractmethod
    async def publish_once(self, job: job_pb2.Job, marker: str) -> bool:
        """Publish unless `marker` is already set; set it atomically with the publish."""

    @abc.abstractmethod
    async def fetch(self, channel: str, pattern: str, consumer: str, count: int,
                    block_ms: int) -> list[Delivery]:
        """New deliveries for this consumer (blocks up to block_ms when there are none)."""

    @abc.abstractmethod
    async def reclaim(self, channel: str, pattern: str, consumer: str, min_idle_ms: int,
                      count: int) -> list[Delivery]:
        """Take over deliveries of other consumers idle for at least min_idle_ms."""

    @abc.abstractmethod
    async def touch(self, delivery: Delivery, consumer: str) -> None:
        """Reset the idle time of a delivery this consumer still works on."""

    @abc.abstractmethod
    async def complete(self, delivery: Delivery, *, next_job: job_pb2.Job | None,
                       next_marker: str | None, done_marker: str | None) -> None:
        """Atomically: publish next (once, by next_marker), set done_marker, acknowledge."""

    async def start_job(self, *, cancelled: str | None, done_marker: str | None,
                        lease: str | None, holder: str, lease_ttl: int,
                        event: events_pb2.StageEvent | None) -> tuple[Start, str | None]:
        """The checks before a stage runs, in this order, as one round trip where the bus
        can (a small report's stage is dominated by round trips): the `cancelled` key is set
        (CANCELLED, with its value), the `done_marker` is set (DONE), `lease` is held by
        someone else (BUSY); otherwise take `lease` for `holder` and append `event` (STARTED).
        None skips a check."""
        if cancelled is not None:
            value = await self.get_marker(cancelled)
            if value is not None:
                return Start.CANCELLED, value
        if done_marker is not None and await self.get_marker(done_marker):
            return Start.DONE, None
        if lease is not None and not await self.set_marker(lease, holder, ttl=lease_ttl):
            return Start.BUSY, None
        if event is not None:
            await self.emit(event)
        return Start.STARTED, None

    async def finish_job(self, delivery: Delivery, *, event: events_pb2.StageEvent | None,
                         next_job: job_pb2.Job | None, next_marker: str | None,
                         done_marker: str | None, lease: str | None,
                         cancelled: str | None) -> str | None:
        """A stage's success, as one round trip where the bus can: append `event`
        (Succeeded), `complete` (publish next once, mark done, acknowledge: atomic as
        always), drop `lease`, and return the value of the `cancelled` key (None when unset
        or not asked): a report cancelled while its step ran has data left to delete."""
        if event is not None:
            await self.emit(event)
        await self.complete(delivery, next_job=next_job, next_marker=next_marker,
                            done_marker=done_marker)
        if lease is not None:
            await self.delete_marker(lease)
        return None if cancelled is None else await self.get_marker(cancelled)

    @abc.abstractmethod
    async def retry(self, delivery: Delivery, job: job_pb2.Job, delay: float) -> None:
        """Atomically: schedule `job` (attempt raised) after `delay` seconds and acknowledge."""

    @abc.abstractmethod
    async def release(self, delivery: Delivery) -> None:
        """Give a delivery back at once (shutdown): re-publish it and acknowledge this one."""

    @abc.abstractmethod
    async def dead_letter(self, delivery: Delivery, reason: str) -> None:
        """Atomically: append to `dead:{channel}:{pattern}` and acknowledge."""

    @abc.abstractmethod
    async def promote_due(self, now: float | None = None) -> int:
        """Move delayed jobs whose time has come onto their streams; return how many."""

    @abc.abstractmethod
    async def backlog(self, channel: str, pattern: str) -> Backlog: ...

    @abc.abstractmethod
    async def dead_letters(self, channel: str, pattern: str, count: int = 100) -> list[DeadLetter]: ...

    @abc.abstractmethod
    async def stored_job(self, uid: str, step: str) -> job_pb2.Job | None:
        """The copy of a report step's job kept by `publish` (for reruns and replays)."""

    # -- markers -----------------------------------------------------------------------------
    @abc.abstractmethod
    async def set_marker(self, key: str, value: str = "1", ttl: int | None = None) -> bool:
        """Set if absent; True when this call set it."""

    @abc.abstractmethod
    async def get_marker(self, key: str) -> str | None: ...

    @abc.abstractmethod
    async def delete_marker(self, key: str) -> None: ...

    @abc.abstractmethod
    async def refresh_marker(self, key: str, ttl: int) -> bool:
        """Extend a marker's life (a lease kept by a heartbeat); False if it is gone."""

    # -- events ------------------------------------------------------------------------------
    @abc.abstractmethod
    async def emit(self, event: events_pb2.StageEvent) -> str: ...

    @abc.abstractmethod
    async def read_events(self, after_id: str, count: int, block_ms: int
                          ) -> list[tuple[str, events_pb2.StageEvent]]: ...

    # -- plain streams (datasets) ------------------------------------------------------------
    @abc.abstractmethod
    async def stream_add(self, key: str, data: bytes, ttl: int | None = None) -> str:
        """Append an entry; `ttl` (seconds) is applied to the stream key."""

    async def stream_begin(self, key: str, header: bytes, *, ttl: int, generation_key: str,
                           generation: int, cursors_key: str, producer: str) -> str:
        """Start a generation of a dataset stream, in one round trip where the bus can:
        name the producer in the cursors hash, make `generation` the current one (the latest
        start wins) and append `header`; return its entry id."""
        await self.hash_set(cursors_key, "__producer__", producer)
        await self.delete_marker(generation_key)
        await self.set_marker(generation_key, str(generation), ttl=ttl)
        return await self.stream_add(key, header, ttl=ttl)

    async def stream_end(self, key: str, entries: Sequence[bytes], *, ttl: int,
                         generation_key: str, generation: int) -> list[str] | None:
        """Append a generation's last entries (its last batch and end marker), in one round
        trip where the bus can, unless a newer generation has started: then append nothing
        and return None."""
        current = await self.get_marker(generation_key)
        if current is not None and int(current) > generation:
            return None
        return [await self.stream_add(key, e, ttl=ttl) for e in entries]

    @abc.abstractmethod
    async def stream_read(self, key: str, after_id: str, count: int, block_ms: int
                          ) -> list[tuple[str, bytes]]:
        """Entries after `after_id` ("0" = from the start), waiting up to block_ms for some."""

    @abc.abstractmethod
    async def stream_len(self, key: str) -> int: ...

    @abc.abstractmethod
    async def stream_trim(self, key: str, min_id: str) -> int:
        """Drop entries with an id lower than min_id."""

    @abc.abstractmethod
    async def stream_group_read(self, key: str, group: str, consumer: str, count: int,
                                block_ms: int) -> list[tuple[str, bytes]]:
        """New entries of a plain stream for one consumer of a group (the operator reads the
        events stream this way, so two replicas share the work and a dead one's is reclaimed)."""

    @abc.abstractmethod
    async def stream_group_ack(self, key: str, group: str, ids: list[str]) -> None: ...

    @abc.abstractmethod
    async def stream_group_reclaim(self, key: str, group: str, consumer: str, min_idle_ms: int,
                                   count: int) -> list[tuple[str, bytes]]: ...

    @abc.abstractmethod
    async def hash_set(self, key: str, field: str, value: str) -> None: ...

    @abc.abstractmethod
    async def hash_get_all(self, key: str) -> dict[str, str]: ...

    # -- lifecycle ---------------------------------------------------------------------------
    @abc.abstractmethod
    async def delete_report(self, uid: str) -> int:
        """Remove every key of a report (data streams, markers, stored jobs); return count."""

    async def delete_data(self, uid: str) -> int:
        """Remove a finished report's dataset streams (its markers stay until their TTL, so a
        late re-delivery still finds its step done)."""
        keys = await self.scan_keys(f"{self.keys.prefix}:data:{uid}:*")
        return await self.delete_keys(keys)

    @abc.abstractmethod
    async def scan_keys(self, match: str) -> list[str]:
        """Every key (of any type) matching a glob pattern."""

    @abc.abstractmethod
    async def delete_keys(self, keys: list[str]) -> int: ...

    @abc.abstractmethod
    async def stream_keys(self, match: str) -> list[str]: ...

    @abc.abstractmethod
    async def close(self) -> None: ...


def job_stream(keys: Keys, job: job_pb2.Job) -> str:
    return keys.jobs(job.channel, job.pattern)


def entry_id_less(a: str, b: str) -> bool:
    """Order of stream entry ids ("ms-seq")."""
    return _id_tuple(a) < _id_tuple(b)


def _id_tuple(i: str) -> tuple[int, int]:
    ms, _, seq = i.partition("-")
    return int(ms), int(seq or 0)


__all__: Sequence[str] = ["Bus", "Delivery", "Backlog", "DeadLetter", "Start", "job_stream",
                          "entry_id_less"]
