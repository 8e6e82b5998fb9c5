"""Pattern -> stage function. Adding a stage is adding one module with one @stage decorator.

Built-in stages are imported by `load_builtin_stages`; packages installed beside go-reports add
theirs through the `goreports.stages` entry point group.
"""
from __future__ import annotations

import importlib
import os
import pkgutil
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Awaitable, Callable

from google.protobuf.message import Message

if TYPE_CHECKING:
    from goreports.workers.stage import StageContext, StageResult

StageFn = Callable[[Message, "StageContext"], Awaitable["StageResult"]]


@dataclass(frozen=True)
class StageSpec:
    pattern: str
    channel: str
    task_type: type[Message]
    fn: StageFn


_REGISTRY: dict[str, StageSpec] = {}

# Every module in these packages is a built-in stage (one module per pattern).
CHANNEL_PACKAGES = ("collectors", "validators", "aggregators", "generators", "dispatchers", "notifiers")

ENTRY_POINT_GROUP = "goreports.stages"


def stage(pattern: str, *, channel: str, task: type[Message]) -> Callable[[StageFn], StageFn]:
    """Register `fn` as the stage for `pattern`; the worker unpacks the Job's task as `task`."""

    def register(fn: StageFn) -> StageFn:
        existing = _REGISTRY.get(pattern)
        if existing is not None and existing.fn is not fn:
            raise ValueError(f"pattern {pattern!r} is already registered by {existing.fn.__module__}")
        _REGISTRY[pattern] = StageSpec(pattern, channel, task, fn)
        return fn

    return register


def load_builtin_stages(extra_modules: tuple[str, ...] = ()) -> None:
    """Import the built-in stages, the `goreports.stages` entry points, and the modules named in
    GOREPORTS_STAGE_MODULES (comma-separated; for stages that are not packaged)."""
    env = tuple(m.strip() for m in os.environ.get("GOREPORTS_STAGE_MODULES", "").split(",") if m.strip())
    for name in builtin_modules() + extra_modules + env:
        importlib.import_module(name)
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        ep.load()


def builtin_modules() -> tuple[str, ...]:
    found = []
    for channel in CHANNEL_PACKAGES:
        pkg = importlib.import_module(f"goreports.workers.{channel}")
        for info in pkgutil.iter_modules(pkg.__path__):
            if not info.name.startswith("_") and not info.ispkg:
                found.append(f"{pkg.__name__}.{info.name}")
    return tuple(found)


def get(pattern: str) -> StageSpec:
    try:
        return _REGISTRY[pattern]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY)) or "none"
        raise KeyError(f"no stage registered for pattern {pattern!r} (known: {known})") from None


def patterns() -> list[str]:
    return sorted(_REGISTRY)
