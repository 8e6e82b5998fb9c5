"""ReportRequest (JSON) -> gRPC messages, and problems -> gRPC status codes."""
from __future__ import annotations

import grpc
from google.protobuf import json_format

from goreports.api import grpc_api
from goreports.api.problems import Problem, invalid
from goreports.core.errors import FieldError
from goreports.proto import reports_service_pb2 as pb

OBJ = {
    "metadata": {"namespace": "team-a", "name": "r1", "uid": "u-1", "creationTimestamp": "2026-01-02T03:04:05Z",
                 "labels": {"team": "sales"},
                 "annotations": {"goreports.io/created-by": "svc", "goreports.io/tenant": "acme"}},
    "spec": {"deadlineSeconds": 60, "steps": [{"name": "collect", "sqlite": {"database": "d.db"}}]},
    "status": {
        "phase": "Succeeded", "currentStep": "deliver", "rows": 100, "message": "done",
        "startTime": "2026-01-02T03:04:06Z", "completionTime": "2026-01-02T03:04:09.5Z",
        "steps": [{"name": "collect", "pattern": "sqlite", "state": "Succeeded", "rows": 100, "attempts": 1,
                   "durationSeconds": 0.25}],
        "artifacts": [{"step": "deliver", "name": "a.xlsx", "location": "s3://b/a.xlsx", "size": 10,
                       "sha256": "ab" * 32, "contentType": "application/xlsx", "url": "https://s3/presigned"}],
        "conditions": [{"type": "Ready", "status": "True", "reason": "Succeeded", "message": "",
                        "lastTransitionTime": "2026-01-02T03:04:09Z", "observedGeneration": 1}],
    },
}


def test_report_message_carries_everything() -> None:
    msg = grpc_api.report_message(OBJ)
    assert (msg.namespace, msg.name, msg.uid, msg.created_by, msg.tenant) == ("team-a", "r1", "u-1", "svc", "acme")
    assert dict(msg.labels) == {"team": "sales"} and not msg.deleting
    assert msg.created_at.ToJsonString() == "2026-01-02T03:04:05Z"
    assert json_format.MessageToDict(msg.spec)["steps"][0]["name"] == "collect"
    st = msg.status
    assert (st.phase, st.current_step, st.rows, st.message) == ("Succeeded", "deliver", 100, "done")
    assert st.completion_time.ToJsonString() == "2026-01-02T03:04:09.500Z"
    assert (st.steps[0].pattern, st.steps[0].attempts, st.steps[0].duration_seconds) == ("sqlite", 1, 0.25)
    assert st.artifacts[0] == pb.ReportArtifact(step="deliver", name="a.xlsx", location="s3://b/a.xlsx", size=10,
                                                sha256="ab" * 32, content_type="application/xlsx",
                                                url="https://s3/presigned")
    assert (st.conditions[0].type, st.conditions[0].reason) == ("Ready", "Succeeded")


def test_a_report_without_status_converts() -> None:
    msg = grpc_api.report_message({"metadata": {"name": "x", "deletionTimestamp": "bad-time"}})
    assert msg.name == "x" and msg.deleting and msg.status.phase == "" and not msg.HasField("created_at")


def test_whole_numbers_get_their_integer_type_back() -> None:
    assert grpc_api._integers({"a": 60.0, "b": [1.5, 2.0], "c": {"d": True, "e": "3.0"}}) == \
        {"a": 60, "b": [1.5, 2], "c": {"d": True, "e": "3.0"}}


def test_problem_codes_and_messages() -> None:
    p = invalid([FieldError("spec.steps[0].name", "bad")])
    assert p.grpc_code == grpc.StatusCode.INVALID_ARGUMENT
    assert "spec.steps[0].name: bad" in p.grpc_message()
    assert Problem(404, "NotFound", "x").grpc_code == grpc.StatusCode.NOT_FOUND
    assert Problem(409, "AlreadyExists", "x").grpc_code == grpc.StatusCode.ALREADY_EXISTS
    assert Problem(503, "KubernetesUnreachable", "x").grpc_code == grpc.StatusCode.UNAVAILABLE
    body = p.body(instance="/v1/x")
    assert body["type"] == "urn:goreports:problem:invalid" and body["status"] == 422
    assert body["errors"] == [{"path": "spec.steps[0].name", "message": "bad"}]
    assert grpc_api._ascii("naïve\n") == "na\\xefve\\n"
