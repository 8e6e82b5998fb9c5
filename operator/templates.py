"""Resolve the ReportTemplate a ReportRequest names, once, when the request is accepted.

Why here: the parameter logic is pure (goreports.core.templates); this module adds the one read
through the Kubernetes API and what the status records of it. The resolved spec and the
template's name, uid, generation and resourceVersion go into the request's status with its
initial status; from then on the operator uses only `status.resolvedSpec` (also after a
restart), so a later edit of the template never changes an accepted report.

ReportSchedules need nothing of their own: each run is a ReportRequest whose spec names the
template, so each run resolves the template as it is at run time.
"""
from __future__ import annotations

import asyncio
import copy
from collections.abc import Mapping
from typing import Any

from kubernetes.client.rest import ApiException

from goreports.core import templates as tmpl
from goreports.core.errors import FieldError, SpecError
from goreports.operator import kube

TEMPLATES = "reporttemplates"


async def get_template(namespace: str, name: str) -> dict[str, Any] | None:
    """The ReportTemplate, or None when it does not exist."""
    try:
        obj: dict[str, Any] = await asyncio.to_thread(
            kube.custom_api().get_namespaced_custom_object, kube.GROUP, kube.VERSION, namespace,
            TEMPLATES, name)
        return obj
    except ApiException as e:
        if e.status == 404:
            return None
        raise


def recorded_spec(spec: Mapping[str, Any], status: Mapping[str, Any] | None) -> dict[str, Any]:
    """The spec the operator runs: the request's own, or the resolved one its status records
    (empty when a template request has not been resolved yet)."""
    if tmpl.template_name(spec) is None:
        return dict(spec)
    return copy.deepcopy(dict((status or {}).get("resolvedSpec") or {}))


def template_status(template: Mapping[str, Any], values: Mapping[str, Any]) -> dict[str, Any]:
    """What `status.template` records of the template that was resolved."""
    meta = template.get("metadata") or {}
    return {"name": meta.get("name", ""), "uid": meta.get("uid", ""),
            "generation": int(meta.get("generation") or 0),
            "resourceVersion": str(meta.get("resourceVersion", "")), "parameters": dict(values)}


async def resolve(namespace: str, spec: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(resolved spec, status.template) of a request that names a template; TemplateError with
    reason TemplateNotFound, InvalidTemplate or InvalidParameters, each message naming the
    template (and the parameter)."""
    name = tmpl.template_name(spec)
    assert name is not None
    template = await get_template(namespace, name)
    if template is None:
        raise tmpl.TemplateError([FieldError("spec.template.name", (
            f"ReportTemplate {name!r} not found in namespace {namespace!r} "
            f"(kubectl get reporttemplates -n {namespace})"))], reason="TemplateNotFound")
    errors = tmpl.definition_errors(template)
    if errors:
        raise tmpl.TemplateError([FieldError(f"ReportTemplate {name}: {e.path}", e.message)
                                  for e in errors], reason="InvalidTemplate")
    try:
        resolved = tmpl.resolve_request(spec, template)
    except tmpl.TemplateError:
        raise
    except SpecError as e:
        raise tmpl.TemplateError([FieldError(x.path, f"{x.message} (ReportTemplate {name})")
                                  for x in e.errors], reason="InvalidParameters") from None
    return resolved.spec, template_status(template, resolved.values)
