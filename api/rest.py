"""The REST front door (aiohttp): routes of `openapi.ROUTES`, bearer auth, problem+json errors,
and server-sent events that follow a report.

Why thin: every rule lives in `service`, `reports` and `auth`; this module only turns HTTP into
calls and answers into HTTP, so REST and gRPC cannot disagree.
"""
from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

from aiohttp import web

from goreports.api import openapi, reports
from goreports.api.auth import AuthConfig, AuthError, Caller, bearer_token, refresh_access_token, verify_token
from goreports.api.problems import PROBLEM_JSON, TITLES, Problem
from goreports.api.service import DELETED, ReportsService

log = logging.getLogger("goreports.api")

SERVICE_KEY: web.AppKey[ReportsService] = web.AppKey("service", ReportsService)
AUTH_KEY: web.AppKey[AuthConfig] = web.AppKey("auth", AuthConfig)
HEARTBEAT_KEY: web.AppKey[float] = web.AppKey("heartbeat", float)
MAX_BODY_BYTES = 1024 * 1024

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
T = TypeVar("T")


def problem_response(problem: Problem, request: web.Request) -> web.Response:
    headers = dict(problem.headers)
    return web.Response(status=problem.status, headers=headers, content_type=PROBLEM_JSON,
                        text=json.dumps(problem.body(instance=request.path)))


def _auth_problem(e: AuthError) -> Problem:
    headers = {}
    if e.status == 401:
        # RFC 6750: tell the client which scheme and why (the reason, never the token).
        headers["WWW-Authenticate"] = f'Bearer realm="go-reports", error="invalid_token", ' \
                                      f'error_description="{e.reason}"'
    return Problem(e.status, e.reason, e.message, headers=headers)


@web.middleware
async def problems_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every error leaves as application/problem+json, including aiohttp's own 404/405/413."""
    try:
        return await handler(request)
    except Problem as p:
        return problem_response(p, request)
    except AuthError as e:
        return problem_response(_auth_problem(e), request)
    except web.HTTPException as e:
        if e.status < 400:
            raise
        headers = {k: v for k, v in e.headers.items() if k.lower() in ("allow", "retry-after")}
        reason = TITLES.get(e.status, e.reason or "Error").replace(" ", "")
        detail = {404: f"no such endpoint: {request.method} {request.path} (see /v1/openapi.json)",
                  405: f"{request.method} is not allowed on {request.path}",
                  413: f"the body is larger than {MAX_BODY_BYTES} bytes"}.get(e.status, e.text or e.reason)
        return problem_response(Problem(e.status, reason, str(detail), headers=headers), request)
    except asyncio.CancelledError:
        raise
    except Exception:  # a bug: log it with the traceback, answer without internals
        log.exception("unexpected error on %s %s", request.method, request.path)
        return problem_response(Problem(500, "InternalError", "unexpected error; see the API's log"),
                                request)


def _caller(request: web.Request) -> Caller:
    token = bearer_token(request.headers.get("Authorization"))
    return verify_token(request.app[AUTH_KEY], token)


async def _json_body(request: web.Request) -> Any:
    ctype = request.content_type
    if ctype != "application/json" and not ctype.endswith("+json"):
        raise Problem(415, "UnsupportedMediaType",
                      f"send the body as application/json (got {ctype or 'no Content-Type'!r})")
    raw = await request.read()

    def no_constants(name: str) -> Any:
        raise ValueError(f"{name} is not JSON")

    try:
        return json.loads(raw, parse_constant=no_constants)
    except (ValueError, RecursionError) as e:
        msg = e.msg if isinstance(e, json.JSONDecodeError) else "not valid JSON"
        raise Problem(400, "MalformedBody", f"the body is not valid JSON: {msg}") from None


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(status=status, headers=headers, content_type="application/json",
                        text=json.dumps(data))


def _service(request: web.Request) -> ReportsService:
    return request.app[SERVICE_KEY]


# ------------------------------------------------------------------------------------------
# Handlers (names = operationIds of openapi.ROUTES)


async def health(request: web.Request) -> web.Response:
    return _json({"status": "ok"})


async def get_open_api(request: web.Request) -> web.Response:
    return _json(openapi.document())


async def refresh_token(request: web.Request) -> web.Response:
    body = await _json_body(request)
    if not isinstance(body, dict) or set(body) != {"refreshToken"} or \
            not isinstance(body["refreshToken"], str) or not body["refreshToken"]:
        raise Problem(400, "MalformedBody", 'the body must be {"refreshToken": "<refresh token>"}')
    config = request.app[AUTH_KEY]
    token, caller = refresh_access_token(config, body["refreshToken"])
    log.info("access token refreshed for %s", caller.subject)
    return _json({"accessToken": token, "tokenType": "Bearer",
                  "expiresIn": max(1, int(config.access_hours * 3600))})


