"""The S3 dispatcher and the S3 staging store against moto's standalone server (real HTTP,
real SigV4 signatures): sha256 metadata, multipart uploads, encryption, presigned URLs,
idempotency by key, the staging round trip, and whole reports staged in S3."""
from __future__ import annotations

import asyncio
import hashlib
import os
import sqlite3
import time
import urllib.request
from dataclasses import replace
from pathlib import Path
from typing import Any, Iterator

import botocore.exceptions
import pytest
import yaml

from goreports.core.errors import PermanentError, TemporaryError
from goreports.core.settings import Settings
from goreports.proto import tasks_pb2
from goreports.core import s3client as _s3
from goreports.core.artifacts_s3 import S3ArtifactStore
from goreports.core.credentials import CredentialStore
from goreports.workers.dispatchers import _s3_object as rules
from goreports.workers.dispatchers.s3 import dispatch_s3
from goreports.workers.stage import StageContext
from goreports.core.stores import artifact_store_from_settings
from support.s3 import CREDENTIALS_ID, MotoServer, moto_server, run_report  # noqa: F401
from support.servers import free_port

from unit.workers.stagekit import UID, make_ctx

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
MiB = 1 << 20


# -- helpers ------------------------------------------------------------------------------------

def staging_settings(moto: MotoServer, tmp_path: Path, bucket: str) -> Settings:
    return Settings(artifact_store="s3", artifact_s3_bucket=bucket,
                    artifact_s3_prefix="staging/", artifact_s3_endpoint=moto.endpoint,
                    artifact_s3_credentials_id=CREDENTIALS_ID, credentials_dir=moto.credentials_dir,
                    work_dir=tmp_path / "work", artifact_dir=tmp_path / "unused",
                    retry_base_delay=0.05, heartbeat_interval=0.5)


def s3_ctx(tmp_path: Path, moto: MotoServer, store: Any = None, step: str = "upload"
           ) -> StageContext:
    """A stage context whose credentials folder holds the moto keys (local staging unless a
    store is given)."""
    ctx = make_ctx(tmp_path, step)
    ctx.settings = replace(ctx.settings, credentials_dir=moto.credentials_dir)
    ctx.credentials = CredentialStore(moto.credentials_dir)
    if store is not None:
        ctx.artifacts = store
    return ctx


async def stage_bytes(ctx: StageContext, tmp_path: Path, name: str, data: bytes) -> None:
    src = tmp_path / f"src-{name}"
    src.write_bytes(data)
    await ctx.artifacts.put(UID, name, src)


def task(moto: MotoServer, bucket: str, *names: str, **kw: Any) -> tasks_pb2.S3Dispatcher:
    fields: dict[str, Any] = dict(bucket=bucket, prefix="reports/sales/",
                                  endpoint_url=moto.endpoint, region="us-east-1",
                                  credentials_id=CREDENTIALS_ID,
                                  artifacts=[{"name": n} for n in names])
    return tasks_pb2.S3Dispatcher(**{**fields, **kw})


class CallCounter:
    """Counts the S3 API calls of every client the stages build (botocore event hooks)."""

    def __init__(self) -> None:
        self.calls: dict[str, int] = {}

    def __call__(self, model: Any, **_: Any) -> None:
        self.calls[model.name] = self.calls.get(model.name, 0) + 1

    def reset(self) -> None:
        self.calls.clear()


@pytest.fixture
def s3_calls(monkeypatch: pytest.MonkeyPatch) -> Iterator[CallCounter]:
    counter = CallCounter()
    real = _s3.make_client

    def counting_client(**kw: Any) -> Any:
        client = real(**kw)
        client.meta.events.register("before-call.s3", counter)
        return client

    monkeypatch.setattr(_s3, "make_client", counting_client)
    yield counter


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# -- the dispatcher -----------------------------------------------------------------------------

