"""The one schema, on the Python side: validate a ReportRequest against the CRD's openAPIV3Schema.

Why: the CRD in `deploy/crds/` is the only description of a report spec. The API server enforces
it in the cluster; `goreports run` and the REST/gRPC API must refuse the same documents without a
cluster. So this module reads that same file and runs it with `jsonschema`, adding what the API
server does beyond plain JSON Schema:

- unknown fields are errors (the API server prunes or, with strict field validation, refuses
  them; a typo must never be dropped silently), so every object with `properties` gets
  `additionalProperties: false` here (the CRD itself may not say it: structural schema rule);
- `x-kubernetes-list-type: set | map` refuses duplicate values / duplicate keys;
- the CEL `x-kubernetes-validations` rules run as Python equivalents (`cel_equivalent`): the few
  rule shapes the CRD uses are recognised by their text, so the two sides cannot drift apart
  unnoticed (a test asserts every rule of the CRD has an equivalent);
- `format` is not checked (leniently, as its values are written by the operator, not users).

Every error comes back at once, with a field path (`spec.steps[1].excel.sheets[0].name`) and a
message a person understands. The ReportTemplate CRD (generated from this one) is run the same
way by `template_errors`; goreports.core.templates adds what its schema cannot say.
"""
from __future__ import annotations

import copy
import difflib
import json
import os
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator, ValidationError, validators

from goreports.core.errors import FieldError, SpecError

GROUP = "goreports.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "ReportRequest"
CRD_FILE = "goreports.io_reportrequests.yaml"
TEMPLATE_KIND = "ReportTemplate"
TEMPLATE_CRD_FILE = "goreports.io_reporttemplates.yaml"
CRD_DIR_ENV = "GOREPORTS_CRD_DIR"

ROOT_PATH = "(root)"

_DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"

# Human wording of the CRD's regular expressions (fallback: the expression itself).
_PATTERN_HINTS: dict[str, str] = {
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$": (
        "must be a DNS label: lower-case letters, digits and '-', "
        "starting and ending with a letter or digit"),
    _DNS_SUBDOMAIN: (
        "must be lower-case letters, digits, '-' and '.', "
        "starting and ending with a letter or digit (a Kubernetes object name)"),
    r"^[a-z][a-z0-9_]*$": (
        "must be a dataset name: a lower-case letter, then lower-case letters, digits or '_'"),
    r"^[^./\\][^/\\]*$": "must be a plain file name: no '/' or '\\', not starting with '.'",
    r"^[^/.\\][^/\\]*(/[^/.\\][^/\\]*)*$": (
        "must be a relative path without '..' or hidden parts (no part starts with '.')"),
    r"^https?://[^\s]+$": "must be an http:// or https:// URL",
    r"^(https?://[^\s]+)?$": "must be empty or an http:// or https:// URL",
    r"^[^\r\n]*$": "must be a single line",
    r"^[^\r\n@]+@[^\r\n@]+$": "must be an e-mail address",
    r"^[^:\\/?*\[\]]+$": "must not contain any of : \\ / ? * [ ]",
}

_BOOL_KEY_HINT = ("YAML 1.1 (PyYAML, kubectl) reads a bare on/off/yes/no key as a boolean: "
                  "quote it, e.g. 'yes':")

_JSON_TYPES: dict[str, str] = {
    "object": "a mapping", "array": "a list", "string": "a string", "integer": "an integer",
    "number": "a number", "boolean": "a boolean (true or false)", "null": "null",
}


# ------------------------------------------------------------------------------------------
# Loading the CRD


def crd_path(file: str = CRD_FILE) -> Path:
    """Where a CRD file (default: the ReportRequest's) is: `$GOREPORTS_CRD_DIR`, the source
    tree's `deploy/crds/`, or package data `goreports.core/crds/` of an installed distribution."""
    candidates: list[Path] = []
    env_dir = os.environ.get(CRD_DIR_ENV)
    if env_dir:
        candidates.append(Path(env_dir) / file)
    candidates.append(Path(__file__).resolve().parent.parent / "deploy" / "crds" / file)
    try:  # an installed wheel that ships the CRD as package data
        candidates.append(Path(str(resources.files("goreports.core") / "crds" / file)))
    except (ModuleNotFoundError, TypeError):  # pragma: no cover - exotic installs
        pass
    for path in candidates:
        if path.is_file():
            return path
    raise FileNotFoundError(
        f"cannot find the CRD file {file}; looked at: "
        + ", ".join(str(p) for p in candidates)
        + f". Set {CRD_DIR_ENV} to the folder holding deploy/crds of go-reports.")


