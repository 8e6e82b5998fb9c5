"""The `email` dispatcher: sends a report's artifacts by SMTP (smtplib), and the plain mail the
notifier stage sends (`send_notification_email`).

Why it looks like this:
- Transport: `security` is `ssl` (implicit TLS, port 465), `starttls` (default, port 587; a
  server that does not offer STARTTLS is refused, never silently used in clear) or `none` (port
  25; refused when credentials are set, so a password never crosses the wire unencrypted).
  Certificates are verified against the system CAs, or against `ca.crt` from the credentials
  folder (a private CA). Credentials: `username`, `password`.
- Header injection cannot happen: see workers/dispatchers/_mail.py (subject on one line,
  addresses refused when they carry line breaks, EmailMessage's default policy as a backstop).
- Attachments come from the artifact store up to `attach_limit_bytes` in total (default 10
  MiB, held to 50 MiB: EmailMessage needs the bytes in memory); larger files go as links.
- Exactly once, as far as SMTP allows: SMTP cannot deduplicate, so after the server accepted
  the message a marker is set on the bus at once, before anything else, and a retry of the step
  that finds the marker does not send again. The runtime's done marker covers every later
  delivery. What remains is the window between the server's "250 OK" and that marker (a crash
  or lost Redis there means one duplicate); the stable Message-ID lets receivers drop it.
  docs/dispatchers.md says so too.
- Errors: 4xx and connection trouble retry (TemporaryError); 5xx, refused login, refused
  recipients and untrusted certificates fail the report (PermanentError), naming the server,
  never the password. The SMTP conversation runs in `asyncio.to_thread` with a socket timeout
  (`timeout_seconds`, default 30), so heartbeats continue.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import smtplib
import socket
import ssl
from dataclasses import dataclass, field
from email.headerregistry import Address
from email.message import EmailMessage
from pathlib import Path

from goreports.core.errors import PermanentError, TemporaryError
from goreports.proto import events_pb2, tasks_pb2
from goreports.core.artifacts import LocalArtifactStore, content_type_for, safe_name
from goreports.workers.dispatchers import _mail
from goreports.workers.registry import stage
from goreports.workers.stage import StageContext, StageResult


@dataclass(frozen=True)
class SmtpTarget:
    host: str
    port: int
    security: str
    timeout: float
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    ca_file: Path | None = None

    @property
    def server(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True)
class Envelope:
    from_addr: Address
    to: list[Address]
    cc: list[Address]

    @property
    def recipients(self) -> list[str]:
        return _mail.envelope_recipients(self.to, self.cc)


def _target(task: tasks_pb2.EmailDispatcher, ctx: StageContext) -> SmtpTarget:
    if not task.smtp_host:
        raise PermanentError("the email dispatcher has no smtpHost", reason="InvalidTask")
    security = task.security or "starttls"
    if security not in _mail.SECURITY:
        raise PermanentError(f"security {security!r} is not one of none, starttls, ssl",
                             reason="InvalidTask")
    username = password = None
    ca_file = None
    if task.credentials_id:
        creds = ctx.credentials.load(task.credentials_id)
        username = creds.require("username")
        password = creds.require("password")
        ca = creds.path / "ca.crt"
        ca_file = ca if ca.is_file() else None
        if security == "none":
            raise PermanentError(
                f"the email dispatcher to {task.smtp_host} has credentials but security: none; "
                f"the password would cross the network in clear (use starttls or ssl)",
                reason="InsecureSmtpAuth")
    port = int(task.smtp_port) or _mail.DEFAULT_PORTS[security]
    return SmtpTarget(host=task.smtp_host, port=port, security=security,
                      timeout=float(task.timeout_seconds or _mail.DEFAULT_TIMEOUT),
                      username=username, password=password, ca_file=ca_file)


def _envelope(task: tasks_pb2.EmailDispatcher) -> Envelope:
    if not task.to:
        raise PermanentError("the email dispatcher has no recipients (to)",
                             reason="InvalidTask")
    if not task.from_address:
        raise PermanentError("the email dispatcher has no sender (from)", reason="InvalidTask")
    return Envelope(from_addr=_mail.parse_address(task.from_address, "from"),
                    to=[_mail.parse_address(a, "to") for a in task.to],
                    cc=[_mail.parse_address(a, "cc") for a in task.cc])


def _tls_context(target: SmtpTarget) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(target.ca_file) if target.ca_file else None)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def _smtp_send(target: SmtpTarget, msg: EmailMessage, envelope: Envelope
               ) -> dict[str, tuple[int, bytes]]:
    """The whole SMTP conversation (blocking). Returns the recipients refused, if some were."""
    local = socket.gethostname() or "localhost"  # not getfqdn(): reverse DNS can stall
    smtp: smtplib.SMTP
    if target.security == "ssl":
        smtp = smtplib.SMTP_SSL(target.host, target.port, local_hostname=local,
                                timeout=target.timeout, context=_tls_context(target))
    else:
        smtp = smtplib.SMTP(target.host, target.port, local_hostname=local,
                            timeout=target.timeout)
    try:
        smtp.ehlo()
        if target.security == "starttls":
            if not smtp.has_extn("starttls"):
                raise PermanentError(f"SMTP server {target.server} does not offer STARTTLS; "
                                     f"use security: ssl, or none for a relay without TLS",
                                     reason="SmtpNotSupported")
            smtp.starttls(context=_tls_context(target))
            smtp.ehlo()
        if target.username is not None:
            smtp.login(target.username, target.password or "")
        return smtp.send_message(msg, from_addr=envelope.from_addr.addr_spec,
                                 to_addrs=envelope.recipients)
    finally:
        try:
            smtp.quit()
        except (smtplib.SMTPException, OSError):
            smtp.close()  # the message is sent or not; a failing QUIT changes nothing


def _marker(ctx: StageContext, effect: str) -> str:
    return ctx.bus.keys.marker(ctx.report.uid, f"sent:{effect}", ctx.step)


async def _already_sent(ctx: StageContext, effect: str, target: SmtpTarget) -> bool:
    """True when this step's mail was accepted by the server before (a retry after a crash)."""
    sent = await ctx.bus.get_marker(_marker(ctx, effect))
    if sent is not None:
        ctx.log.info("mail of %s was already accepted by %s (%s): not sent again", ctx.step,
                     target.server, sent)
    return sent is not None


