"""A FIFO of row batches between one dataset reader and one consumer, spilling to a local file.

Why: the aggregator reads every input stream as fast as it arrives (see `aggregate.py` for the
deadlock this avoids), but a consumer may not be ready for it yet: a join must load its whole
right side before it can use a left row, and a union emits its inputs one after the other. The
batches a consumer is not ready for wait in this spool: the first `memory_batches` in memory,
the rest appended to a file under the step's work directory. Memory per spool is bounded; disk
holds what a consumer lags behind, and the file is emptied whenever the consumer catches up.

The file holds pickled batches: every cell comes back with its exact Python type (Decimal,
date, JsonText, ...), and pickle is about ten times faster than re-encoding the cells as wire
Values, which matters because a join's left side may pass through here whole. Pickle is safe
here because the file never crosses a trust boundary: this process writes it into its private
work directory, reads it back, and deletes it; nothing else ever reads it.

Order is kept by one invariant: a batch goes to memory only while the file holds no unread batch,
so everything in memory is older than everything in the file.
"""
from __future__ import annotations

import asyncio
import pickle
import struct
from collections import deque
from pathlib import Path
from typing import IO, Any, AsyncIterator

from goreports.proto import dataset_pb2 as pb

Batch = list[list[Any]]
_LEN = struct.Struct(">I")


def _encode(batch: Batch) -> bytes:
    data = pickle.dumps(batch, protocol=pickle.HIGHEST_PROTOCOL)
    return _LEN.pack(len(data)) + data


class Spool:
    def __init__(self, path: Path, *, memory_batches: int = 4) -> None:
        self.path = path
        self.memory_batches = max(0, memory_batches)
        self.columns: list[pb.Column] | None = None
        self.batches_put = 0
        self.spilled_total = 0  # batches that went to disk (for tests and logs)
        self._mem: deque[Batch] = deque()
        self._unread = 0  # batches in the file not yet read
        self._wf: IO[bytes] | None = None
        self._rf: IO[bytes] | None = None
        self._lock = asyncio.Lock()
        self._changed = asyncio.Event()
        self._header = asyncio.Event()
        self._closed = False

    # -- producer side ----------------------------------------------------------------------------
    def set_columns(self, columns: list[pb.Column]) -> None:
        self.columns = list(columns)
        self._header.set()

    async def put(self, batch: Batch) -> None:
        if not batch:
            return
        async with self._lock:
            if self._unread == 0 and len(self._mem) < self.memory_batches:
                self._mem.append(batch)
            else:
                await asyncio.to_thread(self._write, _encode(batch))
                self._unread += 1
                self.spilled_total += 1
        self.batches_put += 1
        self._changed.set()

    def close(self) -> None:
        """No more batches."""
        self._closed = True
        self._changed.set()

    # -- consumer side ----------------------------------------------------------------------------
    async def header(self) -> list[pb.Column]:
        await self._header.wait()
        assert self.columns is not None
        return self.columns

    async def get(self) -> Batch | None:
        """The next batch, or None after the last one."""
        while True:
            self._changed.clear()
            if self._mem:
                return self._mem.popleft()
            if self._unread:
                async with self._lock:
                    batch = await asyncio.to_thread(self._read)
                    self._unread -= 1
                    if self._unread == 0:
                        await asyncio.to_thread(self._reset)
                return batch
            if self._closed:
                return None
            await self._changed.wait()

    async def batches(self) -> AsyncIterator[Batch]:
        while (batch := await self.get()) is not None:
            yield batch

    def cleanup(self) -> None:
        for f in (self._wf, self._rf):
            if f is not None:
                f.close()
        self._wf = self._rf = None
        self.path.unlink(missing_ok=True)

    # -- the file (run in a thread) ---------------------------------------------------------------
    def _write(self, data: bytes) -> None:
        if self._wf is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._wf = open(self.path, "ab")
            self._rf = open(self.path, "rb", buffering=0)  # no read-ahead past what is written
        self._wf.write(data)
        self._wf.flush()

    def _read(self) -> Batch:
        assert self._rf is not None
        size = _LEN.unpack(self._read_exact(_LEN.size))[0]
        batch: Batch = pickle.loads(self._read_exact(size))  # our own file: see the docstring
        return batch

    def _read_exact(self, n: int) -> bytes:
        assert self._rf is not None
        parts, left = [], n
        while left:
            chunk = self._rf.read(left)
            if not chunk:
                raise EOFError(f"spool file {self.path} ended {left} bytes early")
            parts.append(chunk)
            left -= len(chunk)
        return b"".join(parts)

    def _reset(self) -> None:
        """The consumer read everything on disk: start the file over."""
        assert self._wf is not None and self._rf is not None
        self._wf.truncate(0)
        self._rf.seek(0)
