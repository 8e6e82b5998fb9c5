"""SSRF and oversized responses: the http collector and the webhook dispatcher, in whole reports
on real worker processes, aimed at loopback, link-local, private and cluster-internal targets.

A live server listens on loopback during these tests (the paged API of support.httpd), so a
refusal is the guard's doing, not a closed port's. No allowHosts is set, and the worker's
GOREPORTS_HTTP_ALLOW_HOSTS is empty.
"""
from __future__ import annotations

import ipaddress
import socket
from pathlib import Path
from typing import Any

import pytest

from security._fleet import Fleet, report, sqlite_step
from support.httpd import ApiServer, HookServer, api_server, hook_server  # noqa: F401

# (label, URL template; {port} = the live loopback server's port, {host} = this machine's name)
TARGETS = [
    ("loopback IPv4", "http://127.0.0.1:{port}/page"),
    ("loopback IPv6", "http://[::1]:{port}/page"),
    ("loopback, decimal form", "http://2130706433:{port}/page"),
    ("IPv4-mapped IPv6 loopback", "http://[::ffff:127.0.0.1]:{port}/page"),
    ("localhost", "http://localhost:{port}/page"),
    ("this machine's name (resolves to a local address)", "http://{host}:{port}/page"),
    ("cloud metadata (link-local)", "http://169.254.169.254/latest/meta-data/"),
    ("cluster API server", "https://kubernetes.default.svc/api"),
    ("cluster service", "http://redis.goreports.svc.cluster.local:6379/"),
    ("private 10.x", "http://10.0.0.1/"),
    ("unspecified", "http://0.0.0.0:{port}/page"),
]


def local_name() -> str:
    """This machine's name when it resolves to local addresses only (as in /etc/hosts on most
    machines and in pods), else `127.1` (a short form getaddrinfo turns into 127.0.0.1)."""
    try:
        infos = socket.getaddrinfo(socket.gethostname(), None)
    except OSError:
        return "127.1"
    addrs = {ipaddress.ip_address(i[4][0].split("%", 1)[0]) for i in infos}
    return socket.gethostname() if addrs and not any(a.is_global for a in addrs) else "127.1"


def _url(template: str, port: int) -> str:
    return template.format(port=port, host=local_name())


def _collect(url: str, **extra: Any) -> dict[str, Any]:
    return {"name": "collect", "http": {"dataset": "rows", "url": url, "recordsPath": "",
                                        "timeoutSeconds": 5, "maxRetries": 0, **extra}}


def _rest(tmp_path: Path) -> list[dict[str, Any]]:
    return [{"name": "flat", "csv": {"fileName": "a.csv", "dataset": "rows"}},
            {"name": "deliver", "local": {"path": str(tmp_path / "out")}}]


@pytest.mark.parametrize("label, template", TARGETS, ids=[t[0] for t in TARGETS])
async def test_http_collector_refuses_internal_targets(
        fleet: Fleet, api_server: ApiServer, tmp_path: Path, label: str, template: str,  # noqa: F811
        record: Any) -> None:
    url = _url(template, api_server.port)
    seen = len(api_server.seen)
    out = await fleet.run(report("ssrf-collect", _collect(url), *_rest(tmp_path)))
    assert out.phase == "Failed" and out.reason == "HostNotAllowed", (out.reason, out.error)
    assert "refused" in out.error and "allowHosts" in out.error, out.error
    assert len(api_server.seen) == seen  # the live server never saw a request
    record("SSRF (http collector)", f"{label}: `{template.format(port='PORT', host='HOSTNAME')}`",
           "Failed, HostNotAllowed, no request sent: " + out.error.split(": ", 1)[-1][:140])


@pytest.mark.parametrize("label, template", TARGETS[:1] + TARGETS[4:8],
                         ids=[t[0] for t in TARGETS[:1] + TARGETS[4:8]])
async def test_webhook_refuses_internal_targets(
        fleet: Fleet, hook_server: HookServer, hostile_db: Path, label: str,  # noqa: F811
        template: str, record: Any) -> None:
    url = _url(template, hook_server.port).replace("/page", "/hook")
    out = await fleet.run(report(
        "ssrf-hook", sqlite_step(hostile_db, "SELECT id FROM hostile"),
        {"name": "flat", "csv": {"fileName": "a.csv", "dataset": "rows"}},
        {"name": "post", "webhook": {"url": url, "timeoutSeconds": 5, "maxRetries": 0}}))
    assert out.phase == "Failed" and out.reason == "HostNotAllowed", (out.reason, out.error)
    assert hook_server.hooks == []
    record("SSRF (webhook)", f"{label}: `{template.format(port='PORT', host='HOSTNAME')}`",
           "Failed, HostNotAllowed, nothing posted")


async def test_a_redirect_to_loopback_is_refused(fleet: Fleet, api_server: ApiServer,  # noqa: F811
                                                 tmp_path: Path, record: Any) -> None:
    """The first host is allowed on purpose; the redirect's target is checked like any URL."""
    api_server.redirect_to = f"http://localhost:{api_server.port}/page"
    out = await fleet.run(report("ssrf-redirect", _collect(
        api_server.url("/redirect"), allowHosts=["127.0.0.1"]), *_rest(tmp_path)))
    assert out.phase == "Failed" and out.reason == "HostNotAllowed", (out.reason, out.error)
    assert api_server.requests("/redirect") and not api_server.requests("/page")
    record("SSRF (http collector)", "an allowed host answering 302 to `http://localhost:PORT/`",
           "Failed, HostNotAllowed at the redirect; the target never called")


async def test_an_oversized_response_is_cut_off(fleet: Fleet, api_server: ApiServer,  # noqa: F811
                                                tmp_path: Path, record: Any) -> None:
    limit = 256 * 1024
    out = await fleet.run(report("too-big", _collect(
        api_server.url("/big"), allowHosts=["127.0.0.1"], maxResponseBytes=limit),
        *_rest(tmp_path)))
    assert out.phase == "Failed" and out.reason == "ResponseTooLarge", (out.reason, out.error)
    assert f"maxResponseBytes={limit}" in out.error
    assert api_server.big_sent < api_server.big_bytes  # the client stopped reading early
    record("oversized HTTP response", f"a {api_server.big_bytes // 2**20} MiB body streamed "
           f"without Content-Length, "
           f"maxResponseBytes {limit}",
           f"Failed, ResponseTooLarge after reading ~{limit // 1024} KiB (the server had sent "
           f"{api_server.big_sent // 1024} KiB when the client hung up)")
