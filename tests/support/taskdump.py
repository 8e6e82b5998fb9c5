"""Test-only diagnostics for worker processes: on SIGUSR1, write the stack of every asyncio
task (and every thread) to stderr, which the tests send to the worker's log.

Loaded into `goreports worker` processes through GOREPORTS_STAGE_MODULES (it registers no
stage), so a test that sees a job hang can show where each task waits, without touching the
worker's code.
"""
from __future__ import annotations

import asyncio
import faulthandler
import signal
import sys
from types import FrameType
from typing import Any


def _dump(signum: int, frame: FrameType | None) -> None:
    try:
        tasks = asyncio.all_tasks(asyncio.get_running_loop())
    except RuntimeError:
        tasks = set()
    print(f"=== taskdump: {len(tasks)} asyncio task(s)", file=sys.stderr, flush=True)
    for t in tasks:
        print(f"--- {t.get_name()}", file=sys.stderr)
        for line in _await_chain(t.get_coro()):
            print(f"    {line}", file=sys.stderr)
    faulthandler.dump_traceback(all_threads=True)
    sys.stderr.flush()


def _await_chain(coro: Any) -> list[str]:
    """file:line of each coroutine (and awaited generator) the task is suspended in."""
    out = []
    while coro is not None and len(out) < 40:
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None) \
            or getattr(coro, "ag_frame", None)
        if frame is not None:
            out.append(f"{frame.f_code.co_filename}:{frame.f_lineno} {frame.f_code.co_name}")
        coro = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None) \
            or getattr(coro, "ag_await", None)
    if coro is not None:
        out.append(repr(coro)[:200])
    return out


signal.signal(signal.SIGUSR1, _dump)
