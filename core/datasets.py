"""Datasets over the bus: a writer that batches rows and throttles to its readers, and a reader
that follows the stream while it is being written.

Wire format (dataset.proto): Header, RowBatch..., End per *generation*. A producer that runs
again starts a new generation; a reader that sees one mid-read raises `DatasetRestarted` so that
its stage starts its output over. Readers record how far they have read (a cursor per reader
step); the writer trims what every reader has read and pauses while the slowest reader is more
than `window_batches` entries behind, so Redis holds a bounded window, not the whole dataset.
A reader that restarts after a crash and finds the start of its generation trimmed asks the
producer to run again (`request_rerun`).
"""
from __future__ import annotations

import asyncio
import time
from collections import deque
from typing import Any, AsyncIterator, Awaitable, Callable, Sequence

from goreports.core.bus.base import Bus, entry_id_less
from goreports.core.errors import DatasetRestarted, PermanentError, TemporaryError
from goreports.core.rowcodec import (FlatEntry, LightBatch, RowDecoder, encode_row_bytes,
                                     entry_batch_bytes)
from goreports.core.values import RowChecksum
from goreports.proto import dataset_pb2 as pb

DONE = "done"


class Superseded(Exception):
    """A newer generation of this dataset was started by a rerun of the same step; this
    (older) producer stops quietly and leaves completion to the newer one."""


def _gen_key(stream: str) -> str:
    return f"{stream}:gen"


