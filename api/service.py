"""The Reports API's operations, shared by REST and gRPC: every call checks the caller's
namespace, then talks to the Kubernetes API (the operator stays the one engine).

Why one layer: the two front doors differ only in encoding; authorisation, idempotency, error
mapping and the watch loop live here once. Kubernetes errors become `Problem`s (422 with field
paths for a spec the API server refuses, 409 for a name clash, 503 when it cannot be reached).
"""
from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime, timezone
from collections.abc import AsyncIterator
from typing import Any, Protocol

from goreports.api import reports
from goreports.api._kube import KubeError
from goreports.api.auth import ALL_NAMESPACES, Caller
from goreports.api.problems import Problem, invalid, not_found
from goreports.core import schema, templates
from goreports.core.errors import FieldError, SpecError

log = logging.getLogger("goreports.api")

STATUS = "status"
DELETED = "deleted"


class Kube(Protocol):
    """What the service needs of a Kubernetes client (goreports.api._kube.KubeClient)."""

    async def create(self, namespace: str, body: dict[str, Any]) -> dict[str, Any]: ...
    async def get(self, namespace: str, name: str) -> dict[str, Any]: ...
    async def list(self, namespace: str, *, label_selector: str = "", limit: int = 0,
                   continue_token: str = "") -> dict[str, Any]: ...
    async def delete(self, namespace: str, name: str) -> dict[str, Any]: ...
    async def get_template(self, namespace: str, name: str) -> dict[str, Any]: ...
    async def list_templates(self, namespace: str | None) -> dict[str, Any]: ...
    def watch(self, namespace: str, name: str, resource_version: str, *,
              timeout_seconds: int = 300) -> AsyncIterator[tuple[str, dict[str, Any]]]: ...


def kube_problem(e: KubeError, what: str) -> Problem:
    """A Kubernetes API error as the API's problem (never a bare 500)."""
    if e.status == 422:
        errors = [FieldError(c["field"] or "(root)", c["message"]) for c in e.causes]
        return invalid(errors or [FieldError("(root)", e.message)],
                       f"the Kubernetes API server refused {what}")
    if e.status in (400, 404, 409, 410):
        return Problem(e.status, e.reason if e.reason != "Error" else "Refused",
                       f"{what}: {e.message}")
    if e.status in (401, 403):
        # The API's own service account lacks a permission: an installation problem.
        return Problem(502, "KubernetesForbidden",
                       f"{what}: the Reports API's service account may not do this ({e.message}); "
                       f"check the chart's API Role")
    if e.status == 429:
        return Problem(503, "KubernetesBusy", f"{what}: the Kubernetes API is throttling; retry",
                       headers={"Retry-After": "2"})
    return Problem(503 if e.status == 503 else 502, e.reason or "KubernetesError",
                   f"{what}: the Kubernetes API answered {e.status} ({e.message[:300]})")