async def _send_and_mark(ctx: StageContext, target: SmtpTarget, envelope: Envelope,
                         msg: EmailMessage, effect: str) -> None:
    """Send, then at once record that the server accepted the message."""
    try:
        refused = await asyncio.to_thread(_smtp_send, target, msg, envelope)
    except Exception as e:
        raise _mail.smtp_error(e, target.server, secrets=[target.password]) from None
    # Accepted: record it before anything else can fail (the duplicate window ends here).
    when = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    await ctx.bus.set_marker(_marker(ctx, effect), f"{msg['Message-ID']} {when}",
                             ttl=ctx.settings.report_ttl)
    if refused:
        detail = "; ".join(f"{r}: {c} {_mail.response_text(m)}" for r, (c, m) in refused.items())
        raise PermanentError(f"SMTP server {target.server} accepted the mail for "
                             f"{len(envelope.recipients) - len(refused)} recipient(s) but "
                             f"refused {detail}", reason="RecipientsRefused")


async def _attach(ctx: StageContext, msg: EmailMessage, entries: list[_mail.Entry]) -> None:
    """Add the attached artifacts to `msg`, one file in memory at a time besides the message
    (whose attachments stay within the attach limit)."""
    remote = not isinstance(ctx.artifacts, LocalArtifactStore)
    for entry in entries:
        if not entry.attached:
            continue
        a = entry.artifact
        path = await ctx.artifacts.fetch(ctx.report.uid, a.name, ctx.work_dir)
        try:
            data = await asyncio.to_thread(_read_exact, path, a.size, a.sha256)
        finally:
            if remote and path.resolve().is_relative_to(ctx.work_dir.resolve()):
                path.unlink(missing_ok=True)
        if data is None:
            # The generator ran again since `stat`: the mail must list what it attaches.
            raise TemporaryError(f"artifact {a.name!r} changed while it was being attached "
                                 f"(expected {a.size} bytes, sha256 {a.sha256[:12]}…); "
                                 f"trying again")
        attachment = _mail.Attachment(a.name, a.content_type or content_type_for(a.name), data)
        del data
        await asyncio.to_thread(_mail.add_attachment, msg, attachment)  # base64 of MBs


