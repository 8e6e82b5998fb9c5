"""Spec -> Job chain (goreports.core.compiler): order, streams, readers, defaults, errors."""
from __future__ import annotations

import datetime as dt
import re
from typing import Any

import pytest
from google.protobuf import json_format, struct_pb2
from google.protobuf.message import Message

from goreports.core.compiler import (
    DEFAULT_DEADLINE_SECONDS,
    DEFAULT_MAX_ATTEMPTS,
    STAGES,
    compile_report,
    describe_chain,
    iter_chain,
    snake,
)
from goreports.core.errors import SpecError
from goreports.core.schema import load_crd_schema, validate_report
from goreports.proto import job_pb2
from goreports.proto import tasks_pb2 as tpb

NOW = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC)
UID = "6f1c0d2e"


def compile_(doc: dict[str, Any], **kw: Any) -> job_pb2.Job:
    return compile_report(doc, uid=UID, trace_id="trace-1", now=NOW, **kw)


def task_of(job: job_pb2.Job) -> Message:
    name = job.task.TypeName().rsplit(".", 1)[-1]
    msg = struct_pb2.Struct() if name == "Struct" else getattr(tpb, name)()
    assert job.task.Unpack(msg)
    return msg


def tasks(doc: dict[str, Any]) -> dict[str, Any]:
    return {j.name: task_of(j) for j in iter_chain(compile_(doc))}


def stream(step: str, dataset: str) -> str:
    return f"goreports:data:{UID}:{step}:{dataset}"


def ref(step: str, dataset: str) -> tpb.DatasetRef:
    return tpb.DatasetRef(name=dataset, stream=stream(step, dataset), producer_step=step)


def compile_errors(doc: dict[str, Any]) -> list[tuple[str, str]]:
    with pytest.raises(SpecError) as info:
        compile_(doc)
    return [(e.path, e.message) for e in info.value.errors]


# ------------------------------------------------------------------------------------------
# Chains


def test_seed_chain(seed_doc: dict[str, Any]) -> None:
    head = compile_(seed_doc)
    jobs = iter_chain(head)
    assert describe_chain(head) == "collect > excel > deliver"
    assert [(j.channel, j.pattern) for j in jobs] == [
        ("collectors", "sqlite"), ("generators", "excel"), ("dispatchers", "local")]
    for i, job in enumerate(jobs):
        assert job.report == job_pb2.ReportRef(namespace="team-a", name="sales-report", uid=UID)
        assert (job.attempt, job.max_attempts) == (1, DEFAULT_MAX_ATTEMPTS)
        assert job.deadline.ToDatetime(dt.UTC) == NOW + dt.timedelta(
            seconds=DEFAULT_DEADLINE_SECONDS)
        assert (job.trace_id, job.step_index, job.step_count) == ("trace-1", i, 3)
        assert not job.rerun and not job.failure
    assert not jobs[-1].HasField("next")

    collect, excel, deliver = (task_of(j) for j in jobs)
    assert isinstance(collect, tpb.SqliteCollector)
    assert collect.database == "examples/data/sales.db"
    [query] = collect.query_list
    assert (query.name, query.sql) == ("orders", "SELECT * FROM orders WHERE region = :region")
    assert [(p.name, p.value.string_value) for p in query.parameters] == [("region", "EU")]
    assert query.output == tpb.Output(dataset=ref("collect", "orders"), readers=["excel"])
    assert excel.file_name == "sales.xlsx"
    assert [(s.name, s.dataset) for s in excel.sheets] == [("orders", ref("collect", "orders"))]
    assert deliver == tpb.LocalDispatcher(path="out",
                                          artifacts=[tpb.ArtifactRef(name="sales.xlsx")])


