"""The report catalog's parameter logic: check a ReportTemplate, check a request's values, and
resolve the two into a plain ReportRequest spec.

Why pure: the operator (when a request is created), `goreports run` (a template file plus
`--param`) and the API must resolve a template identically, and all of it is decidable without a
server, so it is unit-tested on its own. The resolved spec then goes through the one schema
(goreports.core.schema) and the compiler like any other spec.

Placeholders are `$(params.name)` (the Tekton form): they cannot clash with Mustache's `{{ }}`
in generator templates, e-mail subjects or bodies. `$$(` writes a literal `$(`. They are replaced
in string values only, never in keys and never in SQL text: a value reaches a query only as a
bound parameter (`parameters: {since: $(params.since)}`), so the driver keeps it data. Where a
string is exactly one placeholder inside a free-value map (query parameters, `spec.parameters`
shown to Mustache, a custom stage's `task`), the value keeps its type (an integer stays an
integer); everywhere else it is written as text (booleans as true/false, dates as yyyy-mm-dd).
A step with `includeWhen: {parameter, in: [...]}` is kept only for those values.
"""
from __future__ import annotations

import copy
import datetime as dt
import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from goreports.core.errors import FieldError, SpecError
from goreports.core.schema import format_path, template_errors

PARAM_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# `$$(` first, so an escaped `$$(params.x)` is never read as a placeholder.
PLACEHOLDER = re.compile(r"\$\$\(|\$\(params\.([A-Za-z_][A-Za-z0-9_]*)\)")
PARAM_TYPES = ("string", "integer", "number", "boolean", "date", "enum")
FREE_KEYS = frozenset({"parameters", "task"})  # free-value maps: whole placeholders stay typed
SQL_KEY = "sql"
INCLUDE_WHEN = "includeWhen"
REQUEST_PARAMS_PATH = "spec.template.parameters"
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_MISSING = object()


class TemplateError(SpecError):
    """A template cannot be used (its definition is wrong, or it does not exist); `reason` is
    the condition reason the operator reports."""

    def __init__(self, errors: list[FieldError], *, reason: str = "InvalidTemplate") -> None:
        super().__init__(errors)
        self.reason = reason


@dataclass(frozen=True)
class Parameter:
    """One declared parameter of a template."""

    name: str
    type: str
    description: str = ""
    required: bool = False
    default: Any = _MISSING
    values: tuple[str, ...] = ()

    @property
    def has_default(self) -> bool:
        return self.default is not _MISSING

    def summary(self) -> dict[str, Any]:
        """The catalog's view (API `GET /v1/templates`)."""
        out: dict[str, Any] = {"name": self.name, "type": self.type,
                               "description": self.description, "required": self.required}
        if self.has_default:
            out["default"] = self.default
        if self.values:
            out["values"] = list(self.values)
        return out


@dataclass(frozen=True)
class Resolved:
    """A resolved template: the plain spec and the values used (defaults included)."""

    spec: dict[str, Any]
    values: dict[str, Any] = field(default_factory=dict)


# ------------------------------------------------------------------------------------------
# Values


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _shown(value: Any) -> str:
    text = repr(value) if isinstance(value, str) else _text(value)
    return text if len(text) <= 60 else text[:57] + "..."


