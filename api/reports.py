"""What the API does to a report request, as pure functions over plain data.

Why separate: REST and gRPC share it, and none of it needs a server, so every rule is unit-tested
(tests/unit/api/). The I/O around it is `goreports.api.service`.

- A create body is a ReportRequest as in a manifest (`apiVersion` and `kind` optional,
  `metadata.name` and `metadata.labels` optional, `spec` required); the spec is checked against
  the CRD schema (goreports.core.schema), and every error comes back with its field path. Instead
  of `spec`, a body may give `template: {name, parameters}` (a ReportTemplate of the catalog):
  short for `spec: {template: ...}`; the service checks the values against the template.
- The caller is recorded for audit: annotation `goreports.io/created-by` = JWT `sub`, and
  `goreports.io/tenant` = the `tenant` claim (never the token itself: tokens do not belong in a
  spec, which every reader of the namespace can see).
- Idempotency: the key is hashed with the caller's subject; the hash is a label
  (`goreports.io/idempotency-key`) and, when no name is given, also the name (`r-<hash>`), so a
  retry finds the first report through the Kubernetes API itself: across API restarts and
  replicas, and without a store of its own. A retry whose request differs (another spec, name or
  labels) is refused: the key was reused for something else.
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any

from goreports.api.auth import Caller
from goreports.api.problems import Problem, invalid
from goreports.core.errors import FieldError
from goreports.core.schema import API_VERSION, KIND, format_path, report_errors

ANNOTATION_CREATED_BY = "goreports.io/created-by"
ANNOTATION_TENANT = "goreports.io/tenant"
ANNOTATION_CREATED_VIA = "goreports.io/created-via"
ANNOTATION_REQUEST_SHA256 = "goreports.io/request-sha256"
LABEL_IDEMPOTENCY_KEY = "goreports.io/idempotency-key"
RESERVED_PREFIX = "goreports.io/"
GENERATE_NAME = "report-"

PHASES = ("Pending", "Running", "Succeeded", "Failed")
TERMINAL_PHASES = frozenset({"Succeeded", "Failed"})
MAX_IDEMPOTENCY_KEY = 255
MAX_LIMIT = 500
DEFAULT_LIMIT = 100

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL_NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
_PRINTABLE_ASCII = re.compile(r"^[\x21-\x7e]([\x20-\x7e]*[\x21-\x7e])?$")
_BODY_FIELDS = ("apiVersion", "kind", "metadata", "spec", "template")
_METADATA_FIELDS = ("name", "namespace", "labels")


@dataclass(frozen=True)
class CreateRequest:
    """A checked create request: the name (None = generated), labels and spec."""

    name: str | None
    labels: dict[str, str] = field(default_factory=dict)
    spec: dict[str, Any] = field(default_factory=dict)

    def fingerprint(self) -> str:
        """sha256 of the request's content: retries with one key must send the same."""
        doc = {"name": self.name, "labels": self.labels, "spec": self.spec}
        return hashlib.sha256(json.dumps(doc, sort_keys=True, separators=(",", ":"),
                                         ensure_ascii=False).encode()).hexdigest()


# ------------------------------------------------------------------------------------------
# Checking what callers send


def check_namespace(namespace: str) -> None:
    if not (0 < len(namespace) <= 63 and _DNS_LABEL.match(namespace)):
        raise Problem(400, "InvalidNamespace",
                      f"{namespace[:70]!r} is not a namespace name (a DNS label: lower-case "
                      f"letters, digits and '-', at most 63 characters)")


def check_name(name: str) -> None:
    if not (0 < len(name) <= 253 and _DNS_SUBDOMAIN.match(name)):
        raise Problem(400, "InvalidName",
                      f"{name[:70]!r} is not a report name (a Kubernetes object name: lower-case "
                      f"letters, digits, '-' and '.', at most 253 characters)")


def label_errors(labels: Any, path: str = "metadata.labels") -> list[FieldError]:
    """Kubernetes label rules, plus: the `goreports.io/` prefix is the API's own."""
    if not isinstance(labels, dict):
        return [FieldError(path, "expected a mapping of label names to values")]
    errors: list[FieldError] = []
    for key, value in labels.items():
        where = format_path([*path.split("."), str(key)])
        prefix, _, name = str(key).rpartition("/")
        if not (0 < len(name) <= 63 and _LABEL_NAME.match(name)) or (
                prefix and not (len(prefix) <= 253 and _DNS_SUBDOMAIN.match(prefix))):
            errors.append(FieldError(where, "not a label name: [prefix/]name, the name at most 63 "
                                            "letters, digits, '-', '_' or '.'"))
        elif str(key).startswith(RESERVED_PREFIX):
            errors.append(FieldError(where, f"labels under {RESERVED_PREFIX} are set by go-reports"))
        if not isinstance(value, str):
            errors.append(FieldError(where, "a label value must be a string"))
        elif value and not (len(value) <= 63 and _LABEL_NAME.match(value)):
            errors.append(FieldError(where, "not a label value: at most 63 letters, digits, '-', "
                                            "'_' or '.', starting and ending with a letter or digit"))
    return errors


