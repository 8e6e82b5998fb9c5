"""GOREPORTS_DEFAULT_NOTIFY (the chart's notifyOnFailure): the failure notifier the operator
adds to specs without a notify step, and the startup check of the setting."""
from __future__ import annotations

import json
from typing import Any

import kopf
import pytest

from goreports.core import compiler, schema
from goreports.operator import reports

WEBHOOK = {"webhook": {"url": "https://hooks.example.com/reports"}}


def doc(*extra: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "goreports.io/v1alpha1", "kind": "ReportRequest", "metadata": {"name": "r"},
            "spec": {"steps": [{"name": "collect", "sqlite": {"database": "a.db", "queries": [
                {"name": "orders", "sql": "SELECT 1 AS x"}]}},
                {"name": "table", "csv": {"dataset": "orders", "fileName": "o.csv"}},
                {"name": "deliver", "local": {"path": "out"}}, *extra]}}


def test_no_setting_changes_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(reports.DEFAULT_NOTIFY_ENV, raising=False)
    d = doc()
    assert reports.with_default_notify(d) is d
    reports.check_default_notify()


def test_failure_notifier_is_appended_and_compiles(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(reports.DEFAULT_NOTIFY_ENV, json.dumps({**WEBHOOK, "when": ["success"]}))
    reports.check_default_notify()
    d = doc()
    out = reports.with_default_notify(d)
    assert len(d["spec"]["steps"]) == 3  # the input is not changed
    assert out["spec"]["steps"][-1] == {"name": "notify-on-failure", "notify": {**WEBHOOK, "when": ["failure"]}}
    schema.validate_report(out)
    head = compiler.compile_report(out, uid="u")
    tail = compiler.iter_chain(head)[-1]
    assert tail.channel == "notifiers" and tail.name == "notify-on-failure"


def test_own_notify_step_wins_and_names_do_not_clash(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(reports.DEFAULT_NOTIFY_ENV, json.dumps(WEBHOOK))
    own = doc({"name": "tell", "notify": {"when": ["success"], **WEBHOOK}})
    assert reports.with_default_notify(own) is own
    clash = doc()
    clash["spec"]["steps"][2]["name"] = "notify-on-failure"
    assert reports.with_default_notify(clash)["spec"]["steps"][-1]["name"] == "notify-on-failure-2"


@pytest.mark.parametrize("raw, message", [
    ("{not json", "is not JSON"),
    ("[1]", "must be a JSON object"),
    ('{"webhook": {"url": "ftp://x"}}', "webhook.url"),
    ('{"when": ["failure"]}', "set email or webhook"),
])
def test_a_broken_setting_stops_the_operator(monkeypatch: pytest.MonkeyPatch, raw: str, message: str) -> None:
    monkeypatch.setenv(reports.DEFAULT_NOTIFY_ENV, raw)
    with pytest.raises(kopf.PermanentError, match=message):
        reports.check_default_notify()
