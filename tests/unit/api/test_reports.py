"""Create bodies, idempotency, annotations and views of the Reports API (pure functions)."""
from __future__ import annotations

import copy
from typing import Any

import pytest

from goreports.api import reports
from goreports.api.auth import Caller
from goreports.api.problems import Problem

CALLER = Caller(subject="billing-svc", namespaces=("team-a",), tenant="acme")
SPEC: dict[str, Any] = {"steps": [
    {"name": "collect", "sqlite": {"database": "sales.db",
                                   "queries": [{"name": "orders", "sql": "SELECT 1"}]}},
    {"name": "book", "excel": {"fileName": "a.xlsx"}},
    {"name": "deliver", "local": {"path": "/tmp/out"}}]}


def body(**metadata: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"spec": copy.deepcopy(SPEC)}
    if metadata:
        out["metadata"] = metadata
    return out


def problem(b: Any, namespace: str = "team-a") -> Problem:
    with pytest.raises(Problem) as e:
        reports.parse_create_body(b, namespace)
    return e.value


def paths(p: Problem) -> list[str]:
    return [e.path for e in p.errors]


def test_a_manifest_shaped_body_is_accepted() -> None:
    req = reports.parse_create_body({"apiVersion": "goreports.io/v1alpha1", "kind": "ReportRequest",
                                     **body(name="sales", namespace="team-a", labels={"team": "sales"})},
                                    "team-a")
    assert (req.name, req.labels, req.spec) == ("sales", {"team": "sales"}, SPEC)
    assert reports.parse_create_body(body(), "team-a").name is None
    assert reports.parse_create_body(body(name="", namespace=""), "team-a").name is None


def test_spec_errors_carry_field_paths() -> None:
    b = body()
    b["spec"]["steps"][1]["excel"]["fileName"] = "../x.xlsx"
    b["spec"]["steps"][0]["sqlite"]["queries"][0]["name"] = "Bad Name"
    p = problem(b)
    assert p.status == 422 and p.reason == "Invalid"
    assert paths(p) == ["spec.steps[0].sqlite.queries[0].name", "spec.steps[1].excel.fileName"]


@pytest.mark.parametrize("b, where", [
    ([], "(root)"),
    ({"metadata": {}}, "spec"),
    ({**body(), "status": {}}, "status"),
    ({**body(), "apiVersion": "v1"}, "apiVersion"),
    ({**body(), "kind": "Pod"}, "kind"),
    (body(namespace="team-b"), "metadata.namespace"),
    (body(namespace=None), "metadata.namespace"),
    (body(annotations={"a": "b"}), "metadata.annotations"),
    (body(name=7), "metadata.name"),
    (body(name="Not_A_Name"), "metadata.name"),
    (body(labels=None), "metadata.labels"),
    (body(labels={"goreports.io/created-by": "me"}), 'metadata.labels["goreports.io/created-by"]'),
    (body(labels={"bad key!": "x"}), 'metadata.labels["bad key!"]'),
    (body(labels={"team": "-x"}), "metadata.labels.team"),
    (body(labels={"team": 5}), "metadata.labels.team"),
    ({"metadata": [], "spec": SPEC}, "metadata"),
])
def test_refusals_name_the_field(b: Any, where: str) -> None:
    p = problem(b)
    assert p.status == 422 and where in paths(p), paths(p)


def test_label_rules() -> None:
    ok = {"app.kubernetes.io/name": "sales", "team": "", "a": "x" * 63, "Z_z.z-9": "v.v_v-1"}
    assert reports.label_errors(ok) == []
    assert reports.label_errors({"x" * 64: "v"}) and reports.label_errors({"a": "x" * 64})
    assert reports.label_errors({"Bad.Prefix/name": "v"})


def test_idempotency_key_checks() -> None:
    assert reports.check_idempotency_key(None) is None
    assert reports.check_idempotency_key("0b7c5c1e-retry") == "0b7c5c1e-retry"
    for bad in ("", " lead", "trail ", "x" * 256, "tab\t", "é"):
        with pytest.raises(Problem) as e:
            reports.check_idempotency_key(bad)
        assert e.value.status == 400


def test_idempotent_names_are_per_caller_and_stable() -> None:
    h = reports.idempotency_hash("a", "k1")
    assert h == reports.idempotency_hash("a", "k1") and len(h) == 40
    assert h != reports.idempotency_hash("b", "k1") != reports.idempotency_hash("a", "k2")
    assert reports.idempotency_hash("a\nk", "1") != reports.idempotency_hash("a", "k\n1")
    name = reports.idempotent_name(h)
    reports.check_name(name)
    assert name == reports.idempotent_name(reports.idempotency_hash("a", "k1"))


def test_manifest_records_the_caller_never_the_token() -> None:
    req = reports.parse_create_body(body(labels={"team": "sales"}), "team-a")
    m = reports.build_manifest(CALLER, "team-a", req, via="rest")
    assert m["apiVersion"] == "goreports.io/v1alpha1" and m["kind"] == "ReportRequest"
    meta = m["metadata"]
    assert meta["generateName"] == "report-" and "name" not in meta
    assert meta["annotations"] == {reports.ANNOTATION_CREATED_BY: "billing-svc",
                                   reports.ANNOTATION_TENANT: "acme",
                                   reports.ANNOTATION_CREATED_VIA: "rest"}
    assert meta["labels"] == {"team": "sales"} and m["spec"] == SPEC
    assert "token" not in str(m).lower()
    no_tenant = reports.build_manifest(Caller("x", ("*",)), "team-a", req, via="grpc")
    assert reports.ANNOTATION_TENANT not in no_tenant["metadata"]["annotations"]