def parse_create_body(body: Any, namespace: str) -> CreateRequest:
    """The checked request, or Problem 422 with every error and its field path."""
    if not isinstance(body, dict):
        raise invalid([FieldError("(root)", "the body must be a JSON object with a `spec` "
                                            "(a ReportRequest as in a manifest)")])
    errors: list[FieldError] = []
    for key in body:
        if key not in _BODY_FIELDS:
            errors.append(FieldError(format_path([str(key)]),
                                     f"unknown field '{key}' (known fields: {', '.join(_BODY_FIELDS)})"))
    if "apiVersion" in body and body["apiVersion"] != API_VERSION:
        errors.append(FieldError("apiVersion", f"must be {API_VERSION!r}"))
    if "kind" in body and body["kind"] != KIND:
        errors.append(FieldError("kind", f"must be {KIND!r}"))
    metadata = body.get("metadata", {})
    name: str | None = None
    labels: dict[str, str] = {}
    if not isinstance(metadata, dict):
        errors.append(FieldError("metadata", "expected a mapping"))
    else:
        for key in metadata:
            if key not in _METADATA_FIELDS:
                errors.append(FieldError(format_path(["metadata", str(key)]),
                                         f"not accepted here (accepted: {', '.join(_METADATA_FIELDS)})"))
        if metadata.get("namespace") not in (None, "", namespace):
            errors.append(FieldError("metadata.namespace",
                                     f"must be empty or {namespace!r} (the namespace of the URL)"))
        raw_name = metadata.get("name", "")
        if not isinstance(raw_name, str):
            errors.append(FieldError("metadata.name", "expected a string"))
        elif raw_name:
            name = raw_name
        raw_labels = metadata.get("labels", {})
        errors += label_errors(raw_labels)
        if isinstance(raw_labels, dict):
            labels = {str(k): v for k, v in raw_labels.items() if isinstance(v, str)}
        if not isinstance(metadata.get("namespace", ""), str):
            errors.append(FieldError("metadata.namespace", "expected a string"))
    if "template" in body:
        if "spec" in body:
            errors.append(FieldError("template", "give spec or template, not both (a template "
                                                 "request may also be spec: {template: ...})"))
        else:
            body = {**body, "spec": {"template": body["template"]}}
    if "spec" not in body:
        errors.append(FieldError("spec", "missing required field 'spec' (or 'template': a "
                                         "ReportTemplate name and its parameters)"))
    else:
        doc = {"apiVersion": API_VERSION, "kind": KIND,
               "metadata": {"name": name if name is not None else "generated"},
               "spec": body["spec"]}
        errors += report_errors(doc)
    if errors:
        raise invalid(list(dict.fromkeys(errors)))
    return CreateRequest(name=name, labels=labels, spec=body["spec"])


def check_idempotency_key(key: str | None) -> str | None:
    """None when absent; the key when it is 1-255 printable ASCII characters; else 400."""
    if key is None:
        return None
    if len(key) > MAX_IDEMPOTENCY_KEY or not _PRINTABLE_ASCII.match(key):
        raise Problem(400, "InvalidIdempotencyKey",
                      f"the Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY} printable ASCII "
                      f"characters (a UUID is a good choice)")
    return key


def idempotency_hash(subject: str, key: str) -> str:
    """The label value that ties a key to its report: 40 hex digits of sha256(sub, key)."""
    return hashlib.sha256(json.dumps([subject, key]).encode()).hexdigest()[:40]


def idempotent_name(key_hash: str) -> str:
    """The report name used when a keyed request names none: the same for every retry."""
    return f"r-{key_hash[:24]}"


MAX_SELECTOR = 1024
MAX_CONTINUE = 4096
SELECTOR_PATTERN = r"^[\x20-\x7e]*$"
CONTINUE_PATTERN = r"^[A-Za-z0-9+/=_-]*$"  # the API server's tokens are base64
_SELECTOR = re.compile(SELECTOR_PATTERN)
_CONTINUE = re.compile(CONTINUE_PATTERN)


