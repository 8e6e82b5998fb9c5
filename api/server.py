"""Run the Reports API: REST (aiohttp) and gRPC (grpc.aio) in one event loop, one process.

Why together: both front doors share the Kubernetes client and the auth configuration, and one
Deployment serves both ports. Shutdown is graceful: gRPC health turns NOT_SERVING first, then
in-flight calls get `grace` seconds, then the Kubernetes client closes.
"""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

import grpc
from aiohttp import web

from goreports.api import grpc_api
from goreports.api._kube import KubeClient, load_configuration
from goreports.api.auth import AuthConfig
from goreports.api.rest import create_app
from goreports.api.service import ReportsService

log = logging.getLogger("goreports.api")


@dataclass(frozen=True, kw_only=True)
class ApiOptions:
    host: str = "0.0.0.0"
    http_port: int = 8000
    grpc_port: int = 50051
    kubeconfig: str | None = None
    grace_seconds: float = 10.0
    # How long one Kubernetes watch may run before it is renewed (seconds).
    watch_timeout: int = 300
    # Seconds between SSE keep-alive comments.
    heartbeat_seconds: float = 15.0


async def serve(options: ApiOptions, auth: AuthConfig, stop: asyncio.Event,
                started: asyncio.Event | None = None) -> None:
    """Serve until `stop` is set."""
    kube = KubeClient(load_configuration(options.kubeconfig))
    service = ReportsService(kube, watch_timeout=options.watch_timeout)

    runner = web.AppRunner(create_app(service, auth, heartbeat=options.heartbeat_seconds),
                           handler_cancellation=True, access_log=None,
                           shutdown_timeout=options.grace_seconds,
                           # Room for every documented query parameter at its longest, even
                           # percent-encoded (aiohttp's default line limit is 8 KiB).
                           max_line_size=64 * 1024)
    await runner.setup()
    site = web.TCPSite(runner, options.host, options.http_port)

    server = grpc.aio.server()
    health = grpc_api.add_services(server, service, auth)
    address = f"{options.host}:{options.grpc_port}"
    if server.add_insecure_port(address) == 0:
        raise OSError(f"cannot listen for gRPC on {address}")
    try:
        await site.start()
        await server.start()
        await grpc_api.set_serving(health, True)
        log.info("Reports API: REST on %s:%d, gRPC on %s (algorithms %s)", options.host,
                 options.http_port, address, ", ".join(auth.algorithms))
        if started is not None:
            started.set()
        await stop.wait()
        log.info("Reports API stopping")
    finally:
        await grpc_api.set_serving(health, False)
        await server.stop(options.grace_seconds)
        await runner.cleanup()
        await kube.close()
    log.info("Reports API stopped")