async def test_upload_carries_sha256_encryption_metadata_and_a_working_presigned_url(
        tmp_path: Path, moto_server: MotoServer) -> None:
    bucket = moto_server.new_bucket("deliver")
    ctx = s3_ctx(tmp_path, moto_server)
    data = b"region,revenue\nNorth,12.50\n" * 100
    await stage_bytes(ctx, tmp_path, "sales.csv", data)
    result = await dispatch_s3(task(moto_server, bucket, "sales.csv",
                                    server_side_encryption="AES256",
                                    metadata={"Team": "sales"}, presign_seconds=300), ctx)
    [a] = result.artifacts
    assert a.location == f"s3://{bucket}/reports/sales/sales.csv"
    assert (a.size, a.sha256, a.content_type) == (len(data), sha(data), "text/csv")
    head = moto_server.client().head_object(Bucket=bucket, Key="reports/sales/sales.csv")
    assert head["Metadata"] == {"sha256": sha(data), "team": "sales"}
    assert head["ServerSideEncryption"] == "AES256"
    assert head["ContentType"] == "text/csv"
    body = moto_server.client().get_object(Bucket=bucket, Key="reports/sales/sales.csv")["Body"]
    assert sha(body.read()) == a.sha256
    assert a.url.startswith(moto_server.endpoint) and "X-Amz-Signature=" in a.url
    fetched = await asyncio.to_thread(lambda: urllib.request.urlopen(a.url, timeout=10).read())
    assert fetched == data


async def test_kms_encryption_names_the_key(tmp_path: Path, moto_server: MotoServer) -> None:
    bucket = moto_server.new_bucket("kms")
    ctx = s3_ctx(tmp_path, moto_server)
    await stage_bytes(ctx, tmp_path, "a.csv", b"x,y\n")
    key_id = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    await dispatch_s3(task(moto_server, bucket, "a.csv", server_side_encryption="aws:kms",
                           kms_key_id=key_id), ctx)
    head = moto_server.client().head_object(Bucket=bucket, Key="reports/sales/a.csv")
    assert head["ServerSideEncryption"] == "aws:kms"
    assert head["SSEKMSKeyId"] == key_id


async def test_a_large_artifact_goes_in_parts_once_and_is_not_uploaded_again(
        tmp_path: Path, moto_server: MotoServer, s3_calls: CallCounter) -> None:
    """50 MiB staged in S3 and delivered to another bucket: multipart both ways; the second
    dispatch neither downloads nor uploads."""
    staging = moto_server.new_bucket("staging")
    bucket = moto_server.new_bucket("big")
    store = S3ArtifactStore.from_settings(staging_settings(moto_server, tmp_path, staging))
    ctx = s3_ctx(tmp_path, moto_server, store)
    data = os.urandom(50 * MiB)
    t0 = time.monotonic()
    await stage_bytes(ctx, tmp_path, "big.bin", data)
    t1 = time.monotonic()
    s3_calls.reset()
    first = await dispatch_s3(task(moto_server, bucket, "big.bin"), ctx)
    t2 = time.monotonic()
    assert first.artifacts[0].sha256 == sha(data) and first.artifacts[0].size == len(data)
    # 50 MiB in 8 MiB parts: 7 parts, and S3's ETag of a multipart object ends in "-7".
    assert s3_calls.calls.get("CreateMultipartUpload") == 1
    assert s3_calls.calls.get("UploadPart") == 7
    assert s3_calls.calls.get("CompleteMultipartUpload") == 1
    assert "PutObject" not in s3_calls.calls
    head = moto_server.client().head_object(Bucket=bucket, Key="reports/sales/big.bin")
    assert head["ETag"].strip('"').endswith("-7")
    assert head["Metadata"]["sha256"] == sha(data)
    assert not list((ctx.work_dir).glob("big.bin*"))  # the download was dropped after upload

    s3_calls.reset()
    second = await dispatch_s3(task(moto_server, bucket, "big.bin"), ctx)
    t3 = time.monotonic()
    assert list(second.artifacts) == list(first.artifacts)
    assert s3_calls.calls == {"HeadObject": 2}  # staged object + target object, nothing else
    print(f"\n50 MiB: staged in {t1 - t0:.2f}s, delivered (download + multipart upload) in "
          f"{t2 - t1:.2f}s, second dispatch {t3 - t2:.3f}s")


async def test_changed_bytes_under_the_same_key_are_uploaded_again(
        tmp_path: Path, moto_server: MotoServer, s3_calls: CallCounter) -> None:
    bucket = moto_server.new_bucket("change")
    ctx = s3_ctx(tmp_path, moto_server)
    await stage_bytes(ctx, tmp_path, "r.csv", b"old\n")
    await dispatch_s3(task(moto_server, bucket, "r.csv"), ctx)
    await stage_bytes(ctx, tmp_path, "r.csv", b"new bytes\n")
    s3_calls.reset()
    [a] = (await dispatch_s3(task(moto_server, bucket, "r.csv"), ctx)).artifacts
    assert s3_calls.calls.get("PutObject") == 1
    obj = moto_server.client().get_object(Bucket=bucket, Key="reports/sales/r.csv")
    assert obj["Body"].read() == b"new bytes\n" and a.sha256 == sha(b"new bytes\n")
    # Same bytes but other metadata asked for: the object is rewritten with it.
    s3_calls.reset()
    await dispatch_s3(task(moto_server, bucket, "r.csv", metadata={"team": "ops"}), ctx)
    assert s3_calls.calls.get("PutObject") == 1


