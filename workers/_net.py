"""Outbound HTTP for stages (http collector, webhook, notifier, Drive): an SSRF guard and a small
aiohttp client with timeouts, a response size limit and retries that honour `Retry-After`.

Why it exists: a ReportRequest names URLs, and whoever may create one must not be able to make a
worker pod call into the cluster (the API server, `*.svc` services, the cloud metadata endpoint
169.254.169.254) or into the node's loopback (DESIGN §9). So every request goes through
`HttpClient`, which:

- accepts only http and https URLs;
- refuses cluster-internal names (`*.svc`, `*.cluster.local`, `kubernetes.default*`,
  `localhost`, `*.internal`) and any host that resolves to a loopback, link-local, private,
  unspecified, multicast, reserved or otherwise non-public address, unless the host is listed
  in the step's `allowHosts` (exact host, or `*.suffix`) or in the worker-wide
  `GOREPORTS_HTTP_ALLOW_HOSTS` (comma-separated, set by the platform team);
- pins the connection to the addresses it checked: the host is resolved once (getaddrinfo in a
  thread), checked, and aiohttp's connector gets exactly those addresses from `PinnedResolver`,
  so a DNS answer that changes between check and connect (DNS rebinding) cannot slip through.
  A host that was never checked cannot be connected to at all;
- never uses environment proxies (`trust_env=False`: a proxy would resolve names itself) and
  follows redirects only when asked, checking each target like the first URL.

Errors of the guard are `PermanentError(reason="HostNotAllowed")` naming the host and how to
allow it. URLs in messages are redacted (no user info, no query) because signed URLs and
webhook URLs often carry secrets.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import email.utils
import ipaddress
import os
import random
import socket
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping, Sequence

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from multidict import CIMultiDictProxy
from yarl import URL

from goreports.core.errors import PermanentError, TemporaryError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

ALLOW_ENV = "GOREPORTS_HTTP_ALLOW_HOSTS"
# Statuses worth another try: throttled, or the server (or a gateway before it) is in trouble.
RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
REDIRECTS = frozenset({301, 302, 303, 307, 308})
MAX_REDIRECTS = 5
BACKOFF_BASE = 0.5     # seconds before the first retry; doubled each time
BACKOFF_MAX = 30.0
# A Retry-After longer than this is not slept through in the stage: the job is retried later by
# the runtime instead (TemporaryError(delay=...)), so a worker slot is not held for an hour.
MAX_INLINE_WAIT = 60.0
ERROR_SNIPPET = 200    # characters of an error response shown in a message

# Names that only mean something inside a cluster or a host; refused without an allow entry.
_INTERNAL_SUFFIXES = (".svc", ".svc.cluster.local", ".cluster.local", ".localhost", ".internal")
_INTERNAL_NAMES = ("localhost",)


# -- pure rules ---------------------------------------------------------------------------------

def normalize_host(host: str) -> str:
    """Lower case, no IPv6 brackets, no trailing dot: the form hosts are compared in."""
    return host.strip().strip("[]").rstrip(".").lower()


def host_allowed(host: str, allow_hosts: Iterable[str]) -> bool:
    """True when `host` is listed exactly or matches a `*.suffix` entry (which matches
    sub-domains at any depth, not the bare suffix)."""
    h = normalize_host(host)
    for entry in allow_hosts:
        e = normalize_host(entry)
        if not e:
            continue
        if e.startswith("*."):
            if h.endswith(e[1:]) and len(h) > len(e) - 1:
                return True
        elif h == e:
            return True
    return False


def internal_name(host: str) -> str | None:
    """Why a host name is cluster- or host-internal, or None when it is not."""
    h = normalize_host(host)
    if h in _INTERNAL_NAMES or h.startswith("kubernetes.default"):
        return "a cluster-internal name"
    for suffix in _INTERNAL_SUFFIXES:
        if h.endswith(suffix):
            return f"a cluster-internal name (*{suffix})"
    return None


def address_refusal(ip: IPAddress) -> str | None:
    """Why an address must not be called by default, or None when it is public."""
    if isinstance(ip, ipaddress.IPv6Address):
        mapped = ip.ipv4_mapped or ip.sixtofour
        if mapped is not None:  # ::ffff:127.0.0.1 is 127.0.0.1
            inner = address_refusal(mapped)
            return f"{inner} (via {ip})" if inner else None
    if ip.is_loopback:
        return "loopback"
    if ip.is_link_local:
        return "link-local (e.g. the cloud metadata endpoint)"
    if ip.is_unspecified:
        return "unspecified"
    if ip.is_multicast:
        return "multicast"
    if ip.is_private:
        return "private"
    if ip.is_reserved:
        return "reserved"
    if not ip.is_global:
        return "not publicly routable"
    return None


def env_allow_hosts(env: Mapping[str, str] | None = None) -> list[str]:
    """The worker-wide allow list (GOREPORTS_HTTP_ALLOW_HOSTS, comma-separated)."""
    raw = (os.environ if env is None else env).get(ALLOW_ENV, "")
    return [h.strip() for h in raw.split(",") if h.strip()]


def redact(url: str | URL) -> str:
    """A URL safe for messages, logs and status: scheme, host, port and path only."""
    try:
        u = URL(str(url))
    except (ValueError, TypeError):
        return "<invalid URL>"
    if not u.host:
        return "<URL without host>"
    return str(u.with_user(None).with_query(None).with_fragment(None))


def origin(url: str | URL) -> str:
    """scheme://host[:port] of a URL (for targets whose path may be a secret)."""
    u = URL(str(url))
    return str(u.origin()) if u.host else "<URL without host>"


