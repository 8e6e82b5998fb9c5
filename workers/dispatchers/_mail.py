"""Pure rules of the e-mail dispatcher: addresses, templates, the message, and SMTP errors.

Kept apart from the stage (no sockets, no bus) so every rule is tested without a server. The name
starts with `_`: the registry does not load it as a stage.

- Header injection: every header value passes `single_line` (CR, LF and other control characters
  become spaces) or, for addresses, is refused when it holds any; and the message is an
  `email.message.EmailMessage` with the default policy, which itself refuses a header value with
  a line break. Data can never add a header (`Bcc:`) or a recipient.
- Templates: subject and body are Mustache (chevron) over the report's metadata. The mail is
  text/plain, so values are inserted as they are (HTML escaping would only garble `&`); partials
  are refused (chevron would read them from the file system) and so are keys starting with `_`.
- Attachments: artifacts are attached in order while their total stays within the limit; the
  others are sent as links (`link_base_url` + URL-quoted file name, or the artifact's URL or
  location). A body template that does not show the links gets them appended, so no file is lost.
- Message-ID: derived from the report uid and step (and the kind of mail), identical on every
  retry, so receivers and mail archives can drop a duplicate sent in the at-least-once window.
"""
from __future__ import annotations

import datetime as dt
import email.policy
import email.utils
import hashlib
import inspect
import re
import smtplib
import ssl
import urllib.parse
from dataclasses import dataclass, field
from email.headerregistry import Address
from email.message import EmailMessage
from typing import Any, Iterable, Sequence

import chevron
from chevron.tokenizer import ChevronError, tokenize

from goreports.core.errors import GoReportsError, PermanentError, TemporaryError
from goreports.proto import events_pb2, job_pb2

MiB = 1 << 20
DEFAULT_ATTACH_LIMIT = 10 * MiB
# Attachments are held in memory (EmailMessage needs bytes, base64 adds a third): whatever the
# task asks, no more than this is attached; the rest goes as links.
MAX_ATTACH_LIMIT = 50 * MiB
DEFAULT_TIMEOUT = 30.0
SECURITY = ("none", "starttls", "ssl")
DEFAULT_PORTS = {"none": 25, "starttls": 587, "ssl": 465}
SUBJECT_MAX = 900  # RFC 5322 lines are at most 998 characters, "Subject: " included

DEFAULT_SUBJECT = "Report {{report.name}} ({{report.namespace}})"
DEFAULT_BODY = """\
Report {{report.name}} in namespace {{report.namespace}} (uid {{report.uid}}) is ready.
{{#has_attachments}}

Attached:
{{#attached}}
- {{name}} ({{size}} bytes, sha256 {{sha256}})
{{/attached}}
{{/has_attachments}}
{{#has_links}}

Too large to attach; download:
{{#links}}
- {{name}} ({{size}} bytes, sha256 {{sha256}}): {{link}}
{{/links}}
{{/has_links}}
"""

_CONTROL = re.compile(r"[\x00-\x1f\x7f\x85\u2028\u2029]")
_SPACES = re.compile(r"\s+")
_ID_UNSAFE = re.compile(r"[^A-Za-z0-9.-]")
# Python releases with the CVE-2023-27043 fix parse strictly only when asked.
_STRICT = {"strict": True} if "strict" in inspect.signature(email.utils.getaddresses).parameters \
    else {}


def _invalid(message: str, reason: str = "InvalidTask") -> PermanentError:
    return PermanentError(message, reason=reason)


# -- addresses ----------------------------------------------------------------------------------

def parse_address(text: str, what: str) -> Address:
    """One address (`a@x.io` or `Name <a@x.io>`); refused when it could smuggle a header."""
    if not text or _CONTROL.search(text):
        raise _invalid(f"{what} {text!r} is not a single e-mail address (line breaks or control "
                       f"characters are refused)", reason="InvalidRecipient")
    found = email.utils.getaddresses([text], **_STRICT)
    name, addr = found[0] if len(found) == 1 else ("", "")
    if not addr or addr.count("@") != 1 or "," in addr:
        raise _invalid(f"{what} {text!r} is not a single e-mail address",
                       reason="InvalidRecipient")
    try:
        return Address(display_name=name, addr_spec=addr)
    except (ValueError, IndexError) as e:
        raise _invalid(f"{what} {text!r} is not a valid e-mail address: {e}",
                       reason="InvalidRecipient") from None


def envelope_recipients(to: Sequence[Address], cc: Sequence[Address]) -> list[str]:
    """Unique envelope recipients in order (To first, then Cc)."""
    seen: dict[str, None] = {}
    for a in (*to, *cc):
        seen.setdefault(a.addr_spec, None)
    return list(seen)


# -- templates ----------------------------------------------------------------------------------

