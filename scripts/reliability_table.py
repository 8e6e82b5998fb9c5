#!/usr/bin/env python3
"""Render the fault-injection suite's results into docs/reliability.md.

The suite (tests/reliability, `pytest -m reliability`) appends one JSON line per test to
$GOREPORTS_RELIABILITY_RESULTS (default out/reliability-results.jsonl), each tagged with the
test session's `run` id. This script takes one run (the latest by default), renders a Markdown
table with its date and machine, and replaces what stands between the markers in the document.

    scripts/reliability_table.py [--results FILE] [--doc docs/reliability.md] [--run ID] [--check]

`--check` only says whether the document already shows that run (exit 1 when not).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any, Iterable

ROOT = Path(__file__).resolve().parents[1]
BEGIN = "<!-- reliability-table:begin (scripts/reliability_table.py writes this part) -->"
END = "<!-- reliability-table:end -->"
COLUMNS = ("fault injected", "reports", "completed", "duplicates", "losses", "seconds", "notes")


def load(lines: Iterable[str]) -> list[dict[str, Any]]:
    """Parse JSON lines, skipping blank ones; a broken line names its number."""
    out = []
    for n, line in enumerate(lines, 1):
        if line.strip():
            try:
                out.append(json.loads(line))
            except ValueError as e:
                raise ValueError(f"results line {n} is not JSON: {e}") from None
    return out


def pick_run(records: list[dict[str, Any]], run: str | None = None) -> list[dict[str, Any]]:
    """The records of one run: `run`, or the run of the last record. A test recorded twice in
    a run (it should not happen) keeps its last record."""
    if not records:
        raise ValueError("no results recorded yet: run `pytest -m reliability` first")
    wanted = run or records[-1]["run"]
    by_test: dict[str, dict[str, Any]] = {}
    for r in records:
        if r.get("run") == wanted:
            by_test[r.get("test") or r["fault"]] = r
    if not by_test:
        raise ValueError(f"no results of run {wanted!r}")
    return list(by_test.values())


def _cell(value: Any) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def render(records: list[dict[str, Any]]) -> str:
    """The Markdown block: where and when it ran, the table, and the totals."""
    first = records[0]
    began, ended = min(r["at"] for r in records), max(r["at"] for r in records)
    rows = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for r in records:
        rows.append("| " + " | ".join(_cell(v) for v in (
            r["fault"], r["reports"], r["completed"], r["duplicates"], r["losses"],
            f"{r['seconds']:.1f}", r.get("note", ""))) + " |")
    total = {k: sum(int(r[k]) for r in records) for k in ("reports", "completed", "duplicates", "losses")}
    seconds = sum(float(r["seconds"]) for r in records)
    failed = [r["fault"] for r in records if r.get("note", "").startswith("TEST FAILED")]
    summary = (f"**Total**: {len(records)} faults, {total['reports']} reports, {total['completed']} "
               f"completed as expected, {total['duplicates']} duplicates, {total['losses']} losses; "
               f"{seconds:.0f} s inside the tests.")
    if failed:
        summary += f" Tests that FAILED in this run: {', '.join(failed)}."
    return "\n".join([
        f"Run `{first['run']}`, results recorded {began} to {ended}, on "
        f"{first.get('machine', 'an unknown machine')}.",
        "",
        *rows,
        "",
        summary,
    ])


def replace_block(doc: str, block: str) -> str:
    """`doc` with the text between the markers replaced by `block`."""
    try:
        head, rest = doc.split(BEGIN, 1)
        _, tail = rest.split(END, 1)
    except ValueError:
        raise ValueError(f"the document has no '{BEGIN}' ... '{END}' markers") from None
    return f"{head}{BEGIN}\n{block}\n{END}{tail}"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--results", type=Path, default=Path(
        os.environ.get("GOREPORTS_RELIABILITY_RESULTS") or ROOT / "out" / "reliability-results.jsonl"))
    p.add_argument("--doc", type=Path, default=ROOT / "docs" / "reliability.md")
    p.add_argument("--run", help="run id (default: the latest)")
    p.add_argument("--check", action="store_true", help="exit 1 if the document is not up to date")
    args = p.parse_args(argv)
    try:
        records = pick_run(load(args.results.read_text().splitlines()), args.run)
        doc = args.doc.read_text()
        new = replace_block(doc, render(records))
    except (OSError, ValueError) as e:
        print(f"reliability_table: {e}", file=sys.stderr)
        return 2
    if args.check:
        return 0 if new == doc else 1
    args.doc.write_text(new)
    print(f"{args.doc}: {len(records)} results of run {records[0]['run']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
