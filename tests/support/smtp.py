"""An aiosmtpd server on a free loopback port that keeps every message it accepts.

Three flavours: plain (no TLS, no AUTH), STARTTLS with AUTH required, and implicit TLS (SMTPS)
with AUTH required. TLS uses a throw-away CA and a server certificate for 127.0.0.1/localhost
made with `cryptography`; the CA is written as `ca.crt` into the credentials folder beside
`username` and `password`, the way the chart mounts a Secret. A handler can be told to answer
the next messages with an error code (`fail_with`).
"""
from __future__ import annotations

import datetime as dt
import email
import email.policy
import ipaddress
import shutil
import ssl
import tempfile
import warnings
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any, Iterator

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from support.servers import free_port

USERNAME = "reports"
PASSWORD = "s3cret-smtp-pass"
CREDENTIALS_ID = "smtp"


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    raw: bytes

    @property
    def message(self) -> EmailMessage:
        parse = email.message_from_bytes  # with the default policy: an EmailMessage
        return parse(self.raw, policy=email.policy.default)  # type: ignore[return-value]


@dataclass
class Collector:
    """aiosmtpd handler: keeps messages; answers with queued error codes first."""

    messages: list[Received] = field(default_factory=list)
    fail_with: list[str] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.fail_with:
            return self.fail_with.pop(0)
        self.messages.append(Received(envelope.mail_from, list(envelope.rcpt_tos),
                                      envelope.original_content or envelope.content))
        return "250 Message accepted for delivery"


def _authenticate(server: Any, session: Any, envelope: Any, mechanism: str,
                  auth_data: Any) -> AuthResult:
    ok = (isinstance(auth_data, LoginPassword) and auth_data.login == USERNAME.encode()
          and auth_data.password == PASSWORD.encode())
    return AuthResult(success=ok, handled=False, auth_data=auth_data)


def make_certificates(folder: Path) -> tuple[Path, Path, Path]:
    """(ca.crt, server.crt, server.key): a CA and a server certificate for 127.0.0.1."""
    now = dt.datetime.now(dt.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "goreports test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - dt.timedelta(minutes=5))
          .not_valid_after(now + dt.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False,
                                       data_encipherment=False, key_agreement=False,
                                       encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()),
                         critical=False)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
            .issuer_name(ca_name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([
                x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                           critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    folder.mkdir(parents=True, exist_ok=True)
    paths = (folder / "ca.crt", folder / "server.crt", folder / "server.key")
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return paths


@dataclass
class SmtpServer:
    security: str = "none"  # none | starttls | ssl
    port: int = field(default_factory=free_port)
    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="goreports-smtp-")))
    handler: Collector = field(default_factory=Collector)
    controller: Controller | None = None

    host = "127.0.0.1"

    @property
    def messages(self) -> list[Received]:
        return self.handler.messages

    @property
    def credentials_dir(self) -> Path:
        """Folder of credentials folders; `smtp/` holds username, password and ca.crt."""
        return self.root / "credentials"

    def start(self) -> "SmtpServer":
        kwargs: dict[str, Any] = {}
        if self.security != "none":
            ca, cert, key = make_certificates(self.root / "tls")
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(cert, key)
            creds = self.credentials_dir / CREDENTIALS_ID
            creds.mkdir(parents=True)
            (creds / "username").write_text(USERNAME + "\n")
            (creds / "password").write_text(PASSWORD + "\n")
            shutil.copy(ca, creds / "ca.crt")
            kwargs.update(authenticator=_authenticate, auth_required=True)
            if self.security == "starttls":
                kwargs.update(tls_context=context, require_starttls=True, auth_require_tls=True)
            else:  # implicit TLS: the whole connection is TLS, aiosmtpd need not check
                kwargs.update(ssl_context=context, auth_require_tls=False)
        for attempt in range(5):
            with warnings.catch_warnings():
                # aiosmtpd warns about AUTH without STARTTLS; with implicit TLS there is no
                # clear text (tests of that server filter the same warning on each connection)
                warnings.simplefilter("ignore", UserWarning)
                self.controller = Controller(self.handler, hostname=self.host, port=self.port,
                                             ready_timeout=60, **kwargs)
            try:
                self.controller.start()
                return self
            except OSError:  # the free port was taken before the bind: another one
                self.controller = None
                if attempt == 4:
                    raise
                self.port = free_port()
        raise AssertionError("unreachable")

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None
        shutil.rmtree(self.root, ignore_errors=True)


def _serve(security: str) -> Iterator[SmtpServer]:
    server = SmtpServer(security=security).start()
    yield server
    server.stop()


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    """Plain SMTP, no AUTH (a relay inside the cluster)."""
    yield from _serve("none")


@pytest.fixture
def smtp_starttls_server() -> Iterator[SmtpServer]:
    """STARTTLS required, AUTH LOGIN/PLAIN required after it."""
    yield from _serve("starttls")


@pytest.fixture
def smtp_ssl_server() -> Iterator[SmtpServer]:
    """Implicit TLS (SMTPS), AUTH required."""
    yield from _serve("ssl")
