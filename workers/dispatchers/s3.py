"""The `s3` dispatcher: uploads a report's artifacts to a bucket of any S3-compatible store.

Why it looks like this:
- Idempotent by key (a dispatcher may run twice for one report): the object's key is
  `prefix + file name`, and it carries the file's sha256 as metadata. Before uploading, the
  object is looked up; when it already holds the same bytes with the same metadata and
  encryption, nothing is sent again. An upload itself is atomic in S3 (a multipart upload
  becomes visible only when complete), so a crash mid-upload leaves the old object or none.
- Large files: above `multipart_threshold_bytes` (default 8 MiB) boto3's TransferConfig
  uploads in 8 MiB parts, four at a time: memory is a few parts, whatever the file size.
- Credentials from `credentials_id` (`access-key-id`, `secret-access-key`, optional
  `session-token`; see core/s3client.py), or the worker's ambient identity without one.
- `presign_seconds` > 0 records a presigned GET URL in the artifact's `url` (status). Anyone
  who can read the ReportRequest can then download the file until it expires.
- Every boto3 call runs in `asyncio.to_thread`, so heartbeats continue during long uploads.
"""
from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from goreports.proto import events_pb2, tasks_pb2
from goreports.core import s3client as _s3
from goreports.core.artifacts import LocalArtifactStore, content_type_for, file_digest, safe_name
from goreports.workers.dispatchers import _s3_object as rules
from goreports.workers.registry import stage
from goreports.workers.stage import StageContext, StageResult


class _Target:
    """One bucket of one endpoint, with the calls the stage makes (all blocking)."""

    def __init__(self, task: tasks_pb2.S3Dispatcher, client: Any) -> None:
        self.task = task
        self.client = client
        self.transfer = _s3.transfer_config(task.multipart_threshold_bytes)

    def where(self, key: str) -> str:
        return f"s3://{self.task.bucket}/{key}"

    def fail(self, e: BaseException, action: str, key: str) -> Exception:
        return _s3.s3_error(e, action=action, where=self.where(key),
                            endpoint=self.task.endpoint_url)

    def head(self, key: str) -> dict[str, Any] | None:
        """The object's headers; None when it does not exist or we may not read it (a
        write-only policy: then we upload, which is idempotent anyway)."""
        try:
            head: dict[str, Any] = self.client.head_object(Bucket=self.task.bucket, Key=key)
            return head
        except Exception as e:
            if _s3.is_not_found(e) or _s3.error_code(e) in {"403", "AccessDenied"}:
                return None
            raise self.fail(e, "checking", key) from None

    def upload(self, source: Path, key: str, extra: dict[str, Any]) -> None:
        try:
            self.client.upload_file(str(source), self.task.bucket, key, ExtraArgs=extra,
                                    Config=self.transfer)
        except Exception as e:
            raise self.fail(e, "uploading to", key) from None

    def presign(self, key: str) -> str:
        try:
            return str(self.client.generate_presigned_url(
                "get_object", Params={"Bucket": self.task.bucket, "Key": key},
                ExpiresIn=int(self.task.presign_seconds)))
        except Exception as e:
            raise self.fail(e, "presigning", key) from None


async def _deliver(ctx: StageContext, target: _Target, name: str) -> events_pb2.Artifact:
    task = target.task
    key = rules.object_key(task.prefix, name)
    staged = await ctx.artifacts.stat(ctx.report.uid, name)
    content_type = staged.content_type or content_type_for(name)
    extra = rules.upload_args(task, staged.sha256, content_type)
    head = await asyncio.to_thread(target.head, key)
    size, sha = staged.size, staged.sha256
    if rules.same_object(head, size=size, sha256=sha, extra=extra):
        ctx.log.info("%s is already at %s with sha256 %s…: not uploaded again", name,
                     target.where(key), sha[:12])
    else:
        source = await ctx.artifacts.fetch(ctx.report.uid, name, ctx.work_dir)
        remote = not isinstance(ctx.artifacts, LocalArtifactStore)
        try:
            # The bytes we send decide the metadata (the staged file may have been replaced
            # since `stat` by a generator that ran again).
            size, sha = await asyncio.to_thread(file_digest, source)
            extra = rules.upload_args(task, sha, content_type)
            await asyncio.to_thread(target.upload, source, key, extra)
        finally:
            if remote and source.resolve().is_relative_to(ctx.work_dir.resolve()):
                source.unlink(missing_ok=True)  # our download: drop it now
        ctx.log.info("uploaded %s to %s (%d bytes)", name, target.where(key), size)
    url = await asyncio.to_thread(target.presign, key) if task.presign_seconds else ""
    return events_pb2.Artifact(name=name, location=target.where(key), size=size, sha256=sha,
                               content_type=content_type, url=url)


def _client(ctx: StageContext, task: tasks_pb2.S3Dispatcher) -> Any:
    keys = None
    if task.credentials_id:
        keys = _s3.read_keys(ctx.credentials.load(task.credentials_id))
    return _s3.make_client(endpoint_url=task.endpoint_url, region=task.region, keys=keys)


@stage("s3", channel="dispatchers", task=tasks_pb2.S3Dispatcher)
async def dispatch_s3(task: tasks_pb2.S3Dispatcher, ctx: StageContext) -> StageResult:
    rules.validate(task)
    names = [safe_name(ref.name) for ref in task.artifacts]
    client = await asyncio.to_thread(_client, ctx, task)
    target = _Target(task, client)
    delivered = [await _deliver(ctx, target, name) for name in names]
    return StageResult(artifacts=delivered,
                       message=f"{len(delivered)} file(s) in s3://{task.bucket}/{task.prefix}")
