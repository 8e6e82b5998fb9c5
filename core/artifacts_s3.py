"""The S3-compatible artifact store: staging for generators and dispatchers in different pods.

Why: the local artifact folder only works in one process (`goreports run`) or for pods sharing a
volume. In a cluster, the excel pool writes a file that the s3, email or webhook pools must
read; a bucket (AWS S3, MinIO, Ceph, ...) is the shared staging area that needs no
ReadWriteMany volume.

Layout: `<prefix><uid>/<name>` in one bucket (GOREPORTS_ARTIFACT_S3_BUCKET, _PREFIX, _ENDPOINT,
_CREDENTIALS_ID; see core/settings.py). Each object carries its sha256 as user metadata
(`x-amz-meta-sha256`), so `stat` needs no download and `fetch` verifies what it downloaded.

- put: one PUT (or a multipart upload above 8 MiB): S3 makes the object visible only when it is
  complete, so a reader never sees half a file; a retried put overwrites it with the same bytes.
- fetch: streams the object into the job's work dir (s3transfer writes a temporary file and
  renames it), then checks its sha256 against the metadata.
- delete_report: removes every object under `<prefix><uid>/`, page by page (the operator's
  finalizer and `goreports run` call it when the report ends; a bucket lifecycle rule on the
  prefix is the TTL for reports nobody cleans up).

Every boto3 call runs in `asyncio.to_thread`: the worker's event loop keeps heartbeating.
"""
from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

from goreports.core.errors import PermanentError, TemporaryError
from goreports.core.settings import Settings
from goreports.proto import events_pb2
from goreports.core import s3client as _s3
from goreports.core.artifacts import ArtifactStore, content_type_for, file_digest, safe_name
from goreports.core.credentials import Credentials, CredentialStore

SHA256_META = "sha256"


