"""What the CRD generators share: write the generated file, or with `--check` say it is stale.

Each generator derives its CRD from the ReportRequest CRD (the one schema); tests compare the
committed file with a fresh render byte for byte.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable


def main(argv: list[str] | None, *, description: str, render: Callable[[], str], target: Path,
         root: Path, script: str) -> int:
    """`script [--check]`: write `target` from `render()`, or exit 1 when it differs."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--check", action="store_true",
                        help="exit 1 if the committed file differs from the generated one")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        current = target.read_text(encoding="utf-8") if target.exists() else ""
        if current != text:
            print(f"{target.relative_to(root)} is stale: run python scripts/{script}",
                  file=sys.stderr)
            return 1
        return 0
    target.write_text(text, encoding="utf-8")
    print(f"wrote {target.relative_to(root)}")
    return 0