async def test_missing_bucket_fails_and_an_unreachable_endpoint_retries(
        tmp_path: Path, moto_server: MotoServer) -> None:
    ctx = s3_ctx(tmp_path, moto_server)
    await stage_bytes(ctx, tmp_path, "a.csv", b"1\n")
    with pytest.raises(PermanentError) as e:
        await dispatch_s3(task(moto_server, "no-such-bucket-here", "a.csv"), ctx)
    assert e.value.reason == "S3BucketNotFound"
    assert "s3://no-such-bucket-here/reports/sales/a.csv" in str(e.value)
    assert moto_server.endpoint in str(e.value)
    down = tasks_pb2.S3Dispatcher(bucket="b-down", endpoint_url=f"http://127.0.0.1:{free_port()}",
                                  credentials_id=CREDENTIALS_ID, artifacts=[{"name": "a.csv"}])
    with pytest.raises(TemporaryError, match="b-down"):
        await dispatch_s3(down, ctx)
    missing_creds = task(moto_server, "b", "a.csv", credentials_id="nope")
    with pytest.raises(PermanentError) as e:
        await dispatch_s3(missing_creds, ctx)
    assert e.value.reason == "CredentialsNotFound"


async def test_credentials_are_read_with_either_spelling_and_never_shown(tmp_path: Path) -> None:
    folder = tmp_path / "creds" / "alt"
    folder.mkdir(parents=True)
    (folder / "access_key_id").write_text("AKIAALT\n")
    (folder / "secret_access_key").write_text("very-secret\n")
    keys = _s3.read_keys(CredentialStore(tmp_path / "creds").load("alt"))
    assert (keys.access_key_id, keys.secret_access_key, keys.session_token) == \
        ("AKIAALT", "very-secret", None)
    assert "very-secret" not in repr(keys)
    (folder / "secret_access_key").unlink()
    with pytest.raises(PermanentError, match="secret-access-key") as e:
        _s3.read_keys(CredentialStore(tmp_path / "creds").load("alt"))
    assert e.value.reason == "CredentialsIncomplete"


# -- pure rules (no server) ---------------------------------------------------------------------

def test_task_rules() -> None:
    base = dict(bucket="b", artifacts=[{"name": "a.csv"}])
    rules.validate(tasks_pb2.S3Dispatcher(**base))  # type: ignore[arg-type]
    bad = [dict(kms_key_id="k"), dict(server_side_encryption="DES"),
           dict(metadata={"sha256": "x"}), dict(metadata={"bad name": "x"}),
           dict(metadata={"k": "caf\u00e9"}), dict(metadata={"k": "a\r\nb"}),
           dict(prefix="a\nb/"), dict(presign_seconds=8 * 24 * 3600),
           dict(metadata={f"k{i}": "v" * 100 for i in range(30)})]
    for extra in bad:
        with pytest.raises(PermanentError) as e:
            rules.validate(tasks_pb2.S3Dispatcher(**base, **extra))  # type: ignore[arg-type]
        assert e.value.reason == "InvalidTask", extra
    with pytest.raises(PermanentError, match="no bucket"):
        rules.validate(tasks_pb2.S3Dispatcher(artifacts=[{"name": "a"}]))
    with pytest.raises(PermanentError, match="longer than 1024"):
        rules.object_key("p/" * 600, "a.csv")


