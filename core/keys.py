"""Every Redis key, stream and group name, in one place (the arq way).

All keys live under a prefix (default `goreports`) so that several installations can share a
Redis database, and so that one report's keys can be found and removed by its uid.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Keys:
    prefix: str = "goreports"

    def jobs(self, channel: str, pattern: str) -> str:
        """The stream a worker pool consumes; its consumer group is named after the pattern."""
        return f"{self.prefix}:jobs:{channel}:{pattern}"

    def group(self, pattern: str) -> str:
        return pattern

    def dead(self, channel: str, pattern: str) -> str:
        return f"{self.prefix}:dead:{channel}:{pattern}"

    def data(self, uid: str, dataset: str, producer_step: str) -> str:
        """One dataset of one report, as written by one step (a dataset name may be rewritten
        by a validator or aggregator, so the producing step is part of the key)."""
        return f"{self.prefix}:data:{uid}:{producer_step}:{dataset}"

    def cursors(self, stream: str) -> str:
        """Hash of reader step -> last entry id read; producers trim and throttle by it."""
        return f"{stream}:cursors"

    def events(self) -> str:
        return f"{self.prefix}:events"

    def delayed(self) -> str:
        """Sorted set of jobs waiting for their retry time (score = due epoch seconds)."""
        return f"{self.prefix}:delayed"

    def marker(self, uid: str, kind: str, step: str) -> str:
        """Idempotency markers: `next` (next job published), `done` (effect completed), ..."""
        return f"{self.prefix}:mark:{uid}:{kind}:{step}"

    def stored_job(self, uid: str, step: str) -> str:
        """A copy of each published job, so a producer can be run again for a reader."""
        return f"{self.prefix}:job:{uid}:{step}"

    def cancelled(self, uid: str) -> str:
        return f"{self.prefix}:cancelled:{uid}"

    def report_pattern(self, uid: str) -> list[str]:
        """Glob patterns that match every key of one report (for cleanup)."""
        return [
            f"{self.prefix}:data:{uid}:*",
            f"{self.prefix}:mark:{uid}:*",
            f"{self.prefix}:job:{uid}:*",
        ]

    def cache(self, digest: str) -> str:
        """A cached dataset (MySQL collector `use_cache`)."""
        return f"{self.prefix}:cache:{digest}"

    def idempotency(self, scope: str, key: str) -> str:
        return f"{self.prefix}:idem:{scope}:{key}"
