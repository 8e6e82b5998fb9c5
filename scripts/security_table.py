#!/usr/bin/env python3
"""Write the "what is refused, and the test that proves it" table of docs/security.md from a run
of the security suite.

Each test of tests/security appends one JSON line per proven outcome to the results file
(`GOREPORTS_SECURITY_RESULTS`, default out/security-results.jsonl): area, input, outcome, test,
time and machine. This script renders those lines as a Markdown table and puts it between the
markers in docs/security.md, with the run's date and machine, so the table in the document is
what a run measured, never what someone typed.

    scripts/security_table.py --run        # run tests/security (e2e included), then write
    scripts/security_table.py              # write from the existing results file
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterable

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "security.md"
RESULTS = ROOT / "out" / "security-results.jsonl"
START, END = "<!-- security-table:start -->", "<!-- security-table:end -->"


def read_results(path: Path) -> list[dict[str, Any]]:
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            rows.append(json.loads(line))
    return rows


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\r", "\\r").replace("\n", " ")


def render(rows: Iterable[dict[str, Any]], *, exit_status: int | None = None) -> str:
    """The Markdown block (without markers): a provenance line and the table, areas in the order
    they first appear."""
    rows = list(rows)
    if not rows:
        return "_No results: run `scripts/security_table.py --run`._"
    order: dict[str, int] = {}
    for r in rows:
        order.setdefault(r["area"], len(order))
    rows.sort(key=lambda r: order[r["area"]])
    dates = sorted(r["at"] for r in rows)
    machines = sorted({r["machine"] for r in rows})
    tests = {r["test"].split("[", 1)[0] for r in rows}
    status = "" if exit_status is None else f", pytest exit status {exit_status}"
    lines = [f"Produced by `scripts/security_table.py` from a run of `tests/security` "
             f"({dates[0]} – {dates[-1]}, on {', '.join(machines)}; {len(rows)} outcomes "
             f"proven by {len(tests)} tests{status}).", "",
             "| area | input | outcome | test |", "|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {_cell(r['area'])} | {_cell(r['input'])} | {_cell(r['outcome'])} | "
                     f"`{_cell(r['test'])}` |")
    return "\n".join(lines)


def replace_block(doc: str, block: str) -> str:
    if START not in doc or END not in doc:
        raise SystemExit(f"{DOC} has no {START} … {END} markers")
    head, rest = doc.split(START, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{START}\n{block}\n{END}{tail}"


def run_suite(results: Path) -> int:
    env = dict(os.environ, GOREPORTS_SECURITY_RESULTS=str(results))
    if not env.get("GOREPORTS_CONTROLPLANE_BIN"):
        built = subprocess.run(["bash", str(ROOT / "tests/controlplane/build.sh")], cwd=ROOT,
                               capture_output=True, text=True, check=True)
        env["GOREPORTS_CONTROLPLANE_BIN"] = built.stdout.strip().splitlines()[-1]
    results.parent.mkdir(parents=True, exist_ok=True)
    results.write_text("")
    return subprocess.run([sys.executable, "-m", "pytest", "tests/security", "-q"], cwd=ROOT,
                          env=env).returncode


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--run", action="store_true", help="run tests/security first")
    p.add_argument("--results", type=Path,
                   default=Path(os.environ.get("GOREPORTS_SECURITY_RESULTS") or RESULTS))
    p.add_argument("--doc", type=Path, default=DOC)
    args = p.parse_args(argv)
    status = run_suite(args.results) if args.run else None
    block = render(read_results(args.results), exit_status=status)
    args.doc.write_text(replace_block(args.doc.read_text(encoding="utf-8"), block),
                        encoding="utf-8")
    print(f"wrote {args.doc} ({platform.node()})")
    return status or 0


if __name__ == "__main__":
    raise SystemExit(main())