class DatasetWriter:
    def __init__(self, bus: Bus, stream: str, *, dataset: str, step: str, readers: list[str],
                 columns: list[pb.Column], batch_rows: int = 500, window_batches: int = 64,
                 ttl: int = 7 * 24 * 3600,
                 on_progress: Callable[[int], Awaitable[None]] | None = None,
                 is_cancelled: Callable[[], Awaitable[bool]] | None = None) -> None:
        self.bus = bus
        self._is_cancelled = is_cancelled
        self._flushes = 0
        self.stream = stream
        self.dataset = dataset
        self.step = step
        self.readers = readers
        self.columns = columns
        self.batch_rows = max(1, batch_rows)
        self.window = max(1, window_batches)
        self.ttl = ttl
        self.generation = 0
        self.rows = 0
        self._buf: list[Sequence[Any]] = []
        self._enc: list[bytes] = []  # write_encoded: serialized rows and their checksum lines
        self._lines: list[str] = []
        self._sum = RowChecksum()
        self._ids: deque[str] = deque()
        self._on_progress = on_progress
        self.closed = False

    async def start(self) -> None:
        await self._check_cancelled()  # create no keys for a report that is already gone
        self.generation = time.time_ns()
        header = pb.DatasetHeader(dataset=self.dataset, columns=self.columns,
                                  generation=self.generation, producer_step=self.step)
        self._ids.append(await self.bus.stream_begin(
            self.stream, pb.DatasetEntry(header=header).SerializeToString(), ttl=self.ttl,
            generation_key=_gen_key(self.stream), generation=self.generation,
            cursors_key=self.bus.keys.cursors(self.stream), producer=self.step))

    async def write(self, rows: Sequence[Sequence[Any]]) -> None:
        """Append rows; they leave in batches of `batch_rows`."""
        self._buf.extend(rows)
        while len(self._buf) >= self.batch_rows:
            chunk, self._buf = self._buf[: self.batch_rows], self._buf[self.batch_rows:]
            await self._flush(chunk)

    async def write_encoded(self, rows: Sequence[bytes], lines: Sequence[str]) -> None:
        """Append rows a producer serialized itself (`Row` bytes) with their checksum lines
        (canonical cells joined by tabs); they leave in batches of `batch_rows`. Not to be
        mixed with `write` in one dataset."""
        self._enc.extend(rows)
        self._lines.extend(lines)
        while len(self._enc) >= self.batch_rows:
            n = self.batch_rows
            chunk, self._enc = self._enc[:n], self._enc[n:]
            text, self._lines = self._lines[:n], self._lines[n:]
            await self._flush_encoded(chunk, text)

    async def close(self) -> tuple[int, str]:
        """Flush, write the end marker; return (row count, checksum)."""
        tail: list[bytes] = []  # the last batch and the end marker leave together
        if self._buf:
            chunk, self._buf = self._buf, []
            tail.append(entry_batch_bytes(encode_row_bytes(chunk), generation=self.generation,
                                          first_row=self.rows))
            self._sum.update(chunk)
            self.rows += len(chunk)
        if self._enc:
            (chunk, self._enc), (text, self._lines) = (self._enc, []), (self._lines, [])
            tail.append(entry_batch_bytes(chunk, generation=self.generation, first_row=self.rows))
            self._sum.update_lines(text)
            self.rows += len(chunk)
        end = pb.DatasetEnd(generation=self.generation, row_count=self.rows,
                            checksum=self._sum.hexdigest())
        end.finished_at.seconds, end.finished_at.nanos = divmod(time.time_ns(), 1_000_000_000)
        tail.append(pb.DatasetEntry(end=end).SerializeToString())
        ids = await self.bus.stream_end(self.stream, tail, ttl=self.ttl,
                                        generation_key=_gen_key(self.stream),
                                        generation=self.generation)
        if ids is None:
            raise Superseded(f"dataset {self.dataset!r} was restarted by a newer run of {self.step}")
        self._ids.extend(ids)
        if len(tail) > 1 and self._on_progress is not None:
            await self._on_progress(self.rows)
        self.closed = True
        return self.rows, self._sum.hexdigest()

    async def __aenter__(self) -> "DatasetWriter":
        return self

    async def __aexit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None and not self.closed:
            await self.close()

    @property
    def checksum(self) -> str:
        return self._sum.hexdigest()

    async def _flush(self, chunk: list[Sequence[Any]]) -> None:
        # Serialized by the fast codec (goreports.core.values): the same bytes as
        # pb.DatasetEntry(batch=pb.RowBatch(...)).SerializeToString(), a column at a time.
        data = entry_batch_bytes(encode_row_bytes(chunk), generation=self.generation,
                                 first_row=self.rows)
        self._sum.update(chunk)
        await self._sent(data, len(chunk))

    async def _flush_encoded(self, chunk: list[bytes], lines: list[str]) -> None:
        data = entry_batch_bytes(chunk, generation=self.generation, first_row=self.rows)
        self._sum.update_lines(lines)
        await self._sent(data, len(chunk))

    async def _sent(self, data: bytes, rows: int) -> None:
        self.rows += rows
        # The stream's expiry is set with the header and the end marker and renewed every 64
        # batches in between: an EXPIRE with every batch made each XADD a pipeline of two.
        await self._add_bytes(data, ttl=self._flushes % 64 == 0)
        if self._on_progress is not None:
            await self._on_progress(self.rows)
        self._flushes += 1
        if self._flushes % 8 == 0:
            await self._check_cancelled()
        if len(self._ids) >= self.window:
            await self._throttle()

    async def _add(self, entry: pb.DatasetEntry) -> None:
        await self._add_bytes(entry.SerializeToString())

    async def _add_bytes(self, data: bytes, *, ttl: bool = True) -> None:
        entry_id = await self.bus.stream_add(self.stream, data, ttl=self.ttl if ttl else None)
        self._ids.append(entry_id)

    async def _check_cancelled(self) -> None:
        if self._is_cancelled is not None and await self._is_cancelled():
            raise PermanentError(f"report cancelled while writing {self.dataset!r}", reason="Cancelled")

    async def _check_superseded(self) -> None:
        current = await self.bus.get_marker(_gen_key(self.stream))
        if current is not None and int(current) > self.generation:
            raise Superseded(f"dataset {self.dataset!r} was restarted by a newer run of {self.step}")

    async def _throttle(self) -> None:
        """Trim what every reader has read; wait while the slowest *started* reader is a window
        behind. The first reader is published together with the dataset, so it is waited for
        from the start; a later reader that has not started yet (e.g. a second generator,
        published only when the first finishes) does not hold the producer back, or the chain
        would deadlock: the stream is simply not trimmed past its start until it begins."""
        delay = 0.002
        while True:
            started, everyone = await self._cursors()
            while self._ids and (started == DONE or not entry_id_less(started, self._ids[0])):
                self._ids.popleft()
            if everyone != "0":
                await self.bus.stream_trim(self.stream, _after(everyone) if everyone != DONE else
                                           (self._ids[0] if self._ids else "0"))
            if len(self._ids) < self.window or started == DONE:
                return
            await self._check_superseded()
            await self._check_cancelled()
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.1)

    async def _cursors(self) -> tuple[str, str]:
        """(slowest cursor among readers that started, slowest among all readers)."""
        cursors = await self.bus.hash_get_all(self.bus.keys.cursors(self.stream))
        started: str | None = None
        everyone: str | None = None
        for i, reader in enumerate(self.readers):
            c = cursors.get(reader)
            if c == DONE:
                continue
            if c is None:
                everyone = "0"
                if i > 0:  # published later in the chain: it cannot be waited for
                    continue
                c = "0"  # the first reader is published with the dataset: wait for it
            if started is None or entry_id_less(c, started):
                started = c
            if everyone is None or (everyone != "0" and entry_id_less(c, everyone)):
                everyone = c
        return (DONE if started is None else started), (DONE if everyone is None else everyone)


