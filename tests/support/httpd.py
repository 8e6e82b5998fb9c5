"""aiohttp test servers on free loopback ports, as pytest fixtures: a paged JSON API, a webhook
receiver that verifies signatures the way docs/dispatchers-http.md tells receivers to, and a
stand-in of Google's OAuth2 token endpoint and Drive v3 resumable upload.

They run in the test's own event loop (aiohttp.web.AppRunner), so a test drives the stage and
the server in one process, with real sockets and real HTTP in between.
"""
from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import re
import secrets
import socket
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, AsyncIterator

import jwt
import pytest
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

HOST = "127.0.0.1"


class Httpd:
    """An aiohttp Application served on 127.0.0.1:<free port>.

    The socket is bound when the object is made (port 0: the kernel's pick) and served on by
    start(), so no other process can take the port in between; `port` is known at once."""

    def __init__(self) -> None:
        self._sock: socket.socket | None = self._bind(0)
        self.port = int(self._sock.getsockname()[1])
        self.app = web.Application(client_max_size=64 * 1024 * 1024)
        self._runner: web.AppRunner | None = None

    @staticmethod
    def _bind(port: int) -> socket.socket:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((HOST, port))
        return sock

    def url(self, path: str = "/") -> str:
        return f"http://{HOST}:{self.port}{path}"

    async def start(self) -> "Httpd":
        if self._sock is None:  # started again after stop(): the same port
            self._sock = self._bind(self.port)
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        await web.SockSite(self._runner, self._sock).start()
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._sock is not None:
            self._sock.close()
            self._sock = None


# -- a paged JSON API -----------------------------------------------------------------------------

@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    at: float


def sample_records(n: int = 7) -> list[dict[str, Any]]:
    """Records with ints, floats, bools, nested objects and arrays; record 5 lacks `amount` and
    record 6 has an extra key."""
    out: list[dict[str, Any]] = []
    for i in range(1, n + 1):
        r: dict[str, Any] = {"id": i, "name": f"customer {i}", "amount": i * 1.5 if i % 2 else i,
                             "active": i % 3 != 0, "owner": {"id": 100 + i},
                             "tags": ["a", str(i)]}
        if i == 5:
            del r["amount"]
        if i == 6:
            r["extra"] = "ignored"
        out.append(r)
    return out


