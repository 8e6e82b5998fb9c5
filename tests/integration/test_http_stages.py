"""The outbound HTTP stages against real aiohttp servers on loopback: the http collector (every
pagination style, the size limit, Retry-After, auth), the SSRF guard, the webhook dispatcher
(signatures verified by the receiver, stable idempotency keys), the notifier (webhook and real
SMTP), the Drive dispatcher against a stand-in of Google's endpoints, and a whole compiled report
through the in-process Worker."""
from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

import pytest

from goreports.cli.run import execute
from goreports.core import values
from goreports.core.errors import PermanentError, TemporaryError
from goreports.core.settings import Settings
from goreports.proto import tasks_pb2
from goreports.workers import _net
from goreports.workers.collectors.http import collect_http
from goreports.workers.dispatchers import drive as drive_mod
from goreports.workers.dispatchers.drive import dispatch_drive
from goreports.workers.dispatchers.webhook import dispatch_webhook
from goreports.workers.notifiers.notify import notify
from goreports.workers.stage import StageContext
from support.httpd import ApiServer, DriveServer, HookServer
from support.httpd import api_server, drive_server, hook_server  # noqa: F401
from support.loading import load_module
from support.smtp import SmtpServer, smtp_server  # noqa: F401

from unit.workers.stagekit import UID, drain, make_ctx, output

pytestmark = pytest.mark.integration

LOOPBACK = ["127.0.0.1"]


@pytest.fixture(autouse=True)
def fast_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_net, "BACKOFF_BASE", 0.01)
    monkeypatch.delenv(_net.ALLOW_ENV, raising=False)


def collector(api: ApiServer, ctx: StageContext, path: str,
              **kw: Any) -> tasks_pb2.HttpApiCollector:
    return tasks_pb2.HttpApiCollector(url=api.url(path), allow_hosts=LOOPBACK,
                                      output=output(ctx.bus, "customers"), **kw)


async def stage_file(ctx: StageContext, tmp_path: Path, name: str, data: bytes) -> None:
    src = tmp_path / f"src-{name}"
    src.write_bytes(data)
    await ctx.artifacts.put(UID, name, src)


# -- http collector -------------------------------------------------------------------------------

@pytest.mark.parametrize("path,pagination,records_path", [
    ("/next", {"type": "nextLink", "next_link_path": "links.next"}, "data.items"),
    ("/cursor", {"type": "cursor", "cursor_path": "meta.next", "cursor_param": "cursor"}, "items"),
    ("/page", {"type": "page", "page_param": "page", "start_page": 1}, ""),
])
async def test_collector_follows_three_pages(tmp_path: Path, api_server: ApiServer, path: str,
                                             pagination: dict[str, Any], records_path: str) -> None:
    ctx = make_ctx(tmp_path, "collect", batch_rows=2)
    task = collector(api_server, ctx, path, records_path=records_path,
                     pagination=tasks_pb2.HttpPagination(**pagination),
                     query={"status": "active"})
    result = await collect_http(task, ctx)
    assert result.rows == 7
    seen = api_server.requests(path)
    assert len(seen) == (4 if pagination["type"] == "page" else 3)  # page: until an empty page
    assert all(s.query.get("status") == "active" for s in seen[:1])
    cols, rows = await drain(ctx.bus, "customers")
    assert [c.name for c in cols] == ["id", "name", "amount", "active", "owner", "tags"]
    types = {c.name: c.type for c in cols}
    assert types == {"id": values.INTEGER, "name": values.STRING, "amount": values.FLOAT,
                     "active": values.BOOLEAN, "owner": values.JSON, "tags": values.JSON}
    assert [r[0] for r in rows] == list(range(1, 8))
    assert rows[1][2] == 2.0 and isinstance(rows[1][2], float)  # an int in a FLOAT column
    assert rows[4][2] is None  # record 5 has no amount
    assert json.loads(rows[0][4]) == {"id": 101} and json.loads(rows[0][5]) == ["a", "1"]
    assert len(rows[5]) == 6  # record 6's extra key is ignored


async def test_collector_max_pages_and_fixed_columns(tmp_path: Path, api_server: ApiServer) -> None:
    ctx = make_ctx(tmp_path, "collect")
    task = collector(api_server, ctx, "/cursor", records_path="items", columns=["name", "id"],
                     pagination=tasks_pb2.HttpPagination(type="cursor", cursor_path="meta.next",
                                                         max_pages=2))
    result = await collect_http(task, ctx)
    assert result.rows == 6 and "more pages left" in result.message
    assert len(api_server.requests("/cursor")) == 2
    cols, rows = await drain(ctx.bus, "customers")
    assert [c.name for c in cols] == ["name", "id"] and rows[0] == ["customer 1", 1]


