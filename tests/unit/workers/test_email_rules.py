"""The e-mail dispatcher's pure rules: addresses, one-line subjects, plain-text templates, the
attachment budget, the message itself (no header injection) and SMTP error classification."""
from __future__ import annotations

import email
import email.policy
import smtplib
import ssl

import pytest

from goreports.core.errors import PermanentError, TemporaryError
from goreports.proto import events_pb2, job_pb2
from goreports.workers.dispatchers import _mail

REPORT = job_pb2.ReportRef(namespace="sales", name="monthly", uid="3f1c-uid")


def art(name: str, size: int, **kw: str) -> events_pb2.Artifact:
    return events_pb2.Artifact(name=name, size=size, sha256="ab" * 32, content_type="text/csv",
                               location=f"s3://staging/{name}", **kw)


# -- addresses ----------------------------------------------------------------------------------

@pytest.mark.parametrize("text", ["a@x.io\r\nBcc: evil@x", "a@x.io\nBcc: evil@x",
                                  "a@x.io, evil@x", "Ann <a@x.io> evil@x", "a@b@c", "nobody",
                                  "", "a@x.io\x00", "a@x.io\u2028Bcc: evil@x"])
def test_an_address_that_is_not_exactly_one_address_is_refused(text: str) -> None:
    with pytest.raises(PermanentError) as e:
        _mail.parse_address(text, "to")
    assert e.value.reason == "InvalidRecipient"


def test_addresses_with_display_names_and_unique_envelope() -> None:
    ann = _mail.parse_address("Ann Example <ann@x.io>", "to")
    assert (ann.display_name, ann.addr_spec) == ("Ann Example", "ann@x.io")
    bob = _mail.parse_address("bob@x.io", "cc")
    assert _mail.envelope_recipients([ann, bob], [bob]) == ["ann@x.io", "bob@x.io"]


# -- templates ----------------------------------------------------------------------------------

def test_single_line_flattens_every_line_break() -> None:
    assert _mail.single_line("a\r\nBcc: evil@x\n\tb\u2028c\x85d") == "a Bcc: evil@x b c d"
    long = _mail.single_line("x" * 2000)
    assert len(long) == _mail.SUBJECT_MAX and long.endswith("…")


def test_templates_render_plain_text_without_html_escaping() -> None:
    model = _mail.model(job_pb2.ReportRef(name="A & <B>", namespace="n", uid="u"), "mail", [])
    assert _mail.render("{{report.name}} / {{{report.name}}} / {{report.step}}", model,
                        "body") == "A & <B> / A & <B> / mail"


@pytest.mark.parametrize("template, match", [
    ("{{> /etc/passwd}}", "partial"),
    ("{{report.__class__}}", "'_'"),
    ("{{#_private}}x{{/_private}}", "'_'"),
    ("{{#report}}unclosed", "does not parse"),
])
def test_templates_refuse_partials_private_keys_and_garbage(template: str, match: str) -> None:
    with pytest.raises(PermanentError, match=match) as e:
        _mail.render(template, {"report": {}}, "subject")
    assert e.value.reason == "TemplateInvalid"


def test_default_body_lists_attachments_and_links() -> None:
    entries = _mail.plan([art("small.csv", 10), art("big.xlsx", 100)], 50,
                         "https://files.x.io/r/")
    body = _mail.render(_mail.DEFAULT_BODY, _mail.model(REPORT, "mail", entries), "body")
    assert "Report monthly in namespace sales (uid 3f1c-uid) is ready." in body
    assert "- small.csv (10 bytes, sha256 " in body
    assert "- big.xlsx (100 bytes, sha256 " + "ab" * 32 + "): https://files.x.io/r/big.xlsx" in body
    assert _mail.with_links(body, entries) == body  # every link is shown already


# -- attachments and links ----------------------------------------------------------------------

def test_attachments_fill_the_budget_in_order_and_the_rest_become_links() -> None:
    entries = _mail.plan([art("a.csv", 40), art("b.csv", 70), art("c.csv", 60)], 100, "")
    assert [(e.artifact.name, e.attached) for e in entries] == [
        ("a.csv", True), ("b.csv", False), ("c.csv", True)]
    assert entries[1].link == "s3://staging/b.csv"  # no base URL: the location
    presigned = _mail.plan([art("d.csv", 5, url="https://s3/presigned")], 1, "")
    assert presigned[0].link == "https://s3/presigned"
    quoted = _mail.plan([art("sales report #1.csv", 5)], 0 + 1, "https://dl.x.io/?f=")
    assert quoted[0].link == "https://dl.x.io/?f=sales%20report%20%231.csv"


def test_attach_limit_default_and_ceiling() -> None:
    assert _mail.attach_limit(0) == _mail.DEFAULT_ATTACH_LIMIT
    assert _mail.attach_limit(1) == 1
    assert _mail.attach_limit(10**12) == _mail.MAX_ATTACH_LIMIT


def test_a_custom_body_without_links_gets_them_appended() -> None:
    entries = _mail.plan([art("big.xlsx", 100)], 10, "https://files.x.io/")
    body = _mail.with_links("Hello team.\n", entries)
    assert body.startswith("Hello team.\n\nToo large to attach; download:\n")
    assert "https://files.x.io/big.xlsx" in body


# -- the message --------------------------------------------------------------------------------

