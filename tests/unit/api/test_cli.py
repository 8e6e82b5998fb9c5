"""`goreports token issue|verify` and `goreports api --print-openapi`, through their parsers."""
from __future__ import annotations

import argparse
import io
import json
import sys

import pytest

from goreports.api.auth import AuthConfig, verify_token
from goreports.cli import api as api_cmd
from goreports.cli import token as token_cmd

SECRET = "cli-test-secret-0123456789abcdef0123456789"


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    parser = argparse.ArgumentParser(prog="goreports")
    sub = parser.add_subparsers(dest="command", required=True)
    api_cmd.add_parser(sub)
    token_cmd.add_parser(sub)
    args = parser.parse_args(argv)
    code = int(args.func(args) or 0)
    out, err = capsys.readouterr()
    return code, out, err


def test_issue_prints_only_a_token_that_the_api_accepts(monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("JWT_SECRET_KEY", SECRET)
    code, out, err = run(["token", "issue", "--sub", "billing", "--namespaces", "team-a,team-b",
                          "--tenant", "acme"], capsys)
    assert code == 0 and err == "" and out.count("\n") == 1
    caller = verify_token(AuthConfig(secret_key=SECRET), out.strip())
    assert (caller.subject, caller.namespaces, caller.tenant) == ("billing", ("team-a", "team-b"), "acme")


def test_refresh_tokens_and_verify(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("JWT_SECRET_KEY", SECRET)
    _, refresh, _ = run(["token", "issue", "--sub", "ops", "--namespaces", "*", "--refresh", "--hours", "1"], capsys)
    code, out, _ = run(["token", "verify", "--refresh", refresh.strip()], capsys)
    claims = json.loads(out)
    assert code == 0 and claims["typ"] == "refresh" and claims["exp"] - claims["iat"] == 3600
    monkeypatch.setattr(sys, "stdin", io.StringIO(refresh))
    code, _, err = run(["token", "verify"], capsys)  # as an access token: refused
    assert code == 1 and "WrongTokenType" in err and refresh.strip() not in err


def test_without_a_key_nothing_is_issued(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("JWT_SECRET_KEY", raising=False)
    code, out, err = run(["token", "issue", "--sub", "x", "--namespaces", "a"], capsys)
    assert (code, out) == (2, "") and "JWT_SECRET_KEY" in err
    monkeypatch.setenv("JWT_SECRET_KEY", SECRET)
    code, out, err = run(["token", "issue", "--sub", "x", "--namespaces", "Not Valid"], capsys)
    assert (code, out) == (2, "") and "namespace" in err


def test_api_prints_its_openapi_document(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["api", "--print-openapi"], capsys)
    doc = json.loads(out)
    assert code == 0 and doc["openapi"].startswith("3.1") and "/v1/namespaces/{namespace}/reports" in doc["paths"]


def test_api_refuses_to_start_without_a_key(monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("JWT_SECRET_KEY", "tiny-key")
    code, _, err = run(["api", "--http-port", "1", "--grpc-port", "2"], capsys)
    assert code == 2 and "32 bytes" in err and "tiny-key" not in err
