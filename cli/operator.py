"""`goreports operator`: the kopf operator process."""
from __future__ import annotations

import argparse
import os

from goreports.cli import logs
from goreports.core.settings import Settings


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("operator", help="run the Kubernetes operator")
    p.add_argument("--namespace", "-n", action="append", default=[],
                   help="namespace to watch (repeatable; default: $GOREPORTS_NAMESPACES or the pod's)")
    p.add_argument("--all-namespaces", "-A", action="store_true", help="watch the whole cluster")
    p.add_argument("--peering", default=None,
                   help="kopf peering name for several replicas (default: standalone)")
    p.add_argument("--liveness", default=os.environ.get("GOREPORTS_LIVENESS", "http://0.0.0.0:8080/healthz"),
                   help="liveness/readiness endpoint URL (default %(default)s)")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    logs.setup(settings.log_level, settings.log_format)
    from goreports.operator.main import run

    namespaces = list(args.namespace) or [n for n in os.environ.get("GOREPORTS_NAMESPACES", "").split(",") if n]
    if not namespaces and not args.all_namespaces:
        namespaces = [os.environ.get("POD_NAMESPACE", "default")]
    run(namespaces, args.all_namespaces, args.peering, args.liveness or None)
    return 0
