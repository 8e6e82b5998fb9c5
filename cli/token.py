"""`goreports token issue|verify`: access and refresh tokens of the Reports API.

Whoever holds JWT_SECRET_KEY issues tokens (an operator, a CI job): the API stores no passwords.
The token goes to stdout only, so it can be piped into a Secret without landing in a log.
"""
from __future__ import annotations

import argparse
import json
import sys

from goreports.api.auth import ACCESS, REFRESH, AuthConfig, AuthError, issue_token, verify_token


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("token", help="issue or check Reports API tokens (needs JWT_SECRET_KEY)")
    tsub = p.add_subparsers(dest="token_command", required=True)

    issue = tsub.add_parser("issue", help="print a signed access (or refresh) token")
    issue.add_argument("--sub", required=True, help="the caller's identity (JWT sub), e.g. billing-service")
    issue.add_argument("--namespaces", required=True,
                       help="comma-separated namespaces the caller may use, or '*' for all")
    issue.add_argument("--tenant", default=None,
                       help="tenant claim, enforced by the jwt validator stage on rows")
    issue.add_argument("--refresh", action="store_true",
                       help="issue a refresh token (lifetime JWT_REFRESH_HOURS) instead of an access token")
    issue.add_argument("--hours", type=float, default=None,
                       help="lifetime in hours (default JWT_EXPIRE_HOURS or JWT_REFRESH_HOURS)")
    issue.set_defaults(func=main_issue)

    verify = tsub.add_parser("verify", help="check a token as the API would and print its claims")
    verify.add_argument("token", nargs="?", default="-", help="the token, or - to read stdin (default)")
    verify.add_argument("--refresh", action="store_true", help="expect a refresh token")
    verify.set_defaults(func=main_verify)


def _config() -> AuthConfig | None:
    try:
        return AuthConfig.from_env()
    except ValueError as e:
        print(f"goreports token: {e}", file=sys.stderr)
        return None


def main_issue(args: argparse.Namespace) -> int:
    config = _config()
    if config is None:
        return 2
    try:
        token = issue_token(config, args.sub, args.namespaces, tenant=args.tenant,
                            kind=REFRESH if args.refresh else ACCESS, hours=args.hours)
    except ValueError as e:
        print(f"goreports token issue: {e}", file=sys.stderr)
        return 2
    print(token)
    return 0


def main_verify(args: argparse.Namespace) -> int:
    config = _config()
    if config is None:
        return 2
    token = sys.stdin.read().strip() if args.token == "-" else args.token
    try:
        caller = verify_token(config, token, kind=REFRESH if args.refresh else ACCESS)
    except AuthError as e:
        print(f"refused ({e.reason}): {e.message}", file=sys.stderr)
        return 1
    print(json.dumps(dict(caller.claims), indent=2, sort_keys=True))
    return 0