def check_list_params(*, phase: str | None = None, limit: int | None = None,
                      label_selector: str = "", created_by: str | None = None,
                      continue_token: str = "") -> int:
    """The page size to ask for (None = the default); Problem 400 on a bad parameter."""
    if phase is not None and phase not in PHASES:
        raise Problem(400, "InvalidPhase", f"phase must be one of {', '.join(PHASES)}")
    if len(label_selector) > MAX_SELECTOR or not _SELECTOR.match(label_selector):
        raise Problem(400, "InvalidQuery", f"labelSelector must be at most {MAX_SELECTOR} printable "
                                           f"ASCII characters (e.g. team=sales,tier!=test)")
    if created_by is not None and not 0 < len(created_by) <= 253:
        raise Problem(400, "InvalidQuery", "createdBy must be 1 to 253 characters (a JWT subject)")
    if len(continue_token) > MAX_CONTINUE or not _CONTINUE.match(continue_token):
        raise Problem(400, "InvalidQuery", "continue is not a token this API returned")
    if limit is None:
        return DEFAULT_LIMIT
    if not 1 <= limit <= MAX_LIMIT:
        raise Problem(400, "InvalidLimit", f"limit must be between 1 and {MAX_LIMIT}")
    return limit


# ------------------------------------------------------------------------------------------
# Building and reading ReportRequests


def build_manifest(caller: Caller, namespace: str, req: CreateRequest, *, via: str,
                   key_hash: str | None = None) -> dict[str, Any]:
    """The ReportRequest to create, with the caller's annotations (and idempotency label)."""
    annotations = {ANNOTATION_CREATED_BY: caller.subject, ANNOTATION_CREATED_VIA: via}
    if caller.tenant:
        annotations[ANNOTATION_TENANT] = caller.tenant
    labels = dict(req.labels)
    metadata: dict[str, Any] = {"namespace": namespace, "annotations": annotations}
    if key_hash:
        labels[LABEL_IDEMPOTENCY_KEY] = key_hash
        annotations[ANNOTATION_REQUEST_SHA256] = req.fingerprint()
    if req.name:
        metadata["name"] = req.name
    elif key_hash:
        metadata["name"] = idempotent_name(key_hash)
    else:
        metadata["generateName"] = GENERATE_NAME
    if labels:
        metadata["labels"] = labels
    return {"apiVersion": API_VERSION, "kind": KIND, "metadata": metadata, "spec": req.spec}


def replay_of(existing: dict[str, Any], key_hash: str, req: CreateRequest) -> bool:
    """True when `existing` was created by this very keyed request (a retry): return it.

    Problem 422 when it was created with this key but another request (the key was reused);
    False when the key is not on it (a name clash with some other report).
    """
    meta = existing.get("metadata") or {}
    if (meta.get("labels") or {}).get(LABEL_IDEMPOTENCY_KEY) != key_hash:
        return False
    if (meta.get("annotations") or {}).get(ANNOTATION_REQUEST_SHA256) != req.fingerprint():
        raise Problem(422, "IdempotencyKeyReused",
                      f"this Idempotency-Key was already used for report {meta.get('name')!r} "
                      f"with a different request; use a new key for a new report")
    return True


def phase(obj: dict[str, Any]) -> str:
    return str((obj.get("status") or {}).get("phase") or "")


def is_terminal(obj: dict[str, Any]) -> bool:
    return phase(obj) in TERMINAL_PHASES


def matches(obj: dict[str, Any], want_phase: str | None, created_by: str | None) -> bool:
    """The filters the Kubernetes API cannot apply (status and annotations)."""
    if want_phase and phase(obj) != want_phase:
        return False
    annotations = (obj.get("metadata") or {}).get("annotations") or {}
    return not created_by or annotations.get(ANNOTATION_CREATED_BY) == created_by


def watch_state(obj: dict[str, Any]) -> str:
    """What a follower sees change: status and deletion (not the operator's bookkeeping)."""
    meta = obj.get("metadata") or {}
    return json.dumps([obj.get("status") or {}, bool(meta.get("deletionTimestamp"))],
                      sort_keys=True)


def view(obj: dict[str, Any]) -> dict[str, Any]:
    """The API's representation of a ReportRequest (REST JSON; gRPC converts it)."""
    meta = obj.get("metadata") or {}
    annotations = meta.get("annotations") or {}
    out: dict[str, Any] = {
        "namespace": meta.get("namespace", ""),
        "name": meta.get("name", ""),
        "uid": meta.get("uid", ""),
        "createdAt": meta.get("creationTimestamp"),
        "createdBy": annotations.get(ANNOTATION_CREATED_BY, ""),
        "labels": dict(meta.get("labels") or {}),
        "deleting": bool(meta.get("deletionTimestamp")),
        "spec": obj.get("spec") or {},
        "status": obj.get("status") or {},
    }
    if annotations.get(ANNOTATION_TENANT):
        out["tenant"] = annotations[ANNOTATION_TENANT]
    if out["createdAt"] is None:
        del out["createdAt"]
    return out


def artifacts(obj: dict[str, Any]) -> list[dict[str, Any]]:
    """The report's artifacts from its status (with `url` where the dispatcher presigned one)."""
    return [dict(a) for a in (obj.get("status") or {}).get("artifacts") or []
            if isinstance(a, dict)]
