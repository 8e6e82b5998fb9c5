"""Pure rules of the S3 dispatcher: the object key, its metadata and encryption settings, and
when an object already in the bucket is the one we would upload.

Kept apart from the stage (no boto3, no I/O) so the rules are tested without a server. The name
starts with `_`: the registry does not load it as a stage.
"""
from __future__ import annotations

import re
from typing import Any, Mapping

from goreports.core.errors import PermanentError
from goreports.proto import tasks_pb2

SHA256_META = "sha256"
SSE_VALUES = ("", "AES256", "aws:kms")
MAX_KEY_BYTES = 1024
MAX_METADATA_BYTES = 2048  # S3's limit on user metadata (names + values)
_META_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def _invalid(message: str) -> PermanentError:
    return PermanentError(message, reason="InvalidTask")


def object_key(prefix: str, name: str) -> str:
    """`prefix + name`, refused when it has control characters or is too long for S3."""
    key = f"{prefix}{name}"
    if any(ord(c) < 32 or ord(c) == 127 for c in key):
        raise _invalid(f"S3 key {key!r} contains control characters (check prefix)")
    if len(key.encode()) > MAX_KEY_BYTES:
        raise _invalid(f"S3 key for {name!r} is longer than {MAX_KEY_BYTES} bytes "
                       f"(shorten prefix)")
    return key


def user_metadata(task: tasks_pb2.S3Dispatcher) -> dict[str, str]:
    """The task's metadata as S3 stores it (lower-case names, printable ASCII values)."""
    out: dict[str, str] = {}
    for name, value in task.metadata.items():
        if not _META_NAME.match(name):
            raise _invalid(f"S3 metadata name {name!r} must be letters, digits, '.', '_' or '-'")
        if name.lower() == SHA256_META:
            raise _invalid(f"S3 metadata name {name!r} is reserved: the dispatcher sets the "
                           f"file's sha256 itself")
        if any(not (32 <= ord(c) < 127) for c in value):
            raise _invalid(f"S3 metadata {name!r} must be printable ASCII (HTTP headers carry it)")
        out[name.lower()] = value
    size = sum(len(k) + len(v) for k, v in out.items()) + len(SHA256_META) + 64
    if size > MAX_METADATA_BYTES:
        raise _invalid(f"S3 metadata is {size} bytes with the sha256; S3 allows "
                       f"{MAX_METADATA_BYTES}")
    return out


def encryption_args(task: tasks_pb2.S3Dispatcher) -> dict[str, str]:
    """ExtraArgs for server-side encryption."""
    sse = task.server_side_encryption
    if sse not in SSE_VALUES:
        raise _invalid(f"serverSideEncryption {sse!r} is not one of AES256, aws:kms (or empty)")
    if task.kms_key_id and sse != "aws:kms":
        raise _invalid("kmsKeyId needs serverSideEncryption: aws:kms")
    args: dict[str, str] = {}
    if sse:
        args["ServerSideEncryption"] = sse
    if task.kms_key_id:
        args["SSEKMSKeyId"] = task.kms_key_id
    return args


def validate(task: tasks_pb2.S3Dispatcher) -> None:
    """Everything about a task that can be refused before touching the network."""
    if not task.bucket:
        raise _invalid("the s3 dispatcher has no bucket")
    if not task.artifacts:
        raise _invalid(f"the s3 dispatcher to bucket {task.bucket!r} names no artifacts")
    if task.presign_seconds > 7 * 24 * 3600:
        raise _invalid("presignSeconds is at most 604800 (7 days, the SigV4 limit)")
    user_metadata(task)
    encryption_args(task)
    object_key(task.prefix, "x")


def upload_args(task: tasks_pb2.S3Dispatcher, sha256: str, content_type: str) -> dict[str, Any]:
    """boto3 ExtraArgs of one upload."""
    return {"ContentType": content_type,
            "Metadata": {**user_metadata(task), SHA256_META: sha256},
            **encryption_args(task)}


def same_object(head: Mapping[str, Any] | None, *, size: int, sha256: str,
                extra: Mapping[str, Any]) -> bool:
    """True when the object `head` describes already holds these bytes with these settings
    (so uploading again would change nothing)."""
    if head is None or not sha256:
        return False
    meta = {k.lower(): v for k, v in (head.get("Metadata") or {}).items()}
    if int(head.get("ContentLength", -1)) != size or meta != dict(extra.get("Metadata", {})):
        return False
    if "ServerSideEncryption" in extra and \
            head.get("ServerSideEncryption") != extra["ServerSideEncryption"]:
        return False
    want_type = extra.get("ContentType")
    return not want_type or head.get("ContentType") == want_type
