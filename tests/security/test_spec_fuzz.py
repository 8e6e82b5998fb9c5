"""Property-based fuzzing of report specs through the validator and the compiler.

The promise: whatever a report author writes, `schema.report_errors` either accepts it — and
then `compiler.compile_report` turns it into a Job chain or refuses it with SpecError — or
rejects it with errors that each carry a field path. No other exception type ever escapes
(an escaping exception would crash the operator's handler, the API, or `goreports run`).

Three generators: arbitrary JSON (as a whole document and as a spec), specs built from the CRD
schema's own shapes (right types, enum values, pattern-matching strings, with wrong types,
unknown keys and hostile strings mixed in), and well-ordered chains whose steps are built from the
schema (so that many are accepted and the compiler's cross-reference checks are exercised).
"""
from __future__ import annotations

import json
import math
import re
from collections import Counter
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from goreports.core import compiler, schema
from goreports.core.errors import SpecError
from goreports.proto import job_pb2

API_VERSION = "goreports.io/v1alpha1"
SCHEMA = schema.load_crd_schema()
SPEC = SCHEMA["properties"]["spec"]
STEP = SPEC["properties"]["steps"]["items"]
FUZZ = settings(max_examples=150, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.filter_too_much])

# Strings a hostile or careless author writes.
HOSTILE = ["", " ", "../../etc/passwd", "/etc/passwd", "a\x00b", "C:\\x", "x\r\nBcc: e@x.io",
           "=cmd|' /C calc'!A0", "{{#x}}{{/x}}", "<script>", "http://169.254.169.254/",
           "kubernetes.default.svc", "é" * 40, "x" * 300, "${HOME}", "'; DROP TABLE t; --",
           "\ud7ff", "0", "true", "null"]
NAMES = ["orders", "sales", "collect", "build", "deliver", "a", "x-1", "rows"]

json_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=20),
                         st.floats(allow_nan=False, allow_infinity=False),
                         st.sampled_from(HOSTILE))
json_values = st.recursive(json_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=12), inner, max_size=4)),
    max_leaves=12)


def _count_rule(node: dict[str, Any]) -> tuple[list[str], str] | None:
    """The names of a `(has(self.a) ? 1 : 0) + ... (==|>=) 1` rule (choose one of them)."""
    for rule in node.get("x-kubernetes-validations", []):
        text = " ".join(rule.get("rule", "").split())
        m = re.fullmatch(r"(.*) (==|>=) 1", text)
        if m and "has(self." in m.group(1) and "!" not in m.group(1):
            return re.findall(r"has\(self\.(\w+)\)", m.group(1)), m.group(2)
    return None


DATASET_FIELDS = {"name", "dataset", "datasets", "inputs", "input", "left", "right", "output"}


def _string(node: dict[str, Any], name: str, clean: bool) -> st.SearchStrategy[Any]:
    if "enum" in node:
        return st.sampled_from(node["enum"])
    if clean and name in DATASET_FIELDS:
        return st.sampled_from(["orders", "sales"])
    if clean:
        if "pattern" in node:
            return st.from_regex(node["pattern"], fullmatch=True).filter(
                lambda s: node.get("minLength", 0) <= len(s) <= node.get("maxLength", 63))
        limit = node.get("maxLength", 63)
        return st.sampled_from(NAMES + ["x.csv", "SELECT 1 AS x"]).map(lambda s: s[:limit])
    options = [st.sampled_from(NAMES), st.sampled_from(HOSTILE)]
    if "pattern" in node:
        options.append(st.from_regex(node["pattern"], fullmatch=True).map(
            lambda s: s[:node.get("maxLength", 63)]))
    if name in ("sql",):
        options.append(st.sampled_from(["SELECT 1 AS x", "DELETE FROM t", "SELECT 1; DROP TABLE t"]))
    return st.one_of(*options)


