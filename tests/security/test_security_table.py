"""scripts/security_table.py: the table in docs/security.md is rendered from the results file,
between its markers, with the run's date and machine."""
from __future__ import annotations

from pathlib import Path
from types import ModuleType
from support.loading import load_module

ROOT = Path(__file__).resolve().parents[2]


def _script() -> ModuleType:
    return load_module(ROOT / "scripts" / "security_table.py", "security_table")


def test_rows_become_a_table_between_the_markers() -> None:
    st = _script()
    rows = [{"area": "b", "input": "x | y", "outcome": "refused\nhere", "test": "t.py::a[1]",
             "at": "2026-01-02T00:00:00+00:00", "machine": "m1"},
            {"area": "a", "input": "z", "outcome": "ok", "test": "t.py::b",
             "at": "2026-01-01T00:00:00+00:00", "machine": "m1"},
            {"area": "b", "input": "w", "outcome": "ok", "test": "t.py::a[2]",
             "at": "2026-01-01T12:00:00+00:00", "machine": "m1"}]
    block = st.render(rows, exit_status=0)
    lines = block.splitlines()
    assert "2026-01-01T00:00:00+00:00 – 2026-01-02T00:00:00+00:00, on m1" in lines[0]
    assert "3 outcomes proven by 2 tests, pytest exit status 0" in lines[0]
    body = [ln for ln in lines if ln.startswith("| ") and "area" not in ln]
    assert [ln.split(" | ")[0] for ln in body] == ["| b", "| b", "| a"]  # first-seen order
    assert "x \\| y" in body[0] and "refused here" in body[0]
    doc = f"intro\n{st.START}\nold\n{st.END}\nafter\n"
    assert st.replace_block(doc, block) == f"intro\n{st.START}\n{block}\n{st.END}\nafter\n"
