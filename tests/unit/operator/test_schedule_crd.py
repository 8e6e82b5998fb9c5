"""The ReportSchedule CRD: generated from the ReportRequest CRD, complete, and not stale."""
from __future__ import annotations

import copy
import re
from pathlib import Path
from types import ModuleType
from typing import Any, Iterator

import jsonschema
import pytest
import yaml

from goreports.core.schema import validate_spec
from goreports.operator import schedule_logic as logic
from support.loading import load_module

ROOT = Path(__file__).resolve().parents[3]
CRDS = ROOT / "deploy" / "crds"


def _generator() -> ModuleType:
    return load_module(ROOT / "scripts" / "gen_schedule_crd.py", "gen_schedule_crd")


@pytest.fixture(scope="module")
def crd() -> dict[str, Any]:
    return yaml.safe_load((CRDS / "goreports.io_reportschedules.yaml").read_text())


@pytest.fixture(scope="module")
def rr_crd() -> dict[str, Any]:
    return yaml.safe_load((CRDS / "goreports.io_reportrequests.yaml").read_text())


def _schema(crd: dict[str, Any]) -> dict[str, Any]:
    return crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


def test_committed_crd_is_generated_from_the_reportrequest_crd() -> None:
    committed = (CRDS / "goreports.io_reportschedules.yaml").read_text()
    assert committed == _generator().render(), (
        "deploy/crds/goreports.io_reportschedules.yaml is stale: "
        "run python scripts/gen_schedule_crd.py")


def test_template_spec_is_the_reportrequest_spec_without_immutability(
        crd: dict[str, Any], rr_crd: dict[str, Any]) -> None:
    template = _schema(crd)["properties"]["spec"]["properties"]["reportTemplate"]
    embedded = copy.deepcopy(template["properties"]["spec"])
    original = copy.deepcopy(_schema(rr_crd)["properties"]["spec"])
    assert any(r["rule"] == "self == oldSelf" for r in original["x-kubernetes-validations"])
    assert "oldSelf" not in (CRDS / "goreports.io_reportschedules.yaml").read_text()
    for node in (embedded, original):
        node.pop("description")
        node["x-kubernetes-validations"] = [r for r in node.get("x-kubernetes-validations", [])
                                            if "oldSelf" not in r["rule"]]
    assert embedded == original


def test_names_columns_and_status(crd: dict[str, Any]) -> None:
    names = crd["spec"]["names"]
    assert crd["spec"]["scope"] == "Namespaced"
    assert (names["plural"], names["kind"], names["shortNames"], names["categories"]) == \
        (logic.PLURAL, logic.KIND, ["rsched"], ["goreports"])
    version = crd["spec"]["versions"][0]
    assert version["name"] == logic.VERSION and version["subresources"] == {"status": {}}
    columns = [c["name"] for c in version["additionalPrinterColumns"] if not c.get("priority")]
    assert columns == ["Schedule", "Suspend", "Active", "Last Schedule", "Age"]
    status = _schema(crd)["properties"]["status"]["properties"]
    assert set(logic.STATUS_KEYS) <= set(status)


def _properties(node: Any, path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    if not isinstance(node, dict):
        return
    for name, sub in (node.get("properties") or {}).items():
        yield f"{path}.{name}", sub
        yield from _properties(sub, f"{path}.{name}")
    for key in ("items", "additionalProperties"):
        if isinstance(node.get(key), dict):
            yield f"{path}[{key}]", node[key]
            yield from _properties(node[key], f"{path}[]")


def test_every_property_has_a_description(crd: dict[str, Any]) -> None:
    missing = [p for p, sub in _properties(_schema(crd))
               if p != ".metadata" and not sub.get("description")]
    assert missing == []


def test_cron_pattern_matches_what_the_logic_accepts(crd: dict[str, Any]) -> None:
    pattern = re.compile(_schema(crd)["properties"]["spec"]["properties"]["schedule"]["pattern"])
    for ok in ["*/5 * * * *", "0 6 * * 1-5", "@daily", "0 0 1 JAN *"]:
        assert pattern.match(ok), ok
        logic.parse_schedule(ok)
    for bad in ["* * * *", "0 * * * * *", "@every 5m", "CRON_TZ=UTC 0 6 * * *", " 0 6 * * *"]:
        assert not pattern.match(bad), bad


def test_example_schedule_is_valid(crd: dict[str, Any]) -> None:
    doc = yaml.safe_load((ROOT / "examples" / "sales-schedule.yaml").read_text())
    assert doc["apiVersion"] == logic.API_VERSION and doc["kind"] == logic.KIND
    assert len(doc["metadata"]["name"]) <= 52
    jsonschema.Draft202012Validator(_schema(crd)["properties"]["spec"]).validate(doc["spec"])
    validate_spec(doc["spec"]["reportTemplate"]["spec"])  # with the CEL-equivalent rules
    logic.parse_schedule(doc["spec"]["schedule"], doc["spec"]["timeZone"])