def from_schema(node: dict[str, Any], name: str = "", depth: int = 0, clean: bool = False
                ) -> st.SearchStrategy[Any]:
    """Values shaped by a CRD schema node, with wrong types and unknown keys mixed in (`clean`:
    values that mostly satisfy the node, to reach the compiler)."""
    wild = json_values if depth < 6 else json_scalars
    kind = node.get("type")
    if node.get("x-kubernetes-preserve-unknown-fields") and not node.get("properties"):
        base: st.SearchStrategy[Any] = st.dictionaries(st.sampled_from(NAMES + ["k"]), json_values,
                                                       max_size=3)
    elif kind == "object" and "properties" in node:
        base = _object(node, depth, clean)
    elif kind == "object":
        extra = node.get("additionalProperties")
        values = from_schema(extra, name, depth + 1, clean) if isinstance(extra, dict) else json_scalars
        base = st.dictionaries(st.sampled_from(NAMES + ["X-Team", "k"]), values, max_size=3)
    elif kind == "array":
        lo = node.get("minItems", 0)
        hi = max(lo, min(node.get("maxItems", 3), 1 if clean else 3))
        base = st.lists(from_schema(node.get("items", {}), name, depth + 1, clean), min_size=lo,
                        max_size=hi)
    elif kind == "string":
        base = _string(node, name, clean)
    elif kind == "integer":
        lo, hi = node.get("minimum"), node.get("maximum")
        slack = 0 if clean else 1
        base = st.integers(min_value=None if lo is None else lo - slack,
                           max_value=None if hi is None else hi + slack)
    elif kind == "number":
        base = st.floats(allow_nan=False)
    elif kind == "boolean":
        base = st.booleans()
    else:
        base = json_scalars
    return base if clean else st.one_of(base, base, base, base, base, base, wild)


def _object(node: dict[str, Any], depth: int, clean: bool
            ) -> st.SearchStrategy[dict[str, Any]]:
    props: dict[str, Any] = node["properties"]
    required = set(node.get("required", []))
    rule = _count_rule(node)

    @st.composite
    def build(draw: st.DrawFn) -> dict[str, Any]:
        out: dict[str, Any] = {}
        chosen: set[str] = set()
        if rule is not None:
            chosen.add(draw(st.sampled_from(rule[0])))
        for key, sub in props.items():
            if rule is not None and key in rule[0] and key not in chosen:
                continue
            wanted = key in required or key in chosen
            if draw(st.floats(0, 1)) < (1.0 if clean and wanted else 0.95 if wanted else 0.15 if clean else 0.25):
                out[key] = draw(from_schema(sub, key, depth + 1, clean))
        if not clean and draw(st.integers(0, 30)) == 0:
            out[draw(st.sampled_from(["unknownField", "on", "Name", "credentials"]))] = 1
        return out
    return build()


def _doc(spec: Any, name: str = "fuzz") -> dict[str, Any]:
    return {"apiVersion": API_VERSION, "kind": "ReportRequest",
            "metadata": {"name": name, "namespace": "sec"}, "spec": spec}


STEP_KINDS = {family: [k for k, s in compiler.STAGES.items() if s.channel == family]
              for family in compiler.FAMILIES}


@st.composite
def ordered_specs(draw: st.DrawFn) -> dict[str, Any]:
    """collector, [validator], [aggregator], generator, dispatcher, [notifier]: each body from
    the schema, step names unique; many of these are accepted."""
    clean = draw(st.booleans())  # one choice per spec: a chain is valid only if all steps are
    families = ["collectors"]
    families += [f for f in ("validators", "aggregators") if draw(st.booleans())]
    families += ["generators", "dispatchers"]
    if draw(st.booleans()):
        families.append("notifiers")
    steps = []
    for i, family in enumerate(families):
        kind = draw(st.sampled_from(STEP_KINDS[family]))
        body = draw(from_schema(STEP["properties"][kind], kind, 2, clean=clean))
        steps.append({"name": f"s{i}", kind: body})
    spec: dict[str, Any] = {"steps": steps}
    if draw(st.booleans()):
        spec["parameters"] = draw(st.dictionaries(st.sampled_from(NAMES), json_values, max_size=3))
    return spec