class ReportsService:
    """Create, get, list, cancel and watch ReportRequests on behalf of a caller."""

    def __init__(self, kube: Kube, *, watch_timeout: int = 300) -> None:
        self.kube = kube
        self.watch_timeout = watch_timeout

    @staticmethod
    def authorize(caller: Caller, namespace: str) -> None:
        reports.check_namespace(namespace)
        caller.require_namespace(namespace)

    async def create(self, caller: Caller, namespace: str, body: Any, *,
                     idempotency_key: str | None = None, via: str = "rest"
                     ) -> tuple[dict[str, Any], bool]:
        """(the report, True if created now / False if this is a retry of a keyed request)."""
        self.authorize(caller, namespace)
        key = reports.check_idempotency_key(idempotency_key)
        req = reports.parse_create_body(body, namespace)
        await self._check_template(namespace, req.spec)
        key_hash = reports.idempotency_hash(caller.subject, key) if key else None
        if key_hash:
            # A retry that named its report finds it by label (name lookups find the rest).
            found = await self._list(namespace, f"{reports.LABEL_IDEMPOTENCY_KEY}={key_hash}", 1)
            for obj in found.get("items") or []:
                if reports.replay_of(obj, key_hash, req):
                    return obj, False
        manifest = reports.build_manifest(caller, namespace, req, via=via, key_hash=key_hash)
        try:
            obj = await self.kube.create(namespace, manifest)
        except KubeError as e:
            if e.status == 409 and key_hash:
                name = manifest["metadata"]["name"]
                existing = await self._get(namespace, name)
                if reports.replay_of(existing, key_hash, req):
                    return existing, False
            if e.status == 409:
                raise Problem(409, "AlreadyExists",
                              f"a report named {manifest['metadata'].get('name')!r} already exists "
                              f"in namespace {namespace!r}; choose another name") from e
            raise kube_problem(e, "the new report") from e
        log.info("report %s/%s created by %s via %s", namespace, obj["metadata"]["name"],
                 caller.subject, via)
        return obj, True

    async def _check_template(self, namespace: str, spec: dict[str, Any]) -> None:
        """A request of a template: refuse bad values now (422 naming the parameter), not as a
        Failed report later. A template that does not exist (yet) is no refusal, as with
        kubectl: the API server accepts the request and the operator fails it with
        TemplateNotFound if the template is still missing when it resolves it."""
        name = templates.template_name(spec)
        if name is None:
            return
        try:
            template = await self.kube.get_template(namespace, name)
        except KubeError as e:
            if e.status == 404:
                log.info("ReportTemplate %s/%s not found; the operator decides", namespace, name)
                return
            raise kube_problem(e, f"reading ReportTemplate {name!r}") from e
        broken = templates.definition_errors(template)
        if broken:
            raise invalid([FieldError("spec.template.name", (
                f"ReportTemplate {name!r} is not valid: " + "; ".join(map(str, broken))[:800]))])
        try:
            resolved = templates.resolve_request(spec, template)
        except SpecError as e:
            raise invalid(e.errors, f"the values do not fit ReportTemplate {name!r}") from e
        errors = schema.report_errors({"apiVersion": schema.API_VERSION, "kind": schema.KIND,
                                       "metadata": {"name": "resolved"}, "spec": resolved.spec})
        if errors:
            raise invalid([FieldError(f"{e.path} (resolved from ReportTemplate {name})",
                                      e.message) for e in errors],
                          f"ReportTemplate {name!r} resolves to an invalid spec with these values")

    async def list_templates(self, caller: Caller, namespace: str | None
                             ) -> list[dict[str, Any]]:
        """The catalog: ReportTemplates of one namespace, or of every namespace the token
        allows (None), each with its parameters and their descriptions."""
        if namespace is not None:
            self.authorize(caller, namespace)
            scopes: list[str | None] = [namespace]
        elif ALL_NAMESPACES in caller.namespaces:
            scopes = [None]
        else:
            scopes = sorted(set(caller.namespaces))
        items: list[dict[str, Any]] = []
        for scope in scopes:
            try:
                page = await self.kube.list_templates(scope)
            except KubeError as e:
                if e.status == 404 and namespace is None:
                    continue  # a namespace of the token that does not exist (any more)
                raise kube_problem(e, "listing report templates") from e
            items += [templates.catalog_entry(o) for o in page.get("items") or []]
        return sorted(items, key=lambda t: (t["namespace"], t["name"]))

    async def get(self, caller: Caller, namespace: str, name: str) -> dict[str, Any]:
        self.authorize(caller, namespace)
        reports.check_name(name)
        return await self._get(namespace, name)

    async def list(self, caller: Caller, namespace: str, *, label_selector: str = "",
                   phase: str | None = None, created_by: str | None = None,
                   limit: int | None = None, continue_token: str = ""
                   ) -> tuple[list[dict[str, Any]], str]:
        """(one page of reports that pass the filters, the continue token or "")."""
        self.authorize(caller, namespace)
        size = reports.check_list_params(phase=phase, limit=limit, label_selector=label_selector,
                                         created_by=created_by, continue_token=continue_token)
        page = await self._list(namespace, label_selector, size, continue_token)
        items = [o for o in page.get("items") or [] if reports.matches(o, phase, created_by)]
        return items, str((page.get("metadata") or {}).get("continue") or "")

    async def cancel(self, caller: Caller, namespace: str, name: str) -> dict[str, Any]:
        """Delete the report; the operator's finalizer stops its jobs and cleans up."""
        self.authorize(caller, namespace)
        reports.check_name(name)
        before = await self._get(namespace, name)  # 404 before anything else
        try:
            await self.kube.delete(namespace, name)
        except KubeError as e:
            if e.status == 404:
                raise not_found(namespace, name) from e
            raise kube_problem(e, f"deleting report {name!r}") from e
        log.info("report %s/%s cancelled by %s", namespace, name, caller.subject)
        try:
            return await self._get(namespace, name)
        except Problem as p:
            if p.status != 404:
                raise
            # Already gone (no finalizer yet): show it as it was, marked deleted.
            before["metadata"]["deletionTimestamp"] = datetime.now(timezone.utc).strftime(
                "%Y-%m-%dT%H:%M:%SZ")
            return before

    async def watch(self, caller: Caller, namespace: str, name: str
                    ) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        """(STATUS, report) now and on each change; stops after a terminal phase or DELETED."""
        self.authorize(caller, namespace)
        reports.check_name(name)
        obj = await self._get(namespace, name)
        return self._follow(namespace, name, obj)

    async def _follow(self, namespace: str, name: str, obj: dict[str, Any]
                      ) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        yield STATUS, obj
        last = reports.watch_state(obj)
        if reports.is_terminal(obj):
            return
        version = str(obj["metadata"].get("resourceVersion", ""))
        while True:
            opened = time.monotonic()
            try:
                async for kind, current in self.kube.watch(namespace, name, version,
                                                           timeout_seconds=self.watch_timeout):
                    version = str((current.get("metadata") or {}).get("resourceVersion") or version)
                    if kind == "DELETED":
                        yield DELETED, current
                        return
                    state = reports.watch_state(current)
                    if state != last:
                        last = state
                        yield STATUS, current
                        if reports.is_terminal(current):
                            return
            except KubeError as e:
                if e.status != 410:
                    raise kube_problem(e, f"following report {name!r}") from e
                # Our version is too old to resume from: read the report again.
                try:
                    current = await self._get(namespace, name)
                except Problem as p:
                    if p.status == 404:
                        yield DELETED, {"metadata": {"namespace": namespace, "name": name}}
                        return
                    raise
                version = str(current["metadata"].get("resourceVersion", ""))
                if reports.watch_state(current) != last:
                    last = reports.watch_state(current)
                    yield STATUS, current
                    if reports.is_terminal(current):
                        return
            if time.monotonic() - opened < 1.0:  # the server ended the watch at once: no busy loop
                await asyncio.sleep(1.0)

    async def _get(self, namespace: str, name: str) -> dict[str, Any]:
        try:
            return await self.kube.get(namespace, name)
        except KubeError as e:
            if e.status == 404:
                raise not_found(namespace, name) from e
            raise kube_problem(e, f"reading report {name!r}") from e

    async def _list(self, namespace: str, selector: str, limit: int,
                    continue_token: str = "") -> dict[str, Any]:
        try:
            return await self.kube.list(namespace, label_selector=selector, limit=limit,
                                        continue_token=continue_token)
        except KubeError as e:
            if e.status == 400:
                raise Problem(400, "InvalidQuery", f"listing reports: {e.message}") from e
            if e.status == 410:
                raise Problem(410, "ContinueExpired", "the continue token has expired: list again "
                                                      "from the first page") from e
            raise kube_problem(e, "listing reports") from e
