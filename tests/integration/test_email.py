"""The e-mail dispatcher against a real SMTP server (aiosmtpd on loopback): plain, STARTTLS and
implicit TLS with AUTH, attachments byte for byte, links above the limit, header injection,
exactly-once sending, SMTP errors, and a whole report that ends in a mail."""
from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path
from typing import Any

import pytest
import yaml

from goreports.core.errors import PermanentError, TemporaryError
from goreports.core.settings import Settings
from goreports.proto import job_pb2, tasks_pb2
from goreports.core.artifacts import LocalArtifactStore
from goreports.core.credentials import CredentialStore
from goreports.workers.dispatchers.email import dispatch_email, send_notification_email
from goreports.workers.stage import StageContext
from goreports.core.artifacts_s3 import S3ArtifactStore
from support.s3 import CREDENTIALS_ID as S3_CREDENTIALS_ID
from support.s3 import MotoServer, moto_server, run_report  # noqa: F401
from support.servers import free_port
from support.smtp import (CREDENTIALS_ID, PASSWORD, SmtpServer, smtp_server,  # noqa: F401
                          smtp_ssl_server, smtp_starttls_server)

from unit.workers.stagekit import UID, make_ctx

pytestmark = [pytest.mark.integration,
              # aiosmtpd warns about AUTH without STARTTLS even on an implicit-TLS server
              pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")]

ROOT = Path(__file__).resolve().parents[2]


def mail_ctx(tmp_path: Path, server: SmtpServer, step: str = "mail", bus: Any = None
             ) -> StageContext:
    ctx = make_ctx(tmp_path, step, bus=bus)
    ctx.credentials = CredentialStore(server.credentials_dir)
    return ctx


async def stage_bytes(ctx: StageContext, tmp_path: Path, name: str, data: bytes) -> None:
    src = tmp_path / f"src-{name}"
    src.write_bytes(data)
    await ctx.artifacts.put(UID, name, src)


def task(server: SmtpServer, *names: str, **kw: Any) -> tasks_pb2.EmailDispatcher:
    fields: dict[str, Any] = dict(
        to=["Ann <ann@example.com>", "bob@example.com"], cc=["archive@example.com"],
        from_address="Reports <reports@example.com>", smtp_host=server.host,
        smtp_port=server.port, security=server.security, timeout_seconds=10,
        artifacts=[{"name": n} for n in names])
    if server.security != "none":
        fields["credentials_id"] = CREDENTIALS_ID
    return tasks_pb2.EmailDispatcher(**{**fields, **kw})


def attachments(msg: Any) -> dict[str, bytes]:
    return {p.get_filename(): p.get_payload(decode=True) for p in msg.iter_attachments()}


def text(msg: Any) -> str:
    """The plain-text body as written (the wire has CRLF line ends)."""
    return str(msg.get_body(("plain",)).get_content()).replace("\r\n", "\n")


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def test_the_mail_arrives_once_with_the_artifacts_attached(
        tmp_path: Path, smtp_server: SmtpServer) -> None:
    ctx = mail_ctx(tmp_path, smtp_server)
    csv = b"region,revenue\nNorth,12.50\n"
    xlsx = bytes(range(256)) * 40
    await stage_bytes(ctx, tmp_path, "sales.csv", csv)
    await stage_bytes(ctx, tmp_path, "sales.xlsx", xlsx)
    t = task(smtp_server, "sales.csv", "sales.xlsx", subject="Sales {{report.name}}")
    result = await dispatch_email(t, ctx)
    assert [m.rcpt_tos for m in smtp_server.messages] == [
        ["ann@example.com", "bob@example.com", "archive@example.com"]]
    [got] = smtp_server.messages
    assert got.mail_from == "reports@example.com"
    msg = got.message
    assert msg["Subject"] == "Sales sales"
    assert msg["To"] == "Ann <ann@example.com>, bob@example.com"
    assert msg["Cc"] == "archive@example.com" and msg["Bcc"] is None
    assert msg["Message-ID"] == f"<goreports.{UID}.mail@example.com>"
    assert attachments(msg) == {"sales.csv": csv, "sales.xlsx": xlsx}
    body = text(msg)
    assert f"- sales.xlsx ({len(xlsx)} bytes, sha256 {sha(xlsx)})" in body
    assert [(a.name, a.sha256, a.location) for a in result.artifacts] == [
        ("sales.csv", sha(csv), "mailto:ann@example.com,bob@example.com,archive@example.com"),
        ("sales.xlsx", sha(xlsx), "mailto:ann@example.com,bob@example.com,archive@example.com")]

    # A retry of the step after the server accepted (worker died before its ack): not resent.
    again = await dispatch_email(t, mail_ctx(tmp_path, smtp_server, bus=ctx.bus))
    assert len(smtp_server.messages) == 1
    assert "already sent" in again.message


async def test_attachments_from_the_s3_staging_store(tmp_path: Path, smtp_server: SmtpServer,
                                                     moto_server: MotoServer) -> None:
    store = S3ArtifactStore(moto_server.new_bucket("mail-staging"), "staging/",
                            endpoint_url=moto_server.endpoint,
                            credentials=CredentialStore(moto_server.credentials_dir).load(
                                S3_CREDENTIALS_ID))
    ctx = mail_ctx(tmp_path, smtp_server)
    ctx.artifacts = store
    data = bytes(range(256)) * 4000
    await stage_bytes(ctx, tmp_path, "book.xlsx", data)
    await dispatch_email(task(smtp_server, "book.xlsx"), ctx)
    [got] = smtp_server.messages
    assert attachments(got.message) == {"book.xlsx": data}
    assert not ctx.work_dir.exists() or not any(ctx.work_dir.iterdir())  # download dropped


async def test_above_the_limit_a_link_is_sent_instead(tmp_path: Path,
                                                      smtp_server: SmtpServer) -> None:
    ctx = mail_ctx(tmp_path, smtp_server)
    small, big = b"s" * 1000, b"B" * 50_000
    await stage_bytes(ctx, tmp_path, "summary.html", small)
    await stage_bytes(ctx, tmp_path, "orders 2024.csv", big)
    t = task(smtp_server, "summary.html", "orders 2024.csv", attach_limit_bytes=10_000,
             link_base_url="https://files.example.com/r/",
             body="Hi {{report.name}}.\n{{#attached}}* {{name}}\n{{/attached}}")
    result = await dispatch_email(t, ctx)
    [got] = smtp_server.messages
    assert attachments(got.message) == {"summary.html": small}
    body = text(got.message)
    assert body.startswith("Hi sales.\n* summary.html\n")
    # The custom body does not show links: they are appended, so no file is lost.
    assert (f"- orders 2024.csv (50000 bytes, sha256 {sha(big)}): "
            f"https://files.example.com/r/orders%202024.csv") in body
    assert [a.url for a in result.artifacts] == [
        "", "https://files.example.com/r/orders%202024.csv"]
    assert len(got.raw) < 10_000  # the big file did not travel


async def test_data_cannot_inject_headers_or_recipients(tmp_path: Path,
                                                        smtp_server: SmtpServer) -> None:
    ctx = mail_ctx(tmp_path, smtp_server)
    ctx.job.report.CopyFrom(job_pb2.ReportRef(namespace="default",
                                              name="sales\r\nBcc: evil@x.io", uid=UID))
    await dispatch_email(task(smtp_server, subject="Report {{report.name}}",
                              body="Report {{report.name}}\r\nBcc: evil@x.io"), ctx)
    [got] = smtp_server.messages
    assert "evil@x.io" not in got.rcpt_tos
    msg = got.message
    assert msg["Bcc"] is None and msg["Subject"] == "Report sales Bcc: evil@x.io"
    header_block = got.raw.split(b"\r\n\r\n", 1)[0]
    assert b"\r\nBcc:" not in header_block and b"\nBcc:" not in header_block

    for field, value in (("to", ["ann@example.com\r\nBcc: evil@x.io"]),
                         ("cc", ["x@example.com\nBcc: evil@x.io"]),
                         ("from_address", "r@example.com\r\nBcc: evil@x.io")):
        with pytest.raises(PermanentError) as e:
            await dispatch_email(task(smtp_server, **{field: value}),
                                 mail_ctx(tmp_path, smtp_server, step=f"m-{field}"))
        assert e.value.reason == "InvalidRecipient"
    assert len(smtp_server.messages) == 1


async def test_starttls_with_auth(tmp_path: Path, smtp_starttls_server: SmtpServer) -> None:
    server = smtp_starttls_server
    ctx = mail_ctx(tmp_path, server)
    await stage_bytes(ctx, tmp_path, "a.csv", b"a\n1\n")
    await dispatch_email(task(server, "a.csv"), ctx)
    [got] = server.messages
    assert attachments(got.message) == {"a.csv": b"a\n1\n"}


async def test_implicit_tls_with_auth(tmp_path: Path, smtp_ssl_server: SmtpServer) -> None:
    server = smtp_ssl_server
    ctx = mail_ctx(tmp_path, server)
    await stage_bytes(ctx, tmp_path, "a.csv", b"a\n2\n")
    await dispatch_email(task(server, "a.csv"), ctx)
    [got] = server.messages
    assert attachments(got.message) == {"a.csv": b"a\n2\n"}


async def test_a_refused_login_fails_without_showing_the_password(
        tmp_path: Path, smtp_starttls_server: SmtpServer) -> None:
    server = smtp_starttls_server
    (server.credentials_dir / CREDENTIALS_ID / "password").write_text("wrong-password-123\n")
    with pytest.raises(PermanentError) as e:
        await dispatch_email(task(server), mail_ctx(tmp_path, server))
    assert e.value.reason == "SmtpAuthFailed"
    assert f"127.0.0.1:{server.port}" in str(e.value)
    assert "wrong-password-123" not in str(e.value) and PASSWORD not in str(e.value)
    assert server.messages == []


async def test_untrusted_certificate_and_plaintext_credentials_are_refused(
        tmp_path: Path, smtp_starttls_server: SmtpServer) -> None:
    server = smtp_starttls_server
    (server.credentials_dir / CREDENTIALS_ID / "ca.crt").unlink()  # only the system CAs now
    with pytest.raises(PermanentError) as e:
        await dispatch_email(task(server), mail_ctx(tmp_path, server))
    assert e.value.reason == "SmtpTlsFailed"
    with pytest.raises(PermanentError) as e:
        await dispatch_email(task(server, security="none"), mail_ctx(tmp_path, server))
    assert e.value.reason == "InsecureSmtpAuth"
    assert server.messages == []


async def test_starttls_is_never_skipped_when_the_server_does_not_offer_it(
        tmp_path: Path, smtp_server: SmtpServer) -> None:
    with pytest.raises(PermanentError, match="does not offer STARTTLS") as e:
        await dispatch_email(task(smtp_server, security="starttls"),
                             mail_ctx(tmp_path, smtp_server))
    assert e.value.reason == "SmtpNotSupported"
    assert smtp_server.messages == []


async def test_4xx_retries_5xx_fails_and_a_closed_port_retries(tmp_path: Path,
                                                               smtp_server: SmtpServer) -> None:
    smtp_server.handler.fail_with = ["451 4.3.0 try again later"]
    with pytest.raises(TemporaryError, match="451"):
        await dispatch_email(task(smtp_server), mail_ctx(tmp_path, smtp_server))
    await dispatch_email(task(smtp_server), mail_ctx(tmp_path, smtp_server))  # the retry
    assert len(smtp_server.messages) == 1
    smtp_server.handler.fail_with = ["554 5.7.1 message refused"]
    with pytest.raises(PermanentError, match="554") as e:
        await dispatch_email(task(smtp_server), mail_ctx(tmp_path, smtp_server, step="other"))
    assert e.value.reason == "SmtpRefused"
    closed = task(smtp_server, smtp_port=free_port())
    with pytest.raises(TemporaryError, match="unreachable"):
        await dispatch_email(closed, mail_ctx(tmp_path, smtp_server, step="third"))


async def test_notification_mail_for_the_notifier(tmp_path: Path,
                                                  smtp_ssl_server: SmtpServer) -> None:
    server = smtp_ssl_server
    ctx = mail_ctx(tmp_path, server, step="notify")
    ctx.job.failure = "collect: database down"
    t = task(server, "ignored.csv")  # attachments are not the notifier's business
    await send_notification_email(t, ctx, subject="Report sales failed\r\nBcc: evil@x.io",
                                  body="collect: database down\n")
    await send_notification_email(t, ctx, subject="Report sales failed", body="again\n")
    [got] = server.messages
    msg = got.message
    assert msg["Subject"] == "Report sales failed Bcc: evil@x.io" and msg["Bcc"] is None
    assert msg["Message-ID"] == f"<goreports.{UID}.notify.failure@example.com>"
    assert list(msg.iter_attachments()) == []
    assert text(msg) == "collect: database down\n"


async def test_a_whole_report_ends_in_one_mail(tmp_path: Path, smtp_server: SmtpServer) -> None:
    """examples/email-report.yaml (sqlite -> csv -> email) through the worker runtime."""
    doc = yaml.safe_load((ROOT / "examples" / "email-report.yaml").read_text())
    steps = {s["name"]: s for s in doc["spec"]["steps"]}
    db = tmp_path / "sales.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE t (region TEXT, revenue TEXT)")
        conn.executemany("INSERT INTO t VALUES (?, ?)", [("North", "10.50"), ("South", "7.25")])
    steps["collect"]["sqlite"].update(database=str(db), queries=[{
        "name": "sales_by_region", "sql": 'SELECT region, revenue AS "revenue [decimal]" FROM t'}])
    steps["mail"]["email"].update(smtpHost=smtp_server.host, smtpPort=smtp_server.port)
    settings = Settings(work_dir=tmp_path / "work", artifact_dir=tmp_path / "staging",
                        credentials_dir=tmp_path / "creds", retry_base_delay=0.05)
    uid, st = await run_report(doc, settings, LocalArtifactStore(settings.artifact_dir))
    assert st["phase"] == "Succeeded", st
    [got] = smtp_server.messages
    msg = got.message
    assert msg["Subject"] == "Revenue by region: sales-by-mail"
    assert msg["Message-ID"] == f"<goreports.{uid}.mail@example.com>"
    assert attachments(msg) == {"sales_by_region.csv": b"region,revenue\r\nNorth,10.50\r\n"
                                                        b"South,7.25\r\n"}
    mailed = [a for a in st["artifacts"] if a["location"].startswith("mailto:")]
    assert mailed[0]["sha256"] == sha(attachments(msg)["sales_by_region.csv"])
