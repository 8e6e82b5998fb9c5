"""The report catalog on the real API server: a ReportTemplate with parameters, two requests of it
(REST and gRPC) with different `dispatchTo`, delivered to S3 (moto server) and by e-mail
(aiosmtpd); a wrong parameter type refused with the parameter's name (by the API, and by the
operator for a request applied with kubectl); a missing template; and an edit of the template
that changes neither accepted report, also across an operator restart.

Budget: < 90 s (one operator restart; every report a few hundred rows)."""
from __future__ import annotations

import copy
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterator

import grpc
import pytest
import yaml
from google.protobuf import json_format, struct_pb2

from goreports.proto import reports_service_pb2 as pb
from goreports.proto import reports_service_pb2_grpc as pb_grpc
from support.api import ApiProcess, call, token
from support.k8s import OperatorProcess, cluster, in_phase, kubectl_json, namespace  # noqa: F401
from support.s3 import MotoServer, moto_server  # noqa: F401
from support.servers import RedisServer
from support.smtp import SmtpServer, smtp_server  # noqa: F401
from support.workers import start_worker, stop, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

ROOT = Path(__file__).resolve().parents[2]


def template(db: Path, moto: MotoServer, smtp: SmtpServer, bucket: str) -> dict[str, Any]:
    return {
        "apiVersion": "goreports.io/v1alpha1", "kind": "ReportTemplate",
        "metadata": {"name": "sales"},
        "spec": {
            "description": "Orders since a date, to S3 or by e-mail",
            "parameters": [
                {"name": "dispatchTo", "type": "enum", "values": ["s3", "email"],
                 "default": "s3", "description": "Where the file goes"},
                {"name": "since", "type": "date", "default": "2023-01-01",
                 "description": "First order date"},
                {"name": "limit", "type": "integer", "default": 100,
                 "description": "Most orders listed"},
                {"name": "bucket", "type": "string", "default": bucket,
                 "description": "S3 bucket"},
                {"name": "recipient", "type": "string", "required": True,
                 "description": "Who gets the e-mail"},
            ],
            "report": {"maxAttempts": 4, "steps": [
                {"name": "collect", "sqlite": {"database": str(db), "queries": [
                    {"name": "orders",
                     "sql": "SELECT id, order_date, amount FROM orders WHERE order_date >= :since "
                            "ORDER BY id LIMIT :limit",
                     "parameters": {"since": "$(params.since)", "limit": "$(params.limit)"}}]}},
                {"name": "table", "csv": {"fileName": "orders-$(params.since).csv",
                                          "dataset": "orders"}},
                {"name": "upload", "includeWhen": {"parameter": "dispatchTo", "in": ["s3"]},
                 "s3": {"bucket": "$(params.bucket)", "prefix": "sales/$(params.since)/",
                        "endpointUrl": moto.endpoint, "region": "us-east-1",
                        "credentialsId": "s3"}},
                {"name": "mail", "includeWhen": {"parameter": "dispatchTo", "in": ["email"]},
                 "email": {"to": ["$(params.recipient)"], "from": "reports@example.com",
                           "subject": "Orders since $(params.since): {{report.name}}",
                           "smtpHost": smtp.host, "smtpPort": smtp.port, "security": "none"}},
            ]},
        },
    }


@pytest.fixture
def stack(cluster: Any, namespace: str, moto_server: MotoServer, tmp_path: Path  # noqa: F811
          ) -> Iterator[dict[str, Any]]:
    redis_srv = RedisServer().start()
    db = tmp_path / "sales.db"
    subprocess.run([sys.executable, str(ROOT / "examples/data/make_sales_db.py"), "--rows", "300",
                    "--out", str(db)], check=True, capture_output=True)
    env = {"GOREPORTS_ARTIFACT_DIR": str(tmp_path / "staging"),
           "GOREPORTS_CREDENTIALS_DIR": str(moto_server.credentials_dir)}
    workers = [start_worker(redis_srv.addr, "sqlite", "csv", log=tmp_path / "w-1.log", **env),
               start_worker(redis_srv.addr, "s3", "email", log=tmp_path / "w-2.log", **env)]
    api = ApiProcess(cluster.kubeconfig, tmp_path)
    op = OperatorProcess(cluster, redis_srv.addr, tmp_path, namespace)
    state = {"redis": redis_srv, "db": db, "api": api, "op": op, "tmp": tmp_path, "env": env}
    try:
        yield state
    finally:
        state["op"].stop()
        api.stop()
        for w in workers:
            stop(w)
        redis_srv.cleanup()


