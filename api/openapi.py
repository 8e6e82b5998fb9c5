"""The OpenAPI 3 document of the REST API, built from the code's own route table and the CRD.

Why generated: a hand-written document drifts. The routes come from `ROUTES` (which the aiohttp
app also registers, and a test checks the two against each other), and the spec and status
schemas are the CRD's `openAPIV3Schema` (the one schema), closed against unknown fields as the
API enforces them. Served at `GET /v1/openapi.json`; `goreports api --print-openapi` prints it.
"""
from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from goreports.api import reports
from goreports.core.schema import load_crd_schema

TITLE = "go-reports Reports API"
VERSION = "1.0.0"


@dataclass(frozen=True)
class Route:
    """One operation: method, path, operationId and whether it needs a bearer token."""

    method: str
    path: str
    operation_id: str
    secured: bool = True


ROUTES: tuple[Route, ...] = (
    Route("GET", "/healthz", "health", secured=False),
    Route("GET", "/v1/openapi.json", "getOpenApi", secured=False),
    Route("POST", "/v1/auth/refresh", "refreshToken", secured=False),
    Route("POST", "/v1/namespaces/{namespace}/reports", "createReport"),
    Route("GET", "/v1/namespaces/{namespace}/reports", "listReports"),
    Route("GET", "/v1/namespaces/{namespace}/reports/{name}", "getReport"),
    Route("DELETE", "/v1/namespaces/{namespace}/reports/{name}", "cancelReport"),
    Route("GET", "/v1/namespaces/{namespace}/reports/{name}/artifacts", "listArtifacts"),
    Route("GET", "/v1/namespaces/{namespace}/reports/{name}/events", "watchReport"),
    Route("GET", "/v1/namespaces/{namespace}/templates", "listTemplates"),
    Route("GET", "/v1/templates", "listAllTemplates"),
)


# The CRD's CEL rule shapes (see goreports.core.schema.cel_equivalent), as JSON Schema.
_HAS_TERM = r"\(has\(self\.\w+\) \? 1 : 0\)"
_COUNT_RULE = re.compile(rf"{_HAS_TERM}(?: \+ {_HAS_TERM})* (==|>=|<=) 1")
_WHEN_RULE = re.compile(
    r"!has\(self\.(\w+)\) \|\| (?:!self\.(\w+)|self\.(\w+) (==|!=) '([^']*)') "
    r"\|\| has\(self\.(\w+)\)")
_DNS_SUBDOMAIN = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*"
_LABEL_NAME = r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?"


def cel_schema(rule: str) -> dict[str, Any] | None:
    """A JSON Schema equal to one of the CRD's CEL rules, or None for a shape not known here.

    `(has(a) ? 1 : 0) + ... == 1` -> oneOf required; `>= 1` -> anyOf required; `<= 1` -> no
    two of them;
    `!has(a) || <test of a> || has(b)` -> anyOf [a absent, test holds, b present].
    """
    text = " ".join(rule.split())
    m = _COUNT_RULE.fullmatch(text)
    if m:
        names = re.findall(r"has\(self\.(\w+)\)", text)
        if m.group(1) == "<=":
            pairs = [{"required": [a, b]} for i, a in enumerate(names) for b in names[i + 1:]]
            return {"not": {"anyOf": pairs}}
        alternatives = [{"required": [n]} for n in names]
        return {"oneOf": alternatives} if m.group(1) == "==" else {"anyOf": alternatives}
    m = _WHEN_RULE.fullmatch(text)
    if m:
        field, truthy_field, cmp_field, op, literal, needed = m.groups()
        if (truthy_field or cmp_field) != field:
            return None
        if truthy_field:
            test: dict[str, Any] = {"not": {"const": True}}
        elif op == "==":
            test = {"const": literal}
        else:
            test = {"not": {"const": literal}}
        return {"anyOf": [{"not": {"required": [field]}}, {"properties": {field: test}},
                          {"required": [needed]}]}
    return None