async def test_collector_stops_at_the_size_limit(tmp_path: Path, api_server: ApiServer) -> None:
    ctx = make_ctx(tmp_path, "collect")
    task = collector(api_server, ctx, "/big", max_response_bytes=200_000)
    started = time.monotonic()
    with pytest.raises(PermanentError, match="maxResponseBytes=200000") as e:
        await collect_http(task, ctx)
    assert e.value.reason == "ResponseTooLarge"
    # it hung up at the limit, it did not wait for the request's 30 s timeout (a bound far
    # above the ~0.1 s it takes, so a loaded machine does not trip it)
    assert time.monotonic() - started < 20
    assert api_server.big_sent < api_server.big_bytes  # the client stopped reading early


async def test_collector_size_limit_applies_per_page(tmp_path: Path, api_server: ApiServer) -> None:
    """Pages within the limit pass; the page that passes it stops the step."""
    api_server.records = [{"id": i, "blob": "x" * (100 if i < 6 else 5000)} for i in range(1, 9)]
    ctx = make_ctx(tmp_path, "collect")
    task = collector(api_server, ctx, "/next", records_path="data.items", max_response_bytes=4000,
                     pagination=tasks_pb2.HttpPagination(type="nextLink",
                                                         next_link_path="links.next"))
    with pytest.raises(PermanentError, match="ResponseTooLarge|larger than") as e:
        await collect_http(task, ctx)
    assert e.value.reason == "ResponseTooLarge"
    assert len(api_server.requests("/next")) == 2  # pages 1 (small) and 2 (too large)


async def test_collector_retries_429_honouring_retry_after(tmp_path: Path,
                                                           api_server: ApiServer) -> None:
    api_server.fail_next = [(429, {"Retry-After": "1"}), (503, {})]
    ctx = make_ctx(tmp_path, "collect")
    task = collector(api_server, ctx, "/page", pagination=tasks_pb2.HttpPagination(
        type="page", start_page=1, max_pages=1), max_retries=3)
    result = await collect_http(task, ctx)
    assert result.rows == 3
    first, second, third = api_server.requests("/page")
    assert second.at - first.at >= 0.95  # waited what Retry-After asked
    assert third.at - second.at < 0.9    # 503 without Retry-After: short backoff


async def test_collector_gives_up_after_max_retries(tmp_path: Path, api_server: ApiServer) -> None:
    api_server.fail_next = [(503, {"Retry-After": "0"})] * 5
    ctx = make_ctx(tmp_path, "collect")
    task = collector(api_server, ctx, "/page", max_retries=2)
    with pytest.raises(TemporaryError, match="HTTP 503.*after 3 attempt"):
        await collect_http(task, ctx)
    assert len(api_server.requests("/page")) == 3


async def test_collector_long_retry_after_goes_back_to_the_runtime(
        tmp_path: Path, api_server: ApiServer) -> None:
    api_server.fail_next = [(429, {"Retry-After": "3600"})]
    ctx = make_ctx(tmp_path, "collect")
    with pytest.raises(TemporaryError) as e:
        await collect_http(collector(api_server, ctx, "/page"), ctx)
    assert e.value.delay == 3600.0 and len(api_server.requests("/page")) == 1


async def test_collector_bearer_auth_and_refusal(tmp_path: Path, api_server: ApiServer) -> None:
    api_server.token = "tok-123"
    ctx = make_ctx(tmp_path, "collect")
    creds = ctx.settings.credentials_dir / "crm"
    creds.mkdir(parents=True)
    (creds / "token").write_text("tok-123\n")
    task = collector(api_server, ctx, "/page", credentials_id="crm", auth_type="bearer",
                     pagination=tasks_pb2.HttpPagination(type="page", start_page=1))
    assert (await collect_http(task, ctx)).rows == 7
    (creds / "token").write_text("wrong-token\n")
    ctx2 = make_ctx(tmp_path, "collect2")
    with pytest.raises(PermanentError) as e:
        await collect_http(collector(api_server, ctx2, "/page", credentials_id="crm",
                                     auth_type="bearer"), ctx2)
    assert e.value.reason == "HttpUnauthorized" and "'crm'" in str(e.value)
    assert "wrong-token" not in str(e.value)