def outcome(doc: Any) -> str:
    """accepted | rejected | refused-by-compiler; anything else is a test failure."""
    errors = schema.report_errors(doc)
    if errors:
        for e in errors:
            assert e.path and isinstance(e.path, str) and e.message, e
            tops = ["(root)", "apiVersion", "kind", "metadata", "spec", "status"]
            tops += [schema.format_path([str(k)]) for k in doc] if isinstance(doc, dict) else []
            assert any(e.path == t or e.path.startswith((t + ".", t + "[")) for t in tops), e
        try:
            schema.validate_report(doc)
        except SpecError as err:
            assert err.errors == errors
        else:
            raise AssertionError("validate_report accepted a document with errors")
        return "rejected"
    try:
        head = compiler.compile_report(doc, uid="00000000-0000-4000-8000-000000000000")
    except SpecError as err:
        assert err.errors
        for e in err.errors:
            assert e.path.startswith("spec"), e
        return "refused-by-compiler"
    chain = compiler.iter_chain(head)
    assert len(chain) == len(doc["spec"]["steps"])
    again = job_pb2.Job.FromString(head.SerializeToString())
    assert again == head
    for job in chain:
        assert job.task.type_url and job.report.uid
        assert math.isfinite(job.deadline.seconds)
    return "accepted"


def _run(strategy: st.SearchStrategy[Any]) -> Counter[str]:
    counts: Counter[str] = Counter()

    @FUZZ
    @given(strategy)
    def check(doc: Any) -> None:
        counts[outcome(doc)] += 1

    check()
    return counts


def _summary(c: Counter[str]) -> str:
    return (f"{sum(c.values())} examples: {c['accepted']} accepted and compiled, "
            f"{c['refused-by-compiler']} refused by the compiler with a field path, "
            f"{c['rejected']} rejected by the schema with a field path; 0 other exceptions")


def test_arbitrary_json_documents_are_rejected_with_paths(record: Any) -> None:
    c = _run(st.one_of(json_values, json_values.map(_doc)))
    assert c["rejected"] > 0
    record("spec fuzzing", "arbitrary JSON as a document and as `spec` (hypothesis)",
           "rejected with field paths; " + _summary(c))


def test_schema_shaped_specs_are_accepted_or_rejected_with_paths(record: Any) -> None:
    c = _run(from_schema(SPEC, "spec").map(_doc))
    assert c["rejected"] > 0
    record("spec fuzzing", "specs built from the CRD schema's shapes, with wrong types, "
           "unknown keys and hostile strings (hypothesis)", _summary(c))


def test_ordered_chains_compile_or_are_refused_with_paths(record: Any) -> None:
    c = _run(ordered_specs().map(_doc))
    assert c["accepted"] > 0 and c["rejected"] > 0
    record("spec fuzzing", "well-ordered chains, each step body from the schema (hypothesis)",
           _summary(c))


def _chain(*steps: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return _doc({"steps": [{"name": "collect", "sqlite": {"database": "x.db", "queries": [
        {"name": "orders", "sql": "SELECT 1 AS x"}]}}, *steps], **spec})


def test_values_beyond_a_task_field_are_refused_with_their_path(record: Any) -> None:
    """Found by the fuzzing above: integers the schema allows (no maximum) but the task message
    cannot hold, and numbers too large for a protobuf double, crashed the compiler with
    ValueError / OverflowError."""
    big = 10 ** 30
    doc = _chain({"name": "csv", "csv": {"fileName": "a.csv", "dataset": "orders"}},
                 {"name": "up", "s3": {"bucket": "reports", "multipartThresholdBytes": big}})
    assert not schema.report_errors(doc)
    try:
        compiler.compile_report(doc, uid="u")
    except SpecError as e:
        assert [x.path for x in e.errors] == ["spec.steps[2].s3.multipartThresholdBytes"], e
    else:
        raise AssertionError("compiled a value out of range")
    huge = _chain({"name": "page", "mustache": {"fileName": "a.html", "template": "x"}},
                  {"name": "out", "local": {"path": "out"}}, parameters={"n": 10 ** 400})
    assert not schema.report_errors(huge)
    try:
        compiler.compile_report(huge, uid="u")
    except SpecError as e:
        assert [x.path for x in e.errors] == ["spec.steps[1].mustache"], e
    else:
        raise AssertionError("compiled a number beyond a double")
    record("spec fuzzing", "an integer beyond its task field (multipartThresholdBytes: 10^30), "
           "a parameter beyond a double (10^400)",
           "SpecError at spec.steps[2].s3.multipartThresholdBytes / spec.steps[1].mustache "
           "(before the fix: ValueError / OverflowError escaped the compiler)")