def _with_rules(node: Any) -> Any:
    """Carry the Kubernetes extensions into plain JSON Schema: CEL rules (allOf) and
    `x-kubernetes-list-type: set` (uniqueItems), so generated data and readers see them."""
    if isinstance(node, list):
        return [_with_rules(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: _with_rules(v) for k, v in node.items()}
    rules = [cel_schema(r.get("rule", "")) for r in node.get("x-kubernetes-validations", [])
             if "oldSelf" not in r.get("rule", "")]
    if any(rules):
        out["allOf"] = [*out.get("allOf", []), *(r for r in rules if r)]
    if node.get("x-kubernetes-list-type") == "set":
        out["uniqueItems"] = True
    return out


def _closed(node: Any) -> Any:
    """Objects with `properties` refuse unknown fields (as goreports.core.schema checks them)."""
    if isinstance(node, list):
        return [_closed(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: _closed(v) for k, v in node.items()}
    if "properties" in node and not node.get("x-kubernetes-preserve-unknown-fields"):
        out.setdefault("additionalProperties", False)
    return out


def _problem(description: str) -> dict[str, Any]:
    return {"description": description,
            "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}}


def _json(ref: str, description: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"description": description,
                           "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{ref}"}}}}
    if headers:
        out["headers"] = headers
    return out


_AUTH_ERRORS = {
    "401": _problem("No, malformed, expired or refused token (see `reason`)."),
    "403": _problem("The token's `namespaces` claim does not cover this namespace."),
}
_UPSTREAM_ERRORS = {
    "502": _problem("The Kubernetes API refused the API's own service account or failed."),
    "503": _problem("The Kubernetes API cannot be reached or is throttling; retry."),
}


