"""moto's standalone S3 server on a free loopback port, for tests that need a real S3 endpoint.

It runs as its own process (`python -m moto.server`), so boto3 talks real HTTP with real
signatures, exactly as against MinIO or AWS. The fixture also writes a credentials folder
(`<root>/s3/access-key-id`, `secret-access-key`) the way the chart mounts a Secret.
`run_report` runs a whole ReportRequest in this process with a chosen staging store (what
`goreports run` does with its local store).

A missing moto is a failure, never a skip: `pip install -e .[test]` installs it.
"""
from __future__ import annotations

import asyncio
import importlib.util
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import boto3
import pytest

from goreports.core import compiler, schema, status
from goreports.core.bus.memory import MemoryBus
from goreports.core.keys import Keys
from goreports.core.settings import Settings
from goreports.workers import registry
from goreports.core.artifacts import ArtifactStore
from goreports.core.credentials import CredentialStore
from goreports.workers.runtime import Worker
from support.servers import free_port, terminate, wait_port

ACCESS_KEY = "AKIAGOREPORTSTEST000"
SECRET_KEY = "goreports-test-secret-key-not-real"
CREDENTIALS_ID = "s3"
REGION = "us-east-1"


@dataclass
class MotoServer:
    port: int = field(default_factory=free_port)
    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="goreports-moto-")))
    proc: subprocess.Popen | None = None  # type: ignore[type-arg]
    _client: Any = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def credentials_dir(self) -> Path:
        """The folder of credentials folders (Settings.credentials_dir)."""
        return self.root / "credentials"

    def start(self) -> "MotoServer":
        if importlib.util.find_spec("moto.server") is None:
            raise RuntimeError("moto[server] is not installed; install the test extras "
                               "(pip install -e '.[test]')")
        creds = self.credentials_dir / CREDENTIALS_ID
        creds.mkdir(parents=True, exist_ok=True)
        (creds / "access-key-id").write_text(ACCESS_KEY + "\n")
        (creds / "secret-access-key").write_text(SECRET_KEY + "\n")
        self.log = open(self.root / "moto.log", "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=self.log, stderr=subprocess.STDOUT)
        wait_port(self.port, timeout=60, proc=self.proc)
        return self

    def client(self) -> Any:
        """A plain boto3 client for the test's own checks (made once)."""
        if self._client is None:
            self._client = boto3.session.Session().client(
                "s3", endpoint_url=self.endpoint, region_name=REGION,
                aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY)
        return self._client

    def new_bucket(self, stem: str = "bucket") -> str:
        name = f"{stem}-{uuid.uuid4().hex[:10]}"
        self.client().create_bucket(Bucket=name)
        return name

    def stop(self) -> None:
        terminate(self.proc)
        self.proc = None
        if getattr(self, "log", None):
            self.log.close()
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    server = MotoServer().start()
    yield server
    server.stop()


async def run_report(doc: dict[str, Any], settings: Settings, store: ArtifactStore, *,
                     timeout: float = 60.0) -> tuple[str, dict[str, Any]]:
    """Run one ReportRequest like `goreports run` does (same compiler, stages and runtime, an
    in-process bus) but with the given staging store; return (uid, final status). The store's
    copy of the report is deleted at the end, as `goreports run` and the operator do."""
    schema.validate_report(doc)
    uid = str(uuid.uuid4())
    head = compiler.compile_report(doc, uid=uid, prefix=settings.prefix)
    chain = compiler.iter_chain(head)
    registry.load_builtin_stages()
    patterns = sorted({j.pattern for j in chain})
    bus = MemoryBus(Keys(settings.prefix), settings.report_ttl)
    worker = Worker(bus=bus, settings=settings, patterns=patterns, artifacts=store,
                    credentials=CredentialStore(settings.credentials_dir),
                    concurrency=len(chain) + len(patterns), block_ms=100)
    stop = asyncio.Event()
    runner = asyncio.create_task(worker.run(stop))
    st = status.initial_status([(j.name, j.pattern) for j in chain])
    after = "0-0"
    try:
        await bus.publish(head)
        deadline = time.monotonic() + timeout
        while st["phase"] not in status.FINAL_PHASES:
            if runner.done():
                runner.result()
                raise RuntimeError("the worker stopped before the report finished")
            if time.monotonic() > deadline:
                raise TimeoutError(f"report not finished after {timeout}s: {st}")
            for entry_id, ev in await bus.read_events(after, 100, 100):
                after = entry_id
                if ev.report.uid == uid:
                    st = status.fold(st, ev)
    finally:
        stop.set()
        await runner
        await bus.delete_report(uid)
        await store.delete_report(uid)
        await bus.close()
    return uid, st
