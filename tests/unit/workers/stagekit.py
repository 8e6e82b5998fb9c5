"""Run stages in a test without servers: a StageContext over the in-process bus and a local
artifact store, plus helpers to put datasets on the bus and read them back."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Sequence

from goreports.core.bus.memory import MemoryBus
from goreports.core.datasets import DatasetReader, DatasetWriter
from goreports.core.settings import Settings
from goreports.proto import dataset_pb2, job_pb2, tasks_pb2
from goreports.core.artifacts import LocalArtifactStore
from goreports.core.credentials import CredentialStore
from goreports.workers.stage import StageContext

UID = "uid-0001"
PRODUCER = "collect"


def make_ctx(tmp_path: Path, step: str, *, bus: MemoryBus | None = None,
             pattern: str = "", batch_rows: int = 100, window_batches: int = 64) -> StageContext:
    """A context for one step of report `sales` (uid UID); artifacts under tmp_path/artifacts."""
    settings = Settings(work_dir=tmp_path / "work" / step, artifact_dir=tmp_path / "artifacts",
                        credentials_dir=tmp_path / "credentials", batch_rows=batch_rows,
                        window_batches=window_batches)
    job = job_pb2.Job(name=step, pattern=pattern or step, attempt=1,
                      report=job_pb2.ReportRef(namespace="default", name="sales", uid=UID))

    async def nothing(*_: Any) -> None:
        return None

    async def not_cancelled() -> bool:
        return False

    return StageContext(
        job=job, settings=settings, bus=bus or MemoryBus(),
        artifacts=LocalArtifactStore(settings.artifact_dir),
        credentials=CredentialStore(settings.credentials_dir),
        log=logging.LoggerAdapter(logging.getLogger(f"test.{step}"), {}),
        work_dir=settings.work_dir, publish_next=nothing, emit_progress=nothing,
        request_rerun=nothing, is_cancelled=not_cancelled)


def ref(bus: MemoryBus, name: str, producer: str = PRODUCER) -> tasks_pb2.DatasetRef:
    return tasks_pb2.DatasetRef(name=name, stream=bus.keys.data(UID, name, producer),
                                producer_step=producer)


def output(bus: MemoryBus, name: str, readers: Sequence[str] = (),
           producer: str = PRODUCER) -> tasks_pb2.Output:
    return tasks_pb2.Output(dataset=ref(bus, name, producer), readers=list(readers))


def columns(*spec: tuple[str, int]) -> list[dataset_pb2.Column]:
    return [dataset_pb2.Column(name=n, type=t) for n, t in spec]


async def feed(bus: MemoryBus, name: str, cols: Sequence[dataset_pb2.Column],
               rows: Sequence[Sequence[Any]], *, batch_rows: int = 100) -> tasks_pb2.DatasetRef:
    """Write a whole dataset (no readers to wait for); return the ref a reader uses."""
    r = ref(bus, name)
    writer = DatasetWriter(bus, r.stream, dataset=name, step=PRODUCER, readers=[],
                           columns=list(cols), batch_rows=batch_rows)
    await writer.start()
    await writer.write(rows)
    await writer.close()
    return r


async def drain(bus: MemoryBus, name: str, reader: str = "check"
                ) -> tuple[list[dataset_pb2.Column], list[list[Any]]]:
    """Read a whole dataset back: (columns, rows)."""
    r = ref(bus, name)
    rd = DatasetReader(bus, r.stream, dataset=name, reader=reader, wait_timeout=5)
    cols = await rd.open()
    rows = [row async for row in rd.rows_iter()]
    return cols, rows