def test_long_chain_with_two_collectors_and_two_dispatchers(long_doc: dict[str, Any]) -> None:
    head = compile_(long_doc)
    assert describe_chain(head) == (
        "collect-eu > collect-us > check > combine > excel > to-s3 > to-mail > tell")
    jobs = iter_chain(head)
    assert [j.channel for j in jobs] == [
        "collectors", "collectors", "validators", "aggregators", "generators", "dispatchers",
        "dispatchers", "notifiers"]
    assert all(j.max_attempts == 5 and j.step_count == 8 for j in jobs)
    assert jobs[0].deadline.ToDatetime(dt.UTC) == NOW + dt.timedelta(seconds=600)
    # the chain is nested: each job carries the rest of it
    for job, following in zip(jobs, jobs[1:], strict=False):
        assert job.next == following


def test_streams_and_readers_through_a_validator_and_an_aggregator(
        long_doc: dict[str, Any]) -> None:
    t = tasks(long_doc)
    eu, customers = t["collect-eu"].query_list
    [us] = t["collect-us"].query_list
    # the validator reads the collectors' streams and rewrites them under its own step
    assert eu.output.readers == ["check"] and us.output.readers == ["check"]
    check = t["check"]
    assert list(check.inputs) == [ref("collect-eu", "orders_eu"), ref("collect-us", "orders_us")]
    assert [o.dataset for o in check.outputs] == [ref("check", "orders_eu"),
                                                   ref("check", "orders_us")]
    assert [list(o.readers) for o in check.outputs] == [["combine"], ["combine"]]
    # the aggregator reads the rewritten streams, and datasets the validator left alone
    union, join = t["combine"].operations
    assert list(union.union.inputs) == [ref("check", "orders_eu"), ref("check", "orders_us")]
    assert (join.join.left, join.join.right) == (ref("check", "orders_eu"),
                                                 ref("collect-eu", "customers"))
    assert union.output == tpb.Output(dataset=ref("combine", "all_orders"), readers=["excel"])
    assert join.output == tpb.Output(dataset=ref("combine", "by_customer"))  # read by nobody
    assert customers.output.readers == ["combine", "excel"]
    # generators read the latest producer of each name
    assert [(s.name, s.dataset) for s in t["excel"].sheets] == [
        ("All", ref("combine", "all_orders")), ("customers", ref("collect-eu", "customers"))]


def test_defaults(long_doc: dict[str, Any]) -> None:
    steps = long_doc["spec"]["steps"]
    del steps[2]["jwt"]["datasets"]  # every dataset so far
    del steps[4]["excel"]["sheets"]  # one sheet per dataset
    steps.insert(5, {"name": "html", "mustache": {"fileName": "a.html", "template": "x"}})
    steps.insert(6, {"name": "csv", "csv": {"fileName": "a.csv", "dataset": "customers"}})
    t = tasks(long_doc)
    assert [i.name for i in t["check"].inputs] == ["orders_eu", "customers", "orders_us"]
    assert t["check"].mode == "filter"
    visible = [ref("check", "orders_eu"), ref("check", "customers"), ref("check", "orders_us"),
               ref("combine", "all_orders"), ref("combine", "by_customer")]
    assert [(s.name, s.dataset) for s in t["excel"].sheets] == [(r.name, r) for r in visible]
    assert list(t["html"].datasets) == visible
    assert json_format.MessageToDict(t["html"].data) == {"parameters": {"month": "2024-05"}}
    assert (t["csv"].delimiter, t["csv"].header) == (",", True)
    assert t["combine"].operations[1].join.type == "inner"
    everything = ["sales.xlsx", "a.html", "a.csv"]
    assert [a.name for a in t["to-s3"].artifacts] == everything
    assert [a.name for a in t["to-mail"].artifacts] == ["sales.xlsx"]  # chosen
    assert list(t["tell"].when) == ["success", "failure"]
    assert [a.name for a in t["tell"].webhook.artifacts] == everything