@lru_cache(maxsize=4)
def _crd(file: str = CRD_FILE) -> dict[str, Any]:
    with crd_path(file).open(encoding="utf-8") as fh:
        crd: dict[str, Any] = yaml.safe_load(fh)
    return crd


def load_crd() -> dict[str, Any]:
    """The whole CustomResourceDefinition document (a fresh copy)."""
    return copy.deepcopy(_crd())


def load_crd_schema(version: str = VERSION) -> dict[str, Any]:
    """The `openAPIV3Schema` of one served version of the CRD (a fresh copy)."""
    for v in _crd()["spec"]["versions"]:
        if v["name"] == version:
            return copy.deepcopy(v["schema"]["openAPIV3Schema"])
    raise KeyError(f"the ReportRequest CRD has no version {version!r}")


def load_template_crd_schema(version: str = VERSION) -> dict[str, Any]:
    """The `openAPIV3Schema` of the ReportTemplate CRD (a fresh copy)."""
    for v in _crd(TEMPLATE_CRD_FILE)["spec"]["versions"]:
        if v["name"] == version:
            return copy.deepcopy(v["schema"]["openAPIV3Schema"])
    raise KeyError(f"the ReportTemplate CRD has no version {version!r}")


# ------------------------------------------------------------------------------------------
# CEL rules, as Python

Check = Callable[[Mapping[str, Any]], bool]

_HAS_TERM = r"\(has\(self\.\w+\) \? 1 : 0\)"
_COUNT_RULE = re.compile(rf"{_HAS_TERM}(?: \+ {_HAS_TERM})* (==|>=|<=) (\d+)")
_WHEN_RULE = re.compile(
    r"!has\(self\.(\w+)\) \|\| (?:!self\.(\w+)|self\.(\w+) (==|!=) '([^']*)') "
    r"\|\| has\(self\.(\w+)\)")


def is_transition_rule(rule: str) -> bool:
    """True for rules comparing with the stored object (`oldSelf`): only the API server can."""
    return re.search(r"\boldSelf\b", rule) is not None


def cel_equivalent(rule: str) -> Check | None:
    """A Python predicate equal to a CEL rule of the CRD, or None for a shape not known here.

    Known shapes: `(has(self.a) ? 1 : 0) + ... (==|>=|<=) N` (counting present fields), and
    `!has(self.a) || <test of a> || has(self.b)` (b required when a is true / equals / differs
    from a literal).
    """
    text = " ".join(rule.split())
    m = _COUNT_RULE.fullmatch(text)
    if m:
        names = re.findall(r"has\(self\.(\w+)\)", text)
        op, n = m.group(1), int(m.group(2))
        compare: dict[str, Callable[[int], bool]] = {
            "==": lambda c: c == n, ">=": lambda c: c >= n, "<=": lambda c: c <= n}
        return lambda obj: compare[op](sum(1 for k in names if k in obj))
    m = _WHEN_RULE.fullmatch(text)
    if m:
        field, truthy_field, cmp_field, op, literal, needed = m.groups()
        if (truthy_field or cmp_field) != field:
            return None

        def check(obj: Mapping[str, Any]) -> bool:
            if field not in obj or needed in obj:
                return True
            value = obj[field]
            if truthy_field:
                return value is not True
            return bool(value == literal) if op == "==" else bool(value != literal)

        return check
    return None


# ------------------------------------------------------------------------------------------
# jsonschema with the Kubernetes extensions


def _k8s_validations(validator: Any, rules: Any, instance: Any, schema: Any
                     ) -> Iterator[ValidationError]:
    if not isinstance(instance, dict):
        return
    for rule in rules:
        check = cel_equivalent(rule.get("rule", ""))
        if check is None or check(instance):
            continue
        field_path = [p for p in str(rule.get("fieldPath", "")).split(".") if p]
        yield ValidationError(rule.get("message") or f"failed rule: {rule['rule']}",
                              path=field_path)


