"""scripts/reliability_table.py: picks one run's results and replaces the table between the
markers of docs/reliability.md (pure functions, no servers)."""
from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType

import pytest
from support.loading import load_module

pytestmark = pytest.mark.reliability

ROOT = Path(__file__).resolve().parents[2]


def script() -> ModuleType:
    return load_module(ROOT / "scripts" / "reliability_table.py", "reliability_table")


def rec(run: str, fault: str, **kw: object) -> dict[str, object]:
    return {"run": run, "fault": fault, "test": f"t::{fault}", "reports": 1, "completed": 1,
            "duplicates": 0, "losses": 0, "seconds": 2.5, "note": "", "at": "2026-11-28T10:00:00+00:00",
            "machine": "2 x CPU", **kw}


def test_latest_run_is_rendered_between_the_markers(tmp_path: Path) -> None:
    m = script()
    lines = [json.dumps(rec("old", "a", duplicates=3)), "", json.dumps(rec("new", "a | b")),
             json.dumps(rec("new", "c", losses=1, note="TEST FAILED. lost"))]
    picked = m.pick_run(m.load(lines))
    assert [r["fault"] for r in picked] == ["a | b", "c"]
    doc = f"# title\n\n{m.BEGIN}\nstale\n{m.END}\n\nafter\n"
    new = m.replace_block(doc, m.render(picked))
    assert new.startswith("# title\n\n") and new.endswith(f"{m.END}\n\nafter\n") and "stale" not in new
    assert "| a \\| b | 1 | 1 | 0 | 0 | 2.5 |  |" in new
    assert "Run `new`, results recorded 2026-11-28T10:00:00+00:00 to 2026-11-28T10:00:00+00:00, on 2 x CPU." in new
    assert "1 losses" in new and "FAILED in this run: c" in new
    assert m.replace_block(new, m.render(picked)) == new  # idempotent


def test_errors_name_what_is_missing(tmp_path: Path) -> None:
    m = script()
    with pytest.raises(ValueError, match="no results recorded"):
        m.pick_run([])
    with pytest.raises(ValueError, match="line 2 is not JSON"):
        m.load(["{}", "{oops"])
    with pytest.raises(ValueError, match="markers"):
        m.replace_block("no markers here", "x")
    results, doc = tmp_path / "r.jsonl", tmp_path / "d.md"
    results.write_text(json.dumps(rec("r1", "a")) + "\n")
    doc.write_text(f"{m.BEGIN}\n{m.END}\n")
    assert m.main(["--results", str(results), "--doc", str(doc), "--check"]) == 1
    assert m.main(["--results", str(results), "--doc", str(doc)]) == 0
    assert m.main(["--results", str(results), "--doc", str(doc), "--check"]) == 0
    assert m.main(["--results", str(tmp_path / "none"), "--doc", str(doc)]) == 2