def test_crd_defaults_are_the_compilers(long_doc: dict[str, Any]) -> None:
    """Where the API server fills a default, the compiler applies the same one, so a spec
    compiles alike in the cluster and on a laptop."""
    defaults = {}

    def walk(node: dict[str, Any], path: str) -> None:
        if "default" in node:
            defaults[path] = node["default"]
        for name, child in node.get("properties", {}).items():
            walk(child, f"{path}.{name}")
        if isinstance(node.get("items"), dict):
            walk(node["items"], f"{path}[]")

    walk(load_crd_schema()["properties"]["spec"], "spec")
    assert defaults == {
        "spec.steps[].jwt.mode": "filter",
        "spec.steps[].aggregate.operations[].join.type": "inner",
        "spec.steps[].csv.delimiter": ",",
        "spec.steps[].csv.header": True,
        "spec.steps[].notify.when": ["success", "failure"],
        "spec.steps[].custom.channel": "custom",
    }  # each is checked in test_defaults / test_seed_chain / test_custom_steps


def test_every_spec_field_reaches_the_task(full_doc: dict[str, Any]) -> None:
    """The full example sets every field of the CRD (test_schema checks that); each one must
    show up in its task message under its snake_case name."""
    validate_report(full_doc)
    renamed = {"http": {"dataset": "output", "auth": "auth_type"},
               "jwt": {"datasets": "inputs"}}
    for step, job in zip(full_doc["spec"]["steps"], iter_chain(compile_(full_doc)), strict=True):
        kind = next(k for k in STAGES if k in step)
        if kind == "custom":
            continue
        got = json_format.MessageToDict(task_of(job), preserving_proto_field_name=True,
                                        always_print_fields_with_no_presence=True)
        for key, value in step[kind].items():
            name = renamed.get(kind, {}).get(key, snake(key))
            assert name in got, f"{step['name']}: {kind}.{key} is lost"
            if key in renamed.get(kind, {}) or isinstance(value, dict) and key != "headers":
                continue
            if isinstance(value, list) and value and isinstance(value[0], dict):
                continue
            plain = got[name]
            if type(value) is int:
                plain = int(plain)  # 64-bit integers are JSON text
            elif isinstance(plain, dict) and "name" in plain:
                plain = plain["name"]  # a DatasetRef
            elif isinstance(plain, list) and plain and isinstance(plain[0], dict):
                plain = [ref["name"] for ref in plain]  # DatasetRefs, ArtifactRefs
            assert plain == value, f"{step['name']}: {kind}.{key} is {plain!r}, not {value!r}"
        for q_body, q in zip(step[kind].get("queries", []), got.get("query_list", []), strict=True):
            assert {snake(k) for k in q_body} <= set(q), f"{step['name']}: query field lost"


