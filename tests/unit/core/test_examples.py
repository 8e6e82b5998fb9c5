"""Every example under examples/ is a valid resource that compiles (what a user copies first)."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from goreports.core import compiler, schema, templates

ROOT = Path(__file__).resolve().parents[3]
EXAMPLES = sorted(p for p in (ROOT / "examples").glob("*.yaml"))


def test_there_are_examples_of_every_stage_kind() -> None:
    text = "\n".join(p.read_text() for p in EXAMPLES)
    for kind in ("sqlite", "mysql", "http", "jwt", "aggregate", "excel", "mustache", "csv", "local",
                 "s3", "email", "webhook", "drive", "notify"):
        assert f"      {kind}:" in text, f"no example uses the {kind} stage"


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_is_valid(path: Path) -> None:
    doc = yaml.safe_load(path.read_text())
    if doc["kind"] == "ReportTemplate":
        templates.check_template(doc)
        doc = {**doc, "kind": "ReportRequest", "spec": templates.resolve(doc, {}).spec}
    elif doc["kind"] == "ReportRequest" and "template" in doc["spec"]:
        schema.validate_report(doc)
        catalog = {t["metadata"]["name"]: t for t in map(yaml.safe_load, map(Path.read_text, EXAMPLES))
                   if t["kind"] == "ReportTemplate"}
        doc = {**doc, "spec": templates.resolve_request(
            doc["spec"], catalog[doc["spec"]["template"]["name"]]).spec}
    if doc["kind"] == "ReportRequest":
        schema.validate_report(doc)
        head = compiler.compile_report(doc, uid="example-uid")
        assert compiler.iter_chain(head)
    else:
        assert doc["kind"] == "ReportSchedule"
        request = {"apiVersion": doc["apiVersion"], "kind": "ReportRequest",
                   "metadata": {"name": doc["metadata"]["name"]},
                   "spec": doc["spec"]["reportTemplate"]["spec"]}
        schema.validate_report(request)
