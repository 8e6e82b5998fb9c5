"""E-mail header injection from data: CR/LF in values that reach a subject, against the real
aiosmtpd server, through real worker processes. Exactly one message arrives, to the intended
recipient only, with no injected header."""
from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from goreports.core import compiler
from security._fleet import Fleet, report, sqlite_step
from support.smtp import SmtpServer, smtp_server  # noqa: F401  (fixture)
from support.workers import wait_for

INJECT = "evil\r\nBcc: evil@x.io\r\nX-Injected: yes"


def _mail(server: SmtpServer, subject: str) -> dict[str, Any]:
    return {"to": ["ann@example.com"], "from": "reports@example.com", "subject": subject,
            "smtpHost": server.host, "smtpPort": server.port, "security": "none",
            "timeoutSeconds": 10}


def _assert_one_clean_message(server: SmtpServer) -> str:
    wait_for(lambda: server.messages, 30, what="the mail")
    [got] = server.messages
    assert got.rcpt_tos == ["ann@example.com"], got.rcpt_tos
    headers = got.raw.split(b"\r\n\r\n", 1)[0]
    assert b"\nBcc:" not in headers and b"\nX-Injected:" not in headers, headers
    msg = got.message
    assert msg["Bcc"] is None and msg["X-Injected"] is None
    subject = str(msg["Subject"])
    assert "\r" not in subject and "\n" not in subject
    return subject


async def test_a_failure_message_from_the_database_in_a_notification_subject(
        fleet: Fleet, smtp_server: SmtpServer, tmp_path: Path, record: Any) -> None:  # noqa: F811
    """The database's error text (which names a table from the query) reaches the notifier's
    subject through `{{error}}`."""
    quoted = INJECT.replace('"', '""')
    doc = report("mail-inject", sqlite_step(tmp_path / "none.db", "SELECT 1"),
                 {"name": "flat", "csv": {"fileName": "a.csv", "dataset": "rows"}},
                 {"name": "deliver", "local": {"path": str(tmp_path / "out")}},
                 {"name": "tell", "notify": {"when": ["failure"], "email": _mail(
                     smtp_server, "Failed: {{error}}")}})
    (tmp_path / "none.db").touch()
    doc["spec"]["steps"][0]["sqlite"]["queries"][0]["sql"] = f'SELECT * FROM "{quoted}"'
    out = await fleet.run(doc)
    assert out.phase == "Failed" and "evil" in out.error, out.status
    subject = _assert_one_clean_message(smtp_server)
    assert "Bcc: evil@x.io" in subject  # the text is kept, on one line
    record("e-mail header injection", "CR/LF + `Bcc:` / `X-Injected:` in a database error "
           "shown in a notification subject (`{{error}}`)",
           "exactly one message, to the listed recipient only; the subject is one line "
           f"({subject[:60]!r}…); no injected header")


async def test_a_report_name_with_crlf_in_a_dispatcher_subject(
        fleet: Fleet, smtp_server: SmtpServer, hostile_db: Path, record: Any) -> None:  # noqa: F811
    """A forged job whose report name carries CR/LF (names are DNS labels in the cluster, but a
    job on the bus is only data)."""
    doc = report("mail-name", sqlite_step(hostile_db, "SELECT id FROM hostile"),
                 {"name": "flat", "csv": {"fileName": "a.csv", "dataset": "rows"}},
                 {"name": "mail", "email": _mail(smtp_server, "Report {{report.name}}")})
    head = compiler.compile_report(doc, uid=str(uuid.uuid4()))
    for job in compiler.iter_chain(head):
        job.report.name = INJECT
    out = await fleet.run_chain(head)
    assert out.phase == "Succeeded", out.status
    subject = _assert_one_clean_message(smtp_server)
    record("e-mail header injection", "CR/LF + `Bcc:` in the report name used in a subject "
           "(`Report {{report.name}}`)",
           f"exactly one message, one recipient, subject on one line ({subject[:40]!r}…)")
