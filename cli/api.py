"""`goreports api`: the Reports API process (REST and gRPC), or its OpenAPI document."""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys

from goreports.cli import logs
from goreports.core.settings import Settings


def _int_env(name: str, default: int) -> int:
    value = os.environ.get(name, "")
    return int(value) if value.strip() else default


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("api", help="serve the Reports API (REST and gRPC, JWT auth)",
                       description="Serve the Reports API. Auth: JWT_SECRET_KEY (HS256), optional "
                                   "JWT_PUBLIC_KEY_FILE (RS256), JWT_EXPIRE_HOURS, JWT_REFRESH_HOURS, "
                                   "JWT_AUDIENCE, JWT_ISSUER. Kubernetes: KUBECONFIG, else the pod's "
                                   "service account.")
    p.add_argument("--host", default=os.environ.get("GOREPORTS_API_HOST", "0.0.0.0"),
                   help="address to listen on (default %(default)s)")
    p.add_argument("--http-port", type=int, default=_int_env("GOREPORTS_API_HTTP_PORT", 8000),
                   help="REST port (default %(default)s)")
    p.add_argument("--grpc-port", type=int, default=_int_env("GOREPORTS_API_GRPC_PORT", 50051),
                   help="gRPC port (default %(default)s)")
    p.add_argument("--kubeconfig", default=None, help="kubeconfig file (default: $KUBECONFIG or in-cluster)")
    p.add_argument("--grace-period", type=float, default=10.0,
                   help="seconds in-flight calls may finish on SIGTERM (default %(default)s)")
    p.add_argument("--print-openapi", action="store_true",
                   help="print the OpenAPI document and exit")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    if args.print_openapi:
        from goreports.api.openapi import document

        json.dump(document(), sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    from goreports.api.auth import AuthConfig
    from goreports.api.server import ApiOptions, serve

    try:
        auth = AuthConfig.from_env()
    except ValueError as e:
        print(f"goreports api: {e}", file=sys.stderr)
        return 2
    settings = Settings.from_env()
    logs.setup(settings.log_level, settings.log_format)
    options = ApiOptions(host=args.host, http_port=args.http_port, grpc_port=args.grpc_port,
                         kubeconfig=args.kubeconfig, grace_seconds=args.grace_period)

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await serve(options, auth, stop)

    asyncio.run(run())
    return 0