def check_value(param: Parameter, value: Any, *, from_text: bool = False) -> Any:
    """The value in its canonical form (dates as 'yyyy-mm-dd'), or ValueError with a message
    that completes `<path>: ...`. `from_text`: the value came from a command line and is parsed
    by the declared type."""
    kind = param.type
    if isinstance(value, dt.datetime):  # YAML reads an unquoted timestamp as a datetime
        raise ValueError(f"expected a date (yyyy-mm-dd), got a timestamp ({value.isoformat()})")
    if isinstance(value, dt.date):  # ... and an unquoted 2024-01-31 as a date
        value = value.isoformat()
    if from_text and isinstance(value, str):
        value = _parse_text(kind, value)
    if kind == "string":
        if not isinstance(value, str):
            raise ValueError(f"expected a string, got {_shown(value)}")
        return value
    if kind == "integer":
        if isinstance(value, float) and value.is_integer() and not from_text:
            value = int(value)  # JSON through a protobuf Struct has only doubles
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"expected an integer, got {_shown(value)}")
        return value
    if kind == "number":
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (
                isinstance(value, float) and not math.isfinite(value)):
            raise ValueError(f"expected a number, got {_shown(value)}")
        return value
    if kind == "boolean":
        if not isinstance(value, bool):
            raise ValueError(f"expected a boolean (true or false), got {_shown(value)}")
        return value
    if kind == "date":
        if not isinstance(value, str) or not _DATE.match(value):
            raise ValueError(f"expected a date as yyyy-mm-dd, got {_shown(value)}")
        try:
            dt.date.fromisoformat(value)
        except ValueError:
            raise ValueError(f"{value!r} is not a calendar date") from None
        return value
    if kind == "enum":
        if not isinstance(value, str) or value not in param.values:
            raise ValueError(f"must be one of [{', '.join(param.values)}] (got {_shown(value)})")
        return value
    raise ValueError(f"unknown parameter type {kind!r} (known: {', '.join(PARAM_TYPES)})")


def _parse_text(kind: str, text: str) -> Any:
    if kind == "integer":
        try:
            return int(text.strip())
        except ValueError:
            raise ValueError(f"expected an integer, got {text!r}") from None
    if kind == "number":
        try:
            number = float(text.strip())
        except ValueError:
            raise ValueError(f"expected a number, got {text!r}") from None
        return int(number) if number.is_integer() and "." not in text and "e" not in text.lower() \
            else number
    if kind == "boolean":
        lowered = text.strip().lower()
        if lowered in ("true", "false"):
            return lowered == "true"
        raise ValueError(f"expected a boolean (true or false), got {text!r}")
    return text


def check_values(params: list[Parameter], given: Mapping[str, Any] | None, *,
                 path: str = REQUEST_PARAMS_PATH, from_text: bool = False) -> dict[str, Any]:
    """Every parameter's value (given, else its default; optional ones may stay absent), or
    SpecError with one error per bad parameter, each naming it (`<path>.dispatchTo: ...`)."""
    given = dict(given or {})
    errors: list[FieldError] = []
    declared = {p.name: p for p in params}
    out: dict[str, Any] = {}
    for name in given:
        if name not in declared:
            known = ", ".join(declared) or "none"
            errors.append(FieldError(format_path([*path.split("."), str(name)]),
                                     f"the template declares no parameter {name!r} "
                                     f"(declared: {known})"))
    for p in params:
        where = format_path([*path.split("."), p.name])
        if p.name in given and given[p.name] is not None:
            try:
                out[p.name] = check_value(p, given[p.name], from_text=from_text)
            except ValueError as e:
                errors.append(FieldError(where, f"{e} ({p.type} parameter: {p.description})"
                                         if p.description else str(e)))
        elif p.has_default:
            out[p.name] = p.default
        elif p.required:
            errors.append(FieldError(where, f"missing required parameter ({p.type}: "
                                            f"{p.description})"))
    if errors:
        raise SpecError(errors)
    return out


# ------------------------------------------------------------------------------------------
# The template's definition


def parameters_of(template: Mapping[str, Any]) -> list[Parameter]:
    """The declared parameters (as written; `definition_errors` says whether they are sound)."""
    out = []
    for p in (template.get("spec") or {}).get("parameters") or []:
        if not isinstance(p, Mapping):
            continue
        out.append(Parameter(name=str(p.get("name", "")), type=str(p.get("type", "")),
                             description=str(p.get("description", "")),
                             required=bool(p.get("required", False)),
                             default=p["default"] if "default" in p else _MISSING,
                             values=tuple(str(v) for v in p.get("values") or ())))
    return out


