"""The gRPC front door: `goreports.v1.ReportsService` (grpc.aio), plus the standard health and
reflection services.

Why thin: the operations are `service.ReportsService`'s; this module reads the bearer token from
the `authorization` metadata, converts between the API's JSON view and the proto messages, and
turns refusals into status codes (UNAUTHENTICATED, PERMISSION_DENIED, INVALID_ARGUMENT with the
field paths, NOT_FOUND, ALREADY_EXISTS, UNAVAILABLE).
"""
from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any, NoReturn

import grpc
from google.protobuf import json_format, struct_pb2, timestamp_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer
from grpc_reflection.v1alpha import reflection

from goreports.api import reports
from goreports.api.auth import AuthConfig, AuthError, Caller, bearer_token, verify_token
from goreports.api.problems import Problem
from goreports.api.service import DELETED, ReportsService
from goreports.proto import reports_service_pb2 as pb
from goreports.proto import reports_service_pb2_grpc as pb_grpc

log = logging.getLogger("goreports.api")

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["ReportsService"].full_name


# ------------------------------------------------------------------------------------------
# JSON view -> proto


def _timestamp(value: Any) -> timestamp_pb2.Timestamp | None:
    if not isinstance(value, str) or not value:
        return None
    ts = timestamp_pb2.Timestamp()
    try:
        ts.FromJsonString(value)
    except ValueError:
        return None
    return ts