def test_same_object_compares_bytes_metadata_encryption_and_type() -> None:
    extra = rules.upload_args(tasks_pb2.S3Dispatcher(bucket="b", server_side_encryption="AES256",
                                                     metadata={"Team": "x"}), "f" * 64, "text/csv")
    head = {"ContentLength": 5, "Metadata": {"sha256": "f" * 64, "team": "x"},
            "ServerSideEncryption": "AES256", "ContentType": "text/csv"}
    assert rules.same_object(head, size=5, sha256="f" * 64, extra=extra)
    assert not rules.same_object(None, size=5, sha256="f" * 64, extra=extra)
    assert not rules.same_object(head, size=6, sha256="f" * 64, extra=extra)
    assert not rules.same_object({**head, "Metadata": {"sha256": "e" * 64, "team": "x"}},
                                 size=5, sha256="f" * 64, extra=extra)
    assert not rules.same_object({**head, "ServerSideEncryption": None}, size=5,
                                 sha256="f" * 64, extra=extra)
    assert not rules.same_object({**head, "ContentType": "text/plain"}, size=5,
                                 sha256="f" * 64, extra=extra)
    assert not rules.same_object(head, size=5, sha256="", extra=extra)


def _client_error(code: str, status: int) -> botocore.exceptions.ClientError:
    return botocore.exceptions.ClientError(
        {"Error": {"Code": code, "Message": "m"}, "ResponseMetadata": {"HTTPStatusCode": status}},
        "PutObject")


@pytest.mark.parametrize("exc, kind, reason", [
    (_client_error("AccessDenied", 403), PermanentError, "S3AccessDenied"),
    (_client_error("InvalidAccessKeyId", 403), PermanentError, "S3CredentialsInvalid"),
    (_client_error("SignatureDoesNotMatch", 403), PermanentError, "S3CredentialsInvalid"),
    (_client_error("NoSuchBucket", 404), PermanentError, "S3BucketNotFound"),
    (_client_error("SlowDown", 503), TemporaryError, None),
    (_client_error("InternalError", 500), TemporaryError, None),
    (_client_error("ExpiredToken", 400), TemporaryError, None),
    (_client_error("WeirdThing", 400), PermanentError, "S3RequestRefused"),
    (botocore.exceptions.EndpointConnectionError(endpoint_url="http://x"), TemporaryError, None),
    (botocore.exceptions.NoCredentialsError(), PermanentError, "S3CredentialsMissing"),
])
def test_s3_errors_retry_or_fail(exc: Exception, kind: type, reason: str | None) -> None:
    err = _s3.s3_error(exc, action="uploading to", where="s3://b/k", endpoint="http://minio:9000")
    assert type(err) is kind
    assert "s3://b/k" in str(err) and "http://minio:9000" in str(err)
    if reason:
        assert err.reason == reason  # type: ignore[attr-defined]


def test_transfer_config_thresholds() -> None:
    assert _s3.transfer_config(0).multipart_threshold == 8 * MiB
    assert _s3.transfer_config(1).multipart_threshold == 5 * MiB  # S3's smallest part
    assert _s3.transfer_config(64 * MiB).multipart_threshold == 64 * MiB


# -- the staging store --------------------------------------------------------------------------

async def test_staging_store_round_trip(tmp_path: Path, moto_server: MotoServer) -> None:
    bucket = moto_server.new_bucket("staging")
    store = artifact_store_from_settings(staging_settings(moto_server, tmp_path, bucket))
    assert isinstance(store, S3ArtifactStore)
    src = tmp_path / "report.xlsx"
    src.write_bytes(b"PK\x03\x04 workbook bytes" * 1000)
    put = await store.put("uid-1", "report.xlsx", src)
    assert put.location == f"s3://{bucket}/staging/uid-1/report.xlsx"
    assert put.sha256 == sha(src.read_bytes()) and put.size == src.stat().st_size
    assert put.content_type.startswith("application/vnd.openxmlformats")
    head = moto_server.client().head_object(Bucket=bucket, Key="staging/uid-1/report.xlsx")
    assert head["Metadata"]["sha256"] == put.sha256
    assert await store.stat("uid-1", "report.xlsx") == put
    got = await store.fetch("uid-1", "report.xlsx", tmp_path / "work")
    assert got == tmp_path / "work" / "report.xlsx" and got.read_bytes() == src.read_bytes()

    other = tmp_path / "other.csv"
    other.write_text("a\n")
    await store.put("uid-1", "b.csv", other)
    await store.put("uid-10", "b.csv", other)  # shares the prefix "uid-1" but not "uid-1/"
    await store.delete_report("uid-1")
    keys = [o["Key"] for o in moto_server.client().list_objects_v2(Bucket=bucket)["Contents"]]
    assert keys == ["staging/uid-10/b.csv"]
    for call in (store.stat("uid-1", "report.xlsx"),
                 store.fetch("uid-1", "report.xlsx", tmp_path / "work")):
        with pytest.raises(PermanentError) as e:
            await call
        assert e.value.reason == "ArtifactMissing"
        assert f"s3://{bucket}/staging/uid-1/" in str(e.value)
    with pytest.raises(PermanentError, match="plain file name"):
        await store.put("uid-1", "../escape.csv", other)
    await store.delete_report("uid-never-existed")  # nothing to delete is fine