def _strings(node: Any, path: list[str | int]) -> Iterator[tuple[list[str | int], str]]:
    """(path, value) of every string value under node (keys are not values)."""
    if isinstance(node, str):
        yield path, node
    elif isinstance(node, Mapping):
        for k, v in node.items():
            yield from _strings(v, [*path, k])
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _strings(v, [*path, i])


def definition_errors(template: Any) -> list[FieldError]:
    """Every error of a ReportTemplate: its schema, then what the schema cannot say (defaults
    of the declared type, placeholders naming declared parameters and never in SQL text,
    includeWhen naming a parameter and its possible values)."""
    errors = template_errors(template)
    if errors:
        return errors
    params = parameters_of(template)
    declared = {p.name: p for p in params}
    for i, p in enumerate(params):
        here = ["spec", "parameters", i]
        if p.values and p.type != "enum":
            errors.append(FieldError(format_path([*here, "values"]),
                                     f"only enum parameters have values ({p.name!r} is {p.type})"))
        if p.required and p.has_default:
            errors.append(FieldError(format_path(here), f"{p.name}: set required or default, "
                                                        f"not both"))
        if p.has_default:
            try:
                check_value(p, p.default)
            except ValueError as e:
                errors.append(FieldError(format_path([*here, "default"]), f"{p.name}: {e}"))
    report = template["spec"]["report"]
    for path, text in _strings(report, ["spec", "report"]):
        for m in PLACEHOLDER.finditer(text):
            name = m.group(1)
            if name is None:
                continue
            if path and path[-1] == SQL_KEY:
                errors.append(FieldError(format_path(path), (
                    f"$(params.{name}) in SQL text: values are never written into SQL; bind it "
                    f"as a query parameter instead (parameters: {{{name}: $(params.{name})}} "
                    f"and :{name} or %({name})s in the SQL)")))
            elif name not in declared:
                errors.append(FieldError(format_path(path), (
                    f"$(params.{name}) names no declared parameter "
                    f"(declared: {', '.join(declared) or 'none'})")))
    for i, step in enumerate(report.get("steps") or []):
        cond = step.get(INCLUDE_WHEN)
        if not cond:
            continue
        here = ["spec", "report", "steps", i, INCLUDE_WHEN]
        p = declared.get(cond["parameter"])
        if p is None:
            errors.append(FieldError(format_path([*here, "parameter"]), (
                f"names no declared parameter {cond['parameter']!r} "
                f"(declared: {', '.join(declared) or 'none'})")))
        elif p.type == "enum":
            unknown = [v for v in cond["in"] if v not in p.values]
            if unknown:
                errors.append(FieldError(format_path([*here, "in"]), (
                    f"{', '.join(map(repr, unknown))} is not a value of enum parameter "
                    f"{p.name!r} ([{', '.join(p.values)}])")))
    return errors


def check_template(template: Any) -> None:
    """Raise TemplateError (reason InvalidTemplate) with every definition error."""
    errors = definition_errors(template)
    if errors:
        raise TemplateError(errors)


# ------------------------------------------------------------------------------------------
# Substitution


def substitute_text(text: str, values: Mapping[str, Any]) -> str:
    """Placeholders replaced by the values' text; `$$(` becomes `$(`."""
    def one(m: re.Match[str]) -> str:
        name = m.group(1)
        return "$(" if name is None else _text(values.get(name))
    return PLACEHOLDER.sub(one, text)


def _substitute(node: Any, values: Mapping[str, Any], *, free: bool, key: str | int | None
                ) -> Any:
    if isinstance(node, str):
        if key == SQL_KEY:
            return node  # never into SQL text (definition_errors refuses placeholders there)
        whole = PLACEHOLDER.fullmatch(node)
        if free and whole and whole.group(1) is not None:
            return values.get(whole.group(1))
        return substitute_text(node, values)
    if isinstance(node, Mapping):
        return {k: _substitute(v, values, free=free or k in FREE_KEYS, key=k)
                for k, v in node.items()}
    if isinstance(node, list):
        return [_substitute(v, values, free=free, key=key) for v in node]
    return node