async def create_report(request: web.Request) -> web.Response:
    caller = _caller(request)
    namespace = request.match_info["namespace"]
    _service(request).authorize(caller, namespace)
    body = await _json_body(request)
    obj, created = await _service(request).create(
        caller, namespace, body, idempotency_key=request.headers.get("Idempotency-Key"), via="rest")
    view = reports.view(obj)
    if created:
        location = f"/v1/namespaces/{namespace}/reports/{view['name']}"
        return _json(view, 201, {"Location": location})
    return _json(view, 200, {"Idempotent-Replayed": "true"})


def _int_param(request: web.Request, name: str) -> int | None:
    value = request.query.get(name)
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        raise Problem(400, "InvalidQuery", f"{name} must be an integer") from None


async def list_reports(request: web.Request) -> web.Response:
    caller = _caller(request)
    items, token = await _service(request).list(
        caller, request.match_info["namespace"],
        label_selector=request.query.get("labelSelector", ""),
        phase=request.query.get("phase"),
        created_by=request.query.get("createdBy"),
        limit=_int_param(request, "limit"),
        continue_token=request.query.get("continue", ""))
    out: dict[str, Any] = {"items": [reports.view(o) for o in items]}
    if token:
        out["continue"] = token
    return _json(out)


async def get_report(request: web.Request) -> web.Response:
    obj = await _service(request).get(_caller(request), request.match_info["namespace"],
                                      request.match_info["name"])
    return _json(reports.view(obj))


async def cancel_report(request: web.Request) -> web.Response:
    obj = await _service(request).cancel(_caller(request), request.match_info["namespace"],
                                         request.match_info["name"])
    return _json(reports.view(obj), 202)


async def list_artifacts(request: web.Request) -> web.Response:
    obj = await _service(request).get(_caller(request), request.match_info["namespace"],
                                      request.match_info["name"])
    return _json({"items": reports.artifacts(obj)})


async def _with_heartbeats(events: AsyncIterator[T], interval: float) -> AsyncIterator[T | None]:
    """The events, with None whenever `interval` seconds pass without one."""
    pending: asyncio.Task[T] | None = None
    try:
        while True:
            if pending is None:
                pending = asyncio.ensure_future(anext(events))
            done, _ = await asyncio.wait({pending}, timeout=interval)
            if not done:
                yield None
                continue
            try:
                item = pending.result()
            except StopAsyncIteration:
                return
            pending = None
            yield item
    finally:
        if pending is not None:
            # Let the cancelled step finish first: closing a running generator is an error.
            pending.cancel()
            await asyncio.wait({pending})
        aclose = getattr(events, "aclose", None)
        if aclose is not None:
            await aclose()


async def watch_report(request: web.Request) -> web.StreamResponse:
    caller = _caller(request)
    namespace, name = request.match_info["namespace"], request.match_info["name"]
    events = await _service(request).watch(caller, namespace, name)  # 4xx before the stream
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                           "Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
    await response.prepare(request)
    try:
        async for item in _with_heartbeats(events, request.app[HEARTBEAT_KEY]):
            if item is None:
                await response.write(b": keep-alive\n\n")
                continue
            kind, obj = item
            version = (obj.get("metadata") or {}).get("resourceVersion", "")
            data = json.dumps(reports.view(obj))
            await response.write(f"event: {kind}\nid: {version}\ndata: {data}\n\n".encode())
            if kind == DELETED:
                break
    except Problem as p:  # the Kubernetes API failed mid-stream: say so, then end
        await response.write(f"event: error\ndata: {json.dumps(p.body())}\n\n".encode())
    except ConnectionResetError:
        log.debug("the follower of %s/%s went away", namespace, name)
        return response
    await response.write_eof()
    return response


async def list_templates(request: web.Request) -> web.Response:
    items = await _service(request).list_templates(_caller(request), request.match_info["namespace"])
    return _json({"items": items})


async def list_all_templates(request: web.Request) -> web.Response:
    items = await _service(request).list_templates(_caller(request), None)
    return _json({"items": items})


HANDLERS: dict[str, Handler] = {
    "health": health, "getOpenApi": get_open_api, "refreshToken": refresh_token,
    "createReport": create_report, "listReports": list_reports, "getReport": get_report,
    "cancelReport": cancel_report, "listArtifacts": list_artifacts, "watchReport": watch_report,
    "listTemplates": list_templates, "listAllTemplates": list_all_templates,
}


def create_app(service: ReportsService, auth: AuthConfig, *, heartbeat: float = 15.0) -> web.Application:
    """The aiohttp application: one route per `openapi.ROUTES` entry."""
    app = web.Application(middlewares=[problems_middleware], client_max_size=MAX_BODY_BYTES)
    app[SERVICE_KEY] = service
    app[AUTH_KEY] = auth
    app[HEARTBEAT_KEY] = heartbeat
    for route in openapi.ROUTES:
        app.router.add_route(route.method, route.path, HANDLERS[route.operation_id],
                             name=route.operation_id)
    return app