def _after(entry_id: str) -> str:
    ms, _, seq = entry_id.partition("-")
    return f"{ms}-{int(seq or 0) + 1}"


class DatasetReader:
    """Follows one dataset stream from its start to the end marker of the latest generation."""

    def __init__(self, bus: Bus, stream: str, *, dataset: str, reader: str,
                 producer_step: str = "",
                 request_rerun: Callable[[str], Awaitable[None]] | None = None,
                 is_cancelled: Callable[[], Awaitable[bool]] | None = None,
                 wait_timeout: float | None = None) -> None:
        self.bus = bus
        self.stream = stream
        self.dataset = dataset
        self.reader = reader
        self.producer_step = producer_step
        self._request_rerun = request_rerun
        self._is_cancelled = is_cancelled
        self.wait_timeout = wait_timeout
        self.columns: list[pb.Column] = []
        self.generation: int | None = None
        self.rows = 0
        self.checksum = ""
        self._pending: list[tuple[str, _Entry]] = []
        self._decoder = RowDecoder([])
        self._after = "0"
        self._asked_rerun = False

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    async def open(self) -> list[pb.Column]:
        """Wait for the header (the producer may not have started yet); return the columns."""
        while self.generation is None:
            entries = self._pending or await self._next_entries()
            self._pending = []
            for i, (_, entry) in enumerate(entries):
                if entry.kind == "header":
                    self._take_header(entry.header)
                    self._pending = entries[i + 1:]  # what followed the header, for batches()
                    break
                await self._lost_start()
        return self.columns

    async def batches(self) -> AsyncIterator[list[list[Any]]]:
        """Row batches of the current generation until its end marker (verified)."""
        async for batch in self._batches(light=False):
            yield batch  # type: ignore[misc]

    async def light_batches(self) -> AsyncIterator[LightBatch | list[list[Any]]]:
        """Like `batches`, but a batch comes as a `LightBatch` (columns with decimals and
        dates as their wire text, see RowDecoder.light) when it has the header's shape; as
        rows otherwise. For consumers that write text (the Excel generator)."""
        async for batch in self._batches(light=True):
            yield batch

    async def _batches(self, *, light: bool) -> AsyncIterator[LightBatch | list[list[Any]]]:
        if self.generation is None:
            await self.open()
        checksum = RowChecksum()
        decoder = self._decoder
        while True:
            entries, self._pending = (self._pending, []) if self._pending else (await self._next_entries(), [])
            for entry_id, entry in entries:
                kind = entry.kind
                if kind == "header":
                    assert entry.header is not None
                    if entry.header.generation != self.generation:
                        raise DatasetRestarted(
                            f"dataset {self.dataset!r} was restarted by {entry.header.producer_step}")
                elif kind == "batch":
                    assert entry.batch is not None
                    if entry.batch.generation != self.generation:
                        continue
                    got = decoder.light(entry.batch.rows) if light else None
                    if got is not None:
                        columns, lines = got
                        checksum.update_lines(lines)
                        self.rows += len(lines)
                        yield LightBatch(columns, len(lines))
                        continue
                    rows = decoder.rows(entry.batch.rows)
                    checksum.update(rows)
                    self.rows += len(rows)
                    yield rows
                elif kind == "end" and entry.end is not None and entry.end.generation == self.generation:
                    self._verify(entry.end, checksum)
                    await self.bus.hash_set(self.bus.keys.cursors(self.stream), self.reader, DONE)
                    return
            if entries:
                await self.bus.hash_set(self.bus.keys.cursors(self.stream), self.reader, entries[-1][0])

    async def rows_iter(self) -> AsyncIterator[list[Any]]:
        async for batch in self.batches():
            for row in batch:
                yield row

    def _take_header(self, header: pb.DatasetHeader) -> None:
        self.generation = header.generation
        self.columns = list(header.columns)
        self._decoder = RowDecoder([c.type for c in self.columns])
        if header.producer_step:
            self.producer_step = header.producer_step

    def _verify(self, end: pb.DatasetEnd, checksum: RowChecksum) -> None:
        self.checksum = checksum.hexdigest()
        if end.row_count != self.rows or end.checksum != self.checksum:
            raise PermanentError(
                f"dataset {self.dataset!r} arrived damaged: {self.rows} rows with checksum "
                f"{self.checksum[:12]}, the producer wrote {end.row_count} with {end.checksum[:12]}",
                reason="DatasetCorrupt")

    async def _lost_start(self) -> None:
        """The first entry we can see is not a header: it was trimmed while we were away."""
        if self._asked_rerun:
            return
        self._asked_rerun = True
        if self._request_rerun is None or not self.producer_step:
            raise TemporaryError(f"the start of dataset {self.dataset!r} is gone and no producer "
                                 f"is known to write it again")
        await self._request_rerun(self.producer_step)

    async def _next_entries(self) -> list[tuple[str, _Entry]]:
        waited = 0.0
        while True:
            raw = await self.bus.stream_read(self.stream, self._after, 64, 1000)
            if raw:
                self._after = raw[-1][0]
                return [(entry_id, _Entry(data)) for entry_id, data in raw]
            waited += 1.0
            if self._is_cancelled is not None and await self._is_cancelled():
                raise PermanentError(f"report cancelled while reading {self.dataset!r}",
                                     reason="Cancelled")
            if self.wait_timeout is not None and waited >= self.wait_timeout:
                raise TemporaryError(f"no data on dataset {self.dataset!r} for {waited:.0f}s")


class _Entry:
    """A stream entry, parsed so that a batch's rows stay serialized rows (the reader's
    RowDecoder decodes them a column at a time) while header and end marker are messages."""

    __slots__ = ("kind", "header", "batch", "end")

    def __init__(self, data: bytes) -> None:
        flat = FlatEntry.FromString(data)
        self.header = pb.DatasetHeader.FromString(flat.header) if flat.HasField("header") else None
        self.batch = flat.batch if flat.HasField("batch") else None
        self.end = pb.DatasetEnd.FromString(flat.end) if flat.HasField("end") else None
        # a oneof: writers set exactly one of the three
        self.kind = ("end" if self.end is not None else "batch" if self.batch is not None
                     else "header" if self.header is not None else None)
