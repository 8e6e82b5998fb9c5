"""What a stage function receives (`StageContext`) and returns (`StageResult`).

A stage is `async def fn(task, ctx) -> StageResult`. It reads datasets with `ctx.read_dataset`,
writes them with `ctx.open_dataset`, stores files with `ctx.artifacts`, and resolves credentials
with `ctx.credentials`. It never acknowledges, retries or publishes jobs itself: it raises
`TemporaryError` / `PermanentError` and the runtime decides.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Sequence

from goreports.core.bus.base import Bus
from goreports.core.datasets import DatasetReader, DatasetWriter
from goreports.core.settings import Settings
from goreports.proto import dataset_pb2, events_pb2, job_pb2, tasks_pb2

if TYPE_CHECKING:
    from goreports.core.artifacts import ArtifactStore
    from goreports.core.credentials import CredentialStore


@dataclass
class StageResult:
    rows: int = 0
    artifacts: list[events_pb2.Artifact] = field(default_factory=list)
    message: str = ""


@dataclass
class StageContext:
    job: job_pb2.Job
    settings: Settings
    bus: Bus
    artifacts: "ArtifactStore"
    credentials: "CredentialStore"
    log: logging.LoggerAdapter  # type: ignore[type-arg]
    work_dir: Path
    # Called by a producer's first dataset header: publishes `next` once (streaming hand-off).
    publish_next: Callable[[], Awaitable[None]]
    emit_progress: Callable[[int], Awaitable[None]]
    # Asks the producer of a trimmed dataset to run again (see goreports.core.datasets).
    request_rerun: Callable[[str], Awaitable[None]]
    is_cancelled: Callable[[], Awaitable[bool]]
    # From the start: the Running event says "started", so a progress event within the first
    # second would only repeat it (and cost a round trip per small report).
    _last_progress: float = field(default_factory=time.monotonic)

    @property
    def report(self) -> job_pb2.ReportRef:
        return self.job.report

    @property
    def step(self) -> str:
        return self.job.name

    @property
    def attempt(self) -> int:
        return self.job.attempt

    async def open_dataset(self, output: tasks_pb2.Output,
                           columns: Sequence[dataset_pb2.Column]) -> DatasetWriter:
        """Start (a new generation of) a dataset; the next job is published at once so that
        its reader starts while rows still arrive."""
        writer = self._writer(output, columns)
        await writer.start()
        await self.publish_next()
        return writer

    async def write_dataset(self, output: tasks_pb2.Output, columns: Sequence[dataset_pb2.Column],
                            rows: Sequence[Sequence[Any]]) -> tuple[int, str]:
        """A whole dataset whose rows are all at hand (a query that fit in its first fetch);
        returns (row count, checksum) like `DatasetWriter.close`.

        Rows fewer than a batch leave with the end marker, so nobody has to read while they
        are written: the next job is then not published here but with the step's success
        (the runtime's atomic publish-next-and-ack), which saves a small report a round trip.
        More rows than that leave in batches first, and the reader is published at once, as
        by `open_dataset` (the writer waits for it). A later `open_dataset` of the same step
        publishes the next job at its start either way."""
        writer = self._writer(output, columns)
        await writer.start()
        if len(rows) >= writer.batch_rows:
            await self.publish_next()
        await writer.write(rows)
        return await writer.close()

    def _writer(self, output: tasks_pb2.Output,
                columns: Sequence[dataset_pb2.Column]) -> DatasetWriter:
        return DatasetWriter(
            self.bus, output.dataset.stream, dataset=output.dataset.name, step=self.step,
            readers=list(output.readers), columns=list(columns),
            batch_rows=self.settings.batch_rows, window_batches=self.settings.window_batches,
            ttl=self.settings.report_ttl, on_progress=self.progress, is_cancelled=self.is_cancelled,
        )

    def read_dataset(self, ref: tasks_pb2.DatasetRef) -> DatasetReader:
        return DatasetReader(self.bus, ref.stream, dataset=ref.name, reader=self.step,
                             producer_step=ref.producer_step, request_rerun=self.request_rerun,
                             is_cancelled=self.is_cancelled)

    async def progress(self, rows: int) -> None:
        """Report rows done so far; throttled to one event a second."""
        now = time.monotonic()
        if now - self._last_progress >= 1.0:
            self._last_progress = now
            await self.emit_progress(rows)

    async def once(self, effect: str) -> bool:
        """True the first time this report step asks for `effect` (an idempotency marker);
        used by stages with several effects, e.g. one mail per recipient group."""
        key = self.bus.keys.marker(self.report.uid, f"effect:{effect}", self.step)
        return await self.bus.set_marker(key, ttl=self.settings.report_ttl)