class ApiServer(Httpd):
    """Serves `records` in pages of `page_size` with every pagination style:

    - /next      {"data": {"items": [...]}, "links": {"next": <relative, then absolute URL>}}
    - /cursor    {"items": [...], "meta": {"next": <opaque cursor or null>}}  (?cursor=)
    - /page      a bare JSON array, empty past the end                      (?page=, 1-based)
    - /big       a JSON body of `big_bytes` streamed without Content-Length (64 MiB: far more
                 than loopback socket buffers can hold, so a client that stops reading early
                 always leaves the server unable to finish)
    - /redirect  302 to `redirect_to`
    - /posts     jsonplaceholder.typicode.com's paging (`_page` from 1, `_limit`) over 100 posts

    `fail_next` holds (status, headers) answered before the real one, on any route; `token`,
    when set, is required as a bearer token.
    """

    def __init__(self, records: list[dict[str, Any]] | None = None, page_size: int = 3) -> None:
        super().__init__()
        self.records = records if records is not None else sample_records()
        self.page_size = page_size
        self.seen: list[Seen] = []
        self.fail_next: list[tuple[int, dict[str, str]]] = []
        self.token: str | None = None
        self.big_bytes = 64 * 1024 * 1024
        self.big_sent = 0
        self.redirect_to = ""
        self.app.router.add_get("/next", self.next_link)
        self.app.router.add_get("/cursor", self.cursor)
        self.app.router.add_get("/page", self.page)
        self.app.router.add_get("/big", self.big)
        self.app.router.add_get("/redirect", self.redirect)
        self.app.router.add_get("/posts", self.posts)
        self.app.middlewares.append(self._middleware)

    def requests(self, path: str) -> list[Seen]:
        return [s for s in self.seen if s.path == path]

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        self.seen.append(Seen(request.method, request.path, dict(request.query),
                              dict(request.headers), time.monotonic()))
        if self.fail_next:
            status, headers = self.fail_next.pop(0)
            return web.json_response({"error": "try later"}, status=status, headers=headers)
        auth = request.headers.get("Authorization")
        if self.token is not None and auth != f"Bearer {self.token}":
            return web.json_response({"error": "unauthorized"}, status=401)
        return await handler(request)

    def _slice(self, index: int) -> list[dict[str, Any]]:
        return self.records[index * self.page_size:(index + 1) * self.page_size]

    async def next_link(self, request: web.Request) -> web.Response:
        n = int(request.query.get("p", "0"))
        items = self._slice(n)
        more = (n + 1) * self.page_size < len(self.records)
        # page 1 links relatively, page 2 absolutely: both forms are followed
        nxt = None if not more else (f"next?p={n + 1}" if n == 0 else self.url(f"/next?p={n + 1}"))
        return web.json_response({"data": {"items": items}, "links": {"next": nxt}})

    async def cursor(self, request: web.Request) -> web.Response:
        cur = request.query.get("cursor")
        n = 0 if cur is None else int(cur.removeprefix("c-"))
        more = (n + 1) * self.page_size < len(self.records)
        return web.json_response({"items": self._slice(n),
                                  "meta": {"next": f"c-{n + 1}" if more else None}})

    async def page(self, request: web.Request) -> web.Response:
        n = int(request.query.get("page", "1"))
        return web.json_response(self._slice(n - 1))

    async def big(self, request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "application/json"})
        await resp.prepare(request)
        chunk = b'{"x": "' + b"y" * 65_000 + b'"},'
        await resp.write(b"[")
        try:
            while self.big_sent < self.big_bytes:
                await resp.write(chunk)
                self.big_sent += len(chunk)
            await resp.write(b"{}]")
        except (ConnectionResetError, RuntimeError):
            pass  # the client stopped reading: what the limit is for
        return resp

    async def redirect(self, request: web.Request) -> web.Response:
        raise web.HTTPFound(self.redirect_to)

    async def posts(self, request: web.Request) -> web.Response:
        posts = [{"userId": 1 + (i - 1) // 10, "id": i, "title": f"post {i}", "body": "text"}
                 for i in range(1, 101)]
        page, limit = int(request.query.get("_page", "1")), int(request.query.get("_limit", "10"))
        return web.json_response(posts[(page - 1) * limit:page * limit])


# -- a webhook receiver ---------------------------------------------------------------------------

@dataclass
class Hook:
    """One request as the receiver saw it; `verified` is the receiver's own signature check."""

    headers: dict[str, str]
    content_type: str
    metadata: bytes
    file: bytes | None
    file_name: str | None
    verified: bool
    status: int

    @property
    def json(self) -> Any:
        return json.loads(self.metadata)


def receiver_verify(secret: bytes, headers: Any, signed: bytes, tolerance: int = 300) -> bool:
    """What docs/dispatchers-http.md tells a receiver to do, written from the document (not
    from the dispatcher's code): fresh timestamp, HMAC-SHA256 over "<timestamp>." + signed
    bytes, constant-time comparison."""
    ts = headers.get("X-GoReports-Timestamp", "")
    sig = headers.get("X-GoReports-Signature", "")
    if not ts.isdigit() or abs(time.time() - int(ts)) > tolerance:
        return False
    expected = "sha256=" + hmac.new(secret, ts.encode() + b"." + signed, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, sig)


class HookServer(Httpd):
    """Receives webhooks at /hook (and /hook/<anything>), checks signatures with `secret`,
    answers `fail_next` statuses first (still recording those attempts)."""

    def __init__(self, secret: bytes = b"whsec-test-0123456789") -> None:
        super().__init__()
        self.secret = secret
        self.hooks: list[Hook] = []
        self.fail_next: list[int] = []
        self.app.router.add_post("/hook", self.receive)
        self.app.router.add_post("/hook/{rest:.*}", self.receive)

    def write_credentials(self, credentials_dir: Path, cred_id: str = "hook") -> str:
        folder = credentials_dir / cred_id
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "hmac-secret").write_bytes(self.secret + b"\n")
        return cred_id

    async def receive(self, request: web.Request) -> web.Response:
        ctype = request.headers.get("Content-Type", "")
        file: bytes | None = None
        name: str | None = None
        if ctype.startswith("multipart/"):
            reader = await request.multipart()
            metadata = b""
            async for part in reader:  # type: ignore[union-attr]
                if part.name == "metadata":
                    metadata = await part.read()  # type: ignore[union-attr]
                elif part.name == "file":
                    name = part.filename  # type: ignore[union-attr]
                    file = await part.read()  # type: ignore[union-attr]
            sha = hashlib.sha256(file or b"").hexdigest()
            declared = json.loads(metadata)["artifact"]["sha256"] if metadata else ""
            verified = (receiver_verify(self.secret, request.headers,
                                        metadata + b"." + sha.encode()) and declared == sha)
        else:
            metadata = await request.read()
            verified = receiver_verify(self.secret, request.headers, metadata)
        status = self.fail_next.pop(0) if self.fail_next else (200 if verified else 401)
        self.hooks.append(Hook(dict(request.headers), ctype, metadata, file, name, verified,
                               status))
        return web.json_response({"ok": status == 200}, status=status)

    def delivered(self) -> list[Hook]:
        return [h for h in self.hooks if h.status == 200]


