"""`goreports audit tail [-n N] [-f]`: read the audit stream (core/audit.py).

Prints the newest N records oldest first, one line each (or JSON lines with --json); with -f
it keeps following new records until interrupted, like `tail -f`.
"""
from __future__ import annotations

import argparse
import asyncio
import json
from typing import Any, Callable

from goreports.cli.status import add_redis_args, settings_from
from goreports.core import audit
from goreports.core.bus.redis import RedisBus
from goreports.core.settings import Settings


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("audit", help="the audit log of reports (who, what, when, outcome)")
    asub = p.add_subparsers(dest="audit_command", required=True)
    t = asub.add_parser("tail", help="the newest audit records; -f follows new ones")
    add_redis_args(t)
    t.add_argument("-n", "--lines", type=int, default=20, help="how many records (default 20)")
    t.add_argument("-f", "--follow", action="store_true", help="keep printing new records")
    t.add_argument("--action", action="append", choices=audit.ACTIONS,
                   help="only these actions (repeatable)")
    t.add_argument("--namespace", help="only reports of this namespace")
    t.add_argument("--json", action="store_true", help="print JSON lines")
    t.set_defaults(func=main)


def wanted(record: dict[str, str], actions: list[str] | None, namespace: str | None) -> bool:
    return (not actions or record.get("action") in actions) and \
        (not namespace or record.get("namespace") == namespace)


async def tail(settings: Settings, lines: int, follow: bool, emit: Callable[[dict[str, str]], None],
               keep: Callable[[dict[str, str]], bool], block_ms: int = 5000,
               stop: asyncio.Event | None = None) -> int:
    """Emit the newest `lines` kept records, then (follow) new ones until `stop` is set."""
    bus = RedisBus.from_settings(settings)
    key = audit.audit_key(settings.prefix)
    shown = 0
    try:
        newest: list[tuple[Any, dict[str, str]]] = []
        last = "0-0"  # an empty stream: everything added later is new
        cursor = "+"
        # Read backwards in pages until `lines` records passed the filters (or the stream ends).
        while len(newest) < lines:
            page = await bus.r.xrevrange(key, max=cursor, count=max(lines, 100))
            if not page:
                break
            for eid, fields in page:
                rec = audit.decode_entry(fields)
                if keep(rec) and len(newest) < lines:
                    newest.append((eid, rec))
            cursor = f"({_text(page[-1][0])}"
        head = await bus.r.xrevrange(key, count=1)
        if head:
            last = _text(head[0][0])
        for _, rec in reversed(newest):
            emit(rec)
            shown += 1
        while follow and not (stop is not None and stop.is_set()):
            res = await bus.r.xread({key: last}, count=100, block=block_ms)
            for _, entries in res or []:
                for eid, fields in entries:
                    last = _text(eid)
                    rec = audit.decode_entry(fields)
                    if keep(rec):
                        emit(rec)
                        shown += 1
    finally:
        await bus.close()
    return shown


def _text(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def main(args: argparse.Namespace) -> int:
    settings = settings_from(args)

    def emit(rec: dict[str, str]) -> None:
        print(json.dumps(rec) if args.json else audit.format_record(rec), flush=True)

    try:
        asyncio.run(tail(settings, max(0, args.lines), args.follow, emit,
                         lambda r: wanted(r, args.action, args.namespace)))
    except KeyboardInterrupt:
        pass
    return 0
