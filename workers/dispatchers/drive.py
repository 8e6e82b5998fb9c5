"""The `drive` dispatcher: upload a report's artifacts into a Google Drive folder.

How: a service-account key (credentials file `service-account.json`) signs a JWT assertion
(RS256, scope drive.file) that the token endpoint exchanges for an access token; each file then
goes up through Drive v3's resumable upload: one POST opens a session (name, parent folder, and
an `appProperties.goreportsKey` idempotency key), then PUTs of 8 MiB chunks read from disk
(memory stays flat). After an interrupted chunk the dispatcher asks the session how much it holds
and goes on from there, as Google's protocol says.

Exactly once, as far as Drive allows: before uploading, the folder is searched for a file with
the same key (report uid, step, sha256), so a re-delivered job does not upload a second copy.

SSRF: the token and upload endpoints come from the spec (tokenUri, uploadUrl) and the session URL
from the server, so all of them pass the guard of goreports.workers._net. The Drive spec has no
allowHosts; a platform team that fronts Google with an internal endpoint lists it in the worker's
GOREPORTS_HTTP_ALLOW_HOSTS.

Tested here only against a local stand-in of Google's token and upload endpoints
(tests/support/httpd.py), which verifies the JWT with the key's public half and the uploaded
bytes' sha256; not against Google itself.
"""
from __future__ import annotations

import asyncio
import json
import logging
import time
from pathlib import Path
from typing import Any

import aiohttp

from goreports.core.errors import PermanentError, TemporaryError
from goreports.proto import events_pb2, tasks_pb2
from goreports.workers._net import ALLOW_ENV, HttpClient, Reply, http_failure, redact
from goreports.core.artifacts import LocalArtifactStore, safe_name
from goreports.workers.dispatchers._drive_auth import (DEFAULT_TOKEN_URI, DEFAULT_UPLOAD_URL,
                                                       KEY_FILE, ServiceAccount, content_range,
                                                       file_metadata, files_url, find_query,
                                                       make_assertion, parse_service_account,
                                                       received_bytes, session_url, token_error,
                                                       token_request_body, view_link)
from goreports.workers.dispatchers._webhook_sign import idempotency_key
from goreports.workers.registry import stage
from goreports.workers.stage import StageContext, StageResult

CHUNK = 8 * 1024 * 1024  # a multiple of 256 KiB, as Drive requires for all but the last chunk
TIMEOUT = 60
RETRIES = 3
TOKEN_REFRESH = 45 * 60  # seconds; tokens live an hour
REPLY_LIMIT = 1024 * 1024


class _Session:
    """An authenticated Drive client for one stage run (re-signs in before the token expires)."""

    def __init__(self, client: HttpClient, sa: ServiceAccount, token_uri: str, cred_id: str,
                 what: str, log: logging.LoggerAdapter) -> None:  # type: ignore[type-arg]
        self.client, self.sa, self.token_uri, self.cred_id, self.what, self.log = (
            client, sa, token_uri, cred_id, what, log)
        self._token = ""
        self._at = 0.0

    async def auth(self) -> dict[str, str]:
        if not self._token or time.monotonic() - self._at > TOKEN_REFRESH:
            await self._sign_in()
        return {"Authorization": f"Bearer {self._token}"}

    async def _sign_in(self) -> None:
        assertion = make_assertion(self.sa, self.token_uri, int(time.time()), self.cred_id)
        body = token_request_body(assertion)
        reply = await self.client.request(
            "POST", self.token_uri, body=lambda: body, max_bytes=REPLY_LIMIT,
            headers={"Content-Type": "application/x-www-form-urlencoded"})
        doc = _json(reply)
        if reply.status in (400, 401, 403):
            raise PermanentError(f"{self.what}: the token endpoint {redact(self.token_uri)} "
                                 f"refused the service account {self.sa.client_email} "
                                 f"({token_error(doc)}); check credentials {self.cred_id!r}",
                                 reason="DriveAuthFailed")
        if not 200 <= reply.status < 300:
            raise http_failure(self.what, "POST", reply, credentials_id=self.cred_id)
        token = doc.get("access_token") if isinstance(doc, dict) else None
        if not isinstance(token, str) or not token:
            raise PermanentError(f"{self.what}: the token endpoint {redact(self.token_uri)} "
                                 f"answered without an access_token", reason="DriveAuthFailed")
        self._token, self._at = token, time.monotonic()


def _json(reply: Reply) -> Any:
    try:
        return json.loads(reply.body) if reply.body else None
    except ValueError:
        return None


def _read_chunk(path: Path, offset: int, size: int) -> bytes:
    with open(path, "rb") as f:
        f.seek(offset)
        return f.read(size)


async def _find(s: _Session, list_url: str, key: str) -> dict[str, Any] | None:
    reply = await s.client.request("GET", list_url, params=find_query(key),
                                   headers=await s.auth(), max_bytes=REPLY_LIMIT)
    if not 200 <= reply.status < 300:
        raise http_failure(s.what, "GET", reply, credentials_id=s.cred_id)
    doc = _json(reply)
    files = doc.get("files") if isinstance(doc, dict) else None
    return files[0] if isinstance(files, list) and files and isinstance(files[0], dict) else None