def parse_retry_after(value: str | None, now: dt.datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header: delta-seconds or an HTTP date; None when
    absent or unreadable; never negative."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.timezone.utc)
    now = now or dt.datetime.now(dt.timezone.utc)
    return max(0.0, (when - now).total_seconds())


def backoff_delay(retry: int, retry_after: float | None = None, *, base: float | None = None,
                  cap: float | None = None, jitter: float = 0.2) -> float:
    """Wait before retry number `retry` (1-based): the server's Retry-After when it gave one,
    else exponential (base * 2**(retry-1), capped) with a little jitter so that workers that
    failed together do not come back together."""
    if retry_after is not None:
        return retry_after
    base = BACKOFF_BASE if base is None else base
    cap = BACKOFF_MAX if cap is None else cap
    delay = min(cap, base * (2 ** max(0, retry - 1)))
    return delay * (1 + random.uniform(0, jitter)) if jitter else delay


def _refused(what: str, host: str, why: str, hint: str) -> PermanentError:
    return PermanentError(
        f"{what}: host {host!r} is refused: {why}. Requests to loopback, link-local, private and "
        f"cluster-internal addresses are refused by default (SSRF protection); if this host is "
        f"meant to be reached, {hint}", reason="HostNotAllowed")


def allow_hint(host: str, field: str = "allowHosts") -> str:
    if field == ALLOW_ENV:
        return f"add {host!r} to the worker's {ALLOW_ENV} (comma-separated)"
    return f"add it to the step's {field} (e.g. {field}: [\"{host}\"])"


# -- pinned resolution -------------------------------------------------------------------------

class PinnedResolver(AbstractResolver):
    """Hands aiohttp only the addresses the guard checked; an unchecked host has none."""

    def __init__(self, pins: dict[str, list[IPAddress]]) -> None:
        self.pins = pins

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        ips = self.pins.get(normalize_host(host))
        if not ips:
            raise OSError(f"host {host!r} was not checked by the SSRF guard")
        out: list[ResolveResult] = []
        for ip in ips:
            fam = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
            if family in (socket.AF_INET, socket.AF_INET6) and family != fam:
                continue
            out.append(ResolveResult(hostname=host, host=str(ip), port=port, family=fam,
                                     proto=0, flags=socket.AI_NUMERICHOST))
        if not out:
            raise OSError(f"host {host!r} has no checked address of family {family!r}")
        return out

    async def close(self) -> None:
        return None


async def resolve_host(host: str, port: int, what: str = "") -> list[IPAddress]:
    """All addresses of `host` (getaddrinfo in a thread: it blocks)."""
    try:
        infos = await asyncio.to_thread(socket.getaddrinfo, host, port, 0, socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as e:
        prefix = f"{what}: " if what else ""
        raise TemporaryError(f"{prefix}cannot resolve host {host!r}: {e}") from None
    out: list[IPAddress] = []
    for info in infos:
        addr = str(info[4][0]).split("%", 1)[0]  # drop an IPv6 zone id
        ip = ipaddress.ip_address(addr)
        if ip not in out:
            out.append(ip)
    return out


# -- the client --------------------------------------------------------------------------------

@dataclass
class Reply:
    """A finished response: status, headers, the (size-limited) body and the final URL."""

    status: int
    headers: CIMultiDictProxy[str]
    body: bytes
    url: URL

    def text_snippet(self, limit: int = ERROR_SNIPPET) -> str:
        text = self.body[:limit * 4].decode("utf-8", "replace")
        text = " ".join(text.split())
        return text[:limit] + ("..." if len(text) > limit else "")


BodyFactory = Callable[[], Any]


class HttpClient:
    """One aiohttp session for one stage run, with the guard, limits and retries.

    `what` names the caller in every message (e.g. "step 'collect' (http collector)").
    `allow_field` says where the user allows a host (a spec field, or ALLOW_ENV for stages
    whose spec has no allowHosts).
    """

    def __init__(self, *, what: str, allow_hosts: Sequence[str] = (), timeout: float = 30.0,
                 max_retries: int = 3, allow_field: str = "allowHosts",
                 user_agent: str = "go-reports") -> None:
        self.what = what
        self.allow_hosts = list(allow_hosts) + env_allow_hosts()
        self.allow_field = allow_field
        self.timeout = timeout
        self.max_retries = max_retries
        self.pins: dict[str, list[IPAddress]] = {}
        self.user_agent = user_agent
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> "HttpClient":
        connector = aiohttp.TCPConnector(resolver=PinnedResolver(self.pins), use_dns_cache=False,
                                         limit=8)
        self._session = aiohttp.ClientSession(
            connector=connector, trust_env=False, timeout=aiohttp.ClientTimeout(total=self.timeout),
            headers={"User-Agent": self.user_agent})
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("HttpClient used outside `async with`")
        return self._session

    async def check(self, url: str | URL) -> URL:
        """The URL, once its scheme, name and every address it resolves to are allowed; its
        addresses are pinned for the connection."""
        try:
            u = URL(str(url))
        except (ValueError, TypeError):
            raise PermanentError(f"{self.what}: {str(url)[:100]!r} is not a valid URL",
                                 reason="HostNotAllowed") from None
        if u.scheme not in ("http", "https"):
            raise PermanentError(f"{self.what}: only http and https URLs can be called, not "
                                 f"{u.scheme or 'a relative URL'!r} ({redact(u)})",
                                 reason="HostNotAllowed")
        raw = u.raw_host
        if not raw:
            raise PermanentError(f"{self.what}: URL {redact(u)} has no host",
                                 reason="HostNotAllowed")
        host = normalize_host(raw)
        hint = allow_hint(host, self.allow_field)
        allowed = host_allowed(host, self.allow_hosts)
        if not allowed and (why := internal_name(host)):
            raise _refused(self.what, host, f"it is {why}", hint)
        ips = await resolve_host(host, u.port or 0, self.what)
        if not allowed:
            for ip in ips:
                if why := address_refusal(ip):
                    shown = "" if str(ip) == host else f"it resolves to {ip}, "
                    raise _refused(self.what, host, f"{shown}a {why} address", hint)
        self.pins[host] = ips
        return u

    async def request(self, method: str, url: str | URL, *,
                      headers: Mapping[str, str] | None = None,
                      params: Mapping[str, str] | None = None,
                      body: BodyFactory | None = None,
                      per_attempt: Callable[[], Mapping[str, str]] | None = None,
                      max_bytes: int | None = None,
                      truncate: bool = False,
                      follow_redirects: bool = False,
                      max_retries: int | None = None,
                      timeout: aiohttp.ClientTimeout | None = None,
                      strip_on_redirect: Iterable[str] = ("Authorization",)) -> Reply:
        """Send a request, retrying connection errors and RETRY_STATUSES up to max_retries
        (waiting Retry-After when the server gives one, else exponential backoff). Returns the
        reply of any other status; raises TemporaryError when the retries are used up.

        Bodies above `max_bytes` fail the step (ResponseTooLarge), or with `truncate` are cut
        there (for answers read only for messages). `body` is called once per attempt (a file
        must be reopened for each try), and so is `per_attempt`, whose headers are added (a
        fresh timestamp and signature). With
        `follow_redirects`, 3xx targets are checked by the guard, and the headers in
        `strip_on_redirect` are dropped when the redirect leaves the original origin.
        """
        target = await self.check(url)
        if params:
            target = target.update_query(dict(params))
        hdrs = dict(headers or {})
        first_origin = target.origin()
        retries = self.max_retries if max_retries is None else max_retries
        retry = 0
        redirects = 0
        while True:
            retry_after: float | None = None
            problem: str
            try:
                extra: dict[str, Any] = {"timeout": timeout} if timeout is not None else {}
                data = body() if body is not None else None
                sent = {**hdrs, **per_attempt()} if per_attempt is not None else hdrs
                async with self.session.request(method, target, headers=sent, data=data,
                                                allow_redirects=False, **extra) as resp:
                    if follow_redirects and resp.status in REDIRECTS and "Location" in resp.headers:
                        redirects += 1
                        if redirects > MAX_REDIRECTS:
                            raise PermanentError(f"{self.what}: more than {MAX_REDIRECTS} "
                                                 f"redirects from {redact(url)}",
                                                 reason="TooManyRedirects")
                        target = await self.check(target.join(URL(resp.headers["Location"])))
                        if target.origin() != first_origin:
                            for name in strip_on_redirect:
                                hdrs = {k: v for k, v in hdrs.items() if k.lower() != name.lower()}
                        if resp.status == 303:
                            method, body = "GET", None
                        continue
                    if resp.status not in RETRY_STATUSES:
                        data_bytes = await read_limited(resp, max_bytes, self.what, target,
                                                        truncate=truncate)
                        return Reply(resp.status, resp.headers, data_bytes, target)
                    retry_after = parse_retry_after(resp.headers.get("Retry-After"))
                    problem = f"HTTP {resp.status}"
            except (aiohttp.ClientConnectorDNSError,) as e:
                if "not checked by the SSRF guard" in str(e.os_error):
                    raise PermanentError(f"{self.what}: {e.os_error}",
                                         reason="HostNotAllowed") from None
                problem = f"connection failed ({type(e).__name__}: {e})"
            except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError,
                    asyncio.TimeoutError) as e:
                problem = (f"timed out ({type(e).__name__})"
                           if isinstance(e, asyncio.TimeoutError) else
                           f"connection failed ({type(e).__name__}: {e})")
            retry += 1
            if retry > retries or (retry_after or 0) > MAX_INLINE_WAIT:
                wait = "" if retry_after is None else f"; the server asks to wait {retry_after:g}s"
                raise TemporaryError(f"{self.what}: {method} {redact(target)} failed: {problem} "
                                     f"(after {retry} attempt(s){wait})", delay=retry_after)
            await asyncio.sleep(backoff_delay(retry, retry_after))


async def read_limited(resp: aiohttp.ClientResponse, max_bytes: int | None, what: str,
                       url: URL, *, truncate: bool = False) -> bytes:
    """The response body, read in chunks and abandoned as soon as it passes `max_bytes`
    (decompressed bytes count: a small gzip bomb is stopped too); with `truncate` the first
    `max_bytes` are returned instead of an error."""
    if (max_bytes and not truncate and resp.content_length is not None
            and resp.content_length > max_bytes):
        raise too_large(what, url, max_bytes, resp.content_length)
    buf = bytearray()
    async for chunk in resp.content.iter_chunked(1 << 16):
        buf += chunk
        if max_bytes and len(buf) > max_bytes:
            if truncate:
                return bytes(buf[:max_bytes])
            raise too_large(what, url, max_bytes, None)
    return bytes(buf)


def too_large(what: str, url: URL, limit: int, size: int | None) -> PermanentError:
    got = f"{size} bytes" if size is not None else "more"
    return PermanentError(f"{what}: the response of {redact(url)} is larger than "
                          f"maxResponseBytes={limit} (got {got}); raise maxResponseBytes or ask "
                          f"for smaller pages", reason="ResponseTooLarge")


def http_failure(what: str, method: str, reply: Reply, *,
                 credentials_id: str = "") -> PermanentError:
    """A non-retryable HTTP error status as the PermanentError an operator can act on."""
    status = reply.status
    hint = ""
    reason = "HttpRequestFailed"
    if status in (401, 403):
        reason = "HttpUnauthorized"
        hint = (f"; check the credentials {credentials_id!r}" if credentials_id
                else "; the target needs credentials (credentialsId)")
    elif status == 404:
        reason = "HttpNotFound"
        hint = "; check the URL"
    elif 300 <= status < 400:
        reason = "HttpRedirectNotFollowed"
        hint = "; redirects are not followed for this request: use the final URL"
    snippet = reply.text_snippet()
    return PermanentError(f"{what}: {method} {redact(reply.url)} answered HTTP {status}{hint}"
                          + (f": {snippet}" if snippet else ""), reason=reason)
