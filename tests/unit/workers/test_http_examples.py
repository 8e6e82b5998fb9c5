"""examples/http-report.yaml and examples/webhook-report.yaml are valid specs that compile to
the HTTP stages' tasks as intended (the webhook example also runs whole in
tests/integration/test_http_stages.py)."""
from __future__ import annotations

from pathlib import Path

import yaml

from goreports.core import compiler, schema
from goreports.proto import tasks_pb2

ROOT = Path(__file__).resolve().parents[3]


def compiled(name: str) -> dict[str, object]:
    doc = yaml.safe_load((ROOT / "examples" / name).read_text())
    schema.validate_report(doc)
    head = compiler.compile_report(doc, uid="u-1")
    out: dict[str, object] = {}
    for job in compiler.iter_chain(head):
        out[job.name] = (job.pattern, job.task)
    return out


def test_http_example() -> None:
    jobs = compiled("http-report.yaml")
    pattern, any_task = jobs["collect"]  # type: ignore[misc]
    assert pattern == "http"
    task = tasks_pb2.HttpApiCollector()
    assert any_task.Unpack(task)
    assert task.pagination.type == "page" and task.pagination.page_param == "_page"
    assert task.pagination.start_page == 1 and task.max_response_bytes == 1048576
    assert list(task.columns) == ["id", "userId", "title"] and not task.allow_hosts
    assert list(task.output.readers) == ["to-csv"]


def test_webhook_example() -> None:
    jobs = compiled("webhook-report.yaml")
    _, post = jobs["post"]  # type: ignore[misc]
    hook = tasks_pb2.WebhookDispatcher()
    assert post.Unpack(hook)
    assert hook.send_file and hook.credentials_id == "hook"
    assert [a.name for a in hook.artifacts] == ["sales_by_region.csv"]
    pattern, tell = jobs["tell"]  # type: ignore[misc]
    note = tasks_pb2.Notifier()
    assert pattern == "notify" and tell.Unpack(note)
    assert list(note.when) == ["success", "failure"]
    assert note.webhook.url.endswith("/notifications")
    assert [a.name for a in note.webhook.artifacts] == ["sales_by_region.csv"]
