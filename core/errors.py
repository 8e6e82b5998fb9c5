"""Exceptions whose type says what should happen next (the kopf way).

Stages raise these; only the worker runtime decides ack, retry or dead letter from them.
"""
from __future__ import annotations

from dataclasses import dataclass


class GoReportsError(Exception):
    """Base of every error this package raises on purpose."""


class TemporaryError(GoReportsError):
    """The step may succeed if tried again later (network, database down, throttled)."""

    def __init__(self, message: str, *, delay: float | None = None) -> None:
        super().__init__(message)
        self.delay = delay


class PermanentError(GoReportsError):
    """Trying again cannot help (bad task, refused statement, rule violated): fail the report."""

    def __init__(self, message: str, *, reason: str = "StageFailed") -> None:
        super().__init__(message)
        self.reason = reason


class DatasetRestarted(TemporaryError):
    """The producer of a dataset started it again; a reader must start its output over."""

    def __init__(self, message: str) -> None:
        super().__init__(message, delay=0.0)


class UpstreamLost(TemporaryError):
    """A reader found its dataset already trimmed (it crashed mid-read): the producer must rerun."""

    def __init__(self, message: str, *, producer_step: str) -> None:
        super().__init__(message, delay=0.0)
        self.producer_step = producer_step


@dataclass(frozen=True)
class FieldError:
    """One schema or compile error, located by its path in the resource (`spec.steps[1].excel`)."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


class SpecError(GoReportsError):
    """A report spec was refused; carries every error with its field path."""

    def __init__(self, errors: list[FieldError]) -> None:
        self.errors = errors
        super().__init__("; ".join(str(e) for e in errors))
