"""The e-mail dispatcher's settings, checked before any connection: ports by security, the
credentials folder (with an optional private CA), and the refusals."""
from __future__ import annotations

from pathlib import Path

import pytest

from goreports.core.errors import PermanentError
from goreports.proto import tasks_pb2
from goreports.workers.dispatchers.email import _envelope, _target

from unit.workers.stagekit import make_ctx


def creds(tmp_path: Path, *, ca: bool = False) -> None:
    folder = tmp_path / "credentials" / "smtp"
    folder.mkdir(parents=True)
    (folder / "username").write_text("reports\n")
    (folder / "password").write_text("pw-123\n")
    if ca:
        (folder / "ca.crt").write_text("-----BEGIN CERTIFICATE-----\n")


@pytest.mark.parametrize("security, port", [("", 587), ("starttls", 587), ("ssl", 465),
                                            ("none", 25)])
def test_default_ports_by_security(tmp_path: Path, security: str, port: int) -> None:
    t = _target(tasks_pb2.EmailDispatcher(smtp_host="smtp.x.io", security=security),
                make_ctx(tmp_path, "mail"))
    assert (t.port, t.security or "", t.timeout) == (port, security or "starttls", 30.0)
    assert t.server == f"smtp.x.io:{port}" and t.username is None


def test_credentials_and_private_ca(tmp_path: Path) -> None:
    creds(tmp_path, ca=True)
    t = _target(tasks_pb2.EmailDispatcher(smtp_host="smtp.x.io", smtp_port=2525,
                                          credentials_id="smtp", timeout_seconds=5),
                make_ctx(tmp_path, "mail"))
    assert (t.username, t.password, t.port, t.timeout) == ("reports", "pw-123", 2525, 5.0)
    assert t.ca_file == tmp_path / "credentials" / "smtp" / "ca.crt"
    assert "pw-123" not in repr(t)


def test_refusals(tmp_path: Path) -> None:
    creds(tmp_path)
    ctx = make_ctx(tmp_path, "mail")
    for task, reason in [
        (tasks_pb2.EmailDispatcher(smtp_host="smtp.x.io", security="none",
                                   credentials_id="smtp"), "InsecureSmtpAuth"),
        (tasks_pb2.EmailDispatcher(smtp_host="smtp.x.io", security="tls"), "InvalidTask"),
        (tasks_pb2.EmailDispatcher(), "InvalidTask"),
        (tasks_pb2.EmailDispatcher(smtp_host="smtp.x.io", credentials_id="missing"),
         "CredentialsNotFound"),
    ]:
        with pytest.raises(PermanentError) as e:
            _target(task, ctx)
        assert e.value.reason == reason
        assert "pw-123" not in str(e.value)
    for task in [tasks_pb2.EmailDispatcher(from_address="r@x.io"),
                 tasks_pb2.EmailDispatcher(to=["a@x.io"])]:
        with pytest.raises(PermanentError) as e:
            _envelope(task)
        assert e.value.reason == "InvalidTask"


def test_envelope() -> None:
    env = _envelope(tasks_pb2.EmailDispatcher(to=["A <a@x.io>", "b@x.io"], cc=["a@x.io"],
                                              from_address="R <r@x.io>"))
    assert env.recipients == ["a@x.io", "b@x.io"] and env.from_addr.addr_spec == "r@x.io"