def _schemas() -> dict[str, Any]:
    crd = load_crd_schema()
    spec = _with_rules(_closed(copy.deepcopy(crd["properties"]["spec"])))
    status = _closed(copy.deepcopy(crd["properties"]["status"]))
    artifact = copy.deepcopy(status["properties"]["artifacts"]["items"])
    labels = {"type": "object", "additionalProperties": {"type": "string"},
              "description": "Kubernetes labels."}
    new_labels = {
        "type": "object", "description": "Kubernetes labels; keys under goreports.io/ are the API's own.",
        "propertyNames": {"maxLength": 317, "pattern": f"^({_DNS_SUBDOMAIN}/)?{_LABEL_NAME}$",
                          "not": {"pattern": "^goreports\\.io/"}},
        "additionalProperties": {"type": "string", "maxLength": 63,
                                 "pattern": f"^({_LABEL_NAME})?$"}}
    report = {
        "type": "object",
        "required": ["namespace", "name", "uid", "createdBy", "labels", "deleting", "spec", "status"],
        "additionalProperties": False,
        "properties": {
            "namespace": {"type": "string"},
            "name": {"type": "string"},
            "uid": {"type": "string"},
            "createdAt": {"type": "string", "format": "date-time"},
            "createdBy": {"type": "string", "description": "JWT subject of the creator "
                                                           f"(annotation {reports.ANNOTATION_CREATED_BY})."},
            "tenant": {"type": "string", "description": "JWT tenant claim of the creator "
                                                        f"(annotation {reports.ANNOTATION_TENANT})."},
            "labels": labels,
            "deleting": {"type": "boolean", "description": "Cancelled; the finalizer is cleaning up."},
            "spec": {"$ref": "#/components/schemas/ReportSpec"},
            "status": {"$ref": "#/components/schemas/ReportStatus"},
        },
    }
    return {
        "ReportSpec": spec,
        "ReportStatus": status,
        "Artifact": artifact,
        "Report": report,
        "ReportList": {
            "type": "object", "required": ["items"], "additionalProperties": False,
            "properties": {
                "items": {"type": "array", "items": {"$ref": "#/components/schemas/Report"}},
                "continue": {"type": "string", "description": "Pass as `continue` for the next page."},
            }},
        "ArtifactList": {
            "type": "object", "required": ["items"], "additionalProperties": False,
            "properties": {"items": {"type": "array", "items": {"$ref": "#/components/schemas/Artifact"}}}},
        "ReportEvent": {
            "type": "object", "required": ["event", "data"],
            "description": "One server-sent event: `status` and `deleted` carry a Report as JSON, "
                           "`error` a Problem (the Kubernetes API failed; the stream ends).",
            "properties": {
                "event": {"type": "string", "enum": ["status", "deleted", "error"]},
                "id": {"type": "string", "description": "The report's resourceVersion."},
                "data": {"type": "string", "contentMediaType": "application/json"},
                "retry": {"type": "integer"},
            },
            "oneOf": [
                {"properties": {"event": {"enum": ["status", "deleted"]},
                                "data": {"contentSchema": {"$ref": "#/components/schemas/Report"}}}},
                {"properties": {"event": {"const": "error"},
                                "data": {"contentSchema": {"$ref": "#/components/schemas/Problem"}}}},
            ]},
        "CreateReport": {
            "type": "object", "additionalProperties": False,
            "oneOf": [{"required": ["spec"]}, {"required": ["template"]}],
            "description": "A ReportRequest as in a manifest: `spec`, or `template` (a "
                           "ReportTemplate of the catalog and its parameter values; short for "
                           "`spec: {template: ...}`).",
            "properties": {
                "template": {"$ref": "#/components/schemas/TemplateRef"},
                "apiVersion": {"type": "string", "enum": ["goreports.io/v1alpha1"]},
                "kind": {"type": "string", "enum": ["ReportRequest"]},
                "metadata": {
                    "type": "object", "additionalProperties": False,
                    "properties": {
                        "name": {"type": "string", "maxLength": 253, "pattern": f"^({_DNS_SUBDOMAIN})?$",
                                 "description": "Default: generated (from the Idempotency-Key when one is sent)."},
                        "namespace": {"type": "string", "description": "Empty or the URL's namespace."},
                        "labels": new_labels,
                    }},
                "spec": {"$ref": "#/components/schemas/ReportSpec"},
            }},
        "TemplateRef": copy.deepcopy(spec["properties"]["template"]),
        "TemplateParameter": {
            "type": "object", "required": ["name", "type", "description", "required"],
            "additionalProperties": False,
            "properties": {
                "name": {"type": "string", "description": "Used as $(params.<name>)."},
                "type": {"type": "string",
                         "enum": ["string", "integer", "number", "boolean", "date", "enum"]},
                "description": {"type": "string"},
                "required": {"type": "boolean"},
                "default": {"description": "The value when a request gives none."},
                "values": {"type": "array", "items": {"type": "string"},
                           "description": "The allowed values of an enum parameter."},
            }},
        "Template": {
            "type": "object", "required": ["namespace", "name", "description", "generation",
                                           "parameters"],
            "additionalProperties": False,
            "description": "A ReportTemplate of the catalog.",
            "properties": {
                "namespace": {"type": "string"},
                "name": {"type": "string"},
                "description": {"type": "string"},
                "generation": {"type": "integer", "description": "Changes with each edit."},
                "parameters": {"type": "array",
                               "items": {"$ref": "#/components/schemas/TemplateParameter"}},
            }},
        "TemplateList": {
            "type": "object", "required": ["items"], "additionalProperties": False,
            "properties": {"items": {"type": "array",
                                     "items": {"$ref": "#/components/schemas/Template"}}}},
        "RefreshRequest": {
            "type": "object", "required": ["refreshToken"], "additionalProperties": False,
            "properties": {"refreshToken": {"type": "string", "minLength": 1}}},
        "TokenResponse": {
            "type": "object", "required": ["accessToken", "tokenType", "expiresIn"],
            "additionalProperties": False,
            "properties": {
                "accessToken": {"type": "string"},
                "tokenType": {"type": "string", "enum": ["Bearer"]},
                "expiresIn": {"type": "integer", "minimum": 1, "description": "Seconds."},
            }},
        "Health": {
            "type": "object", "required": ["status"],
            "properties": {"status": {"type": "string", "enum": ["ok"]}}},
        "FieldError": {
            "type": "object", "required": ["path", "message"], "additionalProperties": False,
            "properties": {
                "path": {"type": "string", "examples": ["spec.steps[1].excel.fileName"]},
                "message": {"type": "string"}}},
        "Problem": {
            "type": "object", "required": ["type", "title", "status", "detail", "reason"],
            "description": "RFC 9457 problem details.",
            "properties": {
                "type": {"type": "string"},
                "title": {"type": "string"},
                "status": {"type": "integer", "minimum": 400, "maximum": 599},
                "detail": {"type": "string"},
                "reason": {"type": "string", "description": "CamelCase machine reason, e.g. TokenExpired."},
                "instance": {"type": "string"},
                "errors": {"type": "array", "items": {"$ref": "#/components/schemas/FieldError"}},
            }},
    }


