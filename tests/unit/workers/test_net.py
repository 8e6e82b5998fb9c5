"""The SSRF guard and the HTTP helpers of goreports.workers._net, without a network (IP literals
need no DNS; name resolution is replaced where a test needs answers)."""
from __future__ import annotations

import datetime as dt
import ipaddress
import socket
from typing import Any

import pytest

from goreports.core.errors import PermanentError
from goreports.workers import _net
from goreports.workers._net import (HttpClient, PinnedResolver, address_refusal, backoff_delay,
                                    host_allowed, internal_name, origin, parse_retry_after,
                                    redact)


@pytest.fixture(autouse=True)
def no_env_allow(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(_net.ALLOW_ENV, raising=False)


@pytest.mark.parametrize("host,allow,ok", [
    ("127.0.0.1", ["127.0.0.1"], True),
    ("API.Example.com.", ["api.example.com"], True),
    ("a.b.example.com", ["*.example.com"], True),
    ("example.com", ["*.example.com"], False),
    ("badexample.com", ["*.example.com"], False),
    ("::1", ["[::1]"], True),
    ("10.0.0.1", [], False),
    ("10.0.0.1", ["", "10.0.0.2"], False),
])
def test_host_allowed(host: str, allow: list[str], ok: bool) -> None:
    assert host_allowed(host, allow) is ok


@pytest.mark.parametrize("host", ["kubernetes.default", "kubernetes.default.svc",
                                  "kubernetes.default.svc.cluster.local", "redis.data.svc",
                                  "redis.data.svc.cluster.local", "x.cluster.local", "localhost",
                                  "LOCALHOST.", "a.localhost", "metadata.google.internal"])
def test_internal_names(host: str) -> None:
    assert internal_name(host) is not None


@pytest.mark.parametrize("host", ["api.example.com", "svc.example.com", "kubernetes.io"])
def test_public_names(host: str) -> None:
    assert internal_name(host) is None


@pytest.mark.parametrize("addr,why", [
    ("127.0.0.1", "loopback"), ("127.9.9.9", "loopback"), ("::1", "loopback"),
    ("169.254.169.254", "link-local"), ("fe80::1", "link-local"),
    ("10.1.2.3", "private"), ("172.16.0.1", "private"), ("172.31.255.255", "private"),
    ("192.168.1.1", "private"), ("fc00::1", "private"), ("fd12:3456::1", "private"),
    ("0.0.0.0", "unspecified"), ("::", "unspecified"),
    ("224.0.0.1", "multicast"), ("ff02::1", "multicast"),
    ("100.64.0.1", "not publicly routable"),
    ("::ffff:169.254.169.254", "link-local"), ("::ffff:10.0.0.1", "private"),
])
def test_refused_addresses(addr: str, why: str) -> None:
    refusal = address_refusal(ipaddress.ip_address(addr))
    assert refusal is not None and refusal.startswith(why)


@pytest.mark.parametrize("addr", ["8.8.8.8", "93.184.216.34", "172.32.0.1", "2606:4700::1111"])
def test_public_addresses(addr: str) -> None:
    assert address_refusal(ipaddress.ip_address(addr)) is None


def test_parse_retry_after() -> None:
    now = dt.datetime(2024, 1, 1, 12, 0, 0, tzinfo=dt.timezone.utc)
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after("Mon, 01 Jan 2024 12:00:30 GMT", now) == 30.0
    assert parse_retry_after("Mon, 01 Jan 2024 11:00:00 GMT", now) == 0.0  # past: no wait
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None
    assert parse_retry_after("-3") is None


def test_backoff_delay() -> None:
    assert backoff_delay(3, 12.0) == 12.0  # the server's word wins
    assert [backoff_delay(n, base=1, cap=5, jitter=0) for n in (1, 2, 3, 4)] == [1, 2, 4, 5]
    assert 1 <= backoff_delay(1, base=1, cap=5) <= 1.2


def test_redact_and_origin() -> None:
    url = "https://user:pw@hooks.example.com:8443/services/T0/B0/secret?token=abc#frag"
    assert redact(url) == "https://hooks.example.com:8443/services/T0/B0/secret"
    assert origin(url) == "https://hooks.example.com:8443"
    assert "pw" not in redact(url) and "abc" not in redact(url)


def test_env_allow_hosts() -> None:
    assert _net.env_allow_hosts({_net.ALLOW_ENV: " a.example.com, ,10.0.0.5"}) == [
        "a.example.com", "10.0.0.5"]


async def test_pinned_resolver_answers_only_checked_hosts() -> None:
    r = PinnedResolver({"api.example.com": [ipaddress.ip_address("93.184.216.34"),
                                            ipaddress.ip_address("2606:2800:220:1::1")]})
    both = await r.resolve("API.example.com.", 443, socket.AF_UNSPEC)
    assert [a["host"] for a in both] == ["93.184.216.34", "2606:2800:220:1::1"]
    assert all(a["port"] == 443 and a["hostname"] == "API.example.com." for a in both)
    [v4] = await r.resolve("api.example.com", 443, socket.AF_INET)
    assert v4["host"] == "93.184.216.34"
    with pytest.raises(OSError, match="not checked"):
        await r.resolve("other.example.com", 443)


@pytest.mark.parametrize("url,fragment", [
    ("http://169.254.169.254/latest/meta-data/", "link-local"),
    ("http://[fe80::1]/", "link-local"),
    ("http://127.0.0.1:8080/", "loopback"),
    ("http://10.0.0.1/", "private"),
    ("http://0.0.0.0/", "unspecified"),
    ("http://224.0.0.1/", "multicast"),
    ("http://kubernetes.default.svc/api", "cluster-internal"),
    ("http://grafana.monitoring.svc.cluster.local/", "cluster-internal"),
    ("ftp://example.com/file", "only http and https"),
    ("file:///etc/passwd", "only http and https"),
    ("/relative/path", "only http and https"),
])
async def test_check_refuses(url: str, fragment: str) -> None:
    async with HttpClient(what="step 'x'") as client:
        with pytest.raises(PermanentError, match=fragment) as e:
            await client.check(url)
    assert e.value.reason == "HostNotAllowed"
    assert "step 'x'" in str(e.value)


async def test_check_allows_listed_hosts_and_pins_them() -> None:
    async with HttpClient(what="w", allow_hosts=["127.0.0.1", "10.0.0.1"]) as client:
        await client.check("http://127.0.0.1:9/x")
        await client.check("http://10.0.0.1/x")
        await client.check("https://93.184.216.34/")  # public: no allow entry needed
        assert {h: [str(i) for i in ips] for h, ips in client.pins.items()} == {
            "127.0.0.1": ["127.0.0.1"], "10.0.0.1": ["10.0.0.1"],
            "93.184.216.34": ["93.184.216.34"]}


async def test_error_names_the_host_and_how_to_allow_it() -> None:
    async with HttpClient(what="step 'collect' (http collector)") as client:
        with pytest.raises(PermanentError) as e:
            await client.check("http://10.1.2.3:8080/api?key=secret")
    msg = str(e.value)
    assert "'10.1.2.3'" in msg and 'allowHosts: ["10.1.2.3"]' in msg and "secret" not in msg
    async with HttpClient(what="drive", allow_field=_net.ALLOW_ENV) as client:
        with pytest.raises(PermanentError, match=_net.ALLOW_ENV):
            await client.check("http://10.1.2.3/")


def fake_dns(monkeypatch: pytest.MonkeyPatch, answers: list[list[str]]) -> list[str]:
    """Replace getaddrinfo: each call returns the next answer (DNS that changes its mind)."""
    calls: list[str] = []

    def getaddrinfo(host: str, port: int, *args: Any) -> list[Any]:
        calls.append(host)
        ips = answers[min(len(calls) - 1, len(answers) - 1)]
        return [(socket.AF_INET6 if ":" in ip else socket.AF_INET, socket.SOCK_STREAM, 6, "",
                 (ip, port)) for ip in ips]

    monkeypatch.setattr(_net.socket, "getaddrinfo", getaddrinfo)
    return calls


async def test_a_name_with_any_private_address_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_dns(monkeypatch, [["93.184.216.34", "10.0.0.7"]])
    async with HttpClient(what="w") as client:
        with pytest.raises(PermanentError, match="resolves to 10.0.0.7, a private"):
            await client.check("https://rebind.example.com/")
        assert client.pins == {}


async def test_dns_rebinding_cannot_change_the_connected_address(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The connector asks PinnedResolver, never DNS: a second, private answer is not used."""
    calls = fake_dns(monkeypatch, [["93.184.216.34"], ["169.254.169.254"]])
    async with HttpClient(what="w") as client:
        await client.check("https://rebind.example.com/")
        resolver = client.session.connector._resolver  # type: ignore[union-attr]
        assert isinstance(resolver, PinnedResolver)
        answer = await resolver.resolve("rebind.example.com", 443)
        assert [a["host"] for a in answer] == ["93.184.216.34"]
    assert calls == ["rebind.example.com"]  # resolved once, by the guard
