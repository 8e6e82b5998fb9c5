"""Entry point of the `goreports` command and its sub-commands."""
from __future__ import annotations

import argparse
import sys

from goreports.cli import api as api_cmd
from goreports.cli import audit as audit_cmd
from goreports.cli import dlq as dlq_cmd
from goreports.cli import operator as operator_cmd
from goreports.cli import run as run_cmd
from goreports.cli import status as status_cmd
from goreports.cli import token as token_cmd
from goreports.cli import worker as worker_cmd


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="goreports", description="go-reports: declarative reports on Kubernetes")
    sub = parser.add_subparsers(dest="command", required=True)
    run_cmd.add_parser(sub)
    worker_cmd.add_parser(sub)
    operator_cmd.add_parser(sub)
    status_cmd.add_parser(sub)
    dlq_cmd.add_parser(sub)
    audit_cmd.add_parser(sub)
    api_cmd.add_parser(sub)
    token_cmd.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