def _integers(value: Any) -> Any:
    """Struct numbers are doubles: give whole numbers back their integer type (the CRD's
    integer fields, e.g. deadlineSeconds, must not arrive as 60.0)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _integers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_integers(v) for v in value]
    return value


def _struct(value: dict[str, Any]) -> struct_pb2.Struct:
    return json_format.ParseDict(value, struct_pb2.Struct())


def status_message(status: dict[str, Any]) -> pb.ReportStatus:
    out = pb.ReportStatus(phase=str(status.get("phase") or ""),
                          current_step=str(status.get("currentStep") or ""),
                          rows=int(status.get("rows") or 0), message=str(status.get("message") or ""))
    for s in status.get("steps") or []:
        out.steps.append(pb.StepStatus(
            name=str(s.get("name", "")), pattern=str(s.get("pattern") or ""),
            state=str(s.get("state") or ""), rows=int(s.get("rows") or 0),
            attempts=int(s.get("attempts") or 0),
            duration_seconds=float(s.get("durationSeconds") or 0.0), message=str(s.get("message") or "")))
    for a in status.get("artifacts") or []:
        out.artifacts.append(artifact_message(a))
    for c in status.get("conditions") or []:
        cond = pb.Condition(type=str(c.get("type", "")), status=str(c.get("status", "")),
                            reason=str(c.get("reason") or ""), message=str(c.get("message") or ""))
        if (ts := _timestamp(c.get("lastTransitionTime"))) is not None:
            cond.last_transition_time.CopyFrom(ts)
        out.conditions.append(cond)
    if (ts := _timestamp(status.get("startTime"))) is not None:
        out.start_time.CopyFrom(ts)
    if (ts := _timestamp(status.get("completionTime"))) is not None:
        out.completion_time.CopyFrom(ts)
    return out


def artifact_message(a: dict[str, Any]) -> pb.ReportArtifact:
    return pb.ReportArtifact(step=str(a.get("step") or ""), name=str(a.get("name", "")),
                             location=str(a.get("location") or ""), size=int(a.get("size") or 0),
                             sha256=str(a.get("sha256") or ""),
                             content_type=str(a.get("contentType") or ""), url=str(a.get("url") or ""))


def report_message(obj: dict[str, Any]) -> pb.Report:
    """A ReportRequest (as the Kubernetes API returns it) as a Report message."""
    view = reports.view(obj)
    msg = pb.Report(namespace=view["namespace"], name=view["name"], uid=view["uid"],
                    created_by=view["createdBy"], tenant=view.get("tenant", ""),
                    labels=view["labels"], spec=_struct(view["spec"]),
                    status=status_message(view["status"]), deleting=view["deleting"])
    if (ts := _timestamp(view.get("createdAt"))) is not None:
        msg.created_at.CopyFrom(ts)
    return msg


def template_message(entry: dict[str, Any]) -> pb.Template:
    """A catalog entry (goreports.core.templates.catalog_entry) as a Template message."""
    msg = pb.Template(namespace=entry["namespace"], name=entry["name"],
                      description=entry["description"], generation=int(entry["generation"]))
    for p in entry["parameters"]:
        param = pb.TemplateParameter(name=p["name"], type=p["type"], description=p["description"],
                                     required=p["required"], values=p.get("values", []))
        if "default" in p:
            param.default_value.CopyFrom(json_format.ParseDict(p["default"], struct_pb2.Value()))
        msg.parameters.append(param)
    return msg


# ------------------------------------------------------------------------------------------
# The servicer


class ReportsServicer(pb_grpc.ReportsServiceServicer):
    """ReportsService over `service.ReportsService`; the same auth as REST, via metadata."""

    def __init__(self, service: ReportsService, auth: AuthConfig) -> None:
        self.service = service
        self.auth = auth

    async def _caller(self, context: grpc.aio.ServicerContext) -> Caller:
        metadata = dict(context.invocation_metadata() or ())
        header = metadata.get("authorization")
        try:
            return verify_token(self.auth, bearer_token(header if isinstance(header, str) else None))
        except AuthError as e:
            await _abort_auth(context, e)

    async def CreateReport(self, request: pb.CreateReportRequest,
                           context: grpc.aio.ServicerContext) -> pb.Report:
        caller = await self._caller(context)
        body: dict[str, Any] = {}
        if request.HasField("template"):
            ref: dict[str, Any] = {"name": request.template.name}
            if request.template.HasField("parameters"):
                ref["parameters"] = _integers(json_format.MessageToDict(request.template.parameters))
            body["template"] = ref
        if request.HasField("spec") or not request.HasField("template"):
            body["spec"] = _integers(json_format.MessageToDict(request.spec))
        metadata: dict[str, Any] = {}
        if request.name:
            metadata["name"] = request.name
        if request.labels:
            metadata["labels"] = dict(request.labels)
        if metadata:
            body["metadata"] = metadata
        try:
            obj, created = await self.service.create(
                caller, request.namespace, body, idempotency_key=request.idempotency_key or None,
                via="grpc")
        except (Problem, AuthError) as e:
            await _abort(context, e)
        if not created:
            context.set_trailing_metadata((("idempotent-replayed", "true"),))
        return report_message(obj)

    async def GetReport(self, request: pb.GetReportRequest,
                        context: grpc.aio.ServicerContext) -> pb.Report:
        caller = await self._caller(context)
        try:
            return report_message(await self.service.get(caller, request.namespace, request.name))
        except (Problem, AuthError) as e:
            await _abort(context, e)

    async def ListReports(self, request: pb.ListReportsRequest,
                          context: grpc.aio.ServicerContext) -> pb.ListReportsResponse:
        caller = await self._caller(context)
        try:
            items, token = await self.service.list(
                caller, request.namespace, label_selector=request.label_selector,
                phase=request.phase or None, created_by=request.created_by or None,
                limit=request.limit or None, continue_token=request.continue_token)
        except (Problem, AuthError) as e:
            await _abort(context, e)
        return pb.ListReportsResponse(reports=[report_message(o) for o in items], continue_token=token)

    async def CancelReport(self, request: pb.CancelReportRequest,
                           context: grpc.aio.ServicerContext) -> pb.Report:
        caller = await self._caller(context)
        try:
            return report_message(await self.service.cancel(caller, request.namespace, request.name))
        except (Problem, AuthError) as e:
            await _abort(context, e)

    async def ListTemplates(self, request: pb.ListTemplatesRequest,
                            context: grpc.aio.ServicerContext) -> pb.ListTemplatesResponse:
        caller = await self._caller(context)
        try:
            items = await self.service.list_templates(caller, request.namespace or None)
        except (Problem, AuthError) as e:
            await _abort(context, e)
        return pb.ListTemplatesResponse(templates=[template_message(t) for t in items])

    async def WatchReport(self, request: pb.WatchReportRequest,
                          context: grpc.aio.ServicerContext) -> AsyncIterator[pb.ReportUpdate]:
        caller = await self._caller(context)
        try:
            events = await self.service.watch(caller, request.namespace, request.name)
            async for kind, obj in events:
                kind_pb = pb.WATCH_EVENT_TYPE_DELETED if kind == DELETED else pb.WATCH_EVENT_TYPE_STATUS
                yield pb.ReportUpdate(type=kind_pb, report=report_message(obj))
        except (Problem, AuthError) as e:
            await _abort(context, e)


def _ascii(text: str) -> str:
    """Metadata values must be printable ASCII."""
    return "".join(c if " " <= c <= "~" else c.encode("unicode_escape").decode() for c in text)


async def _abort_auth(context: grpc.aio.ServicerContext, e: AuthError) -> NoReturn:
    code = grpc.StatusCode.PERMISSION_DENIED if e.status == 403 else grpc.StatusCode.UNAUTHENTICATED
    await context.abort(code, f"{e.reason}: {e.message}")
    raise AssertionError("unreachable")  # abort raises


async def _abort(context: grpc.aio.ServicerContext, e: Problem | AuthError) -> NoReturn:
    if isinstance(e, AuthError):
        await _abort_auth(context, e)
    assert isinstance(e, Problem)
    if e.errors:  # field paths for programs, besides the message for people
        context.set_trailing_metadata(tuple(("field-error", _ascii(str(err))) for err in e.errors[:50]))
    await context.abort(e.grpc_code, e.grpc_message())
    raise AssertionError("unreachable")


def add_services(server: grpc.aio.Server, service: ReportsService, auth: AuthConfig) -> HealthServicer:
    """ReportsService, grpc.health.v1 (SERVING for "" and the service) and reflection."""
    pb_grpc.add_ReportsServiceServicer_to_server(ReportsServicer(service, auth), server)
    health = HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    reflection.enable_server_reflection(
        (SERVICE_NAME, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
         reflection.SERVICE_NAME), server)
    return health


async def set_serving(health: HealthServicer, serving: bool) -> None:
    status = (health_pb2.HealthCheckResponse.SERVING if serving
              else health_pb2.HealthCheckResponse.NOT_SERVING)
    for name in ("", SERVICE_NAME):
        await health.set(name, status)