async def test_staging_fetch_refuses_bytes_that_do_not_match_their_sha256(
        tmp_path: Path, moto_server: MotoServer) -> None:
    bucket = moto_server.new_bucket("tamper")
    store = S3ArtifactStore.from_settings(staging_settings(moto_server, tmp_path, bucket))
    moto_server.client().put_object(Bucket=bucket, Key="staging/u/a.csv", Body=b"other bytes",
                                    Metadata={"sha256": sha(b"the bytes")})
    with pytest.raises(TemporaryError, match="sha256"):
        await store.fetch("u", "a.csv", tmp_path / "work")
    assert not (tmp_path / "work" / "a.csv").exists()


async def test_staging_in_a_missing_bucket_names_the_setting(tmp_path: Path,
                                                             moto_server: MotoServer) -> None:
    store = S3ArtifactStore.from_settings(staging_settings(moto_server, tmp_path, "nope-bucket"))
    src = tmp_path / "a.csv"
    src.write_text("a\n")
    with pytest.raises(PermanentError, match="GOREPORTS_ARTIFACT_S3_BUCKET=nope-bucket"):
        await store.put("u", "a.csv", src)


# -- whole reports ------------------------------------------------------------------------------

def sample_db(path: Path) -> Path:
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE sales (region TEXT, amount TEXT)")
        db.executemany("INSERT INTO sales VALUES (?, ?)",
                       [(f"region-{i % 7}", f"{i}.50") for i in range(2000)])
    return path


async def test_the_s3_example_runs_with_s3_staging(tmp_path: Path,
                                                   moto_server: MotoServer) -> None:
    """examples/s3-report.yaml (sqlite -> csv + excel -> s3), pointed at moto, with the
    generators' files staged in S3 (GOREPORTS_ARTIFACT_STORE=s3) and cleaned at the end."""
    staging = moto_server.new_bucket("staging")
    target = moto_server.new_bucket("reports")
    doc = yaml.safe_load((ROOT / "examples" / "s3-report.yaml").read_text())
    steps = {s["name"]: s for s in doc["spec"]["steps"]}
    db = sample_db(tmp_path / "sales.db")
    steps["collect"]["sqlite"]["database"] = str(db)
    steps["collect"]["sqlite"]["queries"] = [{
        "name": "sales_by_region",
        "sql": 'SELECT region, COUNT(*) AS orders, printf(\'%.2f\', SUM(amount)) AS '
               '"revenue [decimal]" FROM sales GROUP BY region ORDER BY region'}]
    steps["upload"]["s3"].update(bucket=target, endpointUrl=moto_server.endpoint)
    settings = staging_settings(moto_server, tmp_path, staging)
    store = artifact_store_from_settings(settings)
    uid, st = await run_report(doc, settings, store)
    assert st["phase"] == "Succeeded", st
    delivered = [a for a in st["artifacts"] if a["location"].startswith(f"s3://{target}/")]
    assert sorted(a["name"] for a in delivered) == ["sales_by_region.csv", "sales_by_region.xlsx"]
    client = moto_server.client()
    for a in delivered:
        key = a["location"].split("/", 3)[3]
        body = client.get_object(Bucket=target, Key=key)["Body"].read()
        assert sha(body) == a["sha256"] and len(body) == a["size"]
        assert a["url"].startswith(moto_server.endpoint)
    csv = client.get_object(Bucket=target, Key="sales/sales_by_region.csv")["Body"].read()
    region0 = [i for i in range(2000) if i % 7 == 0]
    assert csv.decode().splitlines()[:2] == [
        "region,orders,revenue", f"region-0,{len(region0)},{sum(region0) + len(region0) / 2:.2f}"]
    staged = [a for a in st["artifacts"] if a["location"].startswith(f"s3://{staging}/")]
    assert len(staged) == 2  # the generators staged in S3 ...
    assert "Contents" not in client.list_objects_v2(Bucket=staging)  # ... and were cleaned
