"""A query result cache on the bus (the MySQL collector's `use_cache`).

Why on the bus: every worker of a pool shares it, it needs no new service, and its entries expire
by themselves. The bus only has generic stream operations (no rename, no multi-key commit), so a
cache entry is built like this:

1. The rows are written, in the same batches the collector sends on, to a stream with a random
   suffix: `{prefix}:cache:{digest}:data:{suffix}` — a DatasetHeader (columns), RowBatches, then
   a DatasetEnd (row count and checksum) as the completion mark. Protobuf bytes, as datasets.
2. Only when that stream is complete is the pointer `{prefix}:cache:{digest}` set to the suffix,
   with `set_marker` (set-if-absent): when two runs fill the same cache at once, the first to
   finish wins and the other's stream is trimmed (its key then expires).

A reader follows the pointer, checks the header, replays the batches and verifies the end mark
and checksum, so a half-written, evicted or expired stream is never taken for a result: it is
reported as broken and the pointer removed, so the next run queries the database again. The data
stream lives a little longer than the pointer (TTL + margin), so a pointer never outlives its
rows in the normal course.

The digest covers what decides the rows: instance label, host, port, database, user, SQL text
and the bound parameters (sorted). The user is part of it because two users may see different
rows of the same query (views, grants): one user's cached rows are never served to another.
Pagination settings are not part of it: paged and unpaged runs give the same dataset.

A result above `max_bytes` (encoded) is not cached: Redis holds the whole cached result, unlike
a dataset stream, which is trimmed as it is read.
"""
from __future__ import annotations

import hashlib
import json
import secrets
from typing import Any, AsyncIterator, Mapping, Sequence

from goreports.core.bus.base import Bus
from goreports.core.values import RowChecksum, canonical, decode_rows, encode_rows
from goreports.proto import dataset_pb2 as pb

FORMAT = "goreports-mysql-cache/v1"
DEFAULT_MAX_BYTES = 256 * 1024 * 1024


class CacheBroken(Exception):
    """A cache entry that a pointer names is incomplete or damaged (expired, evicted)."""


def digest(*, instance: str, host: str, port: int, database: str, user: str, sql: str,
           params: Mapping[str, Any]) -> str:
    """sha256 over what decides a query's rows (see the module docstring)."""
    doc = {
        "format": FORMAT, "instance": instance, "host": host.lower(), "port": port,
        "database": database, "user": user, "sql": sql,
        "params": sorted((k, _param_text(v)) for k, v in params.items()),
    }
    return hashlib.sha256(json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _param_text(v: Any) -> str:
    """Typed text of a parameter, so 1 and '1' differ."""
    if isinstance(v, (tuple, list)):
        return "(" + ",".join(_param_text(x) for x in v) + ")"
    return f"{type(v).__name__}:{canonical(v)}"


def data_key(pointer: str, suffix: str) -> str:
    return f"{pointer}:data:{suffix}"


class CacheWriter:
    """Fills one cache entry while the collector streams the rows."""

    def __init__(self, bus: Bus, pointer: str, *, ttl: int, dataset: str,
                 max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.bus = bus
        self.pointer = pointer
        self.ttl = max(1, ttl)
        self.stream_ttl = self.ttl + max(60, self.ttl // 10)  # outlives the pointer
        self.dataset = dataset
        self.max_bytes = max_bytes
        self.suffix = secrets.token_hex(8)
        self.key = data_key(pointer, self.suffix)
        self.bytes = 0
        self.rows = 0
        self.given_up = False
        self._last_id = ""

    async def start(self, columns: Sequence[pb.Column]) -> None:
        await self._add(pb.DatasetEntry(header=pb.DatasetHeader(dataset=self.dataset,
                                                                columns=list(columns))))

    async def add(self, rows: Sequence[Sequence[Any]]) -> None:
        if self.given_up or not rows:
            return
        batch = pb.RowBatch(first_row=self.rows, rows=encode_rows(rows))
        self.rows += len(rows)
        await self._add(pb.DatasetEntry(batch=batch))
        if self.bytes > self.max_bytes:
            await self.abandon()

    async def commit(self, row_count: int, checksum: str) -> bool:
        """Write the end mark and point the cache at this entry; False if it was given up or
        another run completed the same cache first."""
        if self.given_up:
            return False
        await self._add(pb.DatasetEntry(end=pb.DatasetEnd(row_count=row_count, checksum=checksum)))
        if await self.bus.set_marker(self.pointer, self.suffix, ttl=self.ttl):
            return True
        await self.abandon()
        return False

    async def abandon(self) -> None:
        """Drop what was written (the key itself expires with its TTL)."""
        self.given_up = True
        if self._last_id:
            await self.bus.stream_trim(self.key, _after(self._last_id))

    async def _add(self, entry: pb.DatasetEntry) -> None:
        data = entry.SerializeToString()
        self.bytes += len(data)
        self._last_id = await self.bus.stream_add(self.key, data, ttl=self.stream_ttl)


class CachedResult:
    """A complete cache entry being replayed: `columns`, then `batches()` (verified)."""

    def __init__(self, bus: Bus, pointer: str, key: str, columns: list[pb.Column],
                 after: str) -> None:
        self.bus = bus
        self.pointer = pointer
        self.key = key
        self.columns = columns
        self._after = after
        self.rows = 0

    async def batches(self) -> AsyncIterator[list[list[Any]]]:
        """Row batches; raises CacheBroken (and drops the pointer) unless the end mark is found
        and row count and checksum agree."""
        checksum = RowChecksum()
        while True:
            raw = await self.bus.stream_read(self.key, self._after, 64, 0)
            if not raw:
                await self._broken("it ends before its end mark")
            for entry_id, data in raw:
                self._after = entry_id
                entry = pb.DatasetEntry()
                entry.ParseFromString(data)
                kind = entry.WhichOneof("kind")
                if kind == "batch":
                    rows = decode_rows(entry.batch.rows)
                    checksum.update(rows)
                    self.rows += len(rows)
                    yield rows
                elif kind == "end":
                    if entry.end.row_count != self.rows or entry.end.checksum != checksum.hexdigest():
                        await self._broken("its rows do not match its end mark")
                    return
                else:
                    await self._broken(f"it holds an unexpected {kind} entry")

    async def _broken(self, why: str) -> None:
        await self.bus.delete_marker(self.pointer)
        raise CacheBroken(f"cache entry {self.key} is unusable: {why}")


async def open_cached(bus: Bus, pointer: str) -> CachedResult | None:
    """The cache entry the pointer names, or None when there is none (a miss). A pointer to a
    stream that is gone or does not start with a header is dropped and counts as a miss."""
    suffix = await bus.get_marker(pointer)
    if suffix is None:
        return None
    key = data_key(pointer, suffix)
    first = await bus.stream_read(key, "0", 1, 0)
    if first:
        entry = pb.DatasetEntry()
        entry.ParseFromString(first[0][1])
        if entry.WhichOneof("kind") == "header":
            return CachedResult(bus, pointer, key, list(entry.header.columns), first[0][0])
    await bus.delete_marker(pointer)
    return None


def _after(entry_id: str) -> str:
    ms, _, seq = entry_id.partition("-")
    return f"{ms}-{int(seq or 0) + 1}"
