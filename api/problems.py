"""Errors of the Reports API as RFC 9457 problem details, shared by REST and gRPC.

Why: one error value for both front doors, so a refused spec reads the same over REST
(`application/problem+json`) and gRPC (a status code and the same message), with the field
paths of goreports.core.schema (`spec.steps[1].excel.fileName`).
"""
from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import grpc

from goreports.core.errors import FieldError

PROBLEM_JSON = "application/problem+json"

TITLES: dict[int, str] = {
    400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
    405: "Method Not Allowed", 406: "Not Acceptable", 409: "Conflict", 410: "Gone",
    413: "Content Too Large", 415: "Unsupported Media Type", 422: "Unprocessable Content",
    500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable",
}

GRPC_CODES: dict[int, grpc.StatusCode] = {
    400: grpc.StatusCode.INVALID_ARGUMENT, 401: grpc.StatusCode.UNAUTHENTICATED,
    403: grpc.StatusCode.PERMISSION_DENIED, 404: grpc.StatusCode.NOT_FOUND,
    409: grpc.StatusCode.ALREADY_EXISTS, 410: grpc.StatusCode.OUT_OF_RANGE,
    413: grpc.StatusCode.RESOURCE_EXHAUSTED, 422: grpc.StatusCode.INVALID_ARGUMENT,
    502: grpc.StatusCode.UNAVAILABLE, 503: grpc.StatusCode.UNAVAILABLE,
}


def _kebab(reason: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "-", reason).lower()


class Problem(Exception):
    """A request the API refuses or cannot serve: status, CamelCase reason, detail, field errors."""

    def __init__(self, status: int, reason: str, detail: str,
                 errors: Iterable[FieldError] = (), headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.reason = reason
        self.detail = detail
        self.errors = list(errors)
        self.headers = dict(headers or {})

    def body(self, instance: str | None = None) -> dict[str, Any]:
        """The problem+json document."""
        out: dict[str, Any] = {
            "type": f"urn:goreports:problem:{_kebab(self.reason)}",
            "title": TITLES.get(self.status, "Error"),
            "status": self.status,
            "detail": self.detail,
            "reason": self.reason,
        }
        if instance:
            out["instance"] = instance
        if self.errors:
            out["errors"] = [{"path": e.path, "message": e.message} for e in self.errors]
        return out

    @property
    def grpc_code(self) -> grpc.StatusCode:
        return GRPC_CODES.get(self.status, grpc.StatusCode.INTERNAL)

    def grpc_message(self) -> str:
        """One line for a gRPC status: reason, detail, then each field error."""
        text = f"{self.reason}: {self.detail}"
        if self.errors:
            text += " | " + "; ".join(str(e) for e in self.errors)
        return text


def invalid(errors: list[FieldError], detail: str = "the report was refused") -> Problem:
    """422 with every field error."""
    return Problem(422, "Invalid", f"{detail}: {len(errors)} error(s), each with its field path",
                   errors)


def not_found(namespace: str, name: str) -> Problem:
    return Problem(404, "NotFound", f"no report {name!r} in namespace {namespace!r}")
