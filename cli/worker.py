"""`goreports worker --pattern P`: one worker pool process (a Deployment's container).

With GOREPORTS_METRICS_PORT or GOREPORTS_HEALTH_PORT set, it also serves GET /metrics
(Prometheus) and GET /healthz (liveness) on that port (on both, when both are set and differ).
"""
from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
from typing import Any

from goreports.core import metrics
from goreports.core.bus.redis import RedisBus
from goreports.core.settings import Settings
from goreports.cli import logs
from goreports.workers import registry
from goreports.workers.runtime import Worker
from goreports.core.stores import artifact_store_from_settings
from goreports.core.credentials import CredentialStore

log = logging.getLogger("goreports.worker")


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("worker", help="run a worker pool process for one or more patterns")
    p.add_argument("--pattern", "-p", action="append", required=True,
                   help="pattern to serve (repeatable), e.g. mysql, excel, s3; NAME=STAGE serves a "
                        "dedicated pool's pattern with a built-in stage, e.g. mysql-finance=mysql")
    p.add_argument("--concurrency", "-c", type=int, default=4, help="jobs run at once (default 4)")
    p.add_argument("--grace-period", type=float, default=25.0,
                   help="seconds to finish in-flight jobs on SIGTERM before releasing them")
    p.set_defaults(func=main)


async def serve(settings: Settings, patterns: list[str], concurrency: int, grace: float) -> None:
    registry.load_builtin_stages()
    bus = RedisBus.from_settings(settings)
    worker = Worker(bus=bus, settings=settings, patterns=patterns,
                    artifacts=artifact_store_from_settings(settings),
                    credentials=CredentialStore(settings.credentials_dir),
                    concurrency=max(concurrency, len(patterns)), grace_period=grace)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    log.info("worker %s serving %s (concurrency %d)", worker.name, ", ".join(patterns), worker.concurrency)
    http = await _serve_http(worker, stop)
    try:
        await worker.run(stop)
    finally:
        if http is not None:
            await http.cleanup()
        await bus.close()
    log.info("worker %s stopped", worker.name)


async def _serve_http(worker: Worker, stop: asyncio.Event) -> Any:
    """/metrics and /healthz, when a port is configured (the chart sets GOREPORTS_HEALTH_PORT)."""
    ports = metrics.metrics_ports(os.environ)
    if not ports:
        return None

    async def health() -> tuple[bool, dict[str, Any]]:
        # Answered by the event loop itself: a wedged loop fails the probe. Redis is not
        # checked on purpose: restarting every worker does not bring Redis back.
        return not stop.is_set(), {"worker": worker.name, "patterns": worker.patterns,
                                   "inflight": len(worker._inflight)}

    runner = await metrics.serve_http(ports, health)
    log.info("serving /metrics and /healthz on port(s) %s", ", ".join(map(str, ports)))
    return runner


def main(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    logs.setup(settings.log_level, settings.log_format)
    asyncio.run(serve(settings, args.pattern, args.concurrency, args.grace_period))
    return 0