class S3ArtifactStore(ArtifactStore):
    def __init__(self, bucket: str, prefix: str = "staging/", *, endpoint_url: str = "",
                 region: str = "", credentials: Credentials | None = None,
                 multipart_threshold: int = _s3.DEFAULT_MULTIPART_THRESHOLD) -> None:
        if not bucket:
            raise ValueError("the S3 artifact store needs a bucket (GOREPORTS_ARTIFACT_S3_BUCKET)")
        self.bucket = bucket
        self.prefix = prefix
        self.endpoint_url = endpoint_url
        self.region = region
        self.credentials = credentials
        self.transfer = _s3.transfer_config(multipart_threshold)
        self._client: Any = None
        self._client_keys: _s3.S3Keys | None = None
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> "S3ArtifactStore":
        creds = None
        if settings.artifact_s3_credentials_id:
            creds = CredentialStore(settings.credentials_dir).load(
                settings.artifact_s3_credentials_id)
        return cls(settings.artifact_s3_bucket, settings.artifact_s3_prefix,
                   endpoint_url=settings.artifact_s3_endpoint, credentials=creds)

    def __repr__(self) -> str:
        return f"S3ArtifactStore(s3://{self.bucket}/{self.prefix}, endpoint={self.endpoint_url!r})"

    # -- helpers ----------------------------------------------------------------------------------
    def key(self, uid: str, name: str) -> str:
        return f"{self.prefix}{safe_name(uid)}/{safe_name(name)}"

    def location(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"

    def client(self) -> Any:
        """The boto3 client; rebuilt when the mounted keys change (a rotated Secret)."""
        keys = _s3.read_keys(self.credentials) if self.credentials is not None else None
        with self._lock:
            if self._client is None or keys != self._client_keys:
                self._client = _s3.make_client(endpoint_url=self.endpoint_url,
                                               region=self.region, keys=keys)
                self._client_keys = keys
            return self._client

    def _error(self, e: BaseException, action: str, key: str) -> Exception:
        err = _s3.s3_error(e, action=f"artifact store: {action}", where=self.location(key),
                           endpoint=self.endpoint_url)
        if isinstance(err, PermanentError) and err.reason == "S3BucketNotFound":
            err.args = (f"{err} (GOREPORTS_ARTIFACT_S3_BUCKET={self.bucket})",)
        return err

    def _head(self, key: str) -> dict[str, Any] | None:
        try:
            head: dict[str, Any] = self.client().head_object(Bucket=self.bucket, Key=key)
            return head
        except Exception as e:
            if _s3.is_not_found(e):
                return None
            raise self._error(e, "reading", key) from None

    def _artifact(self, name: str, key: str, head: dict[str, Any]) -> events_pb2.Artifact:
        return events_pb2.Artifact(
            name=name, location=self.location(key), size=int(head.get("ContentLength", 0)),
            sha256=head.get("Metadata", {}).get(SHA256_META, ""),
            content_type=head.get("ContentType") or content_type_for(name))

    # -- ArtifactStore ----------------------------------------------------------------------------
    async def put(self, uid: str, name: str, source: Path,
                  content_type: str | None = None) -> events_pb2.Artifact:
        key = self.key(uid, name)
        return await asyncio.to_thread(self._put, Path(source), key, name,
                                       content_type or content_type_for(name))

    def _put(self, source: Path, key: str, name: str, content_type: str) -> events_pb2.Artifact:
        size, sha = file_digest(source)
        try:
            self.client().upload_file(
                str(source), self.bucket, key, Config=self.transfer,
                ExtraArgs={"ContentType": content_type, "Metadata": {SHA256_META: sha}})
        except Exception as e:
            raise self._error(e, "storing", key) from None
        return events_pb2.Artifact(name=name, location=self.location(key), size=size,
                                   sha256=sha, content_type=content_type)

    async def fetch(self, uid: str, name: str, work_dir: Path) -> Path:
        key = self.key(uid, name)
        return await asyncio.to_thread(self._fetch, key, uid, name, Path(work_dir))

    def _fetch(self, key: str, uid: str, name: str, work_dir: Path) -> Path:
        head = self._head(key)
        if head is None:
            raise PermanentError(f"artifact {name!r} of report {uid} is not in the store at "
                                 f"{self.location(key)}", reason="ArtifactMissing")
        work_dir.mkdir(parents=True, exist_ok=True)
        target = work_dir / safe_name(name)
        try:
            self.client().download_file(self.bucket, key, str(target), Config=self.transfer)
        except Exception as e:
            target.unlink(missing_ok=True)
            if _s3.is_not_found(e):
                raise PermanentError(f"artifact {name!r} of report {uid} vanished from "
                                     f"{self.location(key)}", reason="ArtifactMissing") from None
            raise self._error(e, "downloading", key) from None
        want = head.get("Metadata", {}).get(SHA256_META)
        if want:
            size, sha = file_digest(target)
            if sha != want:
                # The generator ran again meanwhile, or the bytes were damaged: fetch again.
                target.unlink(missing_ok=True)
                raise TemporaryError(f"artifact {name!r} downloaded from {self.location(key)} "
                                     f"has sha256 {sha[:12]}…, its metadata says {want[:12]}…")
        return target

    async def stat(self, uid: str, name: str) -> events_pb2.Artifact:
        key = self.key(uid, name)
        head = await asyncio.to_thread(self._head, key)
        if head is None:
            raise PermanentError(f"artifact {name!r} of report {uid} is not in the store at "
                                 f"{self.location(key)}", reason="ArtifactMissing")
        return self._artifact(name, key, head)

    async def delete_report(self, uid: str) -> None:
        await asyncio.to_thread(self._delete_prefix, f"{self.prefix}{safe_name(uid)}/")

    def _delete_prefix(self, prefix: str) -> None:
        client = self.client()
        try:
            pages = client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket,
                                                                       Prefix=prefix)
            for page in pages:  # at most 1,000 keys a page: one DeleteObjects call each
                keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
                if not keys:
                    continue
                out = client.delete_objects(Bucket=self.bucket,
                                            Delete={"Objects": keys, "Quiet": True})
                if out.get("Errors"):
                    first = out["Errors"][0]
                    raise TemporaryError(f"artifact store: deleting {len(out['Errors'])} object(s) "
                                         f"under {self.location(prefix)} failed (first: "
                                         f"{first.get('Key')}: {first.get('Code')})")
        except TemporaryError:
            raise
        except Exception as e:
            raise self._error(e, "cleaning", prefix) from None
