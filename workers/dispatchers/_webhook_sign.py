"""Pure pieces of the webhook dispatcher and the notifier: the JSON payloads, the idempotency key
and the HMAC signature (and a reference verifier for receivers and tests).

What is signed (docs/dispatchers-http.md says the same, for receivers):

- JSON requests (metadata only, and notifications):
  `HMAC-SHA256(secret, f"{timestamp}.{body}")`, hex, sent as
  `X-GoReports-Signature: sha256=<hex>` with `X-GoReports-Timestamp: <unix seconds>`.
- multipart requests (sendFile): the file is streamed and not signed byte by byte; the signature
  covers `f"{timestamp}.{metadata}.{sha256}"`, where `metadata` is the exact bytes of the
  `metadata` part and `sha256` the hex digest of the file (also inside the metadata). A receiver
  checks the signature, then hashes the `file` part it received and compares.

`Idempotency-Key` is stable for one report, step and content: a retried or re-delivered request
carries the same key, so the receiver can drop duplicates; the timestamp and signature are new
on each attempt, so a receiver may reject old timestamps (replays) without losing retries.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any, Mapping

from goreports.proto import events_pb2, job_pb2

SIGNATURE_HEADER = "X-GoReports-Signature"
TIMESTAMP_HEADER = "X-GoReports-Timestamp"
IDEMPOTENCY_HEADER = "Idempotency-Key"
DEFAULT_TOLERANCE = 300  # seconds a receiver should accept a timestamp for


def idempotency_key(uid: str, step: str, content: str) -> str:
    """Stable key of one delivery: (report uid, step, content digest or outcome)."""
    return hashlib.sha256(f"goreports\x00{uid}\x00{step}\x00{content}".encode()).hexdigest()


def encode(payload: Mapping[str, Any]) -> bytes:
    """Compact, key-sorted JSON: the same payload always gives the same bytes."""
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def signed_message(timestamp: int, body: bytes, file_sha256: str | None = None) -> bytes:
    """The bytes the signature covers: `{timestamp}.{body}` or, for multipart,
    `{timestamp}.{metadata}.{file sha256}`."""
    msg = str(int(timestamp)).encode() + b"." + body
    return msg if file_sha256 is None else msg + b"." + file_sha256.encode()


def sign(secret: bytes, timestamp: int, body: bytes, file_sha256: str | None = None) -> str:
    """The X-GoReports-Signature value."""
    digest = hmac.new(secret, signed_message(timestamp, body, file_sha256), hashlib.sha256)
    return "sha256=" + digest.hexdigest()


def signature_headers(secret: bytes | None, body: bytes, key: str,
                      file_sha256: str | None = None, now: float | None = None) -> dict[str, str]:
    """Timestamp, signature (when there is a secret) and idempotency key for one attempt."""
    ts = int(time.time() if now is None else now)
    headers = {TIMESTAMP_HEADER: str(ts), IDEMPOTENCY_HEADER: key}
    if secret is not None:
        headers[SIGNATURE_HEADER] = sign(secret, ts, body, file_sha256)
    return headers


def verify(secret: bytes, timestamp: str | None, signature: str | None, body: bytes, *,
           file_sha256: str | None = None, now: float | None = None,
           tolerance: int = DEFAULT_TOLERANCE) -> bool:
    """What a receiver does: a fresh timestamp and a matching signature (constant-time)."""
    if not timestamp or not signature or not timestamp.isdigit():
        return False
    if abs((time.time() if now is None else now) - int(timestamp)) > tolerance:
        return False
    expected = sign(secret, int(timestamp), body, file_sha256)
    return hmac.compare_digest(expected, signature)


def report_of(ref: job_pb2.ReportRef) -> dict[str, str]:
    return {"namespace": ref.namespace, "name": ref.name, "uid": ref.uid}


def artifact_of(a: events_pb2.Artifact) -> dict[str, Any]:
    out: dict[str, Any] = {"name": a.name, "size": a.size, "sha256": a.sha256,
                           "contentType": a.content_type, "location": a.location}
    if a.url:
        out["url"] = a.url
    return out


def artifact_payload(job: job_pb2.Job, artifact: events_pb2.Artifact, key: str
                     ) -> dict[str, Any]:
    """The JSON a webhook receives for one artifact (the `metadata` part when multipart)."""
    return {"type": "report.artifact", "report": report_of(job.report), "step": job.name,
            "traceId": job.trace_id, "artifact": artifact_of(artifact), "idempotencyKey": key}


def notification_payload(job: job_pb2.Job, artifacts: list[events_pb2.Artifact], key: str
                         ) -> dict[str, Any]:
    """The JSON of a notification: outcome, error (on failure), artifacts, and a one-line
    `text` that chat tools show as is."""
    failed = bool(job.failure)
    r = job.report
    text = (f"Report {r.namespace}/{r.name} failed: {job.failure}" if failed else
            f"Report {r.namespace}/{r.name} succeeded"
            + (f": {', '.join(a.name for a in artifacts)}" if artifacts else ""))
    payload: dict[str, Any] = {
        "type": "report.failed" if failed else "report.succeeded",
        "outcome": "failure" if failed else "success",
        "report": report_of(r), "step": job.name, "traceId": job.trace_id,
        "artifacts": [artifact_of(a) for a in artifacts], "text": text, "idempotencyKey": key,
    }
    if failed:
        payload["error"] = job.failure
    return payload