def single_line(text: str, limit: int = SUBJECT_MAX) -> str:
    """A header-safe one-line text: control characters (CR, LF, ...) become spaces."""
    line = _SPACES.sub(" ", _CONTROL.sub(" ", text)).strip()
    return line if len(line) <= limit else line[: limit - 1].rstrip() + "…"


def render(template: str, model: dict[str, Any], what: str) -> str:
    """Render Mustache as plain text (no HTML escaping); refuse partials and `_` keys."""
    try:
        tokens = list(tokenize(template))
    except ChevronError as e:
        raise _invalid(f"e-mail {what} template does not parse: {e}".replace("\n", " "),
                       reason="TemplateInvalid") from None
    plain: list[tuple[str, str]] = []
    for kind, key in tokens:
        if kind == "partial":
            raise _invalid(f"e-mail {what} template uses the partial {key.strip()!r}; partials "
                           f"are not available in e-mail templates", reason="TemplateInvalid")
        if kind in {"variable", "no escape", "section", "inverted section"} and \
                any(part.startswith("_") for part in key.strip().split(".")):
            raise _invalid(f"e-mail {what} template names {key.strip()!r}: keys starting with "
                           f"'_' are not part of the data model", reason="TemplateInvalid")
        plain.append(("no escape", key) if kind == "variable" else (kind, key))
    return str(chevron.render(plain, model))


# -- attachments and links ----------------------------------------------------------------------

@dataclass
class Entry:
    """One artifact in a mail: attached, or sent as a link."""

    artifact: events_pb2.Artifact
    attached: bool
    link: str = ""

    def model(self) -> dict[str, Any]:
        a = self.artifact
        return {"name": a.name, "size": int(a.size), "sha256": a.sha256,
                "content_type": a.content_type, "location": a.location, "url": a.url,
                "attached": self.attached, "link": self.link}


def attach_limit(requested: int) -> int:
    """0 (unset) means the default; more than MAX_ATTACH_LIMIT is held to it."""
    return min(int(requested) or DEFAULT_ATTACH_LIMIT, MAX_ATTACH_LIMIT)


def link_for(artifact: events_pb2.Artifact, link_base_url: str) -> str:
    if link_base_url:
        return link_base_url + urllib.parse.quote(artifact.name)
    return artifact.url or artifact.location


def plan(artifacts: Iterable[events_pb2.Artifact], limit: int, link_base_url: str
         ) -> list[Entry]:
    """Attach in order while the total stays within `limit`; the rest become links."""
    entries = []
    budget = limit
    for a in artifacts:
        if a.size <= budget:
            budget -= a.size
            entries.append(Entry(a, attached=True))
        else:
            entries.append(Entry(a, attached=False, link=link_for(a, link_base_url)))
    return entries


def model(report: job_pb2.ReportRef, step: str, entries: Sequence[Entry]) -> dict[str, Any]:
    """What subject and body templates see (also in docs/dispatchers.md)."""
    items = [e.model() for e in entries]
    attached = [i for i in items if i["attached"]]
    links = [i for i in items if not i["attached"]]
    return {
        "report": {"name": report.name, "namespace": report.namespace, "uid": report.uid,
                   "step": step},
        "artifacts": items, "attached": attached, "links": links,
        "has_attachments": bool(attached), "has_links": bool(links),
    }


def with_links(body: str, entries: Sequence[Entry]) -> str:
    """The body, plus a list of the links it does not show yet."""
    missing = [e for e in entries if not e.attached and e.link not in body]
    if not missing:
        return body
    lines = [f"- {e.artifact.name} ({e.artifact.size} bytes, sha256 {e.artifact.sha256}): "
             f"{e.link}" for e in missing]
    return body.rstrip("\n") + "\n\nToo large to attach; download:\n" + "\n".join(lines) + "\n"


# -- the message --------------------------------------------------------------------------------

def message_id(uid: str, step: str, kind: str, from_addr: Address) -> str:
    """The same Message-ID for every attempt of one report step (receivers can deduplicate)."""
    domain = _ID_UNSAFE.sub("-", from_addr.domain or "") or "goreports.invalid"
    local = ".".join(_ID_UNSAFE.sub("-", p) for p in ("goreports", uid, step, kind) if p)
    return f"<{local}@{domain}>"


def mail_digest(*parts: Iterable[str]) -> str:
    """A short stable hash of what makes a mail this mail (recipients, files)."""
    h = hashlib.sha256()
    for part in parts:
        for item in part:
            h.update(item.encode())
            h.update(b"\x00")
        h.update(b"\x01")
    return h.hexdigest()[:24]


@dataclass
class Attachment:
    name: str
    content_type: str
    data: bytes = field(repr=False)