# -- SSRF guard -----------------------------------------------------------------------------------

@pytest.mark.parametrize("url", ["http://169.254.169.254/latest/meta-data/",
                                 "http://[::ffff:169.254.169.254]/latest/meta-data/",
                                 "http://kubernetes.default.svc/api",
                                 "http://localhost:1/x"])
async def test_guard_refuses_internal_targets_by_default(tmp_path: Path, url: str) -> None:
    ctx = make_ctx(tmp_path, "collect")
    task = tasks_pb2.HttpApiCollector(url=url, output=output(ctx.bus, "customers"))
    with pytest.raises(PermanentError, match="allowHosts") as e:
        await collect_http(task, ctx)
    assert e.value.reason == "HostNotAllowed"


async def test_guard_refuses_loopback_server_without_allow(tmp_path: Path,
                                                           api_server: ApiServer) -> None:
    ctx = make_ctx(tmp_path, "collect")
    task = tasks_pb2.HttpApiCollector(url=api_server.url("/page"),
                                      output=output(ctx.bus, "customers"))
    with pytest.raises(PermanentError, match=r"'127\.0\.0\.1'.*loopback.*allowHosts") as e:
        await collect_http(task, ctx)
    assert e.value.reason == "HostNotAllowed"
    assert api_server.seen == []  # refused before any connection


async def test_guard_checks_redirects_and_every_page(tmp_path: Path, api_server: ApiServer) -> None:
    api_server.redirect_to = "http://169.254.169.254/latest/meta-data/"
    ctx = make_ctx(tmp_path, "collect")
    with pytest.raises(PermanentError, match="169.254.169.254") as e:
        await collect_http(collector(api_server, ctx, "/redirect"), ctx)
    assert e.value.reason == "HostNotAllowed"
    # a next link that leaves the allowed host is checked like the first URL
    ctx2 = make_ctx(tmp_path, "collect2")
    task = collector(api_server, ctx2, "/next", records_path="data.items",
                     pagination=tasks_pb2.HttpPagination(type="nextLink",
                                                         next_link_path="links.next"))
    task.url = task.url.replace("127.0.0.1", "localhost")
    task.allow_hosts[:] = ["localhost"]  # pages 1-2 via localhost, page 2 links to 127.0.0.1
    with pytest.raises(PermanentError, match="'127.0.0.1'") as e2:
        await collect_http(task, ctx2)
    assert e2.value.reason == "HostNotAllowed"
    assert len(api_server.requests("/next")) == 2