def _message(subject: str, **kw: object) -> bytes:
    sender = _mail.parse_address("Reports <reports@x.io>", "from")
    msg = _mail.build_message(
        from_addr=sender, to=[_mail.parse_address("ann@x.io", "to")],
        cc=[_mail.parse_address("bob@y.io", "cc")], subject=subject, body="body text\n",
        msg_id=_mail.message_id(REPORT.uid, "mail", "", sender), report=REPORT,
        **kw)  # type: ignore[arg-type]
    return msg.as_bytes()


def test_data_in_the_subject_cannot_add_a_header() -> None:
    evil = job_pb2.ReportRef(namespace="sales", name="monthly\r\nBcc: evil@x", uid="u")
    model = _mail.model(evil, "mail", [])
    subject = _mail.single_line(_mail.render("Report {{report.name}}", model, "subject"))
    raw = _message(subject)
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    assert parsed["Bcc"] is None
    assert parsed["Subject"] == "Report monthly Bcc: evil@x"
    assert b"\nBcc:" not in raw and b"\r\nBcc:" not in raw
    assert [k for k in parsed.keys()].count("Subject") == 1


def test_the_message_policy_refuses_a_line_break_in_a_header() -> None:
    # Belt and braces: even an unsanitized value cannot reach the wire.
    with pytest.raises(PermanentError) as e:
        _message("Report\r\nBcc: evil@x")
    assert e.value.reason == "HeaderInjection"


def test_message_headers_id_and_attachments() -> None:
    raw = _message("Report monthly", attachments=[
        _mail.Attachment("data.csv", "text/csv", b"a,b\n1,2\n"),
        _mail.Attachment("blob.bin", "", b"\x00\xff" * 10)])
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    assert parsed["Message-ID"] == "<goreports.3f1c-uid.mail@x.io>"
    assert parsed["To"] == "ann@x.io" and parsed["Cc"] == "bob@y.io"
    assert parsed["Auto-Submitted"] == "auto-generated"
    assert parsed["X-GoReports-Report"] == "sales/monthly 3f1c-uid"
    parts = {p.get_filename(): p for p in parsed.iter_attachments()}
    assert parts["data.csv"].get_content_type() == "text/csv"
    assert parts["data.csv"].get_payload(decode=True) == b"a,b\n1,2\n"
    assert parts["blob.bin"].get_content_type() == "application/octet-stream"
    assert parts["blob.bin"].get_payload(decode=True) == b"\x00\xff" * 10
    assert parsed.get_body(("plain",)).get_content() == "body text\n"  # type: ignore[union-attr]


def test_message_id_is_stable_and_safe() -> None:
    sender = _mail.parse_address("reports@x.io", "from")
    a = _mail.message_id("uid 1/<x>", "send mail", "failure", sender)
    assert a == _mail.message_id("uid 1/<x>", "send mail", "failure", sender)
    assert a == "<goreports.uid-1--x-.send-mail.failure@x.io>"
    assert _mail.mail_digest(["a"], ["b", "c"]) != _mail.mail_digest(["a", "b"], ["c"])


# -- SMTP errors --------------------------------------------------------------------------------

@pytest.mark.parametrize("exc, kind, reason", [
    (smtplib.SMTPAuthenticationError(535, b"5.7.8 bad credentials"), PermanentError,
     "SmtpAuthFailed"),
    (smtplib.SMTPRecipientsRefused({"a@x.io": (550, b"no such user")}), PermanentError,
     "RecipientsRefused"),
    (smtplib.SMTPRecipientsRefused({"a@x.io": (450, b"mailbox busy")}), TemporaryError, None),
    (smtplib.SMTPSenderRefused(552, b"too big", "r@x.io"), PermanentError, "SenderRefused"),
    (smtplib.SMTPSenderRefused(451, b"later", "r@x.io"), TemporaryError, None),
    (smtplib.SMTPDataError(554, b"rejected"), PermanentError, "SmtpRefused"),
    (smtplib.SMTPDataError(451, b"try later"), TemporaryError, None),
    (smtplib.SMTPConnectError(421, b"too busy"), TemporaryError, None),
    (smtplib.SMTPServerDisconnected("gone"), TemporaryError, None),
    (ConnectionRefusedError(111, "Connection refused"), TemporaryError, None),
    (TimeoutError("timed out"), TemporaryError, None),
    (ssl.SSLCertVerificationError(1, "certificate verify failed"), PermanentError,
     "SmtpTlsFailed"),
])
def test_smtp_errors_retry_or_fail(exc: BaseException, kind: type, reason: str | None) -> None:
    err = _mail.smtp_error(exc, "smtp.x.io:587")
    assert type(err) is kind
    assert "smtp.x.io:587" in str(err)
    if reason:
        assert err.reason == reason  # type: ignore[attr-defined]


def test_smtp_errors_never_carry_the_password() -> None:
    echo = smtplib.SMTPAuthenticationError(535, b"bad password hunter2-secret for reports")
    err = _mail.smtp_error(echo, "smtp.x.io:465", secrets=["hunter2-secret"])
    assert "hunter2-secret" not in str(err) and "<redacted>" in str(err)
    assert "smtp.x.io:465" in str(err) and "username and password" in str(err)


def test_a_message_too_large_says_what_to_change() -> None:
    for exc in (smtplib.SMTPSenderRefused(552, b"5.3.4 message size exceeds limit", "r@x.io"),
                smtplib.SMTPDataError(552, b"5.3.4 message too big")):
        err = _mail.smtp_error(exc, "smtp.x.io:25")
        assert isinstance(err, PermanentError) and "lower attachLimitBytes" in str(err)