def test_field_values_in_snake_case(full_doc: dict[str, Any]) -> None:
    t = tasks(full_doc)
    my = t["collect-my"]
    assert (my.instance, my.host, my.port, my.db_name, my.credentials_id) == (
        "sales-db", "mariadb.db.svc", 3307, "connect", "sales-db")
    assert (my.use_cache, my.cache_ttl_seconds, my.connect_timeout_seconds,
            my.read_timeout_seconds) == (True, 600, 5, 120)
    [q] = my.query_list
    assert (q.use_pagination, q.pagination_key, q.page_size) == (True, "id", 5000)
    [p] = q.parameters
    assert (p.name, p.value.string_value) == ("since", "2024-01-01")
    [lite] = t["collect-lite"].query_list
    assert {p.name: json_format.MessageToDict(p.value) for p in lite.parameters} == {
        "region": "EU", "min": 10, "exact": True, "ratio": 0.5, "none": None}

    http = t["collect-api"]
    assert (http.auth_type, http.auth_header, http.method) == ("header", "X-API-Key", "POST")
    assert dict(http.headers) == {"Accept": "application/json"}
    assert dict(http.query) == {"status": "active"}
    assert http.pagination == tpb.HttpPagination(
        type="nextLink", next_link_path="links.next", cursor_path="meta.cursor",
        cursor_param="cursor", page_param="page", start_page=2, max_pages=50)
    assert (http.records_path, list(http.columns), http.max_response_bytes) == (
        "data.items", ["id", "name", "tenant_id"], 2048)
    assert http.output.dataset == ref("collect-api", "customers")

    check = t["check"]
    assert (check.token, check.mode, list(check.algorithms)) == (
        "eyJhbGciOiJIUzI1NiJ9.e30.x", "deny", ["HS256", "RS256"])
    assert check.rules[0] == tpb.RowRule(name="same-tenant", column="tenant_id", claim="tenant")

    union, join, group = t["combine"].operations
    assert join.join.type == "left" and join.join.right == ref("check", "customers")
    assert list(group.group_by.keys) == ["region"]
    total, n = group.group_by.aggregates
    assert (total.column, total.function, getattr(total, "as")) == ("amount", "sum", "total")
    assert (n.column, n.function, getattr(n, "as")) == ("", "count", "n")

    excel = t["excel"]
    assert (excel.freeze_header, excel.auto_filter) == (True, True)
    assert excel.sheets[0].columns[0] == tpb.ColumnFormat(
        name="amount", number_format="#,##0.00", width=12, header="Amount")
    html = t["html"]
    assert (html.template_file, html.template_dir, html.content_type, html.max_rows) == (
        "summary.mustache", "examples/templates", "text/html", 100)
    assert list(html.unescaped_fields) == ["notes"]
    assert json_format.MessageToDict(html.data) == {
        "parameters": {"title": "Sales", "year": 2024, "tags": ["a", "b"]}}
    assert (t["csv"].delimiter, t["csv"].header) == (";", False)

    s3 = t["to-s3"]
    assert (s3.endpoint_url, s3.server_side_encryption, s3.kms_key_id, s3.presign_seconds,
            s3.multipart_threshold_bytes) == ("http://minio:9000", "aws:kms", "key-1", 3600,
                                              16777216)
    assert dict(s3.metadata) == {"team": "finance"}
    mail = t["to-mail"]
    assert (mail.from_address, mail.smtp_port, mail.security, mail.attach_limit_bytes,
            mail.link_base_url, list(mail.cc)) == (
        "reports@x.io", 587, "starttls", 1048576, "https://files.x.io/", ["b@x.io"])
    hook = t["to-hook"]
    assert (hook.send_file, hook.max_retries, dict(hook.headers)) == (
        True, 1, {"X-Team": "finance"})
    drive = t["to-drive"]
    assert (drive.folder_id, drive.token_uri) == ("abc_DEF-1", "https://oauth2.googleapis.com/token")
    tell = t["tell"]
    assert list(tell.when) == ["failure"]
    assert [a.name for a in tell.email.artifacts] == ["inline.txt"]
    assert tell.webhook.url == "https://hooks.x.io/n"


def test_custom_steps_and_pattern_override(full_doc: dict[str, Any]) -> None:
    jobs = {j.name: j for j in iter_chain(compile_(full_doc))}
    assert (jobs["collect-lite"].channel, jobs["collect-lite"].pattern) == (
        "collectors", "sqlite-big")
    audit = jobs["audit"]
    assert (audit.channel, audit.pattern) == ("extras", "audit-log")
    assert json_format.MessageToDict(task_of(audit)) == {"level": 2, "targets": ["x"], "goreports": {
        "outputs": [{"dataset": {"name": "audit_trail", "stream": "goreports:data:6f1c0d2e:audit:audit_trail",
                                 "producerStep": "audit"}, "readers": []}],
        "inputs": [{"name": "by_region", "stream": "goreports:data:6f1c0d2e:combine:by_region",
                    "producerStep": "combine"}],
        "files": ["audit.txt"]}}  # the wired part: goreports.core.custom_task
    del full_doc["spec"]["steps"][14]["custom"]["channel"]
    full_doc["spec"]["steps"][14]["pattern"] = "audit-2"
    audit = next(j for j in iter_chain(compile_(full_doc)) if j.name == "audit")
    assert (audit.channel, audit.pattern) == ("custom", "audit-2")


def test_custom_steps_are_not_counted_in_the_order(seed_doc: dict[str, Any]) -> None:
    steps = seed_doc["spec"]["steps"]
    steps.insert(0, {"name": "first", "custom": {"pattern": "x"}})
    steps.append({"name": "last", "custom": {"pattern": "y"}})
    assert describe_chain(compile_(seed_doc)) == "first > collect > excel > deliver > last"