async def test_worker_wide_allow_list(tmp_path: Path, api_server: ApiServer,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(_net.ALLOW_ENV, "127.0.0.1")
    ctx = make_ctx(tmp_path, "collect")
    task = tasks_pb2.HttpApiCollector(url=api_server.url("/page"),
                                      output=output(ctx.bus, "customers"))
    assert (await collect_http(task, ctx)).rows == 3


# -- webhook dispatcher ---------------------------------------------------------------------------

async def test_webhook_metadata_is_signed_and_retries_keep_the_key(
        tmp_path: Path, hook_server: HookServer) -> None:
    ctx = make_ctx(tmp_path, "deliver")
    ctx.job.trace_id = "trace-1"
    await stage_file(ctx, tmp_path, "sales.csv", b"id,name\r\n1,a\r\n")
    cred = hook_server.write_credentials(ctx.settings.credentials_dir)
    hook_server.fail_next = [503]
    task = tasks_pb2.WebhookDispatcher(url=hook_server.url("/hook/secret-path"),
                                       credentials_id=cred, allow_hosts=LOOPBACK,
                                       artifacts=[{"name": "sales.csv"}],
                                       headers={"X-Team": "finance"})
    result = await dispatch_webhook(task, ctx)
    failed, ok = hook_server.hooks
    assert failed.status == 503 and ok.status == 200 and ok.verified and failed.verified
    assert failed.headers["Idempotency-Key"] == ok.headers["Idempotency-Key"]
    assert ok.headers["X-Team"] == "finance"
    body = ok.json
    sha = hashlib.sha256(b"id,name\r\n1,a\r\n").hexdigest()
    assert body["report"] == {"namespace": "default", "name": "sales", "uid": UID}
    assert body["step"] == "deliver" and body["traceId"] == "trace-1"
    assert body["artifact"]["sha256"] == sha and body["artifact"]["size"] == 14
    assert body["artifact"]["contentType"] == "text/csv"
    assert body["idempotencyKey"] == ok.headers["Idempotency-Key"]
    [art] = result.artifacts
    assert art.location == hook_server.url("/").rstrip("/")  # origin only: no secret path
    # a re-delivered job does not post again (marker), a new step would with another key
    await dispatch_webhook(task, ctx)
    assert len(hook_server.hooks) == 2


async def test_webhook_sends_the_file_streamed_and_signed(tmp_path: Path,
                                                          hook_server: HookServer) -> None:
    ctx = make_ctx(tmp_path, "deliver")
    data = bytes(range(256)) * 8192  # 2 MiB, binary
    await stage_file(ctx, tmp_path, "sales.xlsx", data)
    cred = hook_server.write_credentials(ctx.settings.credentials_dir)
    task = tasks_pb2.WebhookDispatcher(url=hook_server.url("/hook"), credentials_id=cred,
                                       send_file=True, allow_hosts=LOOPBACK,
                                       artifacts=[{"name": "sales.xlsx"}])
    await dispatch_webhook(task, ctx)
    [hook] = hook_server.hooks
    assert hook.verified and hook.content_type.startswith("multipart/form-data")
    assert hook.file == data and hook.file_name == "sales.xlsx"
    assert hook.json["artifact"]["sha256"] == hashlib.sha256(data).hexdigest()


async def test_webhook_wrong_secret_fails_and_loopback_is_refused(
        tmp_path: Path, hook_server: HookServer) -> None:
    ctx = make_ctx(tmp_path, "deliver")
    await stage_file(ctx, tmp_path, "a.csv", b"x")
    folder = ctx.settings.credentials_dir / "hook"
    folder.mkdir(parents=True)
    (folder / "hmac-secret").write_text("not-the-secret")
    task = tasks_pb2.WebhookDispatcher(url=hook_server.url("/hook"), credentials_id="hook",
                                       allow_hosts=LOOPBACK, artifacts=[{"name": "a.csv"}])
    with pytest.raises(PermanentError, match="HTTP 401") as e:
        await dispatch_webhook(task, ctx)
    assert e.value.reason == "HttpUnauthorized" and "not-the-secret" not in str(e.value)
    del task.allow_hosts[:]
    with pytest.raises(PermanentError, match="allowHosts") as e2:
        await dispatch_webhook(task, ctx)
    assert e2.value.reason == "HostNotAllowed" and len(hook_server.hooks) == 1


# -- notifier -------------------------------------------------------------------------------------

def notifier(hook: HookServer, cred: str, when: list[str], *names: str) -> tasks_pb2.Notifier:
    return tasks_pb2.Notifier(when=when, webhook=tasks_pb2.WebhookDispatcher(
        url=hook.url("/hook"), credentials_id=cred, allow_hosts=LOOPBACK,
        artifacts=[{"name": n} for n in names]))


async def test_notifier_posts_on_failure(tmp_path: Path, hook_server: HookServer) -> None:
    ctx = make_ctx(tmp_path, "tell", pattern="notify")
    ctx.job.failure = "collect: HTTP 500 from https://api.example.com"
    ctx.job.trace_id = "trace-9"
    cred = hook_server.write_credentials(ctx.settings.credentials_dir)
    result = await notify(notifier(hook_server, cred, ["failure"], "sales.csv"), ctx)
    assert "failure" in result.message
    [hook] = hook_server.hooks
    assert hook.verified
    body = hook.json
    assert body["outcome"] == "failure" and body["type"] == "report.failed"
    assert body["error"] == ctx.job.failure and body["traceId"] == "trace-9"
    assert body["artifacts"] == []  # the CSV was never generated
    assert "failed" in body["text"] and "default/sales" in body["text"]
    # not on success when only failure is asked for
    ok_ctx = make_ctx(tmp_path, "tell", pattern="notify")
    await notify(notifier(hook_server, cred, ["failure"]), ok_ctx)
    assert len(hook_server.hooks) == 1


async def test_notifier_posts_on_success_with_artifacts(tmp_path: Path,
                                                        hook_server: HookServer) -> None:
    ctx = make_ctx(tmp_path, "tell", pattern="notify")
    await stage_file(ctx, tmp_path, "sales.csv", b"a,b\r\n")
    cred = hook_server.write_credentials(ctx.settings.credentials_dir)
    hook_server.fail_next = [502]
    await notify(notifier(hook_server, cred, ["success", "failure"], "sales.csv"), ctx)
    failed, ok = hook_server.hooks
    assert ok.verified and failed.headers["Idempotency-Key"] == ok.headers["Idempotency-Key"]
    body = ok.json
    assert body["outcome"] == "success" and "error" not in body
    assert [a["name"] for a in body["artifacts"]] == ["sales.csv"]
    await notify(notifier(hook_server, cred, ["success"], "sales.csv"), ctx)  # retried: once
    assert len(hook_server.delivered()) == 1


async def test_notifier_email_through_real_smtp(tmp_path: Path, smtp_server: SmtpServer) -> None:
    ctx = make_ctx(tmp_path, "tell", pattern="notify")
    ctx.job.failure = "collect: refused & stopped"
    task = tasks_pb2.Notifier(when=["failure"], email=tasks_pb2.EmailDispatcher(
        to=["ops@example.com"], from_address="reports@example.com", smtp_host="127.0.0.1",
        smtp_port=smtp_server.port, security="none"))
    await notify(task, ctx)
    [mail] = smtp_server.messages
    msg = mail.message
    assert msg["Subject"] == "Report default/sales: failure"
    text = msg.get_content()
    assert "Error: collect: refused & stopped" in text  # plain text: no HTML escapes


# -- Drive ----------------------------------------------------------------------------------------

async def test_drive_upload_lands_with_the_right_bytes(tmp_path: Path, drive_server: DriveServer,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(_net.ALLOW_ENV, "127.0.0.1")
    monkeypatch.setattr(drive_mod, "CHUNK", 256 * 1024)
    ctx = make_ctx(tmp_path, "drive")
    data = hashlib.sha256(b"seed").digest() * 20_000  # 640,000 bytes: 3 chunks
    await stage_file(ctx, tmp_path, "sales.xlsx", data)
    await stage_file(ctx, tmp_path, "empty.csv", b"")
    cred = drive_server.write_credentials(ctx.settings.credentials_dir)
    drive_server.fail_chunk = 2  # the second chunk breaks half-way once
    task = tasks_pb2.DriveDispatcher(folder_id="folder-1", credentials_id=cred,
                                     upload_url=drive_server.url("/upload/drive/v3/files"),
                                     artifacts=[{"name": "sales.xlsx"}, {"name": "empty.csv"}])
    result = await dispatch_drive(task, ctx)
    files = {f.name: f for f in drive_server.files.values()}
    xlsx = files["sales.xlsx"]
    assert xlsx.sha256 == hashlib.sha256(data).hexdigest() and xlsx.size == len(data)
    assert xlsx.parents == ["folder-1"] and files["empty.csv"].size == 0
    assert xlsx.content_type.startswith("application/vnd.openxmlformats")
    assert "bytes */640000" in drive_server.chunks  # asked the session after the failure
    [claims] = drive_server.assertions  # one sign-in for both files
    assert claims["iss"] == drive_server.client_email and claims["exp"] - claims["iat"] == 3600
    art = {a.name: a for a in result.artifacts}["sales.xlsx"]
    assert art.location == f"https://drive.google.com/file/d/{xlsx.id}/view?usp=drivesdk"
    assert art.sha256 == xlsx.sha256
    # a re-delivered job finds the files by their key and uploads nothing
    before = len(drive_server.chunks)
    await dispatch_drive(task, ctx)
    assert len(drive_server.files) == 2 and len(drive_server.chunks) == before


async def test_drive_refuses_a_wrong_key_and_unlisted_hosts(
        tmp_path: Path, drive_server: DriveServer, monkeypatch: pytest.MonkeyPatch) -> None:
    ctx = make_ctx(tmp_path, "drive")
    await stage_file(ctx, tmp_path, "a.csv", b"x")
    cred = drive_server.write_credentials(ctx.settings.credentials_dir)
    task = tasks_pb2.DriveDispatcher(folder_id="f", credentials_id=cred,
                                     upload_url=drive_server.url("/upload/drive/v3/files"),
                                     artifacts=[{"name": "a.csv"}])
    with pytest.raises(PermanentError, match=_net.ALLOW_ENV) as e:
        await dispatch_drive(task, ctx)
    assert e.value.reason == "HostNotAllowed"
    monkeypatch.setenv(_net.ALLOW_ENV, "127.0.0.1")
    other = DriveServer()  # a key the token endpoint does not know
    sa = other.service_account()
    sa["token_uri"] = drive_server.url("/token")
    sa["client_email"] = drive_server.client_email
    (ctx.settings.credentials_dir / cred / "service-account.json").write_text(json.dumps(sa))
    with pytest.raises(PermanentError, match="invalid_grant") as e2:
        await dispatch_drive(task, ctx)
    assert e2.value.reason == "DriveAuthFailed" and "PRIVATE KEY" not in str(e2.value)
    assert drive_server.files == {}


# -- a whole report -------------------------------------------------------------------------------

async def test_compiled_report_http_to_csv_to_webhook(tmp_path: Path, api_server: ApiServer,
                                                      hook_server: HookServer) -> None:
    creds = tmp_path / "credentials"
    hook_server.write_credentials(creds)
    doc = {
        "apiVersion": "goreports.io/v1alpha1", "kind": "ReportRequest",
        "metadata": {"name": "api-report", "namespace": "team-a"},
        "spec": {"steps": [
            {"name": "collect", "http": {
                "dataset": "customers", "url": api_server.url("/cursor"), "recordsPath": "items",
                "columns": ["id", "name", "amount"], "allowHosts": LOOPBACK,
                "pagination": {"type": "cursor", "cursorPath": "meta.next",
                               "cursorParam": "cursor"}}},
            {"name": "to-csv", "csv": {"fileName": "customers.csv", "dataset": "customers"}},
            {"name": "post", "webhook": {"url": hook_server.url("/hook"), "credentialsId": "hook",
                                         "sendFile": True, "allowHosts": LOOPBACK}},
            {"name": "tell", "notify": {"when": ["success"], "webhook": {
                "url": hook_server.url("/hook"), "credentialsId": "hook",
                "allowHosts": LOOPBACK}}},
        ]},
    }
    settings = Settings(artifact_dir=tmp_path / "staging", work_dir=tmp_path / "work",
                        credentials_dir=creds, retry_base_delay=0.05, batch_rows=3)
    st = await execute(doc, settings)
    assert st["phase"] == "Succeeded", st
    assert st["rows"] >= 7
    posted, told = hook_server.hooks
    assert posted.verified and told.verified
    lines = posted.file.decode().splitlines()  # type: ignore[union-attr]
    assert lines[0] == "id,name,amount" and len(lines) == 8
    assert lines[1] == "1,customer 1,1.5" and lines[5] == "5,customer 5,"
    assert told.json["outcome"] == "success"
    assert [a["name"] for a in told.json["artifacts"]] == ["customers.csv"]
    assert told.json["report"]["namespace"] == "team-a"
    delivered = {a["step"]: a for a in st["artifacts"]}
    assert delivered["post"]["location"] == hook_server.url("/").rstrip("/")


async def test_webhook_example_against_the_reference_receiver(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch
                                                              ) -> None:
    """examples/webhook-report.yaml, run whole, posting to examples/webhook_receiver.py."""
    import yaml
    from aiohttp import web

    from support.servers import free_port
    from unit.workers.test_example import load_maker

    receiver = _load_example_module("webhook_receiver")
    secret = b"dev-secret"
    app = receiver.make_app(secret, tmp_path / "inbox")
    (tmp_path / "inbox").mkdir()
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        doc = yaml.safe_load((ROOT / "examples" / "webhook-report.yaml").read_text())
        steps = {s["name"]: s for s in doc["spec"]["steps"]}
        steps["collect"]["sqlite"]["database"] = str(
            load_maker().build(tmp_path / "sales.db", rows=500))
        for hook in (steps["post"]["webhook"], steps["tell"]["notify"]["webhook"]):
            hook["url"] = hook["url"].replace(":8765", f":{port}")
        creds = tmp_path / "credentials"
        (creds / "hook").mkdir(parents=True)
        (creds / "hook" / "hmac-secret").write_bytes(secret + b"\n")
        settings = Settings(artifact_dir=tmp_path / "staging", work_dir=tmp_path / "work",
                            credentials_dir=creds, retry_base_delay=0.05)
        st = await execute(doc, settings)
        assert st["phase"] == "Succeeded", st
        got = app[receiver.RECEIVED]
        assert [g["path"] for g in got] == ["/reports", "/notifications"]
        csv_bytes = (tmp_path / "inbox" / "sales_by_region.csv").read_bytes()
        assert got[0]["bytes"] == len(csv_bytes) and csv_bytes.startswith(b"region,orders,revenue")
        assert got[0]["payload"]["artifact"]["sha256"] == hashlib.sha256(csv_bytes).hexdigest()
        assert got[1]["payload"]["outcome"] == "success"
    finally:
        await runner.cleanup()


async def test_http_example_against_a_local_stand_in(tmp_path: Path, api_server: ApiServer) -> None:
    """examples/http-report.yaml, run whole, with its public API replaced by a local one that
    pages the same way (the example itself needs internet access)."""
    import yaml

    doc = yaml.safe_load((ROOT / "examples" / "http-report.yaml").read_text())
    steps = {s["name"]: s for s in doc["spec"]["steps"]}
    steps["collect"]["http"]["url"] = api_server.url("/posts")
    steps["collect"]["http"]["allowHosts"] = LOOPBACK
    steps["deliver"]["local"]["path"] = str(tmp_path / "out")
    settings = Settings(artifact_dir=tmp_path / "staging", work_dir=tmp_path / "work",
                        credentials_dir=tmp_path / "credentials", retry_base_delay=0.05)
    st = await execute(doc, settings)
    assert st["phase"] == "Succeeded", st
    lines = (tmp_path / "out" / "posts.csv").read_text().splitlines()
    assert lines[0] == "id,userId,title" and len(lines) == 101 and lines[100] == "100,10,post 100"
    pages = [s.query.get("_page") for s in api_server.requests("/posts")]
    assert pages == ["1", "2", "3", "4", "5"]  # 4 pages of 25, then an empty one


ROOT = Path(__file__).resolve().parents[2]


def _load_example_module(name: str) -> Any:
    return load_module(ROOT / "examples" / f"{name}.py", name)


async def test_failed_report_notifies_through_the_runtime(tmp_path: Path, api_server: ApiServer,
                                                          hook_server: HookServer) -> None:
    """A collector that gets 404 fails the report; the runtime publishes the notifier's job with
    `failure` set, and the notifier posts the failure (its `when` lists only failure)."""
    import asyncio
    import uuid

    from goreports.core import compiler
    from goreports.core.bus.memory import MemoryBus
    from goreports.core.keys import Keys
    from goreports.workers import registry
    from goreports.core.artifacts import LocalArtifactStore
    from goreports.core.credentials import CredentialStore
    from goreports.workers.runtime import Worker

    creds = tmp_path / "credentials"
    hook_server.write_credentials(creds)
    doc = {"metadata": {"name": "broken", "namespace": "team-b"}, "spec": {"steps": [
        {"name": "collect", "http": {"dataset": "rows", "url": api_server.url("/missing"),
                                     "allowHosts": LOOPBACK}},
        {"name": "to-csv", "csv": {"fileName": "rows.csv", "dataset": "rows"}},
        {"name": "post", "webhook": {"url": hook_server.url("/hook"), "credentialsId": "hook",
                                     "allowHosts": LOOPBACK}},
        {"name": "tell", "notify": {"when": ["failure"], "webhook": {
            "url": hook_server.url("/hook"), "credentialsId": "hook", "allowHosts": LOOPBACK}}},
    ]}}
    settings = Settings(artifact_dir=tmp_path / "staging", work_dir=tmp_path / "work",
                        credentials_dir=creds, retry_base_delay=0.05)
    head = compiler.compile_report(doc, uid=str(uuid.uuid4()), trace_id="trace-fail")
    registry.load_builtin_stages()
    bus = MemoryBus(Keys(settings.prefix), settings.report_ttl)
    chain = compiler.iter_chain(head)
    worker = Worker(bus=bus, settings=settings, patterns=sorted({j.pattern for j in chain}),
                    artifacts=LocalArtifactStore(settings.artifact_dir),
                    credentials=CredentialStore(creds), concurrency=8, block_ms=50)
    stop = asyncio.Event()
    runner = asyncio.create_task(worker.run(stop))
    try:
        await bus.publish(head)
        deadline = time.monotonic() + 60
        while not hook_server.hooks and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        await runner
    [hook] = hook_server.hooks  # only the notification: the webhook step never ran
    assert hook.verified
    body = hook.json
    assert body["outcome"] == "failure" and body["traceId"] == "trace-fail"
    assert body["error"].startswith("collect: ") and "HTTP 404" in body["error"]
    assert body["report"]["namespace"] == "team-b" and body["step"] == "tell"
