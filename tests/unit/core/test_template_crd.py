"""The ReportTemplate CRD: generated from the ReportRequest CRD, not stale, described, and in
step with goreports.core.templates; the schedule CRD carries `template` too."""
from __future__ import annotations

import re
from pathlib import Path
from types import ModuleType
from typing import Any, Iterator

import yaml

from goreports.core import templates
from goreports.core.schema import cel_equivalent, is_transition_rule
from support.loading import load_module

ROOT = Path(__file__).resolve().parents[3]
CRDS = ROOT / "deploy" / "crds"
TARGET = CRDS / "goreports.io_reporttemplates.yaml"


def _generator() -> ModuleType:
    return load_module(ROOT / "scripts" / "gen_template_crd.py", "gen_template_crd")


def _schema() -> dict[str, Any]:
    crd = yaml.safe_load(TARGET.read_text())
    root: dict[str, Any] = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return root


def walk(node: Any, path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    if not isinstance(node, dict):
        return
    yield path, node
    for key, child in (node.get("properties") or {}).items():
        yield from walk(child, f"{path}.{key}")
    if isinstance(node.get("items"), dict):
        yield from walk(node["items"], f"{path}[]")


def test_committed_crd_is_generated_and_not_stale() -> None:
    gen = _generator()
    assert TARGET.read_text() == gen.render(), "run python scripts/gen_template_crd.py"
    assert gen.main(["--check"]) == 0


def test_the_chart_ships_the_same_file() -> None:
    chart = ROOT / "helm" / "go-reports" / "crds" / TARGET.name
    assert chart.read_bytes() == TARGET.read_bytes(), "run scripts/sync_chart_crds.sh"


def test_generator_and_core_agree_on_names_and_placeholders() -> None:
    gen = _generator()
    assert gen.PARAM_NAME == templates.PARAM_NAME.pattern
    assert re.fullmatch(gen.PLACEHOLDER_PATTERN, "$(params.dispatchTo)")
    assert gen.PARAM_TYPES == list(templates.PARAM_TYPES)
    # core's pattern adds only the `$$(` escape to the generator's
    assert templates.PLACEHOLDER.pattern == r"\$\$\(|" + gen.PLACEHOLDER_PATTERN.replace(
        r"[A-Za-z_][A-Za-z0-9_]*", r"([A-Za-z_][A-Za-z0-9_]*)")


def test_every_field_is_described_and_every_rule_runs_in_python() -> None:
    undescribed, unknown = [], []
    for path, node in walk(_schema()):
        if path and path != ".metadata" and not node.get("description"):
            undescribed.append(path)
        for rule in node.get("x-kubernetes-validations", []):
            if not is_transition_rule(rule["rule"]) and cel_equivalent(rule["rule"]) is None:
                unknown.append((path, rule["rule"]))
    assert undescribed == [] and unknown == []


def test_report_is_the_request_spec_without_template_and_immutability() -> None:
    report = _schema()["properties"]["spec"]["properties"]["report"]
    assert report["required"] == ["steps"]
    assert "template" not in report["properties"]
    assert "x-kubernetes-validations" not in report
    step = report["properties"]["steps"]["items"]["properties"]
    assert step["includeWhen"]["required"] == ["parameter", "in"]
    file_name = step["excel"]["properties"]["fileName"]["pattern"]
    assert re.search(file_name, "sales-$(params.since).xlsx")
    assert not re.search(file_name, "../etc")


def test_the_schedule_crd_may_name_a_template() -> None:
    crd = yaml.safe_load((CRDS / "goreports.io_reportschedules.yaml").read_text())
    spec = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    run_spec = spec["properties"]["reportTemplate"]["properties"]["spec"]
    assert run_spec["properties"]["template"]["required"] == ["name"]
    assert "steps" not in run_spec.get("required", [])
