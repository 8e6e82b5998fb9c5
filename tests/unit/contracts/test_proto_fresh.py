"""The committed generated protobuf code must match the .proto files."""
from __future__ import annotations

from pathlib import Path
from support.loading import load_module

ROOT = Path(__file__).resolve().parents[3]


def _gen():
    return load_module(ROOT / "scripts" / "gen_proto.py", "gen_proto")


def test_generated_code_is_fresh(tmp_path: Path) -> None:
    written = _gen().generate(tmp_path)
    assert written, "protoc wrote nothing"
    stale = []
    for f in written:
        committed = ROOT / "proto" / f.name
        if not committed.exists() or committed.read_bytes() != f.read_bytes():
            stale.append(f.name)
    extra = {p.name for p in (ROOT / "proto").glob("*_pb2*.py*")} - {f.name for f in written}
    assert not stale and not extra, (
        f"generated code is stale: {stale or ''} {extra or ''}; run `python scripts/gen_proto.py`")


def test_every_stage_kind_has_a_task_message() -> None:
    from goreports.proto import tasks_pb2

    names = set(tasks_pb2.DESCRIPTOR.message_types_by_name)
    for kind in ("MysqlCollector", "SqliteCollector", "HttpApiCollector", "JwtValidator", "Aggregator",
                 "ExcelGenerator", "MustacheGenerator", "CsvGenerator", "S3Dispatcher",
                 "EmailDispatcher", "WebhookDispatcher", "LocalDispatcher", "DriveDispatcher", "Notifier"):
        assert kind in names