# -- Google's token endpoint and Drive v3 resumable upload, stood in for --------------------------

@dataclass
class DriveFile:
    id: str
    name: str
    parents: list[str]
    app_properties: dict[str, str]
    size: int
    sha256: str
    content_type: str


@dataclass
class _Session:
    meta: dict[str, Any]
    total: int
    content_type: str
    data: bytearray = field(default_factory=bytearray)


class DriveServer(Httpd):
    """A stand-in of https://oauth2.googleapis.com/token and Drive v3 (files.list and the
    resumable upload), strict where the real one is: the JWT assertion is verified with the
    service account's public key (RS256, iss, aud, scope, exp), every Drive call needs the
    issued bearer token, chunks must line up with what the session holds, and the stored file
    keeps the sha256 of the bytes that arrived. `fail_chunk` answers 503 to that chunk number
    (1-based) once, after keeping half of its bytes (an interrupted transfer)."""

    def __init__(self) -> None:
        super().__init__()
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.client_email = "reports@goreports-test.iam.gserviceaccount.com"
        self.tokens: set[str] = set()
        self.assertions: list[dict[str, Any]] = []
        self.sessions: dict[str, _Session] = {}
        self.files: dict[str, DriveFile] = {}
        self.chunks: list[str] = []  # Content-Range of each PUT
        self.fail_chunk: int | None = None
        self.app.router.add_post("/token", self.token)
        self.app.router.add_get("/drive/v3/files", self.list_files)
        self.app.router.add_post("/upload/drive/v3/files", self.open_session)
        self.app.router.add_put("/upload/drive/v3/files", self.put_chunk)

    def service_account(self) -> dict[str, str]:
        pem = self.key.private_bytes(serialization.Encoding.PEM,
                                     serialization.PrivateFormat.PKCS8,
                                     serialization.NoEncryption()).decode()
        return {"type": "service_account", "project_id": "goreports-test",
                "private_key_id": "k1", "private_key": pem, "client_email": self.client_email,
                "token_uri": self.url("/token")}

    def write_credentials(self, credentials_dir: Path, cred_id: str = "drive-sa") -> str:
        folder = credentials_dir / cred_id
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "service-account.json").write_text(json.dumps(self.service_account()))
        return cred_id

    def _authorized(self, request: web.Request) -> bool:
        auth = request.headers.get("Authorization", "")
        return auth.startswith("Bearer ") and auth[7:] in self.tokens

    async def token(self, request: web.Request) -> web.Response:
        form = await request.post()
        if form.get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer":
            return web.json_response({"error": "unsupported_grant_type"}, status=400)
        try:
            claims = jwt.decode(str(form.get("assertion", "")), self.key.public_key(),
                                algorithms=["RS256"], audience=self.url("/token"),
                                issuer=self.client_email,
                                options={"require": ["exp", "iat", "iss", "aud"]})
        except jwt.PyJWTError as e:
            return web.json_response({"error": "invalid_grant",
                                      "error_description": f"Invalid JWT: {e}"}, status=400)
        if claims.get("scope") != "https://www.googleapis.com/auth/drive.file":
            return web.json_response({"error": "invalid_scope"}, status=400)
        self.assertions.append(claims)
        token = "ya29." + secrets.token_urlsafe(24)
        self.tokens.add(token)
        return web.json_response({"access_token": token, "expires_in": 3599,
                                  "token_type": "Bearer"})

    async def list_files(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return web.json_response({"error": {"code": 401}}, status=401)
        m = re.search(r"key='goreportsKey' and value='([0-9a-f]+)'", request.query.get("q", ""))
        found = [self._resource(f) for f in self.files.values()
                 if m and f.app_properties.get("goreportsKey") == m.group(1)]
        return web.json_response({"files": found})

    def _resource(self, f: DriveFile) -> dict[str, Any]:
        return {"id": f.id, "name": f.name, "size": str(f.size),
                "webViewLink": f"https://drive.google.com/file/d/{f.id}/view?usp=drivesdk"}

    async def open_session(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return web.json_response({"error": {"code": 401}}, status=401)
        if request.query.get("uploadType") != "resumable":
            return web.json_response({"error": "uploadType must be resumable"}, status=400)
        meta = await request.json()
        sid = uuid.uuid4().hex
        self.sessions[sid] = _Session(meta, int(request.headers["X-Upload-Content-Length"]),
                                      request.headers.get("X-Upload-Content-Type", ""))
        location = self.url(f"/upload/drive/v3/files?uploadType=resumable&upload_id={sid}")
        return web.Response(status=200, headers={"Location": location})

    async def put_chunk(self, request: web.Request) -> web.Response:
        s = self.sessions.get(request.query.get("upload_id", ""))
        if s is None:
            return web.json_response({"error": "no such upload session"}, status=404)
        crange = request.headers.get("Content-Range", "")
        self.chunks.append(crange)
        body = await request.read()
        status_query = re.fullmatch(r"bytes \*/(\d+)", crange)
        if status_query is None:
            m = re.fullmatch(r"bytes (\d+)-(\d+)/(\d+)", crange)
            length = int(m.group(2)) - int(m.group(1)) + 1 if m else -1
            if m is None or int(m.group(3)) != s.total or len(body) != length:
                return web.json_response({"error": f"bad Content-Range {crange!r}"}, status=400)
            start = int(m.group(1))
            if start > len(s.data):
                return web.json_response({"error": "chunk starts past the held bytes"}, status=400)
            del s.data[start:]
            if self.fail_chunk is not None and len(self.chunks) == self.fail_chunk:
                self.fail_chunk = None
                s.data += body[:len(body) // 2]
                return web.json_response({"error": "backend error"}, status=503)
            s.data += body
        if len(s.data) < s.total:
            headers = {"Range": f"bytes=0-{len(s.data) - 1}"} if s.data else {}
            return web.Response(status=308, headers=headers)
        fid = "f" + uuid.uuid4().hex[:16]
        self.files[fid] = DriveFile(fid, s.meta["name"], s.meta.get("parents", []),
                                    s.meta.get("appProperties", {}), len(s.data),
                                    hashlib.sha256(s.data).hexdigest(), s.content_type)
        del self.sessions[request.query["upload_id"]]
        return web.json_response(self._resource(self.files[fid]), status=200)


# -- fixtures -------------------------------------------------------------------------------------

@pytest.fixture
async def api_server() -> AsyncIterator[ApiServer]:
    server = ApiServer()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def hook_server() -> AsyncIterator[HookServer]:
    server = HookServer()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def drive_server() -> AsyncIterator[DriveServer]:
    server = DriveServer()
    await server.start()
    yield server
    await server.stop()


async def settle() -> None:
    """Let the server's handlers finish (they run in the same loop)."""
    await asyncio.sleep(0)