def apply(cluster: Any, ns: str, doc: dict[str, Any]) -> None:  # noqa: F811
    cluster.kubectl("apply", "-n", ns, "-f", "-", input=yaml.safe_dump(doc))


def get_rr(cluster: Any, ns: str, name: str) -> dict[str, Any]:  # noqa: F811
    return kubectl_json(cluster, "get", "rr", name, "-n", ns)


def wait_final(cluster: Any, ns: str, name: str) -> dict[str, Any]:  # noqa: F811
    def done() -> dict[str, Any] | None:
        obj = get_rr(cluster, ns, name)
        return obj if in_phase(obj) else None
    return wait_for(done, 150, 0.2, what=f"{name} to finish")


def test_catalog_requests_run_resolve_once_and_refuse_bad_values(
        cluster, namespace, stack, moto_server, smtp_server) -> None:  # noqa: F811
    ns, api = namespace, stack["api"]
    bucket = moto_server.new_bucket("catalog")
    apply(cluster, ns, template(stack["db"], moto_server, smtp_server, bucket))
    tok = token("catalog-user", [ns])
    base = f"{api.url}/v1/namespaces/{ns}"

    # The catalog, with parameter descriptions, per namespace and across the token's namespaces.
    status, _, listed = call("GET", f"{base}/templates", token=tok)
    assert status == 200, listed
    [entry] = listed["items"]
    assert entry["name"] == "sales" and entry["generation"] == 1
    assert {p["name"]: p["description"] for p in entry["parameters"]}["dispatchTo"] == \
        "Where the file goes"
    status, _, everywhere = call("GET", f"{api.url}/v1/templates", token=tok)
    assert status == 200 and everywhere["items"] == listed["items"]

    # REST: dispatchTo=s3; gRPC: dispatchTo=email.
    status, _, created = call("POST", f"{base}/reports", {
        "metadata": {"name": "to-s3"},
        "template": {"name": "sales", "parameters": {"dispatchTo": "s3", "since": "2024-01-01",
                                                     "recipient": "nobody@example.com"}}},
        token=tok)
    assert status == 201, created
    with grpc.insecure_channel(api.grpc_target) as channel:
        stub = pb_grpc.ReportsServiceStub(channel)
        params = json_format.ParseDict({"dispatchTo": "email", "limit": 7,
                                        "recipient": "sales@example.com"}, struct_pb2.Struct())
        stub.CreateReport(pb.CreateReportRequest(
            namespace=ns, name="to-mail", template=pb.TemplateRef(name="sales", parameters=params)),
            metadata=(("authorization", f"Bearer {tok}"),))
        catalog = stub.ListTemplates(pb.ListTemplatesRequest(namespace=ns),
                                     metadata=(("authorization", f"Bearer {tok}"),))
        assert [t.name for t in catalog.templates] == ["sales"]
        enum = catalog.templates[0].parameters[0]
        assert (enum.type, list(enum.values), enum.default_value.string_value) == (
            "enum", ["s3", "email"], "s3")

        # A wrong type is refused by the API with the parameter's name (REST and gRPC).
        status, _, problem = call("POST", f"{base}/reports", {"template": {
            "name": "sales", "parameters": {"limit": "ten", "recipient": "a@example.com"}}},
            token=tok)
        assert status == 422
        assert [e["path"] for e in problem["errors"]] == ["spec.template.parameters.limit"]
        assert "expected an integer" in problem["errors"][0]["message"]
        with pytest.raises(grpc.RpcError) as err:
            stub.CreateReport(pb.CreateReportRequest(namespace=ns, template=pb.TemplateRef(
                name="sales", parameters=json_format.ParseDict(
                    {"dispatchTo": "ftp", "recipient": "a@example.com"}, struct_pb2.Struct()))),
                metadata=(("authorization", f"Bearer {tok}"),))
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "dispatchTo" in str(err.value.trailing_metadata())

    # The same mistakes applied with kubectl (no API in between): the operator fails them.
    request = {"apiVersion": "goreports.io/v1alpha1", "kind": "ReportRequest",
               "metadata": {"name": "bad-type"},
               "spec": {"template": {"name": "sales", "parameters": {
                   "since": 20240101, "recipient": "a@example.com"}}}}
    apply(cluster, ns, request)
    missing = copy.deepcopy(request)
    missing["metadata"]["name"] = "no-template"
    missing["spec"]["template"] = {"name": "nope"}
    apply(cluster, ns, missing)

    s3_rr, mail_rr = wait_final(cluster, ns, "to-s3"), wait_final(cluster, ns, "to-mail")
    for rr in (s3_rr, mail_rr):
        assert rr["status"]["phase"] == "Succeeded", rr["status"]
        assert rr["status"]["template"]["name"] == "sales"
        assert rr["status"]["template"]["generation"] == 1
    assert [s["name"] for s in s3_rr["status"]["steps"]] == ["collect", "table", "upload"]
    assert [s["name"] for s in mail_rr["status"]["steps"]] == ["collect", "table", "mail"]
    assert s3_rr["status"]["rows"] == 100 and mail_rr["status"]["rows"] == 7
    assert mail_rr["status"]["template"]["parameters"] == {
        "dispatchTo": "email", "since": "2023-01-01", "limit": 7, "bucket": bucket,
        "recipient": "sales@example.com"}

    # Delivered to the right target, once each.
    uploaded = moto_server.client().list_objects_v2(Bucket=bucket)["Contents"]
    assert [o["Key"] for o in uploaded] == ["sales/2024-01-01/orders-2024-01-01.csv"]
    [mail] = smtp_server.messages
    assert mail.rcpt_tos == ["sales@example.com"]
    assert mail.message["Subject"] == "Orders since 2023-01-01: to-mail"
    [attachment] = list(mail.message.iter_attachments())
    assert attachment.get_filename() == "orders-2023-01-01.csv"
    assert len(attachment.get_content().splitlines()) == 1 + 7

    bad = wait_final(cluster, ns, "bad-type")
    assert bad["status"]["phase"] == "Failed"
    assert "spec.template.parameters.since: expected a date as yyyy-mm-dd" in bad["status"]["message"]
    ready = {c["type"]: c for c in bad["status"]["conditions"]}["Ready"]
    assert ready["reason"] == "InvalidParameters"
    described = cluster.kubectl("describe", "rr", "bad-type", "-n", ns).stdout
    assert "InvalidParameters" in described and "spec.template.parameters.since" in described
    gone = wait_final(cluster, ns, "no-template")
    assert gone["status"]["phase"] == "Failed"
    assert "ReportTemplate 'nope' not found" in gone["status"]["message"]

    # Edit the template (another bucket, subject and row limit), restart the operator: the
    # accepted reports keep their generation and resolved spec, and nothing is re-delivered.
    new_bucket = moto_server.new_bucket("edited")
    edited = template(stack["db"], moto_server, smtp_server, new_bucket)
    edited["spec"]["parameters"][2]["default"] = 3
    edited["spec"]["report"]["steps"][3]["email"]["subject"] = "EDITED $(params.since)"
    apply(cluster, ns, edited)
    assert kubectl_json(cluster, "get", "rtpl", "sales", "-n", ns)["metadata"]["generation"] == 2
    stack["op"].stop()
    stack["op"] = OperatorProcess(cluster, stack["redis"].addr, stack["tmp"], ns, name="op-2")
    apply(cluster, ns, {"apiVersion": "goreports.io/v1alpha1", "kind": "ReportRequest",
                        "metadata": {"name": "after-edit"},
                        "spec": {"deadlineSeconds": 900, "template": {
                            "name": "sales", "parameters": {
                                "dispatchTo": "email", "recipient": "late@example.com"}}}})
    after = wait_final(cluster, ns, "after-edit")  # the restarted operator is at work
    assert after["status"]["template"]["generation"] == 2 and after["status"]["rows"] == 3
    # What the request gives beside the template wins; the rest is the template's, and a
    # value neither gives is not filled in by the API server (the compiler's default applies).
    assert after["spec"]["deadlineSeconds"] == 900 and "maxAttempts" not in after["spec"]
    assert (after["status"]["resolvedSpec"]["deadlineSeconds"],
            after["status"]["resolvedSpec"]["maxAttempts"]) == (900, 4)
    assert "deadlineSeconds" not in s3_rr["status"]["resolvedSpec"]
    time.sleep(1.0)  # room for a wrongly re-resolved or re-published earlier report
    for before in (s3_rr, mail_rr):
        now = get_rr(cluster, ns, before["metadata"]["name"])
        assert now["status"]["template"] == before["status"]["template"]
        assert now["status"]["resolvedSpec"] == before["status"]["resolvedSpec"]
        assert now["status"]["phase"] == "Succeeded"
        assert now["status"]["completionTime"] == before["status"]["completionTime"]
    assert [m.rcpt_tos for m in smtp_server.messages] == [["sales@example.com"],
                                                          ["late@example.com"]]
    assert smtp_server.messages[1].message["Subject"] == "EDITED 2023-01-01"
    assert moto_server.client().list_objects_v2(Bucket=bucket)["Contents"] == uploaded  # same time
    assert moto_server.client().list_objects_v2(Bucket=new_bucket)["KeyCount"] == 0