def _parameters() -> dict[str, Any]:
    return {
        "namespace": {"name": "namespace", "in": "path", "required": True,
                      "description": "A namespace the token's `namespaces` claim allows.",
                      "schema": {"type": "string", "minLength": 1, "maxLength": 63,
                                 "pattern": "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"}},
        "name": {"name": "name", "in": "path", "required": True,
                 "schema": {"type": "string", "minLength": 1, "maxLength": 253,
                            "pattern": "^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"}},
    }


_LINKS = {op: {"operationId": op, "parameters": {"namespace": "$request.path.namespace",
                                                  "name": "$response.body#/name"}}
          for op in ("getReport", "cancelReport", "listArtifacts", "watchReport")}


def _operations() -> dict[str, dict[str, Any]]:
    ns = {"$ref": "#/components/parameters/namespace"}
    name = {"$ref": "#/components/parameters/name"}
    not_found = {"404": _problem("No such report.")}
    bad = {"400": _problem("A malformed path or query parameter.")}
    return {
        "health": {
            "summary": "Liveness: the process serves requests.",
            "responses": {"200": _json("Health", "Alive.")}},
        "getOpenApi": {
            "summary": "This document.",
            "responses": {"200": {"description": "The OpenAPI document.",
                                  "content": {"application/json": {"schema": {"type": "object"}}}}}},
        "refreshToken": {
            "summary": "Exchange a refresh token for a new access token.",
            "requestBody": {"required": True, "content": {"application/json": {
                "schema": {"$ref": "#/components/schemas/RefreshRequest"}}}},
            "responses": {"200": _json("TokenResponse", "A new access token."),
                          "400": _problem("The body is not a RefreshRequest."),
                          "401": _problem("The refresh token is refused (expired, wrong type, ...)."),
                          "413": _problem("The body is too large."),
                          "415": _problem("The body is not JSON.")}},
        "createReport": {
            "summary": "Create a report (a ReportRequest) in a namespace.",
            "parameters": [ns, {"name": "Idempotency-Key", "in": "header", "required": False,
                                "description": "Retries with the same key (per caller) return the first report.",
                                "schema": {"type": "string", "minLength": 1, "maxLength": 255,
                                           "pattern": "^[\\x21-\\x7e]([\\x20-\\x7e]*[\\x21-\\x7e])?$"}}],
            "requestBody": {"required": True, "content": {"application/json": {
                "schema": {"$ref": "#/components/schemas/CreateReport"}}}},
            "responses": {
                "201": {**_json("Report", "Created.", {"Location": {"schema": {"type": "string"}}}),
                        "links": _LINKS},
                "200": _json("Report", "A retry with the same Idempotency-Key: the first report.",
                             {"Idempotent-Replayed": {"schema": {"type": "string", "enum": ["true"]}}}),
                **bad, **_AUTH_ERRORS,
                "404": _problem("The namespace does not exist."),
                "409": _problem("A report with this name exists."),
                "413": _problem("The body is too large."),
                "415": _problem("The body is not JSON."),
                "422": _problem("The report was refused; `errors` lists each field path."),
                **_UPSTREAM_ERRORS}},
        "listReports": {
            "summary": "List reports, one page at a time.",
            "parameters": [
                ns,
                {"name": "labelSelector", "in": "query",
                 "schema": {"type": "string", "maxLength": reports.MAX_SELECTOR,
                            "pattern": reports.SELECTOR_PATTERN},
                 "description": "A Kubernetes label selector, e.g. team=sales."},
                {"name": "phase", "in": "query", "schema": {"type": "string", "enum": list(reports.PHASES)}},
                {"name": "createdBy", "in": "query", "schema": {"type": "string", "minLength": 1, "maxLength": 253},
                 "description": "JWT subject of the creator."},
                {"name": "limit", "in": "query",
                 "schema": {"type": "integer", "minimum": 1, "maximum": reports.MAX_LIMIT,
                            "default": reports.DEFAULT_LIMIT},
                 "description": "Page size; `phase` and `createdBy` filter within the page."},
                {"name": "continue", "in": "query",
                 "schema": {"type": "string", "maxLength": reports.MAX_CONTINUE,
                            "pattern": reports.CONTINUE_PATTERN}},
            ],
            "responses": {"200": _json("ReportList", "A page of reports."), **bad, **_AUTH_ERRORS,
                          "410": _problem("The continue token expired: list from the start."),
                          **_UPSTREAM_ERRORS}},
        "listTemplates": {
            "summary": "The report catalog of a namespace: ReportTemplates with their parameters.",
            "parameters": [ns],
            "responses": {"200": _json("TemplateList", "The templates."), **bad, **_AUTH_ERRORS,
                          **_UPSTREAM_ERRORS}},
        "listAllTemplates": {
            "summary": "The report catalog of every namespace the token allows.",
            "responses": {"200": _json("TemplateList", "The templates."), **_AUTH_ERRORS,
                          **_UPSTREAM_ERRORS}},
        "getReport": {
            "summary": "One report: spec, status, artifacts, conditions.",
            "parameters": [ns, name],
            "responses": {"200": _json("Report", "The report."), **bad, **_AUTH_ERRORS, **not_found,
                          **_UPSTREAM_ERRORS}},
        "cancelReport": {
            "summary": "Cancel a report: delete its ReportRequest (the finalizer stops its jobs).",
            "parameters": [ns, name],
            "responses": {"202": _json("Report", "Deletion started."), **bad, **_AUTH_ERRORS,
                          **not_found, **_UPSTREAM_ERRORS}},
        "listArtifacts": {
            "summary": "The report's files, with presigned URLs where the dispatcher made one.",
            "parameters": [ns, name],
            "responses": {"200": _json("ArtifactList", "The artifacts so far."), **bad,
                          **_AUTH_ERRORS, **not_found, **_UPSTREAM_ERRORS}},
        "watchReport": {
            "summary": "Follow a report (server-sent events) until it Succeeded, Failed or is deleted.",
            "description": "Events: `status` (data: a Report; first the report as it is, then each "
                           "change of its status) and `deleted`; a comment line every 15 s keeps "
                           "the connection open.",
            "parameters": [ns, name],
            "responses": {"200": {"description": "An event stream; `schema` describes one event.",
                                  "content": {"text/event-stream": {
                                      "schema": {"$ref": "#/components/schemas/ReportEvent"}}}},
                          **bad, **_AUTH_ERRORS, **not_found, **_UPSTREAM_ERRORS}},
    }


@lru_cache(maxsize=1)
def _document() -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    ops = _operations()
    for route in ROUTES:
        op = {"operationId": route.operation_id, **ops[route.operation_id]}
        op["security"] = [{"bearerAuth": []}] if route.secured else []
        paths.setdefault(route.path, {})[route.method.lower()] = op
    return {
        "openapi": "3.1.0",
        "info": {"title": TITLE, "version": VERSION,
                 "description": "Every report created here is a ReportRequest; the operator runs it. "
                                "Tokens: `goreports token issue`. Guide: docs/api.md."},
        "paths": paths,
        "components": {
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
            "parameters": _parameters(),
            "schemas": _schemas(),
        },
    }


def document() -> dict[str, Any]:
    """The OpenAPI document (a fresh copy)."""
    return copy.deepcopy(_document())
