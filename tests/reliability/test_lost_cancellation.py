"""A cancellation lost inside the Redis client must not hang a finished job.

Found by the burst test: under load, 2 of 1,000 reports stayed Running for good. Their stage
had finished, but the worker waited on the cancelled heartbeat task, which had lost the
cancellation inside redis-py and went on renewing the job's claim, so nobody ever took the job
over. Here the bus's `touch` swallows the cancellation on purpose (deterministically), and the
job must still complete.
"""
from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path

import pytest

from goreports.core.artifacts import LocalArtifactStore
from goreports.core.bus.base import Delivery
from goreports.core.bus.memory import MemoryBus
from goreports.core.credentials import CredentialStore
from goreports.core.keys import Keys
from goreports.core.settings import Settings
from goreports.workers.runtime import Worker
from support import stages  # noqa: F401  (registers test-effect)
from support.faults import Outcome
from support.workers import struct_job

pytestmark = [pytest.mark.reliability, pytest.mark.timeout(180)]


class SwallowingBus(MemoryBus):
    """`touch` is a slow round trip whose cleanup eats a cancellation, as a client can."""

    touching = 0

    async def touch(self, delivery: Delivery, consumer: str) -> None:
        self.touching += 1
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            pass


async def test_a_job_completes_when_its_heartbeat_ignores_cancellation(tmp_path: Path,
                                                                       outcome: Outcome) -> None:
    outcome.fault = "Heartbeat loses its cancellation (client library)"
    bus = SwallowingBus(Keys("goreports"))
    settings = Settings(visibility_timeout=60, heartbeat_interval=0.01, artifact_dir=tmp_path / "s",
                        work_dir=tmp_path / "w", credentials_dir=tmp_path / "c")
    worker = Worker(bus=bus, settings=settings, patterns=["test-effect"],
                    artifacts=LocalArtifactStore(settings.artifact_dir),
                    credentials=CredentialStore(settings.credentials_dir), concurrency=2, block_ms=50)
    effect = tmp_path / "effect"
    await bus.publish(struct_job("deliver", "dispatchers", "test-effect",
                                 {"sleep": 0.2, "effectFile": str(effect)}, uid=uuid.uuid4().hex))
    stop = asyncio.Event()
    run = asyncio.create_task(worker.run(stop))
    try:
        deadline = time.monotonic() + 60  # without the fix it never completes
        while not worker.handled.get("succeeded") and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        await asyncio.wait({run}, timeout=30)
    outcome.reports = 1
    outcome.completed = int(bool(worker.handled.get("succeeded")))
    outcome.losses = 1 - outcome.completed
    assert bus.touching >= 1, "the heartbeat never ran: the fault was not injected"
    assert worker.handled.get("succeeded") == 1, worker.handled
    assert effect.read_text().count("\n") == 1
    outcome.note = "the stage's end does not wait on the heartbeat without a bound"