async def _upload(s: _Session, upload_url: str, path: Path, artifact: events_pb2.Artifact,
                  folder_id: str, key: str) -> dict[str, Any]:
    what = f"{s.what}, artifact {artifact.name!r}"
    meta = json.dumps(file_metadata(artifact.name, folder_id, key)).encode()
    total = artifact.size
    reply = await s.client.request(
        "POST", session_url(upload_url), body=lambda: meta, max_bytes=REPLY_LIMIT,
        headers={**await s.auth(), "Content-Type": "application/json; charset=UTF-8",
                 "X-Upload-Content-Type": artifact.content_type or "application/octet-stream",
                 "X-Upload-Content-Length": str(total)})
    if not 200 <= reply.status < 300:
        raise http_failure(what, "POST", reply, credentials_id=s.cred_id)
    session = reply.headers.get("Location")
    if not session:
        raise PermanentError(f"{what}: Drive opened no upload session (no Location header)",
                             reason="DriveProtocolError")
    idle = aiohttp.ClientTimeout(total=None, sock_connect=TIMEOUT, sock_read=TIMEOUT)
    offset, failures = 0, 0
    while True:
        chunk = await asyncio.to_thread(_read_chunk, path, offset, CHUNK)
        end = offset + len(chunk)
        try:
            # No retries inside the client: after a failed chunk the session is asked first.
            reply = await s.client.request(
                "PUT", session, body=lambda: chunk, max_bytes=REPLY_LIMIT, max_retries=0,
                headers={"Content-Range": content_range(offset, end, total)}, timeout=idle)
        except TemporaryError as e:
            failures += 1
            if failures > RETRIES:
                raise
            s.log.warning("%s: a chunk failed (%s); asking the session what it holds", what, e)
            reply = await s.client.request(
                "PUT", session, max_bytes=REPLY_LIMIT, headers={
                    "Content-Range": content_range(0, 0, total), "Content-Length": "0"})
        if reply.status in (200, 201):
            doc = _json(reply)
            if not isinstance(doc, dict) or not doc.get("id"):
                raise PermanentError(f"{what}: Drive finished the upload without a file id",
                                     reason="DriveProtocolError")
            return doc
        if reply.status == 308:
            offset = received_bytes(reply.headers.get("Range"))
            if offset > total:
                raise PermanentError(f"{what}: Drive claims {offset} bytes of {total}",
                                     reason="DriveProtocolError")
            continue
        if reply.status in (404, 410):
            raise TemporaryError(f"{what}: the Drive upload session expired; the upload starts "
                                 f"again on the next attempt")
        raise http_failure(what, "PUT", reply, credentials_id=s.cred_id)


@stage("drive", channel="dispatchers", task=tasks_pb2.DriveDispatcher)
async def dispatch_drive(task: tasks_pb2.DriveDispatcher, ctx: StageContext) -> StageResult:
    what = f"step {ctx.step!r} (drive folder {task.folder_id!r})"
    if not task.folder_id:
        raise PermanentError(f"step {ctx.step!r} (drive) has no folderId", reason="InvalidTask")
    if not task.credentials_id:
        raise PermanentError(f"{what} has no credentialsId (a service-account key)",
                             reason="InvalidTask")
    if not task.artifacts:
        raise PermanentError(f"{what} names no artifacts", reason="InvalidTask")
    sa = parse_service_account(ctx.credentials.load(task.credentials_id).require(KEY_FILE),
                               task.credentials_id)
    token_uri = task.token_uri or sa.token_uri or DEFAULT_TOKEN_URI
    upload_url = task.upload_url or DEFAULT_UPLOAD_URL
    uid = ctx.report.uid
    remote = not isinstance(ctx.artifacts, LocalArtifactStore)
    delivered: list[events_pb2.Artifact] = []
    async with HttpClient(what=what, allow_field=ALLOW_ENV, timeout=TIMEOUT,
                          max_retries=RETRIES) as client:
        s = _Session(client, sa, token_uri, task.credentials_id, what, ctx.log)
        for ref in task.artifacts:
            name = safe_name(ref.name)
            artifact = await ctx.artifacts.stat(uid, name)
            key = idempotency_key(uid, ctx.step, artifact.sha256)
            file = await _find(s, files_url(upload_url), key)
            if file is not None:
                ctx.log.info("%s: %s is already in the folder (file %s), not uploaded again",
                             what, name, file["id"])
            else:
                path = await ctx.artifacts.fetch(uid, name, ctx.work_dir)
                try:
                    file = await _upload(s, upload_url, path, artifact, task.folder_id, key)
                finally:
                    if remote and path.resolve().is_relative_to(ctx.work_dir.resolve()):
                        path.unlink(missing_ok=True)
                ctx.log.info("%s: uploaded %s as file %s (%d bytes)", what, name, file["id"],
                             artifact.size)
            link = view_link(file)
            delivered.append(events_pb2.Artifact(
                name=name, location=link, url=link, size=artifact.size, sha256=artifact.sha256,
                content_type=artifact.content_type))
    return StageResult(artifacts=delivered,
                       message=f"{len(delivered)} file(s) in Drive folder {task.folder_id}")
