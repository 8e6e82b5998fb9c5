"""Figures as rows of one table: printed, written as JSON, and written into docs/performance.md.

Pure formatting (plus reading the machine's description), no measuring. Every row names its
baseline when it has one; the ratio is value / baseline-value from the same run.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import platform
import re
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

RUN_BEGIN = "<!-- bench:run:begin (scripts/bench rewrites this section) -->"
RUN_END = "<!-- bench:run:end -->"


@dataclass
class Figure:
    figure: str
    value: float
    unit: str
    baseline: str = ""          # name of the baseline figure (same run)
    ratio: float | None = None  # value / baseline value
    target: str = ""            # e.g. "<= 1.5x", "< 150 MB"
    met: bool | None = None     # None: no target

    def cells(self) -> list[str]:
        return [self.figure, fmt(self.value), self.unit,
                (f"{self.ratio:.2f}x {self.baseline}" if self.ratio is not None else ""),
                self.target, {True: "yes", False: "NO", None: ""}[self.met]]


HEADER = ["figure", "value", "unit", "ratio to baseline", "target", "met"]


def fmt(v: float) -> str:
    if v >= 1000:
        return f"{v:,.0f}"
    if v >= 100:
        return f"{v:.0f}"
    if v >= 10:
        return f"{v:.1f}"
    return f"{v:.3g}" if v < 1 else f"{v:.2f}"


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) by linear interpolation; values need not be sorted."""
    if not values:
        raise ValueError("percentile of no values")
    s = sorted(values)
    k = (len(s) - 1) * q / 100
    lo = int(k)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def text_table(figures: Sequence[Figure]) -> str:
    rows = [HEADER] + [f.cells() for f in figures]
    widths = [max(len(r[i]) for r in rows) for i in range(len(HEADER))]
    right = {1}
    lines = []
    for n, r in enumerate(rows):
        lines.append("  ".join(c.rjust(widths[i]) if i in right else c.ljust(widths[i])
                               for i, c in enumerate(r)).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def markdown_table(figures: Sequence[Figure]) -> str:
    lines = ["| " + " | ".join(HEADER) + " |", "|---|---:|---|---|---|---|"]
    for f in figures:
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in f.cells()) + " |")
    return "\n".join(lines)


# -- the machine ----------------------------------------------------------------------------------

def machine(root: Path) -> dict[str, str]:
    """What the figures depend on: cores, CPU, RAM, load, commit, versions."""
    from support.machine import cpu_model, ram_gib  # tests/ is on sys.path once harness is loaded
    ram = ram_gib()
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return {"date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "nproc": str(os.cpu_count()), "cpu": cpu_model(),
            "ram": f"{ram:.1f} GiB" if ram is not None else "",
            "load": load, "commit": _git(root), "python": platform.python_version(),
            "redis": _version(["redis-server", "--version"]),
            "mariadb": _version(["mariadbd", "--version"], "/usr/sbin/mariadbd")}


def _git(root: Path) -> str:
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, text=True,
                                capture_output=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               text=True, capture_output=True).stdout.strip()
        return commit + (" (with uncommitted changes)" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _version(cmd: list[str], fallback: str | None = None) -> str:
    for c in ([cmd] + ([[fallback, *cmd[1:]]] if fallback else [])):
        try:
            out = subprocess.run(c, text=True, capture_output=True, timeout=10).stdout
            m = re.search(r"v=?(\d+\.\d+\.\d+)|Ver (\S+)", out)
            if m:
                return m.group(1) or m.group(2)
        except OSError:
            continue
    return "unknown"


def describe(m: dict[str, str]) -> str:
    return (f"{m['date']} · {m['nproc']} cores ({m['cpu']}) · {m['ram']} RAM · load average "
            f"{m['load']} at the start, {m.get('load_end', '?')} at the end · commit {m['commit']} · "
            f"Python {m['python']}, Redis {m['redis']}, MariaDB {m['mariadb']}")


# -- outputs --------------------------------------------------------------------------------------

def write_json(path: Path, figures: Sequence[Figure], m: dict[str, str], args: str) -> None:
    path.write_text(json.dumps({"machine": m, "args": args,
                                "figures": [asdict(f) for f in figures]}, indent=1))


def run_section(figures: Sequence[Figure], m: dict[str, str], args: str, notes: Sequence[str]) -> str:
    parts = [RUN_BEGIN, "", "## The last run", "", f"`scripts/bench {args}`".replace(" `", "`"), "",
             describe(m), "", markdown_table(figures), ""]
    if notes:
        parts += ["Notes from this run:", ""] + [f"- {n}" for n in notes] + [""]
    parts.append(RUN_END)
    return "\n".join(parts)


def write_docs(path: Path, section: str) -> None:
    """Replace the run section of `path` (or append one), keeping the hand-written text."""
    text = path.read_text() if path.exists() else ""
    if RUN_BEGIN in text and RUN_END in text:
        head, _, rest = text.partition(RUN_BEGIN)
        _, _, tail = rest.partition(RUN_END)
        text = head + section + tail
    else:
        text = (text.rstrip() + "\n\n" if text else "") + section + "\n"
    path.write_text(text)