def _kept(step: Any, values: Mapping[str, Any]) -> bool:
    cond = step.get(INCLUDE_WHEN) if isinstance(step, Mapping) else None
    if not cond:
        return True
    return _text(values.get(cond.get("parameter"))) in [str(v) for v in cond.get("in") or []]


def substitute(report: Mapping[str, Any], values: Mapping[str, Any]) -> dict[str, Any]:
    """The template's `report` with steps filtered by includeWhen and placeholders replaced."""
    spec = copy.deepcopy(dict(report))
    steps = [s for s in spec.get("steps") or [] if _kept(s, values)]
    for s in steps:
        if isinstance(s, dict):
            s.pop(INCLUDE_WHEN, None)
    spec["steps"] = steps
    out: dict[str, Any] = _substitute(spec, values, free=False, key=None)
    return out


def resolve(template: Mapping[str, Any], given: Mapping[str, Any] | None, *,
            path: str = REQUEST_PARAMS_PATH, from_text: bool = False) -> Resolved:
    """Check the template and the values, and substitute: the plain spec (not yet validated
    against the ReportRequest schema: do that next, as for any spec)."""
    check_template(template)
    values = check_values(parameters_of(template), given, path=path, from_text=from_text)
    return Resolved(spec=substitute(template["spec"]["report"], values), values=values)


REQUEST_OVERRIDES = ("description", "deadlineSeconds", "maxAttempts")


def resolve_request(request_spec: Mapping[str, Any], template: Mapping[str, Any]) -> Resolved:
    """A ReportRequest spec that names a template -> the resolved spec. What the request gives
    beside the template (`description`, `deadlineSeconds`, `maxAttempts`) wins over the
    template's: whoever runs a catalog report may need a longer deadline for a large month
    without forking the template. Steps and their values come from the template only."""
    ref = request_spec.get("template") or {}
    resolved = resolve(template, ref.get("parameters"))
    for key in REQUEST_OVERRIDES:
        if request_spec.get(key) not in (None, ""):
            resolved.spec[key] = request_spec[key]
    return resolved


def template_name(spec: Mapping[str, Any] | None) -> str | None:
    """The ReportTemplate a spec names, or None for a full spec."""
    ref = (spec or {}).get("template")
    return str(ref["name"]) if isinstance(ref, Mapping) and ref.get("name") else None


def catalog_entry(template: Mapping[str, Any]) -> dict[str, Any]:
    """One template as the catalog API lists it."""
    meta = template.get("metadata") or {}
    spec = template.get("spec") or {}
    return {"namespace": meta.get("namespace", ""), "name": meta.get("name", ""),
            "description": spec.get("description", ""),
            "generation": meta.get("generation", 0),
            "parameters": [p.summary() for p in parameters_of(template)]}


def parse_param_args(items: list[str]) -> dict[str, str]:
    """`--param key=value` (repeatable) -> {key: value}; ValueError names the bad item."""
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not PARAM_NAME.match(key):
            raise ValueError(f"--param {item!r}: expected name=value (a parameter name, '=', "
                             f"then the value)")
        out[key] = value
    return out


def values_from_text(params: list[Parameter], raw: Mapping[str, str], *,
                     path: str = "parameters") -> dict[str, Any]:
    """Command-line values (text) parsed by each parameter's declared type; SpecError names
    each bad parameter. Unknown names are left for `check_values` to refuse."""
    declared = {p.name: p for p in params}
    out: dict[str, Any] = {}
    errors: list[FieldError] = []
    for name, text in raw.items():
        p = declared.get(name)
        if p is None:
            out[name] = text
            continue
        try:
            out[name] = check_value(p, text, from_text=True)
        except ValueError as e:
            errors.append(FieldError(format_path([*path.split("."), name]), str(e)))
    if errors:
        raise SpecError(errors)
    return out
