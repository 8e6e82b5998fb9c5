"""boto3 clients for S3-compatible stores, and what their errors mean for a step.

Why a module of its own: the S3 dispatcher (a delivery target) and the S3 staging store (where
generators leave files for dispatchers in other pods) must read credentials the same way, talk
to AWS, MinIO, Ceph or moto the same way, and turn the same botocore errors into the same
retry-or-fail decision with a message an operator can act on.

Credentials come from a credentials folder (`core/credentials.py`): `access-key-id`,
`secret-access-key` and optional `session-token` (the underscore spellings `access_key_id`,
`secret_access_key`, `session_token` are read too, as the CRD's description names them). With
no credentials id, boto3's own chain applies (IRSA / instance profile / environment): the
worker's ambient identity. Files are read on each client construction, so a rotated Secret is
picked up without a restart.

The name starts with `_`: the registry only scans the channel packages, and this is no stage.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import boto3
import botocore.config
import botocore.exceptions
from boto3.s3.transfer import TransferConfig

from goreports.core.errors import GoReportsError, PermanentError, TemporaryError
from goreports.core.credentials import Credentials

MiB = 1 << 20
DEFAULT_MULTIPART_THRESHOLD = 8 * MiB
# S3 refuses parts under 5 MiB (except the last); s3transfer raises the part size itself when
# a file would need more than 10,000 parts.
MIN_PART_SIZE = 5 * MiB
DEFAULT_PART_SIZE = 8 * MiB
# Parts in flight per upload: memory is about this many parts, whatever the file size.
TRANSFER_CONCURRENCY = 4

_ACCESS_KEY = ("access-key-id", "access_key_id")
_SECRET_KEY = ("secret-access-key", "secret_access_key")
_SESSION_TOKEN = ("session-token", "session_token")


@dataclass(frozen=True)
class S3Keys:
    """Static keys read from a credentials folder. `repr` never shows them."""

    access_key_id: str
    secret_access_key: str
    session_token: str | None = None

    def __repr__(self) -> str:
        return "S3Keys(<redacted>)"


def _first(creds: Credentials, names: tuple[str, ...]) -> str | None:
    for name in names:
        value = creds.get(name)
        if value:
            return value.strip()
    return None


def read_keys(creds: Credentials) -> S3Keys:
    """The access key pair (and session token) of a credentials folder."""
    access = _first(creds, _ACCESS_KEY)
    secret = _first(creds, _SECRET_KEY)
    if not access or not secret:
        missing = [n[0] for n, v in ((_ACCESS_KEY, access), (_SECRET_KEY, secret)) if not v]
        creds.require(missing[0])  # raises CredentialsIncomplete listing the keys present
    return S3Keys(access, secret, _first(creds, _SESSION_TOKEN))  # type: ignore[arg-type]


def client_config(endpoint_url: str, region: str) -> botocore.config.Config:
    options: dict[str, object] = dict(
        region_name=region or None,
        signature_version="s3v4",
        retries={"mode": "standard", "max_attempts": 3},
        connect_timeout=10,
        read_timeout=60,
        max_pool_connections=TRANSFER_CONCURRENCY * 2,
        # Custom endpoints (MinIO, Ceph, moto) rarely serve virtual-hosted bucket names.
        s3={"addressing_style": "path" if endpoint_url else "auto"},
    )
    if "request_checksum_calculation" in botocore.config.Config.OPTION_DEFAULTS:
        # botocore >= 1.36 adds CRC checksums to every upload by default; many S3-compatible
        # stores refuse them. Send them only where the API requires them.
        options["request_checksum_calculation"] = "when_required"
        options["response_checksum_validation"] = "when_required"
    return botocore.config.Config(**options)


# One session for the process: it caches the parsed service model (a new session costs about
# 0.2 s per client). Sessions are not thread-safe, clients are: clients are made under a lock.
_session: boto3.session.Session | None = None
_session_lock = threading.Lock()


def make_client(*, endpoint_url: str = "", region: str = "", keys: S3Keys | None = None
                ) -> Any:
    """A thread-safe S3 client (explicit keys, or boto3's credential chain without them)."""
    global _session
    kwargs: dict[str, object] = {}
    if keys is not None:
        kwargs = dict(aws_access_key_id=keys.access_key_id,
                      aws_secret_access_key=keys.secret_access_key,
                      aws_session_token=keys.session_token)
    with _session_lock:
        if _session is None:
            _session = boto3.session.Session()
        return _session.client("s3", endpoint_url=endpoint_url or None,
                               region_name=region or None,
                               config=client_config(endpoint_url, region), **kwargs)


def transfer_config(multipart_threshold: int = 0) -> TransferConfig:
    """Uploads above the threshold go in parts of DEFAULT_PART_SIZE, TRANSFER_CONCURRENCY at
    a time (memory stays at a few parts whatever the file size)."""
    threshold = max(int(multipart_threshold) or DEFAULT_MULTIPART_THRESHOLD, MIN_PART_SIZE)
    return TransferConfig(multipart_threshold=threshold, multipart_chunksize=DEFAULT_PART_SIZE,
                          max_concurrency=TRANSFER_CONCURRENCY, use_threads=True)


def error_code(e: BaseException) -> str:
    """The S3 error code of a ClientError (or of the ClientError behind a transfer error)."""
    cur: BaseException | None = e
    while cur is not None:
        if isinstance(cur, botocore.exceptions.ClientError):
            return str(cur.response.get("Error", {}).get("Code", ""))
        cur = cur.__cause__ or cur.__context__
    return ""


def is_not_found(e: BaseException) -> bool:
    return error_code(e) in {"404", "NoSuchKey", "NotFound"}


# S3 error code -> (reason, what to do). Everything here fails the report at once: retrying
# with the same task and credentials cannot help.
_PERMANENT: dict[str, tuple[str, str]] = {
    "NoSuchBucket": ("S3BucketNotFound", "create the bucket or fix the bucket name"),
    "InvalidBucketName": ("S3BucketNotFound", "fix the bucket name"),
    "AccessDenied": ("S3AccessDenied", "grant the credentials s3:PutObject (and s3:GetObject "
                                       "for idempotency checks) on the bucket and prefix"),
    "AllAccessDisabled": ("S3AccessDenied", "the bucket is disabled"),
    "InvalidAccessKeyId": ("S3CredentialsInvalid", "check the credentials' access-key-id"),
    "SignatureDoesNotMatch": ("S3CredentialsInvalid", "check the credentials' "
                                                      "secret-access-key"),
    "AuthorizationHeaderMalformed": ("S3CredentialsInvalid", "check the region"),
    "InvalidArgument": ("S3RequestInvalid", "check encryption, metadata and key settings"),
    "InvalidRequest": ("S3RequestInvalid", "check encryption, metadata and key settings"),
    "KMS.NotFoundException": ("S3KmsKeyInvalid", "check kmsKeyId"),
    "KMS.DisabledException": ("S3KmsKeyInvalid", "enable the KMS key"),
    "KMS.AccessDeniedException": ("S3AccessDenied", "grant the credentials kms:GenerateDataKey"),
    "EntityTooLarge": ("S3ObjectTooLarge", "the file exceeds the store's object size limit"),
    "KeyTooLongError": ("S3RequestInvalid", "shorten the prefix or file name"),
    "MetadataTooLarge": ("S3RequestInvalid", "S3 metadata is limited to 2 KB"),
}
_TEMPORARY_CODES = {"SlowDown", "RequestTimeout", "InternalError", "ServiceUnavailable",
                    "Throttling", "ThrottlingException", "RequestTimeTooSkewed",
                    "OperationAborted", "TokenRefreshRequired"}
_TEMPORARY_BOTOCORE = (botocore.exceptions.EndpointConnectionError,
                       botocore.exceptions.ConnectionError,
                       botocore.exceptions.HTTPClientError,
                       botocore.exceptions.ReadTimeoutError,
                       botocore.exceptions.ConnectTimeoutError)


def s3_error(e: BaseException, *, action: str, where: str, endpoint: str = "") -> GoReportsError:
    """A TemporaryError or PermanentError for a boto3 failure of `action` on `where`
    (`s3://bucket/key`), naming the endpoint; never the keys."""
    if isinstance(e, GoReportsError):
        return e
    at = f" at {endpoint}" if endpoint else ""
    code = error_code(e)
    if code:
        cur: BaseException | None = e
        status = 0
        detail = code
        while cur is not None:
            if isinstance(cur, botocore.exceptions.ClientError):
                status = int(cur.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
                detail = f"{code}: {cur.response.get('Error', {}).get('Message', '')}".rstrip(": ")
                break
            cur = cur.__cause__ or cur.__context__
        message = f"{action} {where}{at} failed ({detail})"
        if code in _PERMANENT:
            reason, hint = _PERMANENT[code]
            return PermanentError(f"{message}; {hint}", reason=reason)
        if code == "ExpiredToken":  # a rotated Secret is read on the next attempt
            return TemporaryError(f"{message}; the session token expired (rotate the Secret)")
        if code in _TEMPORARY_CODES or status >= 500 or status == 429:
            return TemporaryError(message)
        return PermanentError(message, reason="S3RequestRefused")
    if isinstance(e, (botocore.exceptions.NoCredentialsError,
                      botocore.exceptions.PartialCredentialsError)):
        return PermanentError(f"{action} {where}{at}: no S3 credentials (set credentialsId, or "
                              f"give the worker an identity)", reason="S3CredentialsMissing")
    if isinstance(e, botocore.exceptions.ParamValidationError):
        return PermanentError(f"{action} {where}{at}: {e}", reason="S3RequestInvalid")
    if isinstance(e, _TEMPORARY_BOTOCORE) or isinstance(e, OSError):
        return TemporaryError(f"{action} {where}{at} failed: {e}")
    if isinstance(e, boto3.exceptions.RetriesExceededError):
        return TemporaryError(f"{action} {where}{at} failed after retries: {e}")
    return TemporaryError(f"{action} {where}{at} failed: {type(e).__name__}: {e}")