def test_report_identity_and_defaults(seed_doc: dict[str, Any]) -> None:
    del seed_doc["metadata"]["namespace"]
    naive = dt.datetime(2024, 5, 1, 12, 0)
    head = compile_report(seed_doc, uid="u", prefix="gr", now=naive)
    assert head.report.namespace == "default"
    assert head.deadline.ToDatetime(dt.UTC) == NOW + dt.timedelta(hours=1)
    assert re.fullmatch(r"[0-9a-f]{32}", head.trace_id)
    assert {j.trace_id for j in iter_chain(head)} == {head.trace_id}
    [q] = task_of(head).query_list
    assert q.output.dataset.stream == "gr:data:u:collect:orders"
    other = compile_report(seed_doc, uid="u")
    assert other.trace_id != head.trace_id


def test_iter_chain_of_a_single_job() -> None:
    job = job_pb2.Job(name="only")
    assert iter_chain(job) == [job]
    assert describe_chain(job) == "only"


# ------------------------------------------------------------------------------------------
# Errors, each with its field path


def _step(name: str, kind: str, body: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, kind: body}


@pytest.mark.parametrize("mutate, expected", [
    (lambda s: s.insert(4, s.pop(5)),
     [("spec.steps[5]", "a generators step (excel) cannot come after the dispatchers step "
                        "'to-s3'; the order is collectors, validators, aggregators, generators, "
                        "dispatchers, notifiers")]),
    (lambda s: s.append(_step("tell-2", "notify", {"webhook": {"url": "https://x.io"}})),
     [("spec.steps[8]", "a report has at most one notifier step")]),
    (lambda s: s[1].update(name="collect-eu"),
     [("spec.steps[1].name", "duplicate step name 'collect-eu' (also spec.steps[0])")]),
    (lambda s: s[1]["mysql"]["queries"][0].update(name="customers"),
     [("spec.steps[1].mysql.queries[0].name",
       "dataset 'customers' is already produced by step 'collect-eu'"),
      ("spec.steps[2].jwt.datasets[1]", None),
      ("spec.steps[3].aggregate.operations[0].union.inputs[1]", None)]),
    (lambda s: s[4]["excel"]["sheets"][1].update(dataset="nope"),
     [("spec.steps[4].excel.sheets[1].dataset",
       "unknown dataset 'nope' (known: orders_eu, customers, orders_us, all_orders, "
       "by_customer)")]),
    (lambda s: s[4]["excel"]["sheets"][1].update(name="ALL"),
     [("spec.steps[4].excel.sheets[1].name", "duplicate sheet name 'ALL' (sheet [0])")]),
    (lambda s: s[2]["jwt"].update(datasets=["orders_eu", "all_orders"]),
     [("spec.steps[2].jwt.datasets[1]",
       "unknown dataset 'all_orders' (known: orders_eu, customers, orders_us)")]),
    (lambda s: s[3]["aggregate"]["operations"][1]["join"].update(right="all_orders"),
     [("spec.steps[3].aggregate.operations[1].join.right",
       "unknown dataset 'all_orders' (known: orders_eu, customers, orders_us)")]),
    (lambda s: s[3]["aggregate"]["operations"].append(
        {"output": "totals", "groupBy": {"input": "x", "aggregates": [
            {"function": "count", "as": "n"}]}}),
     [("spec.steps[3].aggregate.operations[2].groupBy.input", None)]),
    (lambda s: s[3]["aggregate"]["operations"][0].update(output="customers"),
     [("spec.steps[3].aggregate.operations[0].output",
       "dataset 'customers' is already produced by step 'collect-eu'"),
      ("spec.steps[4].excel.sheets[0].dataset", None)]),
    (lambda s: s.insert(5, _step("csv", "csv", {"fileName": "sales.xlsx",
                                                "dataset": "customers"})),
     [("spec.steps[5].csv.fileName",
       "file name 'sales.xlsx' is already generated by step 'excel'")]),
    (lambda s: s.insert(5, _step("csv", "csv", {"fileName": "a.csv", "dataset": "gone"})),
     [("spec.steps[5].csv.dataset", None)]),
    (lambda s: s.insert(5, _step("html", "mustache", {"fileName": "a.html", "template": "x",
                                                      "datasets": ["customers", "gone"]})),
     [("spec.steps[5].mustache.datasets[1]", None)]),
    (lambda s: s[6]["email"].update(artifacts=["sales.xlsx", "report.pdf"]),
     [("spec.steps[6].email.artifacts[1]", "unknown artifact 'report.pdf' (known: sales.xlsx)")]),
    (lambda s: s[7]["notify"].update(email={"to": ["a@x.io"], "from": "r@x.io",
                                            "smtpHost": "smtp", "artifacts": ["x.csv"]}),
     [("spec.steps[7].notify.email.artifacts[0]", None)]),
    (lambda s: s[1]["mysql"]["queries"][0].update(usePagination=True),
     [("spec.steps[1].mysql.queries[0].paginationKey", "required when usePagination is true")]),
])
def test_compile_errors_name_their_field(long_doc: dict[str, Any], mutate: Any,
                                         expected: list[tuple[str, str | None]]) -> None:
    mutate(long_doc["spec"]["steps"])
    errors = compile_errors(long_doc)
    assert [p for p, _ in errors] == [p for p, _ in expected]
    for (_, got), (_, want) in zip(errors, expected, strict=True):
        if want is not None:
            assert got == want
        else:
            assert got.startswith("unknown")


