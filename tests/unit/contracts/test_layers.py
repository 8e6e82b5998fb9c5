"""Layers: core imports no program; workers, operator and api never import each other."""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
FORBIDDEN = {
    "core": ("goreports.workers", "goreports.operator", "goreports.api", "goreports.cli"),
    "workers": ("goreports.operator", "goreports.api", "goreports.cli"),
    "operator": ("goreports.workers", "goreports.api", "goreports.cli"),
    "api": ("goreports.workers", "goreports.operator", "goreports.cli"),
}


def imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            out.append(node.module)
    return out


def test_layers() -> None:
    bad = []
    for folder, forbidden in FORBIDDEN.items():
        for f in (ROOT / folder).rglob("*.py"):
            for name in imports(f):
                if name.startswith(forbidden):
                    bad.append(f"{f.relative_to(ROOT)} imports {name}")
    assert not bad, "\n".join(bad)


def test_no_top_level_operator_package_on_path() -> None:
    import operator

    assert hasattr(operator, "itemgetter"), "the standard library's operator module is shadowed"