def test_keyed_manifest_has_a_deterministic_name_and_the_key_label() -> None:
    req = reports.parse_create_body(body(), "team-a")
    h = reports.idempotency_hash(CALLER.subject, "k")
    m = reports.build_manifest(CALLER, "team-a", req, via="rest", key_hash=h)
    assert m["metadata"]["name"] == reports.idempotent_name(h)
    assert m["metadata"]["labels"] == {reports.LABEL_IDEMPOTENCY_KEY: h}
    assert m["metadata"]["annotations"][reports.ANNOTATION_REQUEST_SHA256] == req.fingerprint()
    named = reports.build_manifest(CALLER, "team-a", reports.parse_create_body(body(name="mine"), "team-a"),
                                   via="rest", key_hash=h)
    assert named["metadata"]["name"] == "mine"


def test_replay_decisions() -> None:
    req = reports.parse_create_body(body(), "team-a")
    h = reports.idempotency_hash(CALLER.subject, "k")
    existing = reports.build_manifest(CALLER, "team-a", req, via="rest", key_hash=h)
    assert reports.replay_of(existing, h, req) is True
    other = reports.parse_create_body(body(labels={"x": "y"}), "team-a")
    with pytest.raises(Problem) as e:
        reports.replay_of(existing, h, other)
    assert (e.value.status, e.value.reason) == (422, "IdempotencyKeyReused")
    assert reports.replay_of(existing, reports.idempotency_hash("someone-else", "k"), req) is False
    assert reports.replay_of({"metadata": {"name": "x"}}, h, req) is False


def test_fingerprint_ignores_key_order_only() -> None:
    a = reports.CreateRequest(name=None, labels={"a": "1", "b": "2"}, spec={"x": 1, "y": [1, 2]})
    b = reports.CreateRequest(name=None, labels={"b": "2", "a": "1"}, spec={"y": [1, 2], "x": 1})
    c = reports.CreateRequest(name=None, labels={"a": "1", "b": "2"}, spec={"x": 1, "y": [2, 1]})
    assert a.fingerprint() == b.fingerprint() != c.fingerprint()


def test_list_parameter_checks() -> None:
    assert reports.check_list_params() == reports.DEFAULT_LIMIT
    assert reports.check_list_params(phase="Running", limit=5, label_selector="team in (a,b)") == 5
    for kwargs in ({"phase": "Done"}, {"phase": ""}, {"limit": 0}, {"limit": 501},
                   {"label_selector": "é"}, {"label_selector": "a" * 1025}, {"created_by": ""},
                   {"continue_token": "not base64!"}):
        with pytest.raises(Problem) as e:
            reports.check_list_params(**kwargs)  # type: ignore[arg-type]
        assert e.value.status == 400, kwargs


@pytest.mark.parametrize("fn, good, bad", [
    (reports.check_namespace, "team-a", ["", "Team", "a" * 64, "a.b", "-a"]),
    (reports.check_name, "r-1.v2", ["", "R", "a" * 254, "a/b", "a..b"]),
])
def test_path_names(fn: Any, good: str, bad: list[str]) -> None:
    fn(good)
    for value in bad:
        with pytest.raises(Problem) as e:
            fn(value)
        assert e.value.status == 400


def obj(phase: str = "", **meta: Any) -> dict[str, Any]:
    metadata = {"namespace": "team-a", "name": "r1", "uid": "u-1", "resourceVersion": "5",
                "creationTimestamp": "2026-01-02T03:04:05Z",
                "annotations": {reports.ANNOTATION_CREATED_BY: "svc", reports.ANNOTATION_TENANT: "acme",
                                "kopf.zalando.org/last-handled-configuration": "{}"},
                "labels": {"team": "sales"}, **meta}
    out: dict[str, Any] = {"apiVersion": "goreports.io/v1alpha1", "kind": "ReportRequest",
                           "metadata": metadata, "spec": SPEC}
    if phase:
        out["status"] = {"phase": phase, "artifacts": [{"step": "deliver", "name": "a.xlsx",
                                                        "url": "https://s3/presigned"}]}
    return out


def test_view_shows_the_report_and_its_caller() -> None:
    v = reports.view(obj("Running"))
    assert v == {"namespace": "team-a", "name": "r1", "uid": "u-1", "createdAt": "2026-01-02T03:04:05Z",
                 "createdBy": "svc", "tenant": "acme", "labels": {"team": "sales"}, "deleting": False,
                 "spec": SPEC, "status": obj("Running")["status"]}
    bare = reports.view({"metadata": {"name": "x", "deletionTimestamp": "2026-01-01T00:00:00Z"}})
    assert bare["deleting"] is True and bare["status"] == {} and "tenant" not in bare
    assert "createdAt" not in bare


def test_filters_terminal_phases_and_watch_state() -> None:
    assert reports.matches(obj("Running"), "Running", "svc")
    assert not reports.matches(obj("Running"), "Succeeded", None)
    assert not reports.matches(obj("Running"), None, "other")
    assert reports.is_terminal(obj("Failed")) and not reports.is_terminal(obj("Running"))
    # kopf's own annotations change often: followers must not see an event for them
    busy = obj("Running", resourceVersion="6", annotations={"kopf": "changed"})
    assert reports.watch_state(busy) == reports.watch_state(obj("Running"))
    assert reports.watch_state(obj("Succeeded")) != reports.watch_state(obj("Running"))
    deleting = obj("Running", deletionTimestamp="2026-01-01T00:00:00Z")
    assert reports.watch_state(deleting) != reports.watch_state(obj("Running"))


def test_artifacts_come_from_status() -> None:
    assert reports.artifacts(obj("Succeeded")) == [{"step": "deliver", "name": "a.xlsx",
                                                    "url": "https://s3/presigned"}]
    assert reports.artifacts(obj()) == []
