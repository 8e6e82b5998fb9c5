"""What the operator runs for a request that names a template: the recorded resolved spec, never
the template as it is now (goreports.operator.templates, the pure parts)."""
from __future__ import annotations

from goreports.operator import templates as op_templates

FULL = {"steps": [{"name": "collect"}]}
RESOLVED = {"steps": [{"name": "from-template"}], "deadlineSeconds": 60}
BY_TEMPLATE = {"template": {"name": "sales"}, "deadlineSeconds": 3600}


def test_a_full_spec_runs_as_it_is() -> None:
    assert op_templates.recorded_spec(FULL, {"resolvedSpec": RESOLVED}) == FULL


def test_a_template_request_runs_its_recorded_spec_or_needs_resolving() -> None:
    status = {"phase": "Running", "resolvedSpec": RESOLVED}
    spec = op_templates.recorded_spec(BY_TEMPLATE, status)
    assert spec == RESOLVED and spec is not RESOLVED  # a copy: the body is never changed
    assert op_templates.recorded_spec(BY_TEMPLATE, {}) == {}
    assert op_templates.recorded_spec(BY_TEMPLATE, None) == {}


def test_the_status_records_which_template_version_was_resolved() -> None:
    template = {"metadata": {"name": "sales", "uid": "u-1", "generation": 4,
                             "resourceVersion": "991"}}
    assert op_templates.template_status(template, {"dispatchTo": "s3"}) == {
        "name": "sales", "uid": "u-1", "generation": 4, "resourceVersion": "991",
        "parameters": {"dispatchTo": "s3"}}
