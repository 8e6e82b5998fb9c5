"""Webhook signatures, idempotency keys and payloads (goreports.workers.dispatchers._webhook_sign),
checked against an HMAC computed here from the documented format."""
from __future__ import annotations

import hashlib
import hmac
import json

from goreports.proto import events_pb2, job_pb2
from goreports.workers.dispatchers._webhook_sign import (IDEMPOTENCY_HEADER, SIGNATURE_HEADER,
                                                         TIMESTAMP_HEADER, artifact_payload,
                                                         encode, idempotency_key,
                                                         notification_payload, sign,
                                                         signature_headers, verify)

SECRET = b"whsec-unit"


def test_signature_is_hmac_sha256_over_timestamp_dot_body() -> None:
    body = b'{"a":1}'
    expected = hmac.new(SECRET, b"1700000000." + body, hashlib.sha256).hexdigest()
    assert sign(SECRET, 1700000000, body) == f"sha256={expected}"
    multipart = hmac.new(SECRET, b"1700000000." + body + b".abc123", hashlib.sha256).hexdigest()
    assert sign(SECRET, 1700000000, body, "abc123") == f"sha256={multipart}"


def test_headers_and_verification() -> None:
    body = encode({"b": 2, "a": "é"})
    assert body == '{"a":"é","b":2}'.encode()  # sorted, compact, UTF-8: stable bytes
    h = signature_headers(SECRET, body, "key-1", now=1700000000.7)
    assert h[TIMESTAMP_HEADER] == "1700000000" and h[IDEMPOTENCY_HEADER] == "key-1"
    ok = dict(timestamp=h[TIMESTAMP_HEADER], signature=h[SIGNATURE_HEADER], body=body)
    assert verify(SECRET, **ok, now=1700000100)
    assert not verify(b"other", **ok, now=1700000100)
    assert not verify(SECRET, **{**ok, "body": body + b" "}, now=1700000100)
    assert not verify(SECRET, **ok, now=1700000000 + 301)  # too old: a replay
    assert not verify(SECRET, timestamp="x", signature=h[SIGNATURE_HEADER], body=body)
    assert SIGNATURE_HEADER not in signature_headers(None, body, "k")  # unsigned without secret
    fh = signature_headers(SECRET, body, "k", file_sha256="ff", now=1700000000)
    assert verify(SECRET, fh[TIMESTAMP_HEADER], fh[SIGNATURE_HEADER], body, file_sha256="ff",
                  now=1700000000)
    assert not verify(SECRET, fh[TIMESTAMP_HEADER], fh[SIGNATURE_HEADER], body,
                      file_sha256="fe", now=1700000000)


def test_idempotency_key_is_stable_and_distinct() -> None:
    k = idempotency_key("uid-1", "post", "ab" * 32)
    assert k == idempotency_key("uid-1", "post", "ab" * 32) and len(k) == 64
    assert len({k, idempotency_key("uid-2", "post", "ab" * 32),
                idempotency_key("uid-1", "post2", "ab" * 32),
                idempotency_key("uid-1", "post", "cd" * 32)}) == 4


def job(failure: str = "") -> job_pb2.Job:
    return job_pb2.Job(name="post", trace_id="t-1", failure=failure,
                       report=job_pb2.ReportRef(namespace="ns", name="sales", uid="u-1"))


def test_payloads() -> None:
    art = events_pb2.Artifact(name="s.csv", location="file:///x/s.csv", size=3, sha256="aa",
                              content_type="text/csv")
    p = artifact_payload(job(), art, "k")
    assert p == {"type": "report.artifact", "step": "post", "traceId": "t-1",
                 "report": {"namespace": "ns", "name": "sales", "uid": "u-1"},
                 "artifact": {"name": "s.csv", "size": 3, "sha256": "aa",
                              "contentType": "text/csv", "location": "file:///x/s.csv"},
                 "idempotencyKey": "k"}
    ok = notification_payload(job(), [art], "k")
    assert ok["outcome"] == "success" and "error" not in ok
    assert ok["text"] == "Report ns/sales succeeded: s.csv"
    bad = notification_payload(job("collect: boom"), [], "k")
    assert bad["type"] == "report.failed" and bad["error"] == "collect: boom"
    assert bad["text"] == "Report ns/sales failed: collect: boom"
    assert json.loads(encode(bad)) == bad