def _read_exact(path: Path, size: int, sha256: str) -> bytes | None:
    """The file's bytes if they are the artifact's (size and sha256), else None. Reads at most
    `size` + 1 bytes: memory is bounded by the attach limit."""
    with open(path, "rb") as f:
        data = f.read(size + 1)
    if len(data) != size or (sha256 and hashlib.sha256(data).hexdigest() != sha256):
        return None
    return data


@stage("email", channel="dispatchers", task=tasks_pb2.EmailDispatcher)
async def dispatch_email(task: tasks_pb2.EmailDispatcher, ctx: StageContext) -> StageResult:
    envelope = _envelope(task)
    target = await asyncio.to_thread(_target, task, ctx)
    staged = [await ctx.artifacts.stat(ctx.report.uid, safe_name(ref.name))
              for ref in task.artifacts]
    entries = _mail.plan(staged, _mail.attach_limit(task.attach_limit_bytes), task.link_base_url)
    model = _mail.model(ctx.report, ctx.step, entries)
    subject = _mail.single_line(_mail.render(task.subject or _mail.DEFAULT_SUBJECT, model,
                                             "subject")) or f"Report {ctx.report.name}"
    body = _mail.with_links(_mail.render(task.body or _mail.DEFAULT_BODY, model, "body"), entries)
    effect = "mail-" + _mail.mail_digest(
        [envelope.from_addr.addr_spec], envelope.recipients,
        [f"{a.name}:{a.sha256}" for a in staged])
    msg_id = _mail.message_id(ctx.report.uid, ctx.step, "", envelope.from_addr)
    sent = not await _already_sent(ctx, effect, target)
    if sent:  # attachments are read only for a mail that is really sent
        msg = _mail.build_message(from_addr=envelope.from_addr, to=envelope.to, cc=envelope.cc,
                                  subject=subject, body=body, msg_id=msg_id, report=ctx.report)
        await _attach(ctx, msg, entries)
        await _send_and_mark(ctx, target, envelope, msg, effect)
    rcpt = envelope.recipients
    location = "mailto:" + ",".join(rcpt[:10])
    delivered = [events_pb2.Artifact(name=e.artifact.name, location=location,
                                     size=e.artifact.size, sha256=e.artifact.sha256,
                                     content_type=e.artifact.content_type,
                                     url="" if e.attached else e.link)
                 for e in entries]
    attached = sum(e.attached for e in entries)
    what = "sent" if sent else "already sent"
    ctx.log.info("mail %s %s via %s to %d recipient(s): %d attached, %d as links", msg_id, what,
                 target.server, len(rcpt), attached, len(entries) - attached)
    return StageResult(artifacts=delivered,
                       message=f"mail {what} to {len(rcpt)} recipient(s) via {target.server}: "
                               f"{attached} attached, {len(entries) - attached} as links")


async def send_notification_email(task: tasks_pb2.EmailDispatcher, ctx: StageContext, *,
                                  subject: str, body: str) -> None:
    """Send one plain mail (no attachments) with the task's server, sender and recipients:
    for the notifier stage. `subject` and `body` are final text (already rendered); the subject
    is put on one line. Sent once per report step and kind (success / failure)."""
    envelope = _envelope(task)
    target = await asyncio.to_thread(_target, task, ctx)
    kind = "failure" if ctx.job.failure else "notify"
    msg = _mail.build_message(
        from_addr=envelope.from_addr, to=envelope.to, cc=envelope.cc,
        subject=_mail.single_line(subject) or f"Report {ctx.report.name}", body=body,
        msg_id=_mail.message_id(ctx.report.uid, ctx.step, kind, envelope.from_addr),
        report=ctx.report)
    effect = f"{kind}-" + _mail.mail_digest([envelope.from_addr.addr_spec], envelope.recipients)
    if not await _already_sent(ctx, effect, target):
        await _send_and_mark(ctx, target, envelope, msg, effect)
