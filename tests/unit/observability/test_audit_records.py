"""core/audit.py: who asked (annotation, else the creating field manager), the record, its line,
retention settings, and appending through the in-process bus."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest

from goreports.core import audit, metrics
from goreports.core.bus.memory import MemoryBus


def mf(manager: str, time: str, operation: str = "Update", subresource: str | None = None) -> dict:
    out = {"manager": manager, "operation": operation, "time": time}
    if subresource:
        out["subresource"] = subresource
    return out


@pytest.mark.parametrize("meta, who", [
    ({"annotations": {"goreports.io/created-by": "jwt:alice"},
      "managedFields": [mf("kubectl-client-side-apply", "2025-01-01T00:00:00Z")]}, "jwt:alice"),
    ({"managedFields": [mf("kopf", "2025-01-01T00:00:01Z"),
                        mf("goreports-operator", "2025-01-01T00:00:02Z", subresource="status"),
                        mf("kubectl-client-side-apply", "2025-01-01T00:00:00Z")]}, "kubectl-client-side-apply"),
    ({"managedFields": [mf("helm", "2025-01-01T00:00:05Z"), mf("kubectl-create", "2025-01-01T00:00:00Z")]},
     "kubectl-create"),
    ({"managedFields": [mf("kopf", "2025-01-01T00:00:01Z")]}, "kopf"),  # nothing better known
    ({}, "unknown"),
])
def test_who_from_metadata(meta: dict, who: str) -> None:
    assert audit.who_from_metadata(meta) == who


def test_record_fields_and_line() -> None:
    at = datetime(2025, 3, 4, 5, 6, 7, tzinfo=timezone.utc)
    rec = audit.record_from_body("accepted", {"metadata": {
        "namespace": "team-a", "name": "sales", "uid": "u-1",
        "annotations": {"goreports.io/created-by": "bob"}}}, outcome="Accepted",
        message="chain a > b", trace_id="t1", empty="")
    assert rec["who"] == "bob" and rec["trace_id"] == "t1" and "empty" not in rec
    assert all(isinstance(x, str) for x in rec.values())
    rec = audit.build_record("failed", namespace="n", name="r", who="", outcome="QueryFailed",
                             message="x" * 5000, at=at)
    assert rec["at"] == "2025-03-04T05:06:07.000000Z" and rec["who"] == "unknown"
    assert len(rec["message"]) == 1000
    assert audit.format_record(rec).startswith("2025-03-04T05:06:07.000000Z failed    n/r by unknown: QueryFailed x")
    with pytest.raises(ValueError, match="unknown audit action 'exploded'"):
        audit.build_record("exploded", namespace="n", name="r")


def test_retention_setting() -> None:
    assert audit.maxlen_from_env({}) == audit.DEFAULT_MAXLEN
    assert audit.maxlen_from_env({"GOREPORTS_AUDIT_MAXLEN": "500"}) == 500
    with pytest.raises(ValueError, match="GOREPORTS_AUDIT_MAXLEN='lots'"):
        audit.maxlen_from_env({"GOREPORTS_AUDIT_MAXLEN": "lots"})


async def test_append_logs_counts_and_stores(caplog: pytest.LogCaptureFixture) -> None:
    bus = MemoryBus()
    log = audit.AuditLog(bus, maxlen=10)
    n = metrics.REGISTRY.get_sample_value("goreports_audit_records_total", {"action": "cancelled"}) or 0
    rec = audit.build_record("cancelled", namespace="n", name="r", uid="u", who="eve", outcome="Running")
    with caplog.at_level("INFO", logger="goreports.audit"):
        await log.append(rec)
    [line] = [r for r in caplog.records if r.name == "goreports.audit"]
    assert '"action": "cancelled"' in line.getMessage() and line.report == "n/r"  # type: ignore[attr-defined]
    assert metrics.REGISTRY.get_sample_value("goreports_audit_records_total", {"action": "cancelled"}) == n + 1
    [(_, data)] = await bus.stream_read(log.key, "0", 10, 0)
    assert audit.decode_entry({"d": data}) == rec
    assert audit.decode_entry({b"action": b"x", b"who": b"y"}) == {"action": "x", "who": "y"}


async def test_safe_append_never_raises(caplog: pytest.LogCaptureFixture) -> None:
    class Broken(MemoryBus):
        async def stream_add(self, key: str, data: bytes, ttl: int | None = None) -> str:
            raise ConnectionError("redis away")
    await audit.AuditLog(Broken()).safe_append(audit.build_record("accepted", namespace="n", name="r"))
    assert "could not append audit record accepted for n/r: redis away" in caplog.text
