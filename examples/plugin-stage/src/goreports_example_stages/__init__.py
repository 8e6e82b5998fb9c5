"""Example go-reports stages, installed through the `goreports.stages` entry point group.

`rules` is the business logic (pure functions over plain rows, no I/O); `revenue_at_risk` is
the stage that reads the orders, applies the rules and writes a typed dataset.
"""
from __future__ import annotations

__all__ = ["PATTERN"]

PATTERN = "revenue-at-risk"
