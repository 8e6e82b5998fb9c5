"""Path traversal in artifact names, for the local and the S3 dispatcher.

Two doors: the spec (`fileName` of a generator) — the schema refuses separators and leading dots,
and the generator's `safe_name` refuses control characters; and the job itself (a dispatcher task
naming `../…` directly, as a buggy or hostile producer of jobs would) — the dispatcher refuses
the name before touching the file system or the bucket.
"""
from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any, Iterator

import pytest

from goreports.core import compiler, schema
from goreports.proto import tasks_pb2
from security._fleet import Fleet, report, sqlite_step
from support import secrets
from support.s3 import MotoServer, moto_server  # noqa: F401  (session fixture)

HOSTILE_NAMES = ["../escape.csv", "../../../../tmp/escape.csv", "/tmp/escape.csv",
                 "..\\escape.csv", "a/../../escape.csv", "x\x00.csv", "x\r\nBcc: e@x.io.csv",
                 ".hidden.csv", "..", "."]
S3_CRED = "sec-s3"


@pytest.fixture
def s3_bucket(moto_server: MotoServer, fleet: Fleet) -> Iterator[str]:  # noqa: F811
    creds = fleet.credentials_dir / S3_CRED
    creds.mkdir(parents=True, exist_ok=True)
    (creds / "access-key-id").write_text(secrets.S3_ACCESS_KEY + "\n")
    (creds / "secret-access-key").write_text(secrets.S3_SECRET_KEY + "\n")
    yield moto_server.new_bucket("sec")


def _doc(db: Path, file_name: str, target: dict[str, Any]) -> dict[str, Any]:
    return report("paths", sqlite_step(db, "SELECT id, txt FROM hostile ORDER BY id"),
                  {"name": "flat", "csv": {"fileName": file_name, "dataset": "rows"}},
                  {"name": "deliver", **target})


@pytest.mark.parametrize("name", HOSTILE_NAMES)
async def test_hostile_file_names_in_a_spec(fleet: Fleet, hostile_db: Path, tmp_path: Path,
                                            name: str, record: Any) -> None:
    out_dir = tmp_path / "a" / "b" / "out"
    doc = _doc(hostile_db, name, {"local": {"path": str(out_dir)}})
    errors = schema.report_errors(doc)
    if errors:
        assert [e.path for e in errors] == ["spec.steps[1].csv.fileName"], errors
        outcome = f"rejected by the schema: {errors[0]}"
    else:
        out = await fleet.run(doc)
        assert out.phase == "Failed" and out.reason == "InvalidArtifactName", out.status
        outcome = f"Failed at the generator, InvalidArtifactName ({out.error[:90]})"
    assert not list(tmp_path.rglob("*escape*")) and not Path("/tmp/escape.csv").exists()
    record("path traversal", f"generator fileName {name!r}", outcome + "; nothing written")


def _with_artifact_names(doc: dict[str, Any], names: list[str]) -> Any:
    """The compiled chain, with the dispatcher's task naming `names` (a forged job)."""
    head = compiler.compile_report(doc, uid=str(uuid.uuid4()))
    last = compiler.iter_chain(head)[-1]
    kind = {"local": tasks_pb2.LocalDispatcher, "s3": tasks_pb2.S3Dispatcher}[last.pattern]
    task = kind()
    assert last.task.Unpack(task)
    del task.artifacts[:]
    task.artifacts.extend(tasks_pb2.ArtifactRef(name=n) for n in names)
    last.task.Pack(task)
    return head


@pytest.mark.parametrize("name", ["../escape.csv", "/tmp/escape.csv", "..\\escape.csv",
                                  "x\x00.csv", ".."])
async def test_forged_dispatcher_jobs_cannot_leave_the_folder_or_prefix(
        fleet: Fleet, hostile_db: Path, tmp_path: Path, s3_bucket: str,
        moto_server: MotoServer, name: str, record: Any) -> None:  # noqa: F811
    out_dir = tmp_path / "a" / "b" / "out"
    local = await fleet.run_chain(_with_artifact_names(
        _doc(hostile_db, "ok.csv", {"local": {"path": str(out_dir)}}), [name]))
    assert local.phase == "Failed" and local.reason == "InvalidArtifactName", local.status
    assert not list(tmp_path.rglob("*escape*")) and not Path("/tmp/escape.csv").exists()

    s3 = await fleet.run_chain(_with_artifact_names(_doc(hostile_db, "ok.csv", {"s3": {
        "bucket": s3_bucket, "prefix": "reports/", "endpointUrl": moto_server.endpoint,
        "region": "us-east-1", "credentialsId": S3_CRED}}), [name]))
    assert s3.phase == "Failed" and s3.reason == "InvalidArtifactName", s3.status
    listed = moto_server.client().list_objects_v2(Bucket=s3_bucket).get("Contents", [])
    assert listed == [], listed
    record("path traversal", f"forged dispatcher job naming artifact {name!r} (local and s3)",
           "Failed, InvalidArtifactName, before any file or object is written")