@pytest.mark.parametrize("index, family, kinds", [
    (0, "collectors", "sqlite, mysql, http"),
    (1, "generators", "excel, mustache, csv"),
    (2, "dispatchers", "local, s3, email, webhook, drive"),
])
def test_a_report_needs_each_main_family(seed_doc: dict[str, Any], index: int, family: str,
                                         kinds: str) -> None:
    seed_doc["spec"]["steps"].pop(index)
    assert compile_errors(seed_doc) == [
        ("spec.steps", f"a report needs at least one of the {family} ({kinds})")]


def test_aggregate_outputs_are_not_inputs_of_the_same_step(long_doc: dict[str, Any]) -> None:
    ops = long_doc["spec"]["steps"][3]["aggregate"]["operations"]
    ops.append({"output": "totals", "groupBy": {"input": "all_orders", "aggregates": [
        {"function": "count", "as": "n"}]}})
    assert compile_errors(long_doc) == [(
        "spec.steps[3].aggregate.operations[2].groupBy.input",
        "unknown dataset 'all_orders' (known: orders_eu, customers, orders_us)")]
    # ... but a later aggregate step can use them
    steps = long_doc["spec"]["steps"]
    steps.insert(4, {"name": "totals", "aggregate": {"operations": [ops.pop()]}})
    t = tasks(long_doc)
    assert t["totals"].operations[0].group_by.input == ref("combine", "all_orders")
    assert t["combine"].operations[0].output.readers == ["totals", "excel"]


def test_all_errors_are_reported_at_once(seed_doc: dict[str, Any]) -> None:
    steps = seed_doc["spec"]["steps"]
    steps[1]["excel"]["sheets"] = [{"dataset": "a"}, {"dataset": "b"}]
    steps[2]["local"]["artifacts"] = ["c.xlsx"]
    steps.append({"name": "deliver", "s3": {"bucket": "reports"}})
    assert [p for p, _ in compile_errors(seed_doc)] == [
        "spec.steps[3].name", "spec.steps[1].excel.sheets[0].dataset",
        "spec.steps[1].excel.sheets[1].dataset", "spec.steps[2].local.artifacts[0]"]


def test_caller_tenant_reaches_the_jwt_validator(long_doc: dict) -> None:
    from goreports.core import compiler as c
    from goreports.proto import tasks_pb2 as t

    long_doc.setdefault("metadata", {})["annotations"] = {"goreports.io/tenant": "acme"}
    chain = c.iter_chain(c.compile_report(long_doc, uid="u"))
    [jwt_job] = [j for j in chain if j.pattern == "jwt"]
    task = t.JwtValidator()
    assert jwt_job.task.Unpack(task) and task.caller_tenant == "acme"
