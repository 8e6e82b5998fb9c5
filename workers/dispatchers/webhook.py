"""The `webhook` dispatcher: POST each artifact's metadata (JSON), or the file itself (multipart,
`sendFile`), to a URL, signed with HMAC-SHA256 and carrying an idempotency key.

Why it looks like this:

- At-least-once delivery meets a receiver that should act once: every request for one report,
  step and artifact content carries the same `Idempotency-Key` (see _webhook_sign), and after
  a 2xx answer a marker on the bus makes a re-delivered job skip that artifact. The window
  between the receiver's 2xx and our marker is where a duplicate can still happen; the key is
  what lets the receiver drop it.
- The signature (`X-GoReports-Signature`, key: the credentials file `hmac-secret`) proves the
  sender and binds a fresh `X-GoReports-Timestamp`, so receivers can refuse replays. Large files
  are streamed from disk (aiohttp multipart over a file object), so the signature covers the
  metadata part and the file's sha256 instead of the file's bytes (docs/dispatchers-http.md).
- The SSRF guard of goreports.workers._net applies (`allowHosts`); redirects are not followed
  (a POST body cannot be replayed safely to wherever a redirect points).
- Webhook URLs often carry a secret in their path (chat webhooks): status, events and logs show
  only the URL's origin.

Without `credentialsId` requests are sent unsigned (a warning is logged); with it, `hmac-secret`
is required and an optional `token` is sent as `Authorization: Bearer`.
"""
from __future__ import annotations

import io
from pathlib import Path
from typing import Any, Callable, Mapping

import aiohttp

from goreports.core.errors import PermanentError
from goreports.proto import events_pb2, tasks_pb2
from goreports.workers._net import HttpClient, Reply, http_failure, origin
from goreports.core.artifacts import LocalArtifactStore, safe_name
from goreports.workers.dispatchers._webhook_sign import (artifact_payload, encode,
                                                         idempotency_key, signature_headers)
from goreports.workers.registry import stage
from goreports.workers.stage import StageContext, StageResult

DEFAULT_TIMEOUT = 30
DEFAULT_RETRIES = 3
REPLY_LIMIT = 64 * 1024  # the receiver's answer is only read for error messages


def webhook_client(task: tasks_pb2.WebhookDispatcher, what: str) -> HttpClient:
    return HttpClient(what=what, allow_hosts=task.allow_hosts,
                      timeout=task.timeout_seconds or DEFAULT_TIMEOUT,
                      max_retries=task.max_retries or DEFAULT_RETRIES)


def webhook_secrets(task: tasks_pb2.WebhookDispatcher, ctx: StageContext, what: str
                    ) -> tuple[bytes | None, dict[str, str]]:
    """(HMAC key, auth headers) from the task's credentials; (None, {}) without credentials."""
    if not task.credentials_id:
        ctx.log.warning("%s: no credentialsId, requests are not signed", what)
        return None, {}
    creds = ctx.credentials.load(task.credentials_id)
    secret = creds.require("hmac-secret").encode()
    token = creds.get("token")
    return secret, ({"Authorization": f"Bearer {token.strip()}"} if token else {})


async def post_signed(client: HttpClient, task: tasks_pb2.WebhookDispatcher, *,
                      payload: Mapping[str, Any], key: str, secret: bytes | None,
                      auth: Mapping[str, str], what: str,
                      file: tuple[Path, events_pb2.Artifact] | None = None) -> Reply:
    """One signed POST (retried by the client); raises PermanentError unless 2xx."""
    metadata = encode(payload)
    headers = {**task.headers, **auth}
    opened: list[io.BufferedReader] = []
    body: Callable[[], Any]
    if file is None:
        headers["Content-Type"] = "application/json"

        def body() -> Any:
            return metadata

        def per_attempt() -> Mapping[str, str]:
            return signature_headers(secret, metadata, key)
    else:
        path, artifact = file

        def body() -> Any:
            mp = aiohttp.MultipartWriter("form-data")
            meta = mp.append(metadata, {"Content-Type": "application/json"})
            meta.set_content_disposition("form-data", name="metadata")
            f = open(path, "rb")  # streamed by aiohttp in chunks, never read whole
            opened.append(f)
            part = mp.append(f, {"Content-Type": artifact.content_type or
                                 "application/octet-stream"})
            part.set_content_disposition("form-data", name="file", filename=artifact.name)
            return mp

        def per_attempt() -> Mapping[str, str]:
            return signature_headers(secret, metadata, key, file_sha256=artifact.sha256)
    timeout = None
    if file is not None:  # a big upload may take long: limit idle time, not the total
        t = task.timeout_seconds or DEFAULT_TIMEOUT
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=t, sock_read=t)
    try:
        reply = await client.request("POST", task.url, headers=headers, body=body,
                                     per_attempt=per_attempt, max_bytes=REPLY_LIMIT, truncate=True,
                                     timeout=timeout)
    finally:
        for f in opened:
            f.close()
    if not 200 <= reply.status < 300:
        raise http_failure(what, "POST", reply, credentials_id=task.credentials_id)
    return reply


@stage("webhook", channel="dispatchers", task=tasks_pb2.WebhookDispatcher)
async def dispatch_webhook(task: tasks_pb2.WebhookDispatcher, ctx: StageContext) -> StageResult:
    if not task.url:
        raise PermanentError(f"step {ctx.step!r} (webhook) has no url", reason="InvalidTask")
    target = origin(task.url)
    what = f"step {ctx.step!r} (webhook to {target})"
    if not task.artifacts:
        raise PermanentError(f"{what} names no artifacts", reason="InvalidTask")
    secret, auth = webhook_secrets(task, ctx, what)
    uid = ctx.report.uid
    remote = not isinstance(ctx.artifacts, LocalArtifactStore)
    delivered: list[events_pb2.Artifact] = []
    async with webhook_client(task, what) as client:
        for ref in task.artifacts:
            name = safe_name(ref.name)
            artifact = await ctx.artifacts.stat(uid, name)
            key = idempotency_key(uid, ctx.step, artifact.sha256)
            marker = ctx.bus.keys.marker(uid, f"webhook-{key[:32]}", ctx.step)
            if await ctx.bus.get_marker(marker) is None:
                payload = artifact_payload(ctx.job, artifact, key)
                if task.send_file:
                    path = await ctx.artifacts.fetch(uid, name, ctx.work_dir)
                    try:
                        await post_signed(client, task, payload=payload, key=key, secret=secret,
                                          auth=auth, what=f"{what}, artifact {name!r}",
                                          file=(path, artifact))
                    finally:
                        if remote and path.resolve().is_relative_to(ctx.work_dir.resolve()):
                            path.unlink(missing_ok=True)
                else:
                    await post_signed(client, task, payload=payload, key=key, secret=secret,
                                      auth=auth, what=f"{what}, artifact {name!r}")
                await ctx.bus.set_marker(marker, ttl=ctx.settings.report_ttl)
                ctx.log.info("%s: delivered %s (%d bytes, key %s)", what, name, artifact.size,
                             key[:12])
            else:
                ctx.log.info("%s: %s was delivered before (key %s), not sent again", what, name,
                             key[:12])
            delivered.append(events_pb2.Artifact(
                name=name, location=target, size=artifact.size, sha256=artifact.sha256,
                content_type=artifact.content_type))
    mode = "files" if task.send_file else "metadata"
    return StageResult(artifacts=delivered, message=f"{len(delivered)} artifact(s) ({mode}) "
                                                    f"posted to {target}")