def build_message(*, from_addr: Address, to: Sequence[Address], cc: Sequence[Address],
                  subject: str, body: str, msg_id: str, report: job_pb2.ReportRef,
                  attachments: Sequence[Attachment] = (),
                  date: dt.datetime | None = None) -> EmailMessage:
    """The message; header values with line breaks are refused by the policy itself."""
    msg = EmailMessage(policy=email.policy.default)
    try:
        msg["From"] = from_addr
        msg["To"] = tuple(to)
        if cc:
            msg["Cc"] = tuple(cc)
        msg["Subject"] = subject
        msg["Date"] = email.utils.format_datetime(date or dt.datetime.now(dt.timezone.utc))
        msg["Message-ID"] = msg_id
        # RFC 3834: automatic mail; vacation responders stay quiet.
        msg["Auto-Submitted"] = "auto-generated"
        msg["X-GoReports-Report"] = single_line(f"{report.namespace}/{report.name} {report.uid}")
    except ValueError as e:
        raise _invalid(f"e-mail header refused: {e}", reason="HeaderInjection") from None
    msg.set_content(body)
    for a in attachments:
        add_attachment(msg, a)
    return msg


def add_attachment(msg: EmailMessage, a: Attachment) -> None:
    maintype, _, subtype = a.content_type.partition("/")
    if not maintype or not subtype or "/" in subtype:
        maintype, subtype = "application", "octet-stream"
    msg.add_attachment(a.data, maintype=maintype, subtype=subtype, filename=a.name)


# -- SMTP errors --------------------------------------------------------------------------------

def response_text(raw: bytes | str) -> str:
    s = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
    return single_line(s, 300)


def redact(text: str, secrets: Iterable[str | None]) -> str:
    for secret in secrets:
        if secret and len(secret) >= 3:
            text = text.replace(secret, "<redacted>")
    return text


def smtp_error(e: BaseException, server: str, *, secrets: Iterable[str | None] = ()
               ) -> GoReportsError:
    """Retry (4xx, connection trouble) or fail (5xx, refused auth, bad TLS), naming the server,
    never a password."""
    if isinstance(e, GoReportsError):
        return e
    secret_list = list(secrets)

    def clean(message: str) -> str:
        return redact(message, secret_list)

    if isinstance(e, smtplib.SMTPAuthenticationError):
        return PermanentError(clean(f"SMTP server {server} refused the login ({e.smtp_code} "
                                    f"{response_text(e.smtp_error)}); check the credentials' "
                                    f"username and password"), reason="SmtpAuthFailed")
    if isinstance(e, smtplib.SMTPNotSupportedError):
        return PermanentError(clean(f"SMTP server {server}: {e}"), reason="SmtpNotSupported")
    if isinstance(e, smtplib.SMTPRecipientsRefused):
        codes = {rcpt: code for rcpt, (code, _) in e.recipients.items()}
        detail = "; ".join(f"{r}: {c} {response_text(m)}"
                           for r, (c, m) in e.recipients.items())
        if codes and all(400 <= c < 500 for c in codes.values()):
            return TemporaryError(clean(f"SMTP server {server} deferred every recipient "
                                        f"({detail})"))
        return PermanentError(clean(f"SMTP server {server} refused every recipient ({detail})"),
                              reason="RecipientsRefused")
    # 552: storage or size limit exceeded (at MAIL FROM with SIZE, or at the end of DATA).
    too_big = "; if the message is too large, lower attachLimitBytes"
    if isinstance(e, smtplib.SMTPSenderRefused):
        what = f"refused the sender {e.sender} ({e.smtp_code} {response_text(e.smtp_error)})"
        if 400 <= e.smtp_code < 500:
            return TemporaryError(clean(f"SMTP server {server} {what}"))
        hint = too_big if e.smtp_code == 552 else ""
        return PermanentError(clean(f"SMTP server {server} {what}{hint}"),
                              reason="SenderRefused")
    if isinstance(e, smtplib.SMTPResponseException):
        what = f"SMTP server {server} answered {e.smtp_code} {response_text(e.smtp_error)}"
        if 500 <= e.smtp_code < 600:
            hint = too_big if e.smtp_code == 552 else ""
            return PermanentError(clean(what + hint), reason="SmtpRefused")
        return TemporaryError(clean(what))
    if isinstance(e, ssl.SSLCertVerificationError):
        why = getattr(e, "verify_message", "") or e
        return PermanentError(f"SMTP server {server}: TLS certificate not trusted ({why}); give "
                              f"the CA as `ca.crt` in the credentials, or fix the host name",
                              reason="SmtpTlsFailed")
    if isinstance(e, (smtplib.SMTPException, OSError)):  # disconnects, timeouts, refused
        return TemporaryError(clean(f"SMTP server {server} unreachable or hung up: "
                                    f"{type(e).__name__}: {e}"))
    return TemporaryError(clean(f"sending mail via {server} failed: {type(e).__name__}: {e}"))
