"""What every handler of one operator process shares (kept in kopf's memo as `memo.ctx`)."""
from __future__ import annotations

from dataclasses import dataclass

from goreports.core.bus.base import Bus
from goreports.core.settings import Settings
from goreports.core.artifacts import ArtifactStore


@dataclass
class OperatorContext:
    settings: Settings
    bus: Bus
    artifacts: ArtifactStore
    namespaces: set[str] | None
    metrics_published: int = 0