def _k8s_list_type(validator: Any, list_type: Any, instance: Any, schema: Any
                   ) -> Iterator[ValidationError]:
    if not isinstance(instance, list) or list_type not in ("set", "map"):
        return
    keys: list[str] = schema.get("x-kubernetes-list-map-keys", [])
    seen: dict[str, int] = {}
    for index, item in enumerate(instance):
        if list_type == "map":
            if not isinstance(item, dict) or not any(k in item for k in keys):
                continue
            key = json.dumps([item.get(k) for k in keys], sort_keys=True, default=str)
            shown = ", ".join(f"{k} {item.get(k)!r}" for k in keys)
            path: list[str | int] = [index, keys[0]] if len(keys) == 1 else [index]
        else:
            key = json.dumps(item, sort_keys=True, default=str)
            shown, path = f"value {item!r}", [index]
        if key in seen:
            yield ValidationError(f"duplicate {shown}: already used by item [{seen[key]}]",
                                  path=path)
        else:
            seen[key] = index


_Validator = validators.extend(Draft202012Validator, {
    "x-kubernetes-validations": _k8s_validations,
    "x-kubernetes-list-type": _k8s_list_type,
})


def _strict(node: Any) -> Any:
    """A copy of a CRD schema in which objects with `properties` refuse unknown fields."""
    if isinstance(node, list):
        return [_strict(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: _strict(v) for k, v in node.items()}
    if "properties" in node and not node.get("x-kubernetes-preserve-unknown-fields"):
        out.setdefault("additionalProperties", False)
    return out


@lru_cache(maxsize=2)
def _validator(kind: str = KIND) -> Any:
    schema = _strict(load_crd_schema() if kind == KIND else load_template_crd_schema())
    props = schema.setdefault("properties", {})
    props["apiVersion"] = {**props.get("apiVersion", {"type": "string"}), "const": API_VERSION}
    props["kind"] = {**props.get("kind", {"type": "string"}), "const": kind}
    props["metadata"] = {
        "type": "object",
        "required": ["name"],
        "properties": {
            "name": {"type": "string", "minLength": 1, "maxLength": 253,
                     "pattern": _DNS_SUBDOMAIN},
            "namespace": {"type": "string", "maxLength": 63,
                          "pattern": r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"},
        },
    }
    schema["required"] = ["apiVersion", "kind", "metadata", "spec"]
    _Validator.check_schema(schema)
    return _Validator(schema)


# ------------------------------------------------------------------------------------------
# Human messages


def format_path(parts: Iterable[str | int]) -> str:
    """`['spec', 'steps', 1, 'excel']` -> `spec.steps[1].excel`."""
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        elif re.fullmatch(r"[A-Za-z_][\w-]*", part):
            out += f".{part}" if out else part
        else:
            out += f"[{json.dumps(part)}]"
    return out or ROOT_PATH


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _shown(value: Any) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


def _messages(err: ValidationError) -> list[FieldError]:
    """One jsonschema error -> the FieldErrors a person reads."""
    path = list(err.absolute_path)
    kw, expected, value = err.validator, err.validator_value, err.instance
    here = format_path(path)
    if kw == "required":
        missing = [n for n in expected if isinstance(value, dict) and n not in value]
        return [FieldError(format_path([*path, n]), f"missing required field '{n}'")
                for n in missing]
    if kw == "additionalProperties":
        known = sorted(err.schema.get("properties", {}))
        out = []
        for extra in (k for k in value if k not in known):
            msg = f"unknown field '{extra}'"
            close = difflib.get_close_matches(extra, known, n=1)
            if extra.lower() in ("true", "false"):
                msg += f"; {_BOOL_KEY_HINT}"
            elif close:
                msg += f"; did you mean '{close[0]}'?"
            elif known:
                msg += f" (known fields: {', '.join(known)})"
            out.append(FieldError(format_path([*path, extra]), msg))
        return out
    if kw == "type":
        wanted: list[str] = expected if isinstance(expected, list) else [expected]
        names = " or ".join(_JSON_TYPES.get(t, t) for t in wanted)
        if value is None:
            return [FieldError(here, f"expected {names}, got an empty value")]
        got = _JSON_TYPES.get(_json_type(value), _json_type(value))
        return [FieldError(here, f"expected {names}, got {got} ({_shown(value)})")]
    if kw == "enum":
        allowed = ", ".join(_shown(v) if v == "" else str(v) for v in expected)
        return [FieldError(here, f"must be one of: {allowed} (got {_shown(value)})")]
    if kw == "const":
        return [FieldError(here, f"must be {_shown(expected)} (got {_shown(value)})")]
    if kw == "pattern":
        hint = _PATTERN_HINTS.get(expected, f"must match the regular expression {expected}")
        return [FieldError(here, f"{hint} (got {_shown(value)})")]
    simple: dict[str, str] = {
        "minLength": "must be at least {} characters long",
        "maxLength": "must be at most {} characters long",
        "minimum": "must be at least {}",
        "maximum": "must be at most {}",
        "exclusiveMinimum": "must be greater than {}",
        "exclusiveMaximum": "must be less than {}",
        "minItems": "needs at least {} item(s)",
        "maxItems": "allows at most {} item(s)",
        "minProperties": "needs at least {} entries",
        "maxProperties": "allows at most {} entries",
    }
    if kw in simple:
        got = f"{len(value)}" if kw.endswith(("Items", "Length", "Properties")) else _shown(value)
        return [FieldError(here, f"{simple[kw].format(expected)} (got {got})")]
    if kw == "uniqueItems":
        return [FieldError(here, "must not contain the same value twice")]
    return [FieldError(here, err.message)]


def _sort_key(err: ValidationError) -> tuple[tuple[bool, Any], ...]:
    return tuple((isinstance(p, str), p) for p in err.absolute_path)


def _key_errors(node: Any, path: list[str | int]) -> tuple[Any, list[FieldError]]:
    """Drop mapping keys that are not strings (YAML 1.1 reads a bare `on:` as `True:`), with an
    error for each; returns the cleaned copy and the errors."""
    errors: list[FieldError] = []
    if isinstance(node, list):
        items = []
        for i, item in enumerate(node):
            clean, errs = _key_errors(item, [*path, i])
            items.append(clean)
            errors += errs
        return items, errors
    if not isinstance(node, dict):
        return node, errors
    out: dict[str, Any] = {}
    for key, value in node.items():
        if not isinstance(key, str):
            msg = f"field name {key!r} is not a string"
            if isinstance(key, bool):
                msg += f"; {_BOOL_KEY_HINT}"
            errors.append(FieldError(format_path([*path, str(key)]), msg))
            continue
        out[key], errs = _key_errors(value, [*path, key])
        errors += errs
    return out, errors


# ------------------------------------------------------------------------------------------
# Public API


def report_errors(doc: Any, kind: str = KIND) -> list[FieldError]:
    """Every error of a ReportRequest (or, with kind=TEMPLATE_KIND, ReportTemplate) document
    (empty when it is valid)."""
    if not isinstance(doc, dict):
        return [FieldError(ROOT_PATH, f"a {kind} must be a mapping, got "
                                      f"{_JSON_TYPES.get(_json_type(doc), _json_type(doc))}")]
    clean, errors = _key_errors(doc, [])
    for err in sorted(_validator(kind).iter_errors(clean), key=_sort_key):
        errors += _messages(err)
    return list(dict.fromkeys(errors))  # drop repeats, keep order


def template_errors(doc: Any) -> list[FieldError]:
    """Every schema error of a ReportTemplate document (its `report` may hold placeholders)."""
    return report_errors(doc, TEMPLATE_KIND)


def validate_report(doc: Any) -> None:
    """Raise SpecError with every error of a ReportRequest document (apiVersion, kind,
    metadata.name, spec; status too, when present)."""
    errors = report_errors(doc)
    if errors:
        raise SpecError(errors)


def validate_spec(spec: Any) -> None:
    """Validate a bare `spec` (error paths still start with `spec.`)."""
    validate_report({"apiVersion": API_VERSION, "kind": KIND, "metadata": {"name": "spec"},
                     "spec": spec})
